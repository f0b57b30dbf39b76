package apikey

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

var requestNow = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

func TestParseCreateRequestAccepts(t *testing.T) {
	for body, want := range map[string]CreateRequest{
		`{"subject":"u1","kind":"user"}`:                            {Subject: "u1", Kind: KindUser},
		`{"kind":"service","subject":"svc-9","name":"ci deploy"}`:   {Subject: "svc-9", Kind: KindService, Name: "ci deploy"},
		`{"subject":"u1","kind":"user","name":null,"expires":null}`: {Subject: "u1", Kind: KindUser},
		`{"subject":"u1","kind":"user","expires":"2027-01-01T00:00:00+02:00"}`: {Subject: "u1", Kind: KindUser,
			Expires: time.Date(2026, 12, 31, 22, 0, 0, 0, time.UTC)},
		` {"subject":"Ünïcode","kind":"user","name":"` + strings.Repeat("é", MaxNameLen) + `"} `: {Subject: "Ünïcode",
			Kind: KindUser, Name: strings.Repeat("é", MaxNameLen)},
	} {
		got, err := ParseCreateRequest([]byte(body), requestNow)
		if err != nil || got != want {
			t.Errorf("%s: %+v, %v; want %+v", body, got, err, want)
		}
	}
}

func TestParseCreateRequestRefusesPrecisely(t *testing.T) {
	for _, c := range []struct{ body, msg string }{
		{``, "one JSON object"},
		{"{\"subject\":\"u\tv\",\"kind\":\"user\"}", "not acceptable JSON"},
		{`{"subject":"u1","kind":"user"`, "one JSON object"},
		{`[]`, "one JSON object"},
		{`null`, "one JSON object"},
		{`"u1"`, "one JSON object"},
		{`{"subject":"u1","kind":"user"} {}`, "one JSON object"},
		{`{"subject":"u1","kind":"user","key":"wsk_x"}`, `unknown member "key"`},
		{`{"subject":"u1","kind":"user","Subject":"u2"}`, `unknown member "Subject"`},
		{`{"subject":"u1","kind":"user","subject":"u2"}`, "names a member twice"},
		{`{"subject":"u1","kind":"user","subj\u0065ct":"u2"}`, "names a member twice"},
		{`{"kind":"user"}`, "subject is required"},
		{`{"subject":null,"kind":"user"}`, "subject is required"},
		{`{"subject":"","kind":"user"}`, "subject: subject is required"},
		{`{"subject":" u1","kind":"user"}`, "white space"},
		{`{"subject":"` + strings.Repeat("a", profile.MaxUserIDBytes+1) + `","kind":"user"}`, "longer than 255 bytes"},
		{`{"subject":"u\ufffd","kind":"user"}`, "U+FFFD"},
		{`{"subject":"u\u0001","kind":"user"}`, "control character"},
		{"{\"subject\":\"u\xff\",\"kind\":\"user\"}", "UTF-8"},
		{`{"subject":"u\ud800","kind":"user"}`, "surrogate"},
		{`{"subject":1,"kind":"user"}`, "subject must be a string"},
		{`{"subject":"u1"}`, "kind is required"},
		{`{"subject":"u1","kind":"admin"}`, `kind must be "user" or "service"`},
		{`{"subject":"u1","kind":"User"}`, `kind must be "user" or "service"`},
		{`{"subject":"u1","kind":["user"]}`, "kind must be a string"},
		{`{"subject":"u1","kind":"user","name":"` + strings.Repeat("é", MaxNameLen+1) + `"}`, "name is 101 characters long; at most 100"},
		{`{"subject":"u1","kind":"user","name":7}`, "name must be a string"},
		{`{"subject":"u1","kind":"user","expires":"2025-01-01T00:00:00Z"}`, "expires must lie in the future"},
		{`{"subject":"u1","kind":"user","expires":"2026-12-05T12:00:00Z"}`, "expires must lie in the future"},
		{`{"subject":"u1","kind":"user","expires":"2030-01-01"}`, "RFC 3339"},
		{`{"subject":"u1","kind":"user","expires":1893456000}`, "expires must be a string"},
	} {
		_, err := ParseCreateRequest([]byte(c.body), requestNow)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%.80s: %v; want an error with %q", c.body, err, c.msg)
		}
	}
}

// TestParseCreateRequestNeverRepeatsLongNames: an unknown member's name
// is quoted cut short, so an answer never grows with the body.
func TestParseCreateRequestNeverRepeatsLongNames(t *testing.T) {
	long := strings.Repeat("x", 1000)
	_, err := ParseCreateRequest([]byte(`{"`+long+`":1}`), requestNow)
	if err == nil || len(err.Error()) > 200 {
		t.Fatalf("%v", err)
	}
}

func TestReadCreateRequestIsBounded(t *testing.T) {
	body := `{"subject":"u1","kind":"user","name":"` + strings.Repeat(" ", MaxCreateRequestBytes) + `"}`
	if _, err := ReadCreateRequest(strings.NewReader(body), requestNow); !errors.Is(err, ErrRequestTooLarge) {
		t.Fatalf("a body of %d bytes: %v", len(body), err)
	}
	padded := `{"subject":"u1","kind":"user"}` + strings.Repeat(" ", MaxCreateRequestBytes-30)
	if r, err := ReadCreateRequest(strings.NewReader(padded), requestNow); err != nil || r.Subject != "u1" {
		t.Fatalf("a body of exactly %d bytes: %v", len(padded), err)
	}
}

// FuzzCreateRequest: whatever the body, ParseCreateRequest does not
// panic, and what it accepts keeps every rule and reads back the same
// when written out again.
func FuzzCreateRequest(f *testing.F) {
	for _, s := range []string{`{"subject":"u1","kind":"user"}`, `{"subject":"u1","kind":"service","name":"n","expires":"2030-01-01T00:00:00Z"}`,
		`{"subject":"u1","kind":"user","subject":"u2"}`, `{"subject":"\u00e9","kind":"user","name":null}`, `[]`, `{`, `{"a":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseCreateRequest(body, requestNow)
		if err != nil {
			if r != (CreateRequest{}) {
				t.Fatalf("refused with %v but returned %+v", err, r)
			}
			return
		}
		if len(profile.UserIDProblems(r.Subject)) > 0 || !r.Kind.Valid() || utf8.RuneCountInString(r.Name) > MaxNameLen ||
			!r.Expires.IsZero() && (!r.Expires.After(requestNow) || r.Expires.Location() != time.UTC) {
			t.Fatalf("accepted %q as %+v", body, r)
		}
		out := map[string]any{"subject": r.Subject, "kind": r.Kind, "name": r.Name}
		if !r.Expires.IsZero() {
			out["expires"] = r.Expires.Format(time.RFC3339Nano)
		}
		again, _ := json.Marshal(out)
		r2, err := ParseCreateRequest(again, requestNow)
		if err != nil || r2 != r {
			t.Fatalf("%q accepted as %+v; written out %s it reads %+v, %v", body, r, again, r2, err)
		}
	})
}
