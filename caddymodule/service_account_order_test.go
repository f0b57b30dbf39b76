package caddymodule

import (
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// TestServiceAccountWithoutSubject: the service-account decision comes
// before the subject rule, so a service account's token that names no
// subject, or an unusable one, is told 403 like any service account's,
// through a real Caddy; a user's such token is still 401 with the
// subject rule's own words.
func TestServiceAccountWithoutSubject(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	tc := startCaddy(t, itConfig{jwksFiles: []string{writeFile(t, "k.json", jwtauthtest.JWKS(t, k))}, storage: "storage memory"})
	url := itBase + profilePath
	mint := func(sub any, userType any) string {
		c := jwtauthtest.Claims("")
		delete(c, "sub")
		if sub != nil {
			c["sub"] = sub
		}
		if userType != nil {
			c["UserType"] = userType
		}
		return k.Mint(t, c, nil)
	}
	for name, tok := range map[string]string{
		"no subject":       mint(nil, 2),
		"numeric subject":  mint(7, "2"),
		"spaced subject":   mint(" robot", 2),
		"too long subject": mint(strings.Repeat("r", profile.MaxUserIDBytes+1), 2),
	} {
		r := do(t, tc.Client, "GET", url, bearer(tok), "")
		if r.status != 403 || r.header.Get("WWW-Authenticate") != "" || !strings.Contains(string(r.body), `"code":"ServiceAccountForbidden"`) {
			t.Errorf("%s: %d %q %s", name, r.status, r.header.Get("WWW-Authenticate"), r.body)
		}
	}
	const noSubject = "The token has no subject."
	wantRefusal(t, do(t, tc.Client, "GET", url, bearer(mint(nil, 1)), ""), "InvalidToken", noSubject,
		`Bearer realm="workspace", error="invalid_token", error_description="`+noSubject+`"`)
}
