package caddymodule

import (
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
