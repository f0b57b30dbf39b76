package caddymodule

// The DPoP tests' Caddy sites and request helper.

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/dpop/dpoptest"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// dpopFixture is a real Caddy with the route, a signing key for tokens, a
// DPoP client key, and a token bound to it.
type dpopFixture struct {
	tc      *caddytest.Tester
	key     jwtauthtest.Key
	client  dpoptest.Prover
	bound   string // cnf.jkt names client's key
	unbound string
	htu     string // the URI clients address
}

func newDPoPFixture(t *testing.T, extra, site string) dpopFixture {
	t.Helper()
	return newDPoPFixtureOn(t, "storage memory", extra, site)
}

// newDPoPFixtureOn is newDPoPFixture on storage (a storage line), with
// extra lines inside workspace_profile.
func newDPoPFixtureOn(t *testing.T, storage, extra, site string) dpopFixture {
	t.Helper()
	k := jwtauthtest.NewKey(t, jwa.RS256(), "rs-1")
	f := dpopFixture{key: k, client: dpoptest.NewProver(t, jwa.ES256()), htu: itSite + profilePath}
	c := jwtauthtest.Claims("dpop-user")
	c["cnf"] = map[string]any{"jkt": f.client.Thumbprint}
	f.bound = k.Mint(t, c, nil)
	f.unbound = k.Mint(t, jwtauthtest.Claims("bearer-user"), nil)
	f.tc = startCaddy(t, itConfig{jwksFiles: []string{writeFile(t, "k.json", jwtauthtest.JWKS(t, k))}, storage: storage, extra: extra, site: site})
	return f
}

// proof is a fresh valid proof of the fixture's client for method on htu
// with the bound token.
func (f dpopFixture) proof(t *testing.T, method string, mod map[string]any) string {
	return f.client.Proof(t, method, f.htu, f.bound, time.Now(), nil, mod)
}

// doDPoP sends a request with each of proofs as its own DPoP header.
func doDPoP(t *testing.T, tc *caddytest.Tester, method, url, auth string, proofs ...string) itResponse {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	resp, err := tc.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return itResponse{resp.StatusCode, resp.Header, b}
}

// dpopUpstream is a real Caddy with the route in upstream mode in front of
// backend (which answers an envelope), a DPoP client key, and a token
// bound to it.
type dpopUpstream struct {
	tc      *caddytest.Tester
	backend *jwtauthtest.Server
	client  dpoptest.Prover
	tok     string // cnf.jkt names client's key
}

func startDPoPUpstream(t *testing.T) dpopUpstream {
	t.Helper()
	return startDPoPUpstreamWith(t, "")
}

// startDPoPUpstreamWith is startDPoPUpstream with extra lines inside
// workspace_profile.
func startDPoPUpstreamWith(t *testing.T, extra string) dpopUpstream {
	t.Helper()
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	client := dpoptest.NewProver(t, jwa.ES256())
	backend := jwtauthtest.NewServer(t)
	backend.Set(200, []byte(`{"Data":{"UserId":"u-1"},"Errors":[],"Warnings":[],"Success":true}`))
	tc := startCaddyfile(t, upstreamCaddyfile(k, t, strings.TrimPrefix(backend.URL, "http://"), extra))
	c := jwtauthtest.Claims("u-1")
	c["cnf"] = map[string]any{"jkt": client.Thumbprint}
	return dpopUpstream{tc: tc, backend: backend, client: client, tok: k.Mint(t, c, nil)}
}
