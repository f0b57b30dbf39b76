package caddymodule

import (
	"net/http"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// TestOptionsOnRouteCarriesNoClientIdentity: OPTIONS passes from the route
// to the next handler (CORS is someone else's job), but never with the
// client's X-Workspace-* headers, in any spelling of the route and any
// spelling of the header, whether or not keep_client_identity_headers is
// on: the option only concerns the site's other paths, where the next
// handler sees the client's headers with it on and never with it off.
// Raw sockets through a real Caddy; the next handler is the site's
// catch-all reverse_proxy, whose backend records what it got.
func TestOptionsOnRouteCarriesNoClientIdentity(t *testing.T) {
	forged := []string{
		"X-Workspace-User-Id: victim",
		"x-WORKSPACE-user-ID: victim-2", // the same header again, in another case
		"X_WORKSPACE_USER_ID: victim-3", // Caddy 2.11 drops it itself (expected_underscore_headers)
		"x-workspace-role: admin",
	}
	for _, keep := range []bool{false, true} {
		name, extra := "option_off", ""
		if keep {
			name, extra = "option_on", "keep_client_identity_headers"
		}
		t.Run(name, func(t *testing.T) {
			s := startEdgeSite(t, extra)
			// identity is what the next handler's backend got of the
			// client's identity headers: every value, by name as sent on
			identity := func() []string {
				t.Helper()
				seen := s.legacy.Requests()
				if len(seen) == 0 {
					t.Fatal("the next handler's backend saw nothing")
				}
				var got []string
				for name, vs := range seen[len(seen)-1].Header {
					if isIdentityHeader(name) {
						got = append(got, name+": "+strings.Join(vs, ", "))
					}
				}
				return got
			}
			for _, p := range append([]string{"/api/workspace/account/profile?x=1"}, routeSpellings...) {
				before := s.legacy.Fetches.Load()
				r := rawRoundTrip(t, rawRequest("OPTIONS", p, itHost, forged...))
				if r.status != 200 || s.legacy.Fetches.Load() != before+1 {
					t.Errorf("OPTIONS %q: %d %s, not passed on to the next handler", p, r.status, r.body)
					continue
				}
				if got := identity(); len(got) != 0 {
					t.Errorf("OPTIONS %q: the next handler got the client's %v", p, got)
				}
			}
			for _, method := range []string{"OPTIONS", "GET"} {
				if r := rawRoundTrip(t, rawRequest(method, "/api/other", itHost, forged...)); r.status != 200 {
					t.Fatalf("%s on another path: %d %s", method, r.status, r.body)
				}
				got := identity()
				if keep && (len(got) != 2 || !strings.Contains(strings.Join(got, "\n"), "X-Workspace-User-Id: victim, victim-2")) {
					t.Errorf("%s on another path with the option on: the next handler got %v, want the client's User-Id (both) and Role", method, got)
				}
				if !keep && len(got) != 0 {
					t.Errorf("%s on another path with the option off: the next handler got the client's %v", method, got)
				}
			}
		})
	}
}

// TestIdentityHeadersRemovedOnRouteWithKeepOption: the handler alone, for
// the spellings Caddy's own server drops before the handler (a name with
// `_`, which CGI-style backends read as `-`): with
// keep_client_identity_headers on, OPTIONS on any spelling of the route
// reaches the next handler without any client identity header.
func TestIdentityHeadersRemovedOnRouteWithKeepOption(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	h, _ := newFileHandler(t, jwtauthtest.JWKS(t, k), func(h *Handler) { h.KeepClientIdentityHeaders = true })
	for _, p := range routeSpellings {
		req := newRawRequest("OPTIONS", p, nil)
		for _, name := range []string{"X-Workspace-User-Id", "x-workspace-user-type", "X_Workspace_User_Id", "X-WORKSPACE-ROLE"} {
			req.Header[name] = []string{"victim"}
		}
		var seen http.Header
		if rec := serveRequest(t, h, req, func(w http.ResponseWriter, r *http.Request) { seen = r.Header.Clone() }); rec.Code != nextStatus {
			t.Fatalf("OPTIONS %q: status %d, not passed on", p, rec.Code)
		}
		for name := range seen {
			if isIdentityHeader(name) {
				t.Errorf("OPTIONS %q: the next handler saw the client's %s", p, name)
			}
		}
	}
}
