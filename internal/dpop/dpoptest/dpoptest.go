// Package dpoptest makes DPoP proofs (RFC 9449) for tests: a client key
// made at test time and proofs signed with it, well-formed or broken on
// purpose.
package dpoptest

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// Prover is a DPoP client: its key, the public JWK it puts in its
// proofs, and that key's RFC 7638 thumbprint (what cnf.jkt names).
type Prover struct {
	Key        jwtauthtest.Key
	JWK        map[string]any
	Thumbprint string
}

// NewProver makes a client key for alg.
func NewProver(t testing.TB, alg jwa.SignatureAlgorithm) Prover {
	t.Helper()
	k := jwtauthtest.NewKey(t, alg, "")
	var pub map[string]any
	if err := json.Unmarshal(jwtauthtest.MustJSON(t, k.Pub), &pub); err != nil {
		t.Fatal(err)
	}
	delete(pub, "kid")
	tp, err := k.Pub.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return Prover{Key: k, JWK: pub, Thumbprint: jwtauthtest.B64(tp)}
}

// ATH is the ath of a token: base64url(SHA-256(token)).
func ATH(token string) string {
	sum := sha256.Sum256([]byte(token))
	return jwtauthtest.B64(sum[:])
}

// JTI is a fresh random jti.
func JTI() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return jwtauthtest.B64(b)
}

// Proof is a valid proof for method and htu at iat, with the ath of token
// (none when token is ""), a fresh jti, and the header and claims changed
// by hdr and claims (a nil value removes the member).
func (p Prover) Proof(t testing.TB, method, htu, token string, iat time.Time, hdr, claims map[string]any) string {
	t.Helper()
	h := map[string]any{"typ": "dpop+jwt", "alg": p.Key.Alg.String(), "jwk": p.JWK}
	c := map[string]any{"jti": JTI(), "htm": method, "htu": htu, "iat": iat.Unix()}
	if token != "" {
		c["ath"] = ATH(token)
	}
	for name, v := range hdr {
		if v == nil {
			delete(h, name)
		} else {
			h[name] = v
		}
	}
	for name, v := range claims {
		if v == nil {
			delete(c, name)
		} else {
			c[name] = v
		}
	}
	return p.Key.SignRaw(t, jwtauthtest.MustJSON(t, h), jwtauthtest.MustJSON(t, c))
}

// Raw signs exactly the given header and claims bytes with the prover's
// key, for proofs a JSON encoder would never write.
func (p Prover) Raw(t testing.TB, hdr, claims []byte) string {
	t.Helper()
	return p.Key.SignRaw(t, hdr, claims)
}
