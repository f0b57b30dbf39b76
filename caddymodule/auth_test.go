package caddymodule

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// nextStatus is what the next handler answers, so tests can tell a request
// that was passed on from one the route answered.
const nextStatus = http.StatusTeapot

var next = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
	w.WriteHeader(nextStatus)
	return nil
})

// serve runs one request through h with a Caddy replacer in its context.
func serve(t testing.TB, h *Handler, method, target string, hdr map[string]string, body string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	rec := httptest.NewRecorder()
	if err := h.ServeHTTP(rec, req, next); err != nil {
		t.Fatalf("ServeHTTP returned %v", err)
	}
	return rec
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

type problemBody struct {
	Type, Title, Detail, Instance, Code, TraceID string
	Status                                       int
}

func decodeProblem(t testing.TB, rec *httptest.ResponseRecorder) problemBody {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json (body %s)", ct, rec.Body)
	}
	var p problemBody
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem body %q: %v", rec.Body, err)
	}
	if p.Status != rec.Code {
		t.Fatalf("problem status %d != response status %d", p.Status, rec.Code)
	}
	return p
}

const profilePath = "/api/workspace/account/profile"

func TestAuthenticationTable(t *testing.T) {
	rsaKey := jwtauthtest.NewKey(t, jwa.RS256(), "rsa-1")
	ecKey := jwtauthtest.NewKey(t, jwa.ES256(), "ec-1")
	edKey := jwtauthtest.NewKey(t, jwa.EdDSA(), "ed-1")
	stranger := jwtauthtest.NewKey(t, jwa.RS256(), "rsa-1") // same kid, not in the set
	h, store := newFileHandler(t, jwtauthtest.JWKS(t, rsaKey, ecKey, edKey), func(h *Handler) { h.CreateMissing = true })

	with := func(mod func(c map[string]any)) map[string]any {
		c := jwtauthtest.Claims("user-1")
		mod(c)
		return c
	}
	now := time.Now()
	challenge := `Bearer realm="workspace", error="invalid_token", error_description="`
	tests := []struct {
		name    string
		target  string
		hdr     map[string]string
		status  int
		code    string
		wwwAuth string // prefix
		reachDB bool
	}{
		{name: "RS256 accepted", hdr: bearer(rsaKey.Mint(t, jwtauthtest.Claims("user-1"), nil)), status: 200, reachDB: true},
		{name: "ES256 accepted", hdr: bearer(ecKey.Mint(t, jwtauthtest.Claims("user-1"), nil)), status: 200, reachDB: true},
		{name: "EdDSA accepted", hdr: bearer(edKey.Mint(t, jwtauthtest.Claims("user-1"), nil)), status: 200, reachDB: true},
		{name: "no kid tries keys of the alg", hdr: bearer(rsaKey.Mint(t, jwtauthtest.Claims("user-1"), map[string]any{"kid": nil})), status: 200, reachDB: true},
		{name: "scheme case-insensitive", hdr: map[string]string{"Authorization": "bEARER " + rsaKey.Mint(t, jwtauthtest.Claims("user-1"), nil)}, status: 200, reachDB: true},
		{name: "query token", target: profilePath + "?access_token=" + rsaKey.Mint(t, jwtauthtest.Claims("user-1"), nil) + "&x=1", status: 200, reachDB: true},
		{name: "expired within leeway accepted", hdr: bearer(rsaKey.Mint(t, with(func(c map[string]any) { c["exp"] = now.Add(-20 * time.Second).Unix() }), nil)), status: 200, reachDB: true},
		{name: "aud array", hdr: bearer(rsaKey.Mint(t, with(func(c map[string]any) { c["aud"] = []string{"other", testAudience} }), nil)), status: 200, reachDB: true},

		{name: "no token", status: 401, code: "MissingToken", wwwAuth: `Bearer realm="workspace"`},
		{name: "basic scheme", hdr: map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, status: 401, code: "MissingToken"},
		{name: "empty bearer", hdr: map[string]string{"Authorization": "Bearer "}, status: 401, code: "MissingToken"},
		{name: "malformed", hdr: bearer("not-a-token"), status: 401, code: "InvalidToken", wwwAuth: challenge},
		{name: "bad signature (stranger key, known kid)", hdr: bearer(stranger.Mint(t, jwtauthtest.Claims("user-1"), nil)), status: 401, code: "InvalidToken", wwwAuth: challenge},
		{name: "unknown kid", hdr: bearer(rsaKey.Mint(t, jwtauthtest.Claims("user-1"), map[string]any{"kid": "nope"})), status: 401, code: "InvalidToken"},
		{name: "header alg differs from key alg", hdr: bearer(func() string {
			k := rsaKey
			k.Alg = jwa.PS256()
			return k.Mint(t, jwtauthtest.Claims("user-1"), nil)
		}()), status: 401, code: "InvalidToken"},
		{name: "expired", hdr: bearer(rsaKey.Mint(t, with(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() }), nil)), status: 401, code: "TokenExpired", wwwAuth: challenge},
		{name: "nbf in the future", hdr: bearer(rsaKey.Mint(t, with(func(c map[string]any) { c["nbf"] = now.Add(time.Minute).Unix() }), nil)), status: 401, code: "TokenNotYetValid", wwwAuth: challenge},
		{name: "iat in the future", hdr: bearer(rsaKey.Mint(t, with(func(c map[string]any) { c["iat"] = now.Add(time.Minute).Unix() }), nil)), status: 401, code: "TokenNotYetValid"},
		{name: "wrong issuer", hdr: bearer(rsaKey.Mint(t, with(func(c map[string]any) { c["iss"] = "https://evil.invalid" }), nil)), status: 401, code: "InvalidIssuer", wwwAuth: challenge},
		{name: "wrong audience", hdr: bearer(rsaKey.Mint(t, with(func(c map[string]any) { c["aud"] = "other" }), nil)), status: 401, code: "InvalidAudience", wwwAuth: challenge},
		{name: "no subject", hdr: bearer(rsaKey.Mint(t, with(func(c map[string]any) { delete(c, "sub") }), nil)), status: 401, code: "InvalidToken"},
		{name: "header and query", target: profilePath + "?access_token=" + rsaKey.Mint(t, jwtauthtest.Claims("user-1"), nil), hdr: bearer(rsaKey.Mint(t, jwtauthtest.Claims("user-1"), nil)),
			status: 400, code: "InvalidRequest", wwwAuth: `Bearer realm="workspace", error="invalid_request"`},
		{name: "query twice", target: profilePath + "?access_token=a.b.c&access_token=a.b.c", status: 400, code: "InvalidRequest"},
		{name: "query name percent-encoded", target: profilePath + "?access%5Ftoken=" + rsaKey.Mint(t, jwtauthtest.Claims("user-1"), nil), status: 400, code: "InvalidRequest"},
		{name: "two authorization headers", hdr: nil, target: "two-headers", status: 400, code: "InvalidRequest"},
		{name: "service account (number)", hdr: bearer(rsaKey.Mint(t, with(func(c map[string]any) { c["UserType"] = 2 }), nil)), status: 403, code: "ServiceAccountForbidden"},
		{name: "service account (string)", hdr: bearer(rsaKey.Mint(t, with(func(c map[string]any) { c["UserType"] = "2" }), nil)), status: 403, code: "ServiceAccountForbidden"},
		{name: "UserType 1 is not a service account", hdr: bearer(rsaKey.Mint(t, with(func(c map[string]any) { c["UserType"] = 1 }), nil)), status: 200, reachDB: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := store.calls.Load()
			target := tt.target
			if target == "" {
				target = profilePath
			}
			var rec *httptest.ResponseRecorder
			if target == "two-headers" {
				req := httptest.NewRequest("GET", profilePath, nil)
				tok := rsaKey.Mint(t, jwtauthtest.Claims("user-1"), nil)
				req.Header.Add("Authorization", "Bearer "+tok)
				req.Header.Add("Authorization", "Bearer "+tok)
				req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
				rec = httptest.NewRecorder()
				_ = h.ServeHTTP(rec, req, next)
			} else {
				rec = serve(t, h, "GET", target, tt.hdr, "")
			}
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tt.status, rec.Body)
			}
			if reached := store.calls.Load() != before; reached != tt.reachDB {
				t.Fatalf("store reached = %v, want %v", reached, tt.reachDB)
			}
			if tt.code == "" {
				return
			}
			p := decodeProblem(t, rec)
			if p.Code != tt.code || p.Instance != profilePath || p.Detail == "" {
				t.Fatalf("problem %+v, want code %s", p, tt.code)
			}
			// the challenge exactly (RFC 6750 §3): none for 403, no error=
			// without a token, and the detail as error_description
			want := ""
			switch tt.code {
			case "MissingToken":
				want = challengeMissing // Bearer and DPoP
			case "InvalidRequest":
				want = `Bearer realm="workspace", error="invalid_request"`
			case "InvalidToken", "TokenExpired", "TokenNotYetValid", "InvalidIssuer", "InvalidAudience":
				want = `Bearer realm="workspace", error="invalid_token", error_description="` + p.Detail + `"`
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != want || !strings.HasPrefix(got, tt.wwwAuth) {
				t.Fatalf("WWW-Authenticate %q, want %q", got, want)
			}
			if tt.status == 403 && (rec.Header().Get("WWW-Authenticate") != "" || p.Detail != profile.ServiceAccountDetail) {
				t.Fatalf("403 must carry the legacy detail and no challenge: %+v", p)
			}
		})
	}
}

func TestQueryTokenOff(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	off := false
	h, _ := newFileHandler(t, jwtauthtest.JWKS(t, k), func(h *Handler) { h.QueryToken = &off; h.CreateMissing = true })
	rec := serve(t, h, "GET", profilePath+"?access_token="+k.Mint(t, jwtauthtest.Claims("u"), nil), nil, "")
	if rec.Code != 401 || decodeProblem(t, rec).Code != "MissingToken" {
		t.Fatalf("query token with query_token off: %d %s", rec.Code, rec.Body)
	}
}

func TestCustomServiceAccountClaim(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	h, _ := newFileHandler(t, jwtauthtest.JWKS(t, k), func(h *Handler) {
		h.ServiceAccount = &ServiceAccount{Claim: "roles", Values: []string{"robot"}}
		h.CreateMissing = true
	})
	c := jwtauthtest.Claims("svc")
	c["roles"] = []string{"reader", "robot"}
	if rec := serve(t, h, "GET", profilePath, bearer(k.Mint(t, c, nil)), ""); rec.Code != 403 {
		t.Fatalf("roles containing robot: %d", rec.Code)
	}
	c["roles"] = []string{"reader"}
	c["UserType"] = 2 // the default claim no longer applies
	if rec := serve(t, h, "GET", profilePath, bearer(k.Mint(t, c, nil)), ""); rec.Code != 200 {
		t.Fatalf("roles without robot: %d %s", rec.Code, rec.Body)
	}
}

func TestKeysUnavailable(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	srv := jwtauthtest.NewJWKSServer(t, nil)
	srv.Set(http.StatusInternalServerError, []byte("down"))
	h := &Handler{JWKSURLs: []string{srv.URL}, Issuers: []string{testIssuer}, Audiences: []string{testAudience},
		StorageRaw: json.RawMessage(`{"backend":"memory"}`), CreateMissing: true}
	provisionHandler(t, h)
	tok := k.Mint(t, jwtauthtest.Claims("u"), nil)
	for srv.Fetches.Load() < 2 { // the first fetch and one retry have failed
		time.Sleep(10 * time.Millisecond)
	}
	rec := serve(t, h, "GET", profilePath, bearer(tok), "")
	if rec.Code != 503 || decodeProblem(t, rec).Code != "KeysUnavailable" || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("provider down: %d %s %v", rec.Code, rec.Body, rec.Header())
	}
	// the provider comes back: the first fetch's backoff starts at 1s,
	// so the route recovers within seconds
	srv.Set(http.StatusOK, jwtauthtest.JWKS(t, k))
	back := time.Now()
	deadline := back.Add(10 * time.Second)
	for {
		rec = serve(t, h, "GET", profilePath, bearer(tok), "")
		if rec.Code == 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if rec.Code != 200 {
		t.Fatalf("after the provider came back: %d %s", rec.Code, rec.Body)
	}
	// two failures so far: the next retry is due 2s after the second
	if took := time.Since(back); took > 5*time.Second {
		t.Fatalf("recovery took %v", took)
	}
	t.Logf("recovered %v after the provider came back", time.Since(back).Round(time.Millisecond))
}

// TestDateClaimRanges: exp, nbf and iat outside 1970..9999 are refused.
func TestDateClaimRanges(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	h, store := newFileHandler(t, jwtauthtest.JWKS(t, k), func(h *Handler) { h.CreateMissing = true })
	for name, set := range map[string]func(map[string]any){
		"exp beyond 9999": func(c map[string]any) { c["exp"] = 253402300800 },
		"exp 1e300":       func(c map[string]any) { c["exp"] = 1e300 },
		"nbf negative":    func(c map[string]any) { c["nbf"] = -1 },
		"iat negative":    func(c map[string]any) { c["iat"] = -9e18 },
		"iat beyond 9999": func(c map[string]any) { c["iat"] = 1e12 },
	} {
		c := jwtauthtest.Claims("u")
		set(c)
		rec := serve(t, h, "GET", profilePath, bearer(k.Mint(t, c, nil)), "")
		if rec.Code != 401 || !strings.Contains(rec.Body.String(), `"InvalidToken"`) {
			t.Errorf("%s: %d %s", name, rec.Code, rec.Body)
		}
	}
	if store.calls.Load() != 0 {
		t.Errorf("%d store calls for refused tokens", store.calls.Load())
	}
	c := jwtauthtest.Claims("u")
	c["exp"] = 253402300799 // the last second of 9999 is a valid date
	if rec := serve(t, h, "GET", profilePath, bearer(k.Mint(t, c, nil)), ""); rec.Code != 200 {
		t.Errorf("exp at the end of 9999: %d %s", rec.Code, rec.Body)
	}
}
