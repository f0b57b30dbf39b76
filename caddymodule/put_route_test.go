package caddymodule

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// The write endpoint's rows of the catalogue (part D, see
// docs/threat-model.md) beyond the body itself (put_body_test.go), each a
// subtest, through the logged sites of logged_sites_helpers_test.go.

// TestPutMembersAndFields: what a PUT may change: unknown members are
// ignored with a warning, null and absent leave a field as it is, field
// rules hold at their limits, and the record is always the token's own
// (rows D06, D10-D12).
func TestPutMembersAndFields(t *testing.T) {
	f := newProfileUnderAttack(t)
	s, tok, unchanged, refusedRow, jsonHdr := f.s, f.tok, f.unchanged, f.refusedRow, f.jsonHdr

	t.Run("D06_unknown_members_ignored_with_warning", func(t *testing.T) {
		// the contract: unknown members are ignored with a warning
		r := s.put(t, tok, `{"IsAdmin":true,"Id":"other","Roles":["admin"],"UserType":1,"FirstName":"Before"}`)
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		env := envOf(t, r)
		if got := itemCodes(env.Warnings); got != "UnknownField@IsAdmin,UnknownField@Id,UnknownField@Roles,UnknownField@UserType,NoChanges" {
			t.Errorf("warnings %s", got)
		}
		if env.Data.UserType != 0 || env.Data.UserID != "d-user" {
			t.Errorf("a mass-assigned member was bound: %+v", env.Data)
		}
		s.noSecrets(t, tok)
	})

	t.Run("D10_null_and_absent_leave_fields", func(t *testing.T) {
		// the contract: PUT merges; null and absent leave a field unchanged,
		// "" clears an optional one, and UserName cannot be cleared
		for _, body := range []string{`{}`, `{"FirstName":null}`, `{"Email":null,"LastName":null,"UserName":null}`} {
			r := s.put(t, tok, body)
			if r.status != 200 || itemCodes(envOf(t, r).Warnings) != "NoChanges" {
				t.Errorf("%s: %d %s", body, r.status, r.body)
			}
		}
		unchanged(t)
		refusedRow(t, "clear user name", jsonHdr, []byte(`{"UserName":""}`), 400, "Required@UserName")
		if r := s.put(t, tok, `{"LastName":""}`); r.status != 200 || envOf(t, r).Data.LastName != nil {
			t.Errorf("clear LastName: %d %s", r.status, r.body)
		}
		s.put(t, tok, `{"LastName":"Last"}`)
		unchanged(t)
		s.noSecrets(t, tok)
	})

	t.Run("D11_field_rules", func(t *testing.T) {
		long := func(n int) string { return strings.Repeat("a", n) }
		for name, tc := range map[string]struct{ body, codes string }{
			"email syntax":              {`{"Email":"not-an-address"}`, "InvalidEmail@Email"},
			"email display name":        {`{"Email":"Eve <eve@x.io>"}`, "InvalidEmail@Email"},
			"email two":                 {`{"Email":"a@x.io,b@x.io"}`, "InvalidEmail@Email"},
			"email 255 bytes":           {`{"Email":"` + long(65) + "@" + long(185) + `.com"}`, "TooLong@Email"},
			"email 200 chars 300 bytes": {`{"Email":"` + strings.Repeat("ü", 100) + "@" + long(95) + `.com"}`, "TooLong@Email"},
			"user name charset":         {`{"UserName":"a b c"}`, "InvalidCharacters@UserName"},
			"user name non-ASCII":       {`{"UserName":"jürgen"}`, "InvalidCharacters@UserName"},
			"user name short":           {`{"UserName":"ab"}`, "TooShort@UserName"},
			"user name long":            {`{"UserName":"` + long(65) + `"}`, "TooLong@UserName"},
			"first name long":           {`{"FirstName":"` + long(101) + `"}`, "TooLong@FirstName"},
			"last name long":            {`{"LastName":"` + strings.Repeat("é", 101) + `"}`, "TooLong@LastName"},
		} {
			refusedRow(t, name, jsonHdr, []byte(tc.body), 400, tc.codes)
		}
		unchanged(t)
		// at the limits, and trimmed
		email := long(64) + "@" + long(185) + ".com" // 254 bytes
		r := s.put(t, tok, `{"Email":"`+email+`","FirstName":"  Trimmed  ","LastName":"`+strings.Repeat("é", 100)+`"}`)
		if r.status != 200 || *envOf(t, r).Data.FirstName != "Trimmed" || *envOf(t, r).Data.Email != email {
			t.Errorf("at the limits: %d %.300s", r.status, r.body)
		}
		s.put(t, tok, `{"Email":"d@x.io","FirstName":"Before","LastName":"Last"}`)
		unchanged(t)
		s.noSecrets(t, tok)
	})

	t.Run("D12_identity_from_token_only", func(t *testing.T) {
		victim := s.token(t, "d-victim")
		if r := s.put(t, victim, `{"UserName":"victim","FirstName":"Victim"}`); r.status != 200 {
			t.Fatalf("victim: %d %s", r.status, r.body)
		}
		r := s.do(t, "PUT", s.a+profilePath+"?userId=d-victim&UserId=d-victim&sub=d-victim", jsonHdr,
			[]byte(`{"UserId":"d-victim","Sub":"d-victim","FirstName":"Before"}`))
		if r.status != 200 || envOf(t, r).Data.UserID != "d-user" {
			t.Errorf("%d %s", r.status, r.body)
		}
		// the name is checked by the store (one Update call), which writes nothing
		wantRefused(t, s.put(t, tok, `{"UserName":"VICTIM"}`), 400, "UserNameTaken@UserName")
		v, err := s.store.Store.Get(context.Background(), "d-victim")
		if err != nil || v.FirstName != "Victim" || v.UserName != "victim" || v.Version != 1 {
			t.Errorf("the victim's record: %+v %v", v, err)
		}
		unchanged(t)
		s.noSecrets(t, tok, victim)
	})
}

// TestPutPreconditionsAndRaces: If-Match races have one winner, strong
// comparison only, a replayed PUT changes nothing, and concurrent PUTs
// never mix fields of different bodies (rows D13-D16).
func TestPutPreconditionsAndRaces(t *testing.T) {
	f := newProfileUnderAttack(t)
	s, tok := f.s, f.tok

	t.Run("D13_lost_update", func(t *testing.T) {
		for _, n := range []int{2, 10, 100} {
			u := s.token(t, fmt.Sprintf("d13-%d", n))
			first := s.put(t, u, `{"FirstName":"v0"}`)
			tag := first.header.Get("ETag")
			statuses := make([]int, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					statuses[i] = s.put(t, u, fmt.Sprintf(`{"FirstName":"w%d"}`, i), "If-Match", tag).status
				}()
			}
			wg.Wait()
			winner, wins := -1, 0
			for i, st := range statuses {
				switch st {
				case 200:
					winner, wins = i, wins+1
				case 412:
				default:
					t.Errorf("n=%d: #%d answered %d", n, i, st)
				}
			}
			if wins != 1 {
				t.Fatalf("n=%d: %d winners, want exactly 1 (%v)", n, wins, statuses)
			}
			if d := envOf(t, s.get(t, u)).Data; *d.FirstName != fmt.Sprintf("w%d", winner) {
				t.Errorf("n=%d: final %q, winner w%d", n, *d.FirstName, winner)
			}
		}
		s.noSecrets(t, tok)
	})

	t.Run("D14_preconditions", func(t *testing.T) {
		// the contract: no precondition is required; PUT answers carry the ETag
		u := s.token(t, "d14")
		r := s.put(t, u, `{"FirstName":"x"}`, "If-Match", "*") // absent profile
		wantRefused(t, r, 412, "PreconditionFailed")
		if _, err := s.store.Store.Get(context.Background(), "d14"); !errors.Is(err, profile.ErrNotFound) {
			t.Errorf("If-Match * created the profile: %v", err)
		}
		r = s.put(t, u, `{"FirstName":"x"}`)
		if r.status != 200 || r.header.Get("ETag") == "" {
			t.Fatalf("unconditional: %d %v", r.status, r.header)
		}
		tag := r.header.Get("ETag")
		if g := s.get(t, u); g.header.Get("ETag") != tag {
			t.Errorf("PUT ETag %s, GET ETag %s", tag, g.header.Get("ETag"))
		}
		wantRefused(t, s.put(t, u, `{"FirstName":"y"}`, "If-Match", "W/"+tag), 412, "PreconditionFailed")
		wantRefused(t, s.put(t, u, `{"FirstName":"y"}`, "If-Match", `"1-other"`), 412, "PreconditionFailed")
		if r := s.put(t, u, `{"FirstName":"y"}`, "If-Match", `"nope", `+tag); r.status != 200 {
			t.Errorf("list with the tag: %d", r.status)
		}
		if r := s.put(t, u, `{"FirstName":"z"}`, "If-Match", "*"); r.status != 200 {
			t.Errorf("If-Match * on an existing profile: %d", r.status)
		}
		s.noSecrets(t, tok, u)
	})

	t.Run("D15_replayed_put", func(t *testing.T) {
		// the contract: creation answers 200
		u := s.token(t, "d15")
		body := `{"UserName":"dFifteen","FirstName":"Same"}`
		first := s.put(t, u, body)
		if first.status != 200 || first.header.Get("ETag") == "" {
			t.Fatalf("first: %d %s", first.status, first.body)
		}
		for i := range 10 {
			r := s.put(t, u, body)
			if r.status != 200 || r.header.Get("ETag") != first.header.Get("ETag") || itemCodes(envOf(t, r).Warnings) != "NoChanges" {
				t.Fatalf("replay %d: %d %s %s", i, r.status, r.header.Get("ETag"), r.body)
			}
		}
		s.noSecrets(t, u)
	})

	t.Run("D16_concurrent_puts", func(t *testing.T) {
		const n = 100
		u := s.token(t, "d16")
		s.put(t, u, `{"FirstName":"init","LastName":"init","Email":"init@x.io"}`)
		fields := []string{"FirstName", "LastName", "Email"}
		value := func(i int) string {
			if fields[i%3] == "Email" {
				return fmt.Sprintf("e%d@x.io", i)
			}
			return fmt.Sprintf("v%d", i)
		}
		statuses := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				statuses[i] = s.put(t, u, fmt.Sprintf(`{%q:%q}`, fields[i%3], value(i))).status
			}()
		}
		wg.Wait()
		for i, st := range statuses {
			if st != 200 {
				t.Errorf("#%d: %d", i, st)
			}
		}
		// each field holds one of the values written to it: none was lost to
		// a write of another field
		d := envOf(t, s.get(t, u)).Data
		for f, got := range map[string]string{"FirstName": *d.FirstName, "LastName": *d.LastName, "Email": *d.Email} {
			ok := false
			for i := range n {
				ok = ok || (fields[i%3] == f && value(i) == got)
			}
			if !ok {
				t.Errorf("%s = %q: not one of the values written to it", f, got)
			}
		}
		// whole bodies: the final record is exactly one of them
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if r := s.put(t, u, fmt.Sprintf(`{"FirstName":"b%d","LastName":"b%d","Email":"b%d@x.io"}`, i, i, i)); r.status != 200 {
					t.Errorf("body %d: %d", i, r.status)
				}
			}()
		}
		wg.Wait()
		d = envOf(t, s.get(t, u)).Data
		if *d.FirstName != *d.LastName || *d.Email != *d.FirstName+"@x.io" {
			t.Errorf("fields of different bodies mixed: %s %s %s", *d.FirstName, *d.LastName, *d.Email)
		}
		s.noSecrets(t, u)
	})
}

// TestPutStoreAndUpstreamFailures: a store outage is a 503 with
// Retry-After and no partial write, upstream faults map to 502/504 without
// the upstream's text, and slow clients are cut off before any store call
// (rows D19-D21).
func TestPutStoreAndUpstreamFailures(t *testing.T) {
	f := newProfileUnderAttack(t)
	s, tok, unchanged := f.s, f.tok, f.unchanged

	// D17 (SIGKILL under load) is cmd/caddy TestCrashKill9UnderPuts, on the
	// built binary and a bolt file; D18 (a second bolt.Open of one file) is
	// profile/boltstore TestLockedFileTimesOut and TestBoltSymlinkIsOneStore
	// and TestReloadSwitchingStorageUnderLoad here: this site runs a counting
	// memory store, so they are not rows of this table (CI refuses skips).
	t.Run("D19_store_outage", func(t *testing.T) {
		s.store.down.Store(true)
		defer s.store.down.Store(false)
		for _, r := range []itResponse{s.get(t, tok), s.put(t, tok, `{"FirstName":"During"}`)} {
			wantRefused(t, r, 503, "StorageUnavailable")
			if r.header.Get("Retry-After") == "" || bytes.Contains(r.body, []byte("10.9.9.9")) || bytes.Contains(r.body, []byte("refused")) {
				t.Errorf("503: %v %s", r.header, r.body)
			}
		}
		s.store.down.Store(false)
		unchanged(t)
		s.noSecrets(t, tok)
	})

	t.Run("D20_upstream_faults", func(t *testing.T) {
		marker := "UPSTREAM-SECRET-TEXT"
		ask := func(t *testing.T, base string) itResponse {
			t.Helper()
			return s.do(t, "GET", base+profilePath, bearer(tok), nil)
		}
		if r := ask(t, s.c); r.status != 502 || itemCodes(envOf(t, r).Errors) != "UpstreamUnavailable" {
			t.Errorf("refused: %d %s", r.status, r.body)
		}
		for name, tc := range map[string]struct {
			serve  http.HandlerFunc
			status int
			code   string
		}{
			"html 200": {func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				_, _ = io.WriteString(w, "<html>"+marker+"</html>")
			}, 502, ""},
			"json labelled text": {func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				_, _ = io.WriteString(w, marker)
			}, 502, ""},
			"500 text": {func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(500)
				_, _ = io.WriteString(w, "stack trace "+marker)
			}, 502, ""},
			"204": {func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }, 200, ""},
			"too large": {func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"userId":"`+strings.Repeat("x", 2<<20)+`"}`)
			}, 502, "UpstreamResponseTooLarge"},
			"no headers before the timeout": {func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-time.After(3 * time.Second):
				}
			}, 504, "UpstreamTimeout"},
			"redirect": {func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "/elsewhere", http.StatusFound)
			}, 0, ""},
		} {
			s.backend.Serve(tc.serve)
			before := s.backend.Fetches.Load()
			r := ask(t, s.b)
			if bytes.Contains(r.body, []byte(marker)) {
				t.Errorf("%s: the backend's text reached the client: %s", name, r.body)
			}
			if n := s.backend.Fetches.Load() - before; n != 1 {
				t.Errorf("%s: %d backend requests (a redirect is not followed, nothing re-sent)", name, n)
			}
			if tc.status == 0 { // not followed (one request above); never a success
				if r.status == 200 {
					t.Errorf("%s: %d %s", name, r.status, r.body)
				}
				continue
			}
			if r.status != tc.status || (tc.code != "" && itemCodes(envOf(t, r).Errors) != tc.code) {
				t.Errorf("%s: %d %s", name, r.status, r.body)
			}
		}
		s.backend.Set(200, []byte(`{"userId":"u-1","userName":"alice"}`))
		s.noSecrets(t, tok, marker)
	})

	t.Run("D21_slow_clients", func(t *testing.T) {
		before := s.store.calls()
		// headers one byte at a time: closed at read_header (2 s here)
		head := "PUT " + profilePath + " HTTP/1.1\r\nHost: " + itHost + "\r\nAuthorization: Bearer " + tok + "\r\n"
		var pieces []string
		for i := range 40 {
			pieces = append(pieces, head[i:i+1])
		}
		got, took := rawExchange(t, s.aAddr, pieces, 400*time.Millisecond)
		if took > 5*time.Second || strings.Contains(got, " 200 ") {
			t.Errorf("slow headers: %.60q after %v", got, took)
		}
		// a body trickled a byte at a time: cut at read_body (2 s here)
		body := `{"FirstName":"Trickled"}`
		pieces = []string{head + "Content-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"}
		for i := range body {
			pieces = append(pieces, body[i:i+1])
		}
		got, took = rawExchange(t, s.aAddr, pieces, 400*time.Millisecond)
		if took > 5*time.Second || strings.Contains(got, " 200 ") {
			t.Errorf("slow body: %.80q after %v", got, took)
		}
		s.noStoreCall(t, before, "slow headers and trickled body")
		unchanged(t)
		s.noSecrets(t, tok)
	})
}

// TestRouteAnswerContract: other methods are 405 with Allow: GET, PUT,
// auth failures are problem details, and every answer carries Vary:
// Authorization and Cache-Control: no-store (row D22).
func TestRouteAnswerContract(t *testing.T) {
	f := newProfileUnderAttack(t)
	s, tok, jsonHdr := f.s, f.tok, f.jsonHdr

	t.Run("D22_methods_and_answer_headers", func(t *testing.T) {
		for _, m := range []string{"POST", "PATCH", "DELETE", "TRACE"} {
			before := s.store.calls()
			r := s.do(t, m, s.a+profilePath, jsonHdr, []byte(`{"FirstName":"x"}`))
			if r.status != 405 || r.header.Get("Allow") != "GET, PUT" {
				t.Errorf("%s: %d Allow %q", m, r.status, r.header.Get("Allow"))
			}
			s.noStoreCall(t, before, m)
		}
		// the contract: auth failures are problem details (checkAnswer holds
		// their status; every other answer of this test was an envelope)
		r := s.do(t, "PUT", s.a+profilePath, map[string]string{"Content-Type": "application/json"}, []byte(`{}`))
		if r.status != 401 || r.header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("no token: %d %v", r.status, r.header)
		}
		// Vary: Authorization and no-store on profile answers, refusals and
		// 304s alike: the answer depends on who asks
		g := s.get(t, tok)
		for want, a := range map[int]itResponse{200: g, 401: r,
			405: s.do(t, "DELETE", s.a+profilePath, bearer(tok), nil),
			304: s.do(t, "GET", s.a+profilePath, map[string]string{"Authorization": "Bearer " + tok, "If-None-Match": g.header.Get("ETag")}, nil)} {
			if a.status != want || a.header.Get("Vary") != "Authorization" || a.header.Get("Cache-Control") != "no-store" {
				t.Errorf("want %d: %d Vary %q Cache-Control %q, want Authorization and no-store", want, a.status, a.header.Values("Vary"), a.header.Get("Cache-Control"))
			}
		}
		s.noSecrets(t, tok)
	})
}
