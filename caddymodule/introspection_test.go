package caddymodule

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// startIntrospectionCaddy starts a real Caddy whose route has a key set
// and introspection with e, in storage mode (memory, create_missing),
// and which shows {http.auth.user.method} in X-Auth-Method.
func startIntrospectionCaddy(t *testing.T, e *introspectionEndpoint, k jwtauthtest.Key) {
	t.Helper()
	startCaddy(t, itConfig{jwksFiles: []string{writeFile(t, "k.json", jwtauthtest.JWKS(t, k))},
		storage: "storage memory", extra: introspectionBlock(e, "s3cr3t"),
		site: "header >X-Auth-Method {http.auth.user.method}"})
}

// TestIntrospectionStorageMode: through a real Caddy and a real endpoint,
// an active opaque token gets its profile (made by create_missing from the
// answer's claims) with method introspection; an inactive one 401
// InvalidToken with the Bearer challenge; a service account's answer,
// with no sub, 403; a JWT and an API key never reach the endpoint.
func TestIntrospectionStorageMode(t *testing.T) {
	e := newIntrospectionEndpoint(t)
	k := jwtauthtest.NewKey(t, jwa.ES256(), "k")
	startIntrospectionCaddy(t, e, k)
	client := newTester(t).Client
	url := itBase + profilePath

	t.Run("active", func(t *testing.T) {
		tok := opaqueToken()
		e.active(tok, `,"sub":"intro-user-1","preferred_username":"alice","email":"alice@example.com"`)
		before := e.calls.Load()
		r := do(t, client, "GET", url, bearer(tok), "")
		if r.status != 200 || !strings.Contains(string(r.body), "alice@example.com") {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if m := r.header.Get("X-Auth-Method"); m != "introspection" {
			t.Fatalf("method placeholder %q", m)
		}
		wantIntrospectionCalls(t, e, before, 1)
		if got := e.receivedSecrets(); got[len(got)-1] != "s3cr3t" {
			t.Fatalf("the endpoint got password %q", got[len(got)-1])
		}
		// cached: no second call
		if r := do(t, client, "GET", url, bearer(tok), ""); r.status != 200 {
			t.Fatalf("again: %d %s", r.status, r.body)
		}
		wantIntrospectionCalls(t, e, before, 1)
	})
	t.Run("inactive", func(t *testing.T) {
		before := e.calls.Load()
		r := do(t, client, "GET", url, bearer(opaqueToken()), "")
		wantRefusal(t, r, "InvalidToken", "The token is not active.",
			`Bearer realm="workspace", error="invalid_token", error_description="The token is not active."`)
		wantIntrospectionCalls(t, e, before, 1)
	})
	t.Run("service_account_without_sub", func(t *testing.T) {
		tok := opaqueToken()
		e.active(tok, `,"UserType":2`)
		if r := do(t, client, "GET", url, bearer(tok), ""); r.status != 403 || r.problemCode(t) != codeServiceAccountForbidden {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("jwt_never_introspected", func(t *testing.T) {
		before := e.calls.Load()
		if r := do(t, client, "GET", url, bearer(k.Mint(t, jwtauthtest.Claims("u-jwt"), nil)), ""); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		// a JWT the key set refuses is refused, never introspected
		other := jwtauthtest.NewKey(t, jwa.ES256(), "k")
		if r := do(t, client, "GET", url, bearer(other.Mint(t, jwtauthtest.Claims("u-jwt"), nil)), ""); r.status != 401 {
			t.Fatalf("foreign JWT: %d %s", r.status, r.body)
		}
		wantIntrospectionCalls(t, e, before, 0)
	})
	t.Run("api_key_never_introspected", func(t *testing.T) {
		before := e.calls.Load()
		for _, hdr := range []map[string]string{{"X-Api-Key": "opaque-but-a-key"}, bearer("wsk_live_0123456789")} {
			if r := do(t, client, "GET", url, hdr, ""); r.status != 401 {
				t.Fatalf("%v: %d %s", hdr, r.status, r.body)
			}
		}
		wantIntrospectionCalls(t, e, before, 0)
	})
	t.Run("one_call_for_100_requests", func(t *testing.T) {
		tok := opaqueToken()
		e.active(tok, `,"sub":"intro-user-2"`)
		before := e.calls.Load()
		e.delay.Store(int64(200e6))
		defer e.delay.Store(0)
		var wg sync.WaitGroup
		statuses := make([]int, 100)
		for i := range statuses {
			wg.Go(func() { statuses[i] = do(t, client, "GET", url, bearer(tok), "").status })
		}
		wg.Wait()
		for i, s := range statuses {
			if s != 200 {
				t.Fatalf("request %d: %d", i, s)
			}
		}
		wantIntrospectionCalls(t, e, before, 1)
	})
}

// TestIntrospectionEndpointDown: an endpoint that fails, or is gone,
// makes the route answer 503 IntrospectionUnavailable with Retry-After,
// never 401; nothing is cached, so the token works once it is back.
func TestIntrospectionEndpointDown(t *testing.T) {
	e := newIntrospectionEndpoint(t)
	k := jwtauthtest.NewKey(t, jwa.ES256(), "k")
	startIntrospectionCaddy(t, e, k)
	client := newTester(t).Client
	tok := opaqueToken()
	e.active(tok, `,"sub":"intro-user-3"`)
	e.failing.Store(true)
	r := do(t, client, "GET", itBase+profilePath, bearer(tok), "")
	if r.status != 503 || r.problemCode(t) != "IntrospectionUnavailable" || r.header.Get("Retry-After") != "5" {
		t.Fatalf("%d Retry-After %q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	e.failing.Store(false)
	if r := do(t, client, "GET", itBase+profilePath, bearer(tok), ""); r.status != 200 {
		t.Fatalf("back: %d %s", r.status, r.body)
	}
	e.Close()
	if r := do(t, client, "GET", itBase+profilePath, bearer(opaqueToken()), ""); r.status != 503 || r.header.Get("Retry-After") != "5" {
		t.Fatalf("gone: %d %s", r.status, r.body)
	}
}

// TestIntrospectionUpstreamMode: in upstream mode, the backend receives
// the opaque token as Bearer and the identity headers of the answer.
func TestIntrospectionUpstreamMode(t *testing.T) {
	e := newIntrospectionEndpoint(t)
	k := jwtauthtest.NewKey(t, jwa.ES256(), "k")
	addr, last := recordingBackend(t, `{"userId":"intro-user-4","userName":"bob","email":"bob@example.com","firstName":"Bob","lastName":"B","userType":0}`)
	tc := startCaddyfile(t, upstreamCaddyfile(k, t, addr, introspectionBlock(e, "s3cr3t")))
	tok := opaqueToken()
	e.active(tok, `,"sub":"intro-user-4"`)
	if r := do(t, tc.Client, "GET", itBase+profilePath, bearer(tok), ""); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if got := last(); got.Get("Authorization") != "Bearer "+tok || got.Get("X-Workspace-User-Id") != "intro-user-4" {
		t.Fatalf("the backend got Authorization %q, X-Workspace-User-Id %q", got.Get("Authorization"), got.Get("X-Workspace-User-Id"))
	}
}

// TestIntrospectionOnlyRoute: a route with introspection and no key
// source is a valid config; it serves opaque tokens and refuses JWTs
// (401, never introspected).
func TestIntrospectionOnlyRoute(t *testing.T) {
	e := newIntrospectionEndpoint(t)
	tc := startCaddyfile(t, fmt.Sprintf(itGlobal+itSite+` {
	workspace_profile {
		issuer %s
		audience %s
		storage memory
		create_missing
		%s
	}
}
`, testIssuer, testAudience, introspectionBlock(e, "s3cr3t")))
	tok := opaqueToken()
	e.active(tok, `,"sub":"intro-user-5"`)
	if r := do(t, tc.Client, "GET", itBase+profilePath, bearer(tok), ""); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	before := e.calls.Load()
	k := jwtauthtest.NewKey(t, jwa.ES256(), "k")
	r := do(t, tc.Client, "GET", itBase+profilePath, bearer(k.Mint(t, jwtauthtest.Claims("u-jwt"), nil)), "")
	if r.status != 401 || r.problemCode(t) != "InvalidToken" {
		t.Fatalf("JWT: %d %s", r.status, r.body)
	}
	wantIntrospectionCalls(t, e, before, 0)
}

// TestIntrospectionEndpointFromDiscovery: without an endpoint, the one
// discovery issuer's document names it, read by the key source's fetch.
func TestIntrospectionEndpointFromDiscovery(t *testing.T) {
	e := newIntrospectionEndpoint(t)
	k := jwtauthtest.NewKey(t, jwa.ES256(), "k")
	tc, issuer := startDiscoveryIntrospection(t, k,
		`{"issuer":%[1]q,"jwks_uri":"%[2]s/keys","introspection_endpoint":"`+e.URL+`/introspect"}`)
	tok := opaqueToken()
	answer := fmt.Sprintf(`{"active":true,"iss":%q,"aud":%q,"sub":"intro-user-6"}`, issuer, testAudience)
	e.mu.Lock()
	e.answers[tok] = answer
	e.mu.Unlock()
	eventually(t, 5*time.Second, "the discovered endpoint answers", func() bool {
		return do(t, tc.Client, "GET", itBase+profilePath, bearer(tok), "").status == 200
	})
	if e.calls.Load() != 1 {
		t.Fatalf("%d calls", e.calls.Load())
	}
}

// TestIntrospectionDiscoveryNamesNoEndpoint: a discovery document that
// names no introspection_endpoint leaves opaque tokens at 503
// IntrospectionUnavailable (never 401), while JWTs work.
func TestIntrospectionDiscoveryNamesNoEndpoint(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.ES256(), "k")
	tc, issuer := startDiscoveryIntrospection(t, k, `{"issuer":%[1]q,"jwks_uri":"%[2]s/keys"}`)
	claims := jwtauthtest.Claims("u-disc")
	claims["iss"] = issuer
	jwt := k.Mint(t, claims, nil)
	eventually(t, 5*time.Second, "the discovery document is read", func() bool {
		return do(t, tc.Client, "GET", itBase+profilePath, bearer(jwt), "").status == 200
	})
	r := do(t, tc.Client, "GET", itBase+profilePath, bearer(opaqueToken()), "")
	if r.status != 503 || r.problemCode(t) != "IntrospectionUnavailable" || r.header.Get("Retry-After") != "5" {
		t.Fatalf("%d %s", r.status, r.body)
	}
}
