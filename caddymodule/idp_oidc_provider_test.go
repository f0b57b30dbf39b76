package caddymodule

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/workspace-edge/caddy-workspace-profile/internal/oidcprovidertest"
)

// panva's oidc-provider, a real authorization server nobody here wrote,
// issues opaque access tokens for a resource without a JWT format and
// answers their introspection. Its client-credentials answers carry no
// sub, so these routes name the profile by client_id.
const oidcOpaqueAPI = "https://profile.test/opaque"

var (
	// the edge's own client at the introspection endpoint; its secret
	// holds every character Basic credentials must form-encode
	oidcEdgeBasic = oidcprovidertest.Client{ID: "edge-basic", Secret: "e:d/g+e%1 x"}
	oidcEdgePost  = oidcprovidertest.Client{ID: "edge-post", Secret: "edge-post-secret",
		AuthMethod: oidcprovidertest.ClientSecretPost}
	// callers: a user application and a service account
	oidcApp     = oidcprovidertest.Client{ID: "app-user-1", Secret: "app-secret"}
	oidcService = oidcprovidertest.Client{ID: "svc-1", Secret: "svc-secret",
		Claims: map[string]any{"UserType": 2}}
)

func startOIDCProvider(t *testing.T) *oidcprovidertest.Provider {
	t.Helper()
	return oidcprovidertest.Start(t, oidcprovidertest.Config{
		Clients:   []oidcprovidertest.Client{oidcEdgeBasic, oidcEdgePost, oidcApp, oidcService},
		Resources: []oidcprovidertest.Resource{{Indicator: oidcOpaqueAPI}},
	})
}

// oidcRoute is a route, in storage mode or upstream mode, whose opaque
// tokens oidc-provider's introspection endpoint checks as edge; with no
// key source (the default) it knows opaque tokens only.
type oidcRoute struct {
	keys     string // key source lines; default `issuer <the provider's>`
	endpoint string // default: the provider's, or discovery's when keys is discovery
	edge     oidcprovidertest.Client
	response string // json or jwt; default json
	backend  string // upstream host:port; default storage memory
}

func (r oidcRoute) site(p *oidcprovidertest.Provider) string {
	mode := "storage memory\n\t\tcreate_missing"
	if r.backend != "" {
		mode = "upstream " + r.backend
	}
	keys := r.keys
	if keys == "" {
		keys = "issuer " + p.Issuer()
	}
	endpoint := r.endpoint
	if endpoint == "" && !strings.HasPrefix(keys, "discovery ") {
		endpoint = p.IntrospectionEndpoint()
	}
	response := ""
	if r.response != "" {
		response = "response " + r.response
	}
	return fmt.Sprintf(itGlobal+itSite+` {
	header >X-Auth-Method {http.auth.user.method}
	workspace_profile {
		%s
		audience %s
		subject_claim client_id
		%s
		introspection %s {
			client_id %s
			client_secret "%s"
			auth_method %s
			cache_ttl 1s
			%s
		}
	}
}
`, keys, oidcOpaqueAPI, mode, endpoint, r.edge.ID, r.edge.Secret, authMethodOf(r.edge), response)
}

func authMethodOf(c oidcprovidertest.Client) string {
	if c.AuthMethod == "" {
		return oidcprovidertest.ClientSecretBasic
	}
	return c.AuthMethod
}

// TestOIDCProviderOpaqueTokensStorageMode: through a real Caddy, opaque
// tokens that oidc-provider issued read and write their owner's profile,
// the edge authenticating at the introspection endpoint with Basic
// credentials (a secret of ':', '/', '+', '%' and a space) and, in
// another config, in the form body; a service account's token is the 403
// even though its answer names no subject; a revoked token is refused
// once the cached answer's cache_ttl has passed.
func TestOIDCProviderOpaqueTokensStorageMode(t *testing.T) {
	p := startOIDCProvider(t)
	for _, edge := range []oidcprovidertest.Client{oidcEdgeBasic, oidcEdgePost} {
		t.Run(authMethodOf(edge), func(t *testing.T) {
			tc := startCaddyfile(t, oidcRoute{edge: edge}.site(p))
			url := itBase + profilePath

			tok := p.MustClientCredentialsToken(t, oidcApp.ID, oidcApp.Secret, oidcOpaqueAPI)
			if strings.Count(tok, ".") == 2 {
				t.Fatalf("oidc-provider issued a JWS for the opaque resource: %q", tok)
			}
			r := do(t, tc.Client, "GET", url, bearer(tok), "")
			if r.status != 200 || !strings.Contains(string(r.body), `"UserId":"app-user-1"`) {
				t.Fatalf("GET: %d %s", r.status, r.body)
			}
			if m := r.header.Get("X-Auth-Method"); m != "introspection" {
				t.Fatalf("method placeholder %q, want introspection", m)
			}
			r = do(t, tc.Client, "PUT", url, map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/json"},
				`{"FirstName":"Opal"}`)
			if r.status != 200 || !strings.Contains(string(r.body), `"FirstName":"Opal"`) {
				t.Fatalf("PUT: %d %s", r.status, r.body)
			}

			svc := p.MustClientCredentialsToken(t, oidcService.ID, oidcService.Secret, oidcOpaqueAPI)
			r = do(t, tc.Client, "GET", url, bearer(svc), "")
			if r.status != 403 || r.problemCode(t) != codeServiceAccountForbidden {
				t.Fatalf("service account: %d %s", r.status, r.body)
			}

			r = revokeAndAwait401(t, p, tc, url, tok)
		})
	}
}

// TestOIDCProviderOpaqueTokensUpstreamMode: an opaque token from
// oidc-provider reaches the legacy backend as the caller's Bearer token
// with the edge's identity header for its owner.
func TestOIDCProviderOpaqueTokensUpstreamMode(t *testing.T) {
	p := startOIDCProvider(t)
	addr, last := recordingBackend(t, `{"userId":"app-user-1","userName":"app","email":"app@example.com","firstName":"A","lastName":"P","userType":0}`)
	tc := startCaddyfile(t, oidcRoute{edge: oidcEdgeBasic, backend: addr}.site(p))
	tok := p.MustClientCredentialsToken(t, oidcApp.ID, oidcApp.Secret, oidcOpaqueAPI)
	if r := do(t, tc.Client, "GET", itBase+profilePath, bearer(tok), ""); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	got := last()
	if a := got.Get("Authorization"); a != "Bearer "+tok {
		t.Fatalf("the backend got Authorization %q", a)
	}
	if u := got.Get("X-Workspace-User-Id"); u != oidcApp.ID {
		t.Fatalf("the backend got X-Workspace-User-Id %q, want %q", u, oidcApp.ID)
	}
}

// revokeAndAwait401 revokes tok at the provider and waits for the route to
// refuse it: 200 until the cached answer (cache_ttl 1s) runs out, then
// 401 InvalidToken, within 5 s. It returns the refusal.
func revokeAndAwait401(t *testing.T, p *oidcprovidertest.Provider, tc *caddytest.Tester, url, tok string) itResponse {
	t.Helper()
	if err := p.Revoke(tok, oidcApp.ID, oidcApp.Secret); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := do(t, tc.Client, "GET", url, bearer(tok), "")
		if r.status == 401 {
			if code := r.problemCode(t); code != "InvalidToken" {
				t.Fatalf("revoked token: code %s", code)
			}
			return r
		}
		if r.status != 200 || time.Now().After(deadline) {
			t.Fatalf("revoked token: %d %s (want 401 within cache_ttl 1s)", r.status, r.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
