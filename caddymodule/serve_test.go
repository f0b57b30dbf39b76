package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
	"github.com/workspace-edge/caddy-workspace-profile/profile/boltstore"
)

type envelopeBody struct {
	Data     *profile.ProfileData
	Errors   []profile.Item
	Warnings []profile.Item
	Success  bool
}

func decodeEnvelope(t testing.TB, rec *httptest.ResponseRecorder) envelopeBody {
	t.Helper()
	h := rec.Header()
	if h.Get("Content-Type") != "application/json; charset=utf-8" || h.Get("Cache-Control") != "no-store" || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("envelope headers: %v", h)
	}
	var e envelopeBody
	dec := json.NewDecoder(rec.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("envelope: %v", err)
	}
	if e.Errors == nil || e.Warnings == nil {
		t.Fatal("Errors and Warnings must be arrays, never null")
	}
	if e.Success != (len(e.Errors) == 0) || (e.Data == nil) == e.Success {
		t.Fatalf("inconsistent envelope: %+v", e)
	}
	return e
}

func itemCodes(items []profile.Item) string {
	var out []string
	for _, it := range items {
		s := it.Code
		if it.Field != nil {
			s += "@" + *it.Field
		}
		out = append(out, s)
	}
	return strings.Join(out, ",")
}

func jsonPut(tok, body string, extra ...string) map[string]string {
	h := map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/json"}
	for i := 0; i+1 < len(extra); i += 2 {
		h[extra[i]] = extra[i+1]
	}
	return h
}

func TestRoutingAndMethods(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	h, store := newFileHandler(t, jwtauthtest.JWKS(t, k), func(h *Handler) { h.CreateMissing = true })
	tok := k.Mint(t, jwtauthtest.Claims("u1"), nil)
	for _, p := range []string{"/", "/api/workspace/account", profilePath + "/x", profilePath + "s", profilePath + "/.."} {
		if rec := serve(t, h, "GET", p, bearer(tok), ""); rec.Code != nextStatus {
			t.Errorf("%s: %d, want it passed on", p, rec.Code)
		}
	}
	for _, p := range []string{profilePath + "/", profilePath + "//", "/API/workspace/account/profile"} {
		if rec := serve(t, h, "GET", p, bearer(tok), ""); rec.Code != 200 {
			t.Errorf("%s: %d, want the route's answer", p, rec.Code)
		}
	}
	if rec := serve(t, h, "OPTIONS", profilePath, nil, ""); rec.Code != nextStatus {
		t.Errorf("OPTIONS: %d, want it passed on", rec.Code)
	}
	before := store.calls.Load()
	for _, m := range []string{"POST", "DELETE", "PATCH", "HEAD"} {
		rec := serve(t, h, m, profilePath, bearer(tok), "")
		if rec.Code != 405 || rec.Header().Get("Allow") != "GET, PUT" {
			t.Errorf("%s: %d Allow=%q", m, rec.Code, rec.Header().Get("Allow"))
			continue
		}
		if m != "HEAD" && itemCodes(decodeEnvelope(t, rec).Errors) != "MethodNotAllowed" {
			t.Errorf("%s: body %s", m, rec.Body)
		}
	}
	if store.calls.Load() != before {
		t.Error("405 reached the store")
	}
}

func TestGetAndPut(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	h, _ := newFileHandler(t, jwtauthtest.JWKS(t, k), nil)
	c := jwtauthtest.Claims("u1")
	c["preferred_username"] = "alice"
	c["email"] = "alice@example.com"
	tok := k.Mint(t, c, nil)

	// without create_missing an unknown subject is 404
	rec := serve(t, h, "GET", profilePath, bearer(tok), "")
	if rec.Code != 404 || itemCodes(decodeEnvelope(t, rec).Errors) != "ProfileNotFound" {
		t.Fatalf("unknown subject: %d %s", rec.Code, rec.Body)
	}
	rec = serve(t, h, "PUT", profilePath, jsonPut(tok, `{"FirstName":"A"}`), `{"FirstName":"A"}`)
	if rec.Code != 404 {
		t.Fatalf("PUT unknown subject: %d %s", rec.Code, rec.Body)
	}

	h.service.CreateMissing = true
	rec = serve(t, h, "GET", profilePath, bearer(tok), "")
	env := decodeEnvelope(t, rec)
	etag := rec.Header().Get("ETag")
	if rec.Code != 200 || *env.Data.UserName != "alice" || *env.Data.Email != "alice@example.com" || env.Data.FirstName != nil || etag == "" {
		t.Fatalf("created: %d %s etag %q", rec.Code, rec.Body, etag)
	}

	// If-None-Match with the current tag: 304, no body
	rec = serve(t, h, "GET", profilePath, map[string]string{"Authorization": "Bearer " + tok, "If-None-Match": etag}, "")
	if rec.Code != 304 || rec.Body.Len() != 0 || rec.Header().Get("ETag") != etag {
		t.Fatalf("If-None-Match: %d %q", rec.Code, rec.Body)
	}

	body := `{"firstname":"  Alice ","LASTNAME":"Liddell","Email":"","Nick":"al"}`
	rec = serve(t, h, "PUT", profilePath, jsonPut(tok, body, "If-Match", etag), body)
	env = decodeEnvelope(t, rec)
	newTag := rec.Header().Get("ETag")
	if rec.Code != 200 || *env.Data.FirstName != "Alice" || *env.Data.LastName != "Liddell" || env.Data.Email != nil ||
		itemCodes(env.Warnings) != "UnknownField@Nick" || newTag == etag || newTag == "" {
		t.Fatalf("PUT: %d %s tag %q", rec.Code, rec.Body, newTag)
	}

	// the old tag no longer matches
	rec = serve(t, h, "PUT", profilePath, jsonPut(tok, `{"FirstName":"B"}`, "If-Match", etag), `{"FirstName":"B"}`)
	if rec.Code != 412 || itemCodes(decodeEnvelope(t, rec).Errors) != "PreconditionFailed" {
		t.Fatalf("stale If-Match: %d %s", rec.Code, rec.Body)
	}

	// the same values again: success, NoChanges, same tag
	rec = serve(t, h, "PUT", profilePath, jsonPut(tok, `{"FirstName":"Alice"}`), `{"FirstName":"Alice"}`)
	if env = decodeEnvelope(t, rec); rec.Code != 200 || itemCodes(env.Warnings) != "NoChanges" || rec.Header().Get("ETag") != newTag {
		t.Fatalf("no-op PUT: %d %s", rec.Code, rec.Body)
	}

	// every problem at once, with Field set; nothing written
	bad := `{"UserName":"a$","Email":"nope","FirstName":12,"LastName":"` + strings.Repeat("x", 101) + `"}`
	rec = serve(t, h, "PUT", profilePath, jsonPut(tok, bad), bad)
	if env = decodeEnvelope(t, rec); rec.Code != 400 ||
		itemCodes(env.Errors) != "InvalidType@FirstName,TooShort@UserName,InvalidCharacters@UserName,InvalidEmail@Email,TooLong@LastName" {
		t.Fatalf("invalid PUT: %d %s", rec.Code, rec.Body)
	}
	rec = serve(t, h, "GET", profilePath, bearer(tok), "")
	if rec.Header().Get("ETag") != newTag {
		t.Fatal("a refused PUT changed the profile")
	}

	// user names are unique ignoring case
	other := k.Mint(t, jwtauthtest.Claims("u2"), nil)
	rec = serve(t, h, "PUT", profilePath, jsonPut(other, `{"UserName":"ALICE"}`), `{"UserName":"ALICE"}`)
	if env = decodeEnvelope(t, rec); rec.Code != 400 || itemCodes(env.Errors) != "UserNameTaken@UserName" {
		t.Fatalf("taken name: %d %s", rec.Code, rec.Body)
	}
}

func TestPutBodies(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	h, store := newFileHandler(t, jwtauthtest.JWKS(t, k), func(h *Handler) { h.CreateMissing = true; h.MaxBody = 1024 })
	tok := k.Mint(t, jwtauthtest.Claims("u1"), nil)
	big := `{"FirstName":"` + strings.Repeat("a", 1100) + `"}`
	tests := []struct {
		name, ct, body string
		status         int
		code           string
	}{
		{"no content type", "", `{}`, 415, "UnsupportedMediaType"},
		{"text/plain", "text/plain", `{}`, 415, "UnsupportedMediaType"},
		{"form", "application/x-www-form-urlencoded", `a=b`, 415, "UnsupportedMediaType"},
		{"latin-1 json", "application/json; charset=iso-8859-1", `{}`, 415, "UnsupportedMediaType"},
		{"json utf-8", "application/json; charset=UTF-8", `{}`, 200, ""},
		{"problem+json style", "application/merge-patch+json", `{}`, 200, ""},
		{"empty body", "application/json", ``, 400, "InvalidJson"},
		{"not an object", "application/json", `[]`, 400, "InvalidJson"},
		{"trailing data", "application/json", `{}{}`, 400, "InvalidJson"},
		{"duplicate property", "application/json", `{"Email":"a@x.io","email":"b@x.io"}`, 400, "DuplicateProperty"},
		{"invalid utf-8", "application/json", "{\"FirstName\":\"\xff\"}", 400, "InvalidJson"},
		{"too large", "application/json", big, 413, "PayloadTooLarge"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{"Authorization": "Bearer " + tok}
			if tt.ct != "" {
				hdr["Content-Type"] = tt.ct
			}
			before := store.calls.Load()
			rec := serve(t, h, "PUT", profilePath, hdr, tt.body)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			env := decodeEnvelope(t, rec)
			if tt.code != "" && (len(env.Errors) == 0 || env.Errors[0].Code != tt.code) {
				t.Fatalf("errors %s, want %s", itemCodes(env.Errors), tt.code)
			}
			if tt.status != 200 && store.calls.Load() != before {
				t.Fatal("a refused body reached the store")
			}
		})
	}
	// the table's "too large" announced its length; a chunked body of
	// unknown length is cut at the cap while it is read
	req := httptest.NewRequest("PUT", profilePath, strings.NewReader(big))
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	req = req.WithContext(context.WithValue(req.Context(), caddyReplacerKey(), newReplacer()))
	rec := httptest.NewRecorder()
	_ = h.ServeHTTP(rec, req, next)
	if rec.Code != 413 || decodeEnvelope(t, rec).Errors[0].Metadata["MaxBytes"] != "1024" {
		t.Fatalf("chunked body over the cap: %d %s", rec.Code, rec.Body)
	}
}

func TestStorageUnavailable(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	path := filepath.Join(t.TempDir(), "p.db")
	h, _ := newFileHandler(t, jwtauthtest.JWKS(t, k), func(h *Handler) {
		h.CreateMissing = true
		h.StorageRaw = json.RawMessage(`{"backend":"bolt","path":` + strings.TrimSpace(string(jwtauthtest.MustJSON(t, path))) + `}`)
	})
	tok := k.Mint(t, jwtauthtest.Claims("u1"), nil)
	if rec := serve(t, h, "GET", profilePath, bearer(tok), ""); rec.Code != 200 {
		t.Fatalf("before the failure: %d", rec.Code)
	}
	// the file goes away under the handler (what a failed disk looks like)
	_ = h.service.Store.(*countingStore).Store.Close()
	for _, m := range []string{"GET", "PUT"} {
		rec := serve(t, h, m, profilePath, jsonPut(tok, `{"FirstName":"X"}`), `{"FirstName":"X"}`)
		env := decodeEnvelope(t, rec)
		if rec.Code != 503 || itemCodes(env.Errors) != "StorageUnavailable" || strings.Contains(rec.Body.String(), "database") {
			t.Fatalf("%s with the store down: %d %s", m, rec.Code, rec.Body)
		}
	}
	s, err := boltstore.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if p, err := s.Get(context.Background(), "u1"); err != nil || p.FirstName != "" || p.Version != 1 {
		t.Fatalf("after the failed PUT: %+v %v", p, err)
	}
}

// brokenStore fails every call, as a store that is down does.
type brokenStore struct{ profile.Store }

func (brokenStore) Get(context.Context, string) (profile.Profile, error) {
	return profile.Profile{}, errors.New("connection refused")
}

// TestStorageUnavailableRetryAfter: a 503 StorageUnavailable tells the
// client when to come back, as KeysUnavailable does.
func TestStorageUnavailableRetryAfter(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	h, _ := newFileHandler(t, jwtauthtest.JWKS(t, k), nil)
	h.service.Store = brokenStore{h.service.Store}
	rec := serve(t, h, "GET", profilePath, bearer(k.Mint(t, jwtauthtest.Claims("u"), nil)), "")
	if rec.Code != 503 || rec.Header().Get("Retry-After") != retryAfterSeconds || strings.Contains(rec.Body.String(), "refused") {
		t.Errorf("%d Retry-After=%q %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
}
