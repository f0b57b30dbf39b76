package introspect

import (
	"testing"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// TestRouteRulesOverSharedCache: two routes over one introspector share
// its cache (one call), and each applies its own rules on the cached
// answer: a route with another audience refuses what the first accepted,
// without a second call; a route's rules are checked when it is made.
func TestRouteRulesOverSharedCache(t *testing.T) {
	e := newEnv(t, nil)
	e.serve(e.answer(nil))
	mine, err := e.in.Route(Config{Issuers: []string{jwtauthtest.Issuer}, Audiences: []string{jwtauthtest.Audience}})
	if err != nil {
		t.Fatal(err)
	}
	other, err := e.in.Route(Config{Issuers: []string{jwtauthtest.Issuer}, Audiences: []string{"other-api"}})
	if err != nil {
		t.Fatal(err)
	}
	_, aerr := mine.Verify(t.Context(), testToken)
	wantCode(t, aerr, "")
	_, aerr = other.Verify(t.Context(), testToken)
	wantCode(t, aerr, "InvalidAudience")
	_, aerr = mine.Verify(t.Context(), testToken)
	wantCode(t, aerr, "")
	if e.calls() != 1 {
		t.Fatalf("%d calls, want 1", e.calls())
	}
	if _, err := e.in.Route(Config{Issuers: []string{jwtauthtest.Issuer}}); err == nil {
		t.Fatal("a route without an audience was made")
	}
}
