package caddymodule

// Bodies the write endpoint refuses (catalogue part D, see
// docs/threat-model.md), each row a subtest, through the logged sites of
// logged_sites_helpers_test.go.

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPutBodyRefusals: bodies the route refuses before anything is
// stored: too large (declared, chunked or announced), another media type
// or coding, malformed JSON, duplicate or case-variant members, invalid
// text and control characters, deep nesting, wrong types (catalogue rows
// D01-D05, D07-D09, see docs/threat-model.md).
func TestPutBodyRefusals(t *testing.T) {
	f := newProfileUnderAttack(t)
	s, tok, unchanged, refusedRow, jsonHdr := f.s, f.tok, f.unchanged, f.refusedRow, f.jsonHdr

	t.Run("D01_body_over_limit", func(t *testing.T) {
		big := `{"FirstName":"` + strings.Repeat("a", 17<<10) + `"}`
		refusedRow(t, "declared", jsonHdr, []byte(big), 413, "PayloadTooLarge")
		// chunked: Go sends a body of unknown length chunked
		before := s.store.calls()
		req, _ := http.NewRequest("PUT", s.a+profilePath, io.MultiReader(strings.NewReader(big)))
		for k, v := range jsonHdr {
			req.Header.Set(k, v)
		}
		resp, err := s.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Errorf("chunked: %d %s", resp.StatusCode, b)
		}
		s.noStoreCall(t, before, "chunked")
		// a declared length over the cap is answered before any byte of the
		// body is sent: the body is not read
		got, took := rawExchange(t, s.aAddr, []string{"PUT " + profilePath + " HTTP/1.1\r\nHost: " + itHost + "\r\nAuthorization: Bearer " + tok +
			"\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n"}, 3*time.Second)
		if !strings.HasPrefix(got, "HTTP/1.1 413 ") || took > 2500*time.Millisecond {
			t.Errorf("1 MiB announced, none sent: %.60q after %v", got, took)
		}
		unchanged(t)
		s.noSecrets(t, tok)
	})

	t.Run("D02_content_type_and_coding", func(t *testing.T) {
		body := []byte(`{"FirstName":"Coded"}`)
		for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
			"application/json; charset=iso-8859-1", "application/jsonx", "text/json"} {
			hdr := bearer(tok)
			if ct != "" {
				hdr["Content-Type"] = ct
			}
			refusedRow(t, "Content-Type "+ct, hdr, body, 415, "UnsupportedMediaType")
		}
		for name, b := range map[string][]byte{"gzip": gzipped(body), "br": body, "deflate": body, "gzip, identity": body, "GZIP": body, "x-gzip": body} {
			before := s.store.calls()
			r := s.do(t, "PUT", s.a+profilePath, jsonPut(tok, "", "Content-Encoding", name), b)
			wantRefused(t, r, 415, "UnsupportedMediaType")
			if !strings.Contains(r.header.Get("Accept-Encoding"), "identity") {
				t.Errorf("%s: 415 without Accept-Encoding: %v", name, r.header)
			}
			s.noStoreCall(t, before, "Content-Encoding "+name)
		}
		// plain JSON labelled gzip, and a gzip bomb, over the raw socket
		// (nothing client-side touches them)
		before := s.store.calls()
		bomb := gzipped(bytes.Repeat([]byte(" "), 8<<20))
		got, _ := rawExchange(t, s.aAddr, []string{"PUT " + profilePath + " HTTP/1.1\r\nHost: " + itHost + "\r\nAuthorization: Bearer " + tok +
			"\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: " + strconv.Itoa(len(bomb)) + "\r\nConnection: close\r\n\r\n" + string(bomb)}, 3*time.Second)
		if !strings.HasPrefix(got, "HTTP/1.1 415 ") {
			t.Errorf("gzip bomb: %.80q", got)
		}
		s.noStoreCall(t, before, "gzip bomb")
		unchanged(t)
		// the accepted forms
		for _, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON; Charset=\"UTF-8\""} {
			if r := s.do(t, "PUT", s.a+profilePath, jsonPut(tok, "", "Content-Type", ct, "Content-Encoding", "identity"), []byte(`{"FirstName":"Before"}`)); r.status != 200 {
				t.Errorf("%s: %d %s", ct, r.status, r.body)
			}
		}
		// upstream mode: refused before the backend, and a GET's coding label
		// never reaches it
		fetches := s.backend.Fetches.Load()
		r := s.do(t, "PUT", s.b+profilePath, jsonPut(tok, "", "Content-Encoding", "gzip"), body)
		wantRefused(t, r, 415, "UnsupportedMediaType")
		noneReached(t, "upstream gzip PUT", s.backend, fetches)
		if r := s.do(t, "GET", s.b+profilePath, map[string]string{"Authorization": "Bearer " + tok, "Content-Encoding": "gzip"}, nil); r.status != 200 {
			t.Errorf("upstream GET: %d %s", r.status, r.body)
		}
		seen := s.backend.Requests()
		if len(seen) == 0 || seen[len(seen)-1].Header.Get("Content-Encoding") != "" {
			t.Errorf("the backend got the client's Content-Encoding: %v", seen)
		}
		s.noSecrets(t, tok)
	})

	t.Run("D03_malformed_json", func(t *testing.T) {
		for name, body := range map[string]string{"truncated": `{"FirstName":"x"`, "trailing garbage": `{"FirstName":"x"} x`,
			"two objects": `{"FirstName":"x"}{"FirstName":"y"}`, "array": `[{"FirstName":"x"}]`, "empty": ``, "blank": "  \n",
			"BOM": "\ufeff{\"FirstName\":\"x\"}", "string": `"x"`, "null": `null`} {
			refusedRow(t, name, jsonHdr, []byte(body), 400, "InvalidJson")
		}
		unchanged(t)
		s.noSecrets(t, tok)
	})

	t.Run("D04_duplicate_member", func(t *testing.T) {
		refusedRow(t, "duplicate", jsonHdr, []byte(`{"Email":"a@x.io","Email":"b@x.io"}`), 400, "DuplicateProperty@Email")
		refusedRow(t, "duplicate null", jsonHdr, []byte(`{"FirstName":null,"FirstName":"b"}`), 400, "DuplicateProperty@FirstName")
		unchanged(t)
		s.noSecrets(t, tok)
	})

	t.Run("D05_case_variant_members", func(t *testing.T) {
		refusedRow(t, "case variants", jsonHdr, []byte(`{"Email":"a@x.io","email":"b@x.io","EMAIL":"c@x.io"}`), 400, "DuplicateProperty@Email")
		refusedRow(t, "long s", jsonHdr, []byte(`{"UserName":"abc","U\u017ferName":"def"}`), 400, "DuplicateProperty@UserName")
		unchanged(t)
		s.noSecrets(t, tok)
	})

	t.Run("D07_invalid_text", func(t *testing.T) {
		for name, body := range map[string]string{
			"invalid UTF-8":            "{\"FirstName\":\"\xff\xfe\"}",
			"overlong UTF-8":           "{\"FirstName\":\"\xc0\xaf\"}",
			"lone high surrogate":      `{"FirstName":"\ud800"}`,
			"lone low surrogate":       `{"LastName":"\udc00"}`,
			"high then not low":        `{"FirstName":"\ud800\u0041"}`,
			"surrogate in a name":      `{"F\ud800":"x"}`,
			"surrogate in user name":   `{"UserName":"ab\udbff"}`,
			"invalid UTF-8 in a name":  "{\"F\xff\":\"x\"}",
			"surrogate in email":       `{"Email":"a\ud800@x.io"}`,
			"surrogate after a backsl": `{"FirstName":"\\\ud800"}`,
		} {
			refusedRow(t, name, jsonHdr, []byte(body), 400, "InvalidJson")
		}
		for name, body := range map[string]string{
			"NUL": `{"FirstName":"a\u0000b"}`, "C0": `{"LastName":"a\u0001b"}`, "escape": `{"FirstName":"\u001b[31m"}`,
			"newline": `{"LastName":"a\nb"}`, "DEL": `{"FirstName":"a\u007fb"}`, "C1": `{"FirstName":"a\u0085b"}`,
		} {
			refusedRow(t, name, jsonHdr, []byte(body), 400, "InvalidCharacters")
		}
		refusedRow(t, "NUL in user name", jsonHdr, []byte(`{"UserName":"abc\u0000"}`), 400, "InvalidCharacters@UserName")
		refusedRow(t, "NUL in email", jsonHdr, []byte(`{"Email":"a\u0000@x.io"}`), 400, "InvalidEmail@Email")
		unchanged(t)
		// a proper pair is a character like any other
		if r := s.put(t, tok, `{"LastName":"\ud83d\ude00"}`); r.status != 200 || *envOf(t, r).Data.LastName != "\U0001F600" {
			t.Errorf("surrogate pair: %d %s", r.status, r.body)
		}
		s.put(t, tok, `{"LastName":"Last"}`)
		s.noSecrets(t, tok)
	})

	t.Run("D08_deep_nesting_and_long_strings", func(t *testing.T) {
		for name, tc := range map[string]struct {
			body   string
			status int
		}{
			"20000-deep array":     {`{"X":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, 413},
			"5000-deep in a field": {`{"FirstName":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`, 400},
			"7000-deep array":      {`{"X":` + strings.Repeat("[", 7000) + strings.Repeat("]", 7000) + `}`, 200},
			"1 MB string":          {`{"FirstName":"` + strings.Repeat("x", 1<<20) + `"}`, 413},
			"12000-deep in cap":    {`{"X":` + strings.Repeat("[", 12000) + `}`, 400},
		} {
			before := s.store.calls()
			start := time.Now()
			r := s.do(t, "PUT", s.a+profilePath, jsonHdr, []byte(tc.body))
			if took := time.Since(start); took > time.Second {
				t.Errorf("%s: %v", name, took)
			}
			if tc.status == 200 { // an unknown member, however deep, is ignored
				if r.status != 200 || itemCodes(envOf(t, r).Warnings) != "UnknownField@X,NoChanges" {
					t.Errorf("%s: %d %s", name, r.status, r.body)
				}
				continue
			}
			if r.status != tc.status {
				t.Errorf("%s: %d, want %d: %.200s", name, r.status, tc.status, r.body)
			}
			s.noStoreCall(t, before, name)
		}
		unchanged(t)
		s.noSecrets(t, tok)
	})

	t.Run("D09_wrong_types", func(t *testing.T) {
		refusedRow(t, "number", jsonHdr, []byte(`{"Email":123}`), 400, "InvalidType@Email")
		refusedRow(t, "object", jsonHdr, []byte(`{"FirstName":{"a":1}}`), 400, "InvalidType@FirstName")
		refusedRow(t, "array", jsonHdr, []byte(`{"LastName":["a"]}`), 400, "InvalidType@LastName")
		refusedRow(t, "bool", jsonHdr, []byte(`{"UserName":true}`), 400, "InvalidType@UserName")
		r := s.put(t, tok, `{"Email":1,"FirstName":false}`) // every problem at once
		if got := itemCodes(envOf(t, r).Errors); got != "InvalidType@Email,InvalidType@FirstName" {
			t.Errorf("both: %s", got)
		}
		unchanged(t)
		s.noSecrets(t, tok)
	})
}
