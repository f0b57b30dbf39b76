package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
)

// TestAttackTokens: every forged or malformed token is refused with 401
// and never reaches the store.
func TestAttackTokens(t *testing.T) {
	good := newTestKey(t, jwa.RS256(), "good")
	attacker := newTestKey(t, jwa.RS256(), "good")
	h, store := newFileHandler(t, jwksOf(t, good), func(h *Handler) { h.CreateMissing = true })
	claims := claimsFor("victim")
	payload := mustJSON(t, claims)

	noneToken := func(alg string) string {
		return b64(mustJSON(t, map[string]any{"alg": alg, "typ": "JWT"})) + "." + b64(payload) + "."
	}
	attackerJWK, _ := json.Marshal(attacker.pub)
	tampered := func() string {
		tok := good.mint(t, claims, nil)
		parts := strings.Split(tok, ".")
		c := claimsFor("admin")
		parts[1] = b64(mustJSON(t, c))
		return strings.Join(parts, ".")
	}()
	big := claimsFor("victim")
	big["pad"] = strings.Repeat("x", maxTokenLen)
	stringExp := claimsFor("victim")
	stringExp["exp"] = "9999999999"
	noExp := claimsFor("victim")
	delete(noExp, "exp")
	floatStringNbf := claimsFor("victim")
	floatStringNbf["nbf"] = "0"
	notObject := good.signRaw(t, mustJSON(t, map[string]any{"alg": "RS256", "kid": "good"}), []byte(`["not","claims"]`))
	validTok := good.mint(t, claims, nil)
	parts := strings.Split(validTok, ".")

	attacks := map[string]string{
		"alg none":                            noneToken("none"),
		"alg None":                            noneToken("None"),
		"alg NONE":                            noneToken("NONE"),
		"alg nOnE with a signature":           noneToken("nOnE") + "AAAA",
		"HS256 keyed with the RSA public key": hs256WithPublicKey(t, good.pub, claims),
		"valid signature, key outside the set, known kid": attacker.mint(t, claims, nil),
		"embedded jwk":                  attacker.mint(t, claims, map[string]any{"jwk": json.RawMessage(attackerJWK), "kid": "attacker"}),
		"embedded jwk, known kid":       attacker.mint(t, claims, map[string]any{"jwk": json.RawMessage(attackerJWK)}),
		"jku":                           attacker.mint(t, claims, map[string]any{"jku": "https://evil.invalid/jwks.json", "kid": "evil"}),
		"x5u":                           attacker.mint(t, claims, map[string]any{"x5u": "https://evil.invalid/cert.pem"}),
		"x5c":                           attacker.mint(t, claims, map[string]any{"x5c": []string{"MIIB"}}),
		"crit, signed by the right key": good.mint(t, claims, map[string]any{"crit": []string{"exp"}, "exp": 1}),
		"crit empty list":               good.mint(t, claims, map[string]any{"crit": []string{}}),
		"tampered payload":              tampered,
		"missing exp":                   good.mint(t, noExp, nil),
		"exp as a string":               good.mint(t, stringExp, nil),
		"nbf as a string":               good.mint(t, floatStringNbf, nil),
		"claims not an object":          notObject,
		"over 8 KiB":                    good.mint(t, big, nil),
		"JSON serialization":            `{"payload":"` + parts[1] + `","protected":"` + parts[0] + `","signature":"` + parts[2] + `"}`,
		"five parts (JWE shape)":        validTok + ".AAAA.BBBB",
		"two parts":                     parts[0] + "." + parts[1],
		"padded base64":                 parts[0] + "=." + parts[1] + "." + parts[2],
		"standard base64 alphabet":      strings.ReplaceAll(validTok, "-", "+"),
		"empty signature":               parts[0] + "." + parts[1] + ".",
		"header not JSON":               b64([]byte("garbage")) + "." + parts[1] + "." + parts[2],
		"signature of another token":    parts[0] + "." + b64(mustJSON(t, claimsFor("other"))) + "." + parts[2],
	}
	for name, tok := range attacks {
		t.Run(name, func(t *testing.T) {
			before := store.calls.Load()
			rec := serve(t, h, "GET", profilePath, bearer(tok), "")
			if rec.Code != 401 {
				t.Fatalf("status %d, want 401; body %s", rec.Code, rec.Body)
			}
			p := decodeProblem(t, rec)
			if !strings.HasPrefix(p.Code, "Invalid") && p.Code != "TokenExpired" && p.Code != "TokenNotYetValid" {
				t.Fatalf("code %s", p.Code)
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
