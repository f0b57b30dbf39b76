package caddymodule

import (
	"bytes"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// TestTokenTypeAndClientSpellings: token_type and clients against typ
// and client spellings a provider (or a confused one) could send.
func TestTokenTypeAndClientSpellings(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.ES256(), "es")
	tc := startCaddy(t, itConfig{jwksFiles: []string{writeFile(t, "k.json", jwtauthtest.JWKS(t, k))}, storage: "storage memory",
		extra: "token_type at+jwt\n\t\tclients web"})
	url := itBase + profilePath
	mint := func(typ any, claims map[string]any) string {
		c := jwtauthtest.Claims("kind-user")
		c["client_id"] = "web"
		for n, v := range claims {
			if v == nil {
				delete(c, n)
			} else {
				c[n] = v
			}
		}
		if typ == nil {
			return k.Mint(t, c, map[string]any{"typ": nil})
		}
		return k.Mint(t, c, map[string]any{"typ": typ})
	}
	for name, tok := range map[string]string{
		"typ with a parameter":        mint("application/at+jwt; charset=utf-8", nil),
		"typ with a space":            mint("at+jwt ", nil),
		"typ JWT":                     mint("JWT", nil),
		"typ absent":                  mint(nil, nil),
		"typ an array":                mint([]any{"at+jwt"}, nil),
		"typ with a Kelvin-like rune": mint("at+jwt\u212a", nil),
		"typ text/at+jwt":             mint("text/at+jwt", nil),
		"client_id an array":          mint("at+jwt", map[string]any{"client_id": []any{"web"}}),
		"client_id in other case":     mint("at+jwt", map[string]any{"client_id": "WEB"}),
		"client_id and azp differ":    mint("at+jwt", map[string]any{"azp": "other"}),
		"client only as Client_Id":    mint("at+jwt", map[string]any{"client_id": nil, "Client_Id": "web"}),
	} {
		if r := doDPoP(t, tc, "GET", url, "Bearer "+tok); r.status != 401 || !bytes.Contains(r.body, []byte(`"code":"InvalidToken"`)) {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	for name, tok := range map[string]string{
		"AT+JWT":             mint("AT+JWT", nil),
		"application/at+jwt": mint("Application/At+Jwt", nil),
		"azp only":           mint("at+jwt", map[string]any{"client_id": nil, "azp": "web"}),
	} {
		if r := doDPoP(t, tc, "GET", url, "Bearer "+tok); r.status != 200 {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
}
