package caddymodule

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/workspace-edge/caddy-workspace-profile/internal/idptest"
)

// These tests run a real OpenID provider that nobody here wrote, zitadel's
// op (internal/idptest), in this process on a free loopback port, get
// access tokens from its token endpoint with the client-credentials grant,
// and send them through a real Caddy running the module, which reads the
// provider's discovery document and JWKS over HTTP like any deployment.

const zitadelRoute = "/api/workspace/account/profile"

// The clients of the providers in these tests.
var (
	// zApp is an ordinary client: its tokens are for the workspace API.
	zApp = idptest.Client{ID: "profile-app", Secret: "app-secret", Audience: []string{testAudience}}
	// zService is a service account: the provider adds UserType 2, the
	// module's default service_account claim and value, to its tokens.
	zService = idptest.Client{ID: "batch-job", Secret: "job-secret", Audience: []string{testAudience},
		Claims: map[string]any{"UserType": 2}}
	// zBilling's tokens are for another API.
	zBilling = idptest.Client{ID: "billing-app", Secret: "billing-secret", Audience: []string{"billing-api"}}
	// zShortLived's tokens live 2 s.
	zShortLived = idptest.Client{ID: "short-lived", Secret: "short-secret", Audience: []string{testAudience},
		Lifetime: 2 * time.Second}
)

// zitadelCaddyfile is a site with the route on the memory store; sources
// are its key-source (and issuer) lines, extra more options.
func zitadelCaddyfile(sources []string, extra string) string {
	return itGlobal + itSite + ` {
	workspace_profile {
		` + strings.Join(sources, "\n\t\t") + `
		audience ` + testAudience + `
		create_missing
		storage memory
		` + extra + `
	}
}
`
}

func startZitadelCaddy(t *testing.T, sources []string, extra string) *caddytest.Tester {
	t.Helper()
	tc := startCaddyfile(t, zitadelCaddyfile(sources, extra))
	return tc
}

// jwtPart decodes the header (0) or the claims (1) of a compact JWS.
func jwtPart(t *testing.T, tok string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// getProfile GETs the route with tok once the key set is loaded: the first
// fetch runs in the background, and until it is done the route answers
// 503 KeysUnavailable.
func getProfile(t *testing.T, tc *caddytest.Tester, tok string) itResponse {
	t.Helper()
	var r itResponse
	eventually(t, 10*time.Second, "the key set loaded", func() bool {
		r = do(t, tc.Client, http.MethodGet, itBase+zitadelRoute, bearer(tok), "")
		return r.status != http.StatusServiceUnavailable
	})
	return r
}

// wantProblem checks a problem-details answer whole: status, headers and
// every member of the body (traceId only for being set).
func wantProblem(t *testing.T, what string, r itResponse, status int, code, detail, challenge string) {
	t.Helper()
	types := map[int][2]string{
		401: {"https://tools.ietf.org/html/rfc9110#section-15.5.2", "Unauthorized"},
		403: {"https://tools.ietf.org/html/rfc9110#section-15.5.4", "Forbidden"},
		503: {"https://tools.ietf.org/html/rfc9110#section-15.6.4", "Service Unavailable"},
	}
	if r.status != status {
		t.Fatalf("%s: status %d %s, want %d %s", what, r.status, r.body, status, code)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s: Content-Type %q", what, ct)
	}
	if got := r.header.Get("WWW-Authenticate"); got != challenge {
		t.Errorf("%s: WWW-Authenticate %q, want %q", what, got, challenge)
	}
	wantRetry := ""
	if status == http.StatusServiceUnavailable {
		wantRetry = "5"
	}
	if got := r.header.Get("Retry-After"); got != wantRetry {
		t.Errorf("%s: Retry-After %q, want %q", what, got, wantRetry)
	}
	var body map[string]any
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("%s: body %q: %v", what, r.body, err)
	}
	if id, _ := body["traceId"].(string); id == "" {
		t.Errorf("%s: no traceId in %s", what, r.body)
	}
	delete(body, "traceId")
	want := map[string]any{
		"type": types[status][0], "title": types[status][1], "status": float64(status),
		"detail": detail, "instance": zitadelRoute, "code": code,
	}
	if fmt.Sprint(body) != fmt.Sprint(want) {
		t.Errorf("%s: problem %s,\nwant %v and a traceId", what, r.body, want)
	}
}

// TestZitadelAlgorithms: for every algorithm zitadel's op signs with, a
// provider of its own, found by discovery; a client-credentials token from
// each reads and writes its profile through Caddy, under its subject.
func TestZitadelAlgorithms(t *testing.T) {
	providers := map[jose.SignatureAlgorithm]*idptest.Provider{}
	var sources []string
	for _, alg := range idptest.Algorithms {
		p := idptest.Start(t, alg, zApp)
		providers[alg] = p
		sources = append(sources, "discovery "+p.Issuer)
	}
	tc := startZitadelCaddy(t, sources, "")

	for _, alg := range idptest.Algorithms {
		p := providers[alg]
		tok := p.MustToken(t, zApp)
		// the provider really signed with alg and its current key
		hdr, claims := jwtPart(t, tok, 0), jwtPart(t, tok, 1)
		if hdr["alg"] != string(alg) || hdr["kid"] != p.SigningKeyID() || hdr["typ"] != "JWT" {
			t.Fatalf("%s: token header %v, want alg %s, kid %s, typ JWT", alg, hdr, alg, p.SigningKeyID())
		}
		if claims["iss"] != p.Issuer || claims["sub"] != zApp.ID || claims["client_id"] != zApp.ID {
			t.Fatalf("%s: claims %v", alg, claims)
		}

		r := getProfile(t, tc, tok)
		if r.status != http.StatusOK {
			t.Fatalf("%s: GET %d %s", alg, r.status, r.body)
		}
		env := r.envelope(t)
		if !env.Success || env.Data == nil || env.Data.UserID != zApp.ID {
			t.Fatalf("%s: GET %s, want the profile of %s", alg, r.body, zApp.ID)
		}
		name := "Zed-" + string(alg)
		r = do(t, tc.Client, http.MethodPut, itBase+zitadelRoute, map[string]string{
			"Authorization": "Bearer " + tok, "Content-Type": "application/json", "If-Match": r.header.Get("ETag"),
		}, `{"FirstName":"`+name+`"}`)
		if r.status != http.StatusOK {
			t.Fatalf("%s: PUT %d %s", alg, r.status, r.body)
		}
		env = r.envelope(t)
		if !env.Success || env.Data == nil || env.Data.UserID != zApp.ID || env.Data.FirstName == nil || *env.Data.FirstName != name {
			t.Fatalf("%s: PUT %s", alg, r.body)
		}
		// the module read the provider's discovery document and JWKS
		if p.Discoveries.Load() == 0 || p.KeyFetches.Load() == 0 {
			t.Fatalf("%s: discovery fetched %d times, JWKS %d times", alg, p.Discoveries.Load(), p.KeyFetches.Load())
		}
	}
}

// TestZitadelRefusals: real tokens the module must refuse, with exactly
// the answers the contract gives: a service account's, one for another
// audience, and an expired one.
func TestZitadelRefusals(t *testing.T) {
	p := idptest.Start(t, jose.ES256, zApp, zService, zBilling, zShortLived)
	// leeway 0s: the 2 s token is refused as soon as its exp has passed
	tc := startZitadelCaddy(t, []string{"discovery " + p.Issuer}, "leeway 0s")

	// the same provider's ordinary client passes: the refusals below are
	// about the tokens, not the provider
	if r := getProfile(t, tc, p.MustToken(t, zApp)); r.status != http.StatusOK {
		t.Fatalf("ordinary client: %d %s", r.status, r.body)
	}

	t.Run("service account", func(t *testing.T) {
		tok := p.MustToken(t, zService)
		if ut := jwtPart(t, tok, 1)["UserType"]; ut != float64(2) {
			t.Fatalf("the provider's token carries UserType %v, want 2", ut)
		}
		r := do(t, tc.Client, http.MethodGet, itBase+zitadelRoute, bearer(tok), "")
		wantProblem(t, "service account", r, http.StatusForbidden, "ServiceAccountForbidden",
			"Service accounts cannot access this endpoint via API keys.", "")
	})

	t.Run("wrong audience", func(t *testing.T) {
		tok := p.MustToken(t, zBilling)
		if aud := fmt.Sprint(jwtPart(t, tok, 1)["aud"]); aud != "[billing-api]" {
			t.Fatalf("the provider's token has aud %s", aud)
		}
		r := do(t, tc.Client, http.MethodGet, itBase+zitadelRoute, bearer(tok), "")
		const desc = "The token audience is not accepted."
		wantProblem(t, "wrong audience", r, http.StatusUnauthorized, "InvalidAudience", desc,
			`Bearer realm="workspace", error="invalid_token", error_description="`+desc+`"`)
	})

	t.Run("expired", func(t *testing.T) {
		tok := p.MustToken(t, zShortLived)
		exp, ok := jwtPart(t, tok, 1)["exp"].(float64)
		if !ok {
			t.Fatal("the provider's token has no numeric exp")
		}
		// valid while fresh (exp is at least 1 s ahead: whole seconds)...
		if r := do(t, tc.Client, http.MethodGet, itBase+zitadelRoute, bearer(tok), ""); r.status != http.StatusOK {
			t.Fatalf("fresh short-lived token: %d %s", r.status, r.body)
		}
		// ...refused once exp has passed, though its verification is cached
		time.Sleep(time.Until(time.Unix(int64(exp), 0).Add(1100 * time.Millisecond)))
		r := do(t, tc.Client, http.MethodGet, itBase+zitadelRoute, bearer(tok), "")
		const desc = "The token has expired."
		wantProblem(t, "expired", r, http.StatusUnauthorized, "TokenExpired", desc,
			`Bearer realm="workspace", error="invalid_token", error_description="`+desc+`"`)
	})
}

// TestZitadelTokenKind: the token_type and clients options on the real
// provider's tokens. zitadel's op writes typ "JWT" in its access tokens
// (not RFC 9068's at+jwt) and names the client in client_id.
func TestZitadelTokenKind(t *testing.T) {
	zReporting := idptest.Client{ID: "reporting-app", Secret: "reporting-secret", Audience: []string{testAudience}}
	p := idptest.Start(t, jose.ES256, zApp, zReporting)
	app, reporting := p.MustToken(t, zApp), p.MustToken(t, zReporting)
	if typ := jwtPart(t, app, 0)["typ"]; typ != "JWT" {
		t.Fatalf("zitadel's access token has typ %v; the cases below assume JWT", typ)
	}
	src := []string{"discovery " + p.Issuer}
	challenge := func(desc string) string {
		return `Bearer realm="workspace", error="invalid_token", error_description="` + desc + `"`
	}

	// without the options, both clients' tokens pass
	tc := startZitadelCaddy(t, src, "")
	for name, tok := range map[string]string{"app": app, "reporting": reporting} {
		if r := getProfile(t, tc, tok); r.status != http.StatusOK {
			t.Fatalf("no token_type, no clients: %s's token: %d %s", name, r.status, r.body)
		}
	}

	// token_type at+jwt refuses the provider's typ JWT
	tc = startZitadelCaddy(t, src, "token_type at+jwt")
	const notAT = "The token type is not accepted; an access token is required."
	wantProblem(t, "token_type at+jwt, typ JWT", getProfile(t, tc, app), http.StatusUnauthorized, "InvalidToken", notAT, challenge(notAT))

	// naming the provider's own typ (in another case, without
	// application/) accepts it; clients accepts one real client and
	// refuses the other
	tc = startZitadelCaddy(t, src, "token_type jwt\n\t\tclients "+zApp.ID)
	if r := getProfile(t, tc, app); r.status != http.StatusOK {
		t.Fatalf("token_type jwt, clients %s: its own token: %d %s", zApp.ID, r.status, r.body)
	}
	const notClient = "The token was issued to a client that is not accepted."
	wantProblem(t, "clients "+zApp.ID+", a token of "+zReporting.ID, getProfile(t, tc, reporting),
		http.StatusUnauthorized, "InvalidToken", notClient, challenge(notClient))
}
