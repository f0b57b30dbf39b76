package caddymodule

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// TestAttackTokens: every forged or malformed token is refused with 401
// and never reaches the store.
func TestAttackTokens(t *testing.T) {
	good := jwtauthtest.NewKey(t, jwa.RS256(), "good")
	attacker := jwtauthtest.NewKey(t, jwa.RS256(), "good")
	h, store := newFileHandler(t, jwtauthtest.JWKS(t, good), func(h *Handler) { h.CreateMissing = true })
	claims := jwtauthtest.Claims("victim")
	payload := jwtauthtest.MustJSON(t, claims)

	noneToken := func(alg string) string {
		return jwtauthtest.B64(jwtauthtest.MustJSON(t, map[string]any{"alg": alg, "typ": "JWT"})) + "." + jwtauthtest.B64(payload) + "."
	}
	attackerJWK, _ := json.Marshal(attacker.Pub)
	tampered := func() string {
		tok := good.Mint(t, claims, nil)
		parts := strings.Split(tok, ".")
		c := jwtauthtest.Claims("admin")
		parts[1] = jwtauthtest.B64(jwtauthtest.MustJSON(t, c))
		return strings.Join(parts, ".")
	}()
	big := jwtauthtest.Claims("victim")
	big["pad"] = strings.Repeat("x", jwtauth.MaxTokenLen)
	stringExp := jwtauthtest.Claims("victim")
	stringExp["exp"] = "9999999999"
	noExp := jwtauthtest.Claims("victim")
	delete(noExp, "exp")
	floatStringNbf := jwtauthtest.Claims("victim")
	floatStringNbf["nbf"] = "0"
	notObject := good.SignRaw(t, jwtauthtest.MustJSON(t, map[string]any{"alg": "RS256", "kid": "good"}), []byte(`["not","claims"]`))
	validTok := good.Mint(t, claims, nil)
	parts := strings.Split(validTok, ".")

	attacks := map[string]string{
		"alg none":                            noneToken("none"),
		"alg None":                            noneToken("None"),
		"alg NONE":                            noneToken("NONE"),
		"alg nOnE with a signature":           noneToken("nOnE") + "AAAA",
		"HS256 keyed with the RSA public key": jwtauthtest.HS256WithPublicKey(t, good.Pub, claims),
		"valid signature, key outside the set, known kid": attacker.Mint(t, claims, nil),
		"embedded jwk":                  attacker.Mint(t, claims, map[string]any{"jwk": json.RawMessage(attackerJWK), "kid": "attacker"}),
		"embedded jwk, known kid":       attacker.Mint(t, claims, map[string]any{"jwk": json.RawMessage(attackerJWK)}),
		"jku":                           attacker.Mint(t, claims, map[string]any{"jku": "https://evil.invalid/jwks.json", "kid": "evil"}),
		"x5u":                           attacker.Mint(t, claims, map[string]any{"x5u": "https://evil.invalid/cert.pem"}),
		"x5c of the signing key":        attacker.Mint(t, claims, map[string]any{"x5c": []string{selfSignedCert(t, attacker.Priv)}}),
		"crit, signed by the right key": good.Mint(t, claims, map[string]any{"crit": []string{"exp"}, "exp": 1}),
		"crit empty list":               good.Mint(t, claims, map[string]any{"crit": []string{}}),
		"tampered payload":              tampered,
		"missing exp":                   good.Mint(t, noExp, nil),
		"exp as a string":               good.Mint(t, stringExp, nil),
		"nbf as a string":               good.Mint(t, floatStringNbf, nil),
		"claims not an object":          notObject,
		"over 8 KiB":                    good.Mint(t, big, nil),
		"JSON serialization":            `{"payload":"` + parts[1] + `","protected":"` + parts[0] + `","signature":"` + parts[2] + `"}`,
		"five parts (JWE shape)":        validTok + ".AAAA.BBBB",
		"two parts":                     parts[0] + "." + parts[1],
		"padded base64":                 parts[0] + "=." + parts[1] + "." + parts[2],
		"standard base64 alphabet, +":   parts[0] + "." + parts[1] + ".+" + parts[2][1:],
		"standard base64 alphabet, /":   parts[0] + "." + parts[1] + "./" + parts[2][1:],
		"empty signature":               parts[0] + "." + parts[1] + ".",
		"header not JSON":               jwtauthtest.B64([]byte("garbage")) + "." + parts[1] + "." + parts[2],
		"signature of another token":    parts[0] + "." + jwtauthtest.B64(jwtauthtest.MustJSON(t, jwtauthtest.Claims("other"))) + "." + parts[2],
	}
	for name, tok := range attacks {
		t.Run(name, func(t *testing.T) {
			before := store.calls.Load()
			rec := serve(t, h, "GET", profilePath, bearer(tok), "")
			if rec.Code != 401 {
				t.Fatalf("status %d, want 401; body %s", rec.Code, rec.Body)
			}
			// every attack is InvalidToken: none is a lifetime, issuer or
			// audience problem, so a prefix match would hide a regression
			if p := decodeProblem(t, rec); p.Code != "InvalidToken" {
				t.Fatalf("code %s, want InvalidToken", p.Code)
			}
			if store.calls.Load() != before {
				t.Fatal("a refused token reached the store")
			}
			if strings.Contains(rec.Body.String(), tok) {
				t.Fatal("the token is echoed in the response")
			}
		})
	}
	// the same handler accepts the genuine token, so the refusals above
	// are not a broken configuration
	if rec := serve(t, h, "GET", profilePath, bearer(validTok), ""); rec.Code != 200 {
		t.Fatalf("genuine token: %d %s", rec.Code, rec.Body)
	}
}

// selfSignedCert is a real certificate of key's public half, base64 DER as
// x5c carries it: an x5c the verifier would accept if it trusted the header.
func selfSignedCert(t testing.TB, key crypto.Signer) string {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "attacker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}
