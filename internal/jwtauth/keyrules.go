package jwtauth

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// The rules a signing key must pass, whatever signs with it: a token's
// keys from the configured sources, and a DPoP proof's own key, which
// internal/dpop holds to the same rules so that no key is accepted there
// that a key set would skip.

// AlgFitsKey reports whether k can verify alg: an accepted asymmetric
// algorithm of its type and, for EC and OKP keys, of its curve. A key
// published as HS256 or as ES256 on P-384 could never verify a token here;
// it is skipped, not kept. A DPoP proof's key is held to the same rule.
func AlgFitsKey(alg string, k jwk.Key) bool {
	if !SupportedAlgorithm(alg) {
		return false
	}
	switch k.KeyType() {
	case jwa.RSA():
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case jwa.OKP():
		// EdDSA and Ed25519 both need crv Ed25519: the only curve jwx
		// verifies without its circl extension (see SupportedAlgorithm)
		return (alg == "EdDSA" || alg == "Ed25519") && okpCurve(k) == "Ed25519"
	case jwa.EC():
		ek, ok := k.(jwk.ECDSAPublicKey)
		if !ok {
			if pk, isPriv := k.(jwk.ECDSAPrivateKey); isPriv {
				crv, _ := pk.Crv()
				return crvAlg[crv.String()] == alg
			}
			return false
		}
		crv, _ := ek.Crv()
		return crvAlg[crv.String()] == alg
	}
	return false
}

// okpCurve is an OKP key's crv, "" when it has none. A private OKP key
// has every method of a public one, so this one assertion reads both.
func okpCurve(k jwk.Key) string {
	if ok, isOKP := k.(jwk.OKPPublicKey); isOKP {
		crv, _ := ok.Crv()
		return crv.String()
	}
	return ""
}

var crvAlg = map[string]string{"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}

// CheckRSASize refuses a JWK (raw JSON) that is an RSA key whose modulus
// is shorter than minRSABits, before jwx sees it, so that the reason is
// ours and the same whatever a version of jwx accepts or how it words its
// refusal; any other key passes it. A DPoP proof's key is held to it too.
func CheckRSASize(raw []byte) error {
	var k struct {
		Kty string `json:"kty"`
		N   string `json:"n"`
	}
	if json.Unmarshal(raw, &k) != nil || k.Kty != "RSA" || k.N == "" {
		return nil // jwx reports what is wrong with it
	}
	n, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(k.N, "="))
	if err != nil {
		return nil
	}
	if bits := new(big.Int).SetBytes(n).BitLen(); bits < minRSABits {
		return fmt.Errorf("RSA key of %d bits is shorter than %d", bits, minRSABits)
	}
	return nil
}
