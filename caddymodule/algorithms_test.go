package caddymodule

import (
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// TestAlgorithmsThroughCaddy: every default algorithm verified once
// through a real Caddy, from one key set holding a key of each (RSA 2048
// for RS* and PS*, P-256/P-384/P-521, Ed25519 for EdDSA and for RFC 9864's
// fully-specified Ed25519); and a token of each alg signed by a key the set
// does not hold is refused.
func TestAlgorithmsThroughCaddy(t *testing.T) {
	var keys []jwtauthtest.Key
	for _, a := range jwtauth.DefaultAlgorithms {
		alg, ok := jwa.LookupSignatureAlgorithm(a)
		if !ok {
			t.Fatalf("jwx does not know %s", a)
		}
		keys = append(keys, jwtauthtest.NewKey(t, alg, "alg-"+a))
	}
	if len(keys) != 11 || keys[10].Alg != jwa.EdDSAEd25519() {
		t.Fatalf("%d default algorithms, want 11 ending with Ed25519", len(keys))
	}
	tc := startCaddy(t, itConfig{jwksFiles: []string{writeFile(t, "jwks.json", jwtauthtest.JWKS(t, keys...))}})
	for _, k := range keys {
		t.Run(k.Alg.String(), func(t *testing.T) {
			r := do(t, tc.Client, "GET", itBase+profilePath, bearer(k.Mint(t, jwtauthtest.Claims("user-"+k.Alg.String()), nil)), "")
			if r.status != 200 || r.envelope(t).Data.UserID != "user-"+k.Alg.String() {
				t.Fatalf("%d %s", r.status, r.body)
			}
			stranger := jwtauthtest.NewKey(t, k.Alg, k.Kid)
			r = do(t, tc.Client, "GET", itBase+profilePath, bearer(stranger.Mint(t, jwtauthtest.Claims("user-x"), nil)), "")
			if r.status != 401 || r.problemCode(t) != "InvalidToken" {
				t.Fatalf("stranger's key: %d %s", r.status, r.body)
			}
		})
	}
}

// TestTokenKindThroughCaddy: `algorithms Ed25519`, `token_type at+jwt` and
// `clients` from a Caddyfile, through a real Caddy. An RFC 9068 access
// token of a listed client passes, whatever the spelling of its typ; an
// OpenID ID token for a client named like the API (typ JWT, aud = azp =
// the audience), a token of another client, and an EdDSA token (not
// listed) are 401 InvalidToken with a challenge.
func TestTokenKindThroughCaddy(t *testing.T) {
	ed := jwtauthtest.NewKey(t, jwa.EdDSAEd25519(), "ed")
	legacy := jwtauthtest.NewKey(t, jwa.EdDSA(), "legacy")
	tc := startCaddy(t, itConfig{jwksFiles: []string{writeFile(t, "jwks.json", jwtauthtest.JWKS(t, ed, legacy))},
		extra: "algorithms Ed25519\ntoken_type at+jwt\nclients web mobile"})
	access := func(k jwtauthtest.Key, set map[string]any, typ any) string {
		c := jwtauthtest.Claims("user-kind")
		c["client_id"] = "web"
		for name, v := range set {
			if v == nil {
				delete(c, name)
			} else {
				c[name] = v
			}
		}
		return k.Mint(t, c, map[string]any{"typ": typ})
	}
	for name, c := range map[string]struct {
		tok    string
		status int
	}{
		"at+jwt":                  {access(ed, nil, "at+jwt"), 200},
		"application/at+jwt":      {access(ed, nil, "application/at+jwt"), 200},
		"AT+JWT":                  {access(ed, nil, "AT+JWT"), 200},
		"azp, no client_id":       {access(ed, map[string]any{"client_id": nil, "azp": "mobile"}, "at+jwt"), 200},
		"ID token":                {access(ed, map[string]any{"client_id": nil, "azp": testAudience, "nonce": "n"}, "JWT"), 401},
		"no typ":                  {access(ed, nil, nil), 401},
		"another client":          {access(ed, map[string]any{"client_id": "batch"}, "at+jwt"), 401},
		"client_id and azp apart": {access(ed, map[string]any{"azp": "batch"}, "at+jwt"), 401},
		"EdDSA not listed":        {access(legacy, nil, "at+jwt"), 401},
	} {
		t.Run(name, func(t *testing.T) {
			r := do(t, tc.Client, "GET", itBase+profilePath, bearer(c.tok), "")
			if r.status != c.status {
				t.Fatalf("%d %s, want %d", r.status, r.body, c.status)
			}
			if c.status == 401 && (r.problemCode(t) != "InvalidToken" || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`)) {
				t.Fatalf("%s %q", r.body, r.header.Get("WWW-Authenticate"))
			}
		})
	}
}
