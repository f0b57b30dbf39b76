package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

type caddyHandlerFunc = caddyhttp.HandlerFunc

// newRawRequest is a request for a raw request target, parsed as Go's
// server parses it (so %2F stays in RawPath, a backslash stays as it is).
func newRawRequest(method, target string, hdr map[string]string) *http.Request {
	req := httptest.NewRequest(method, "/", nil)
	u, err := url.ParseRequestURI(target)
	if err != nil {
		panic(err)
	}
	req.URL, req.RequestURI = u, target
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
}

func serveRaw(t testing.TB, h *Handler, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	return serveRequest(t, h, newRawRequest(method, target, hdr), nil)
}

// serveRequest runs req through h; seeNext, if set, sees what the next
// handler gets.
func serveRequest(t testing.TB, h *Handler, req *http.Request, seeNext func(http.ResponseWriter, *http.Request)) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	nextH := next
	if seeNext != nil {
		nextH = caddyHandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			seeNext(w, r)
			return next.ServeHTTP(w, r)
		})
	}
	if err := h.ServeHTTP(rec, req, nextH); err != nil {
		t.Fatalf("ServeHTTP returned %v", err)
	}
	return rec
}

// routeSpellings are paths that common backends route to the profile
// endpoint, each a way around an exact-match edge (catalogue row F01, see
// docs/threat-model.md).
var routeSpellings = []string{
	"/api/workspace/account/profile",
	"/api/workspace/account/profile/",
	"/API/workspace/account/profile",
	"/api/Workspace/Account/Profile",
	"/API/WORKSPACE/ACCOUNT/PROFILE/",
	"//api/workspace/account/profile",
	"/api//workspace/account/profile",
	"/api/workspace/account/profile//",
	"/api/workspace/account/./profile",
	"/api/workspace/x/../account/profile",
	"/api/workspace/account/profile/.",
	"/api/workspace/account/profile;x=1",
	"/api;a=b/workspace/account;c/profile",
	"/api/workspace/x/..;/account/profile",
	"/api/workspace/account/%70rofile",
	"/api/workspace/account/%50ROFILE",
	"/api/workspace/%2e/account/profile",
	"/api/workspace/x/%2e%2e/account/profile",
	"/api/work%C5%BFpace/account/profile", // U+017F long s folds to s
	"/api/workspace/account/prof%C4%B1le", // U+0131 dotless i upper-cases to I
	"/../api/workspace/account/profile",
}

// routeRefusals name the route only through an encoded slash, a backslash,
// NUL or a control character: 400, never passed on.
var routeRefusals = []string{
	"/api/workspace/account%2Fprofile",
	"/api/workspace/account%2fprofile",
	"/api%2Fworkspace%2Faccount%2Fprofile",
	"/api/workspace/account%5Cprofile",
	"/api/workspace/account\\profile",
	"/api/workspace/account/profile%00",
	"/api/workspace/account/pro%00file",
	"/api/workspace/account/profile%0A",
	"/api/workspace/account/profile%7F",
	"/api/workspace/account/x%2F..%2Fprofile",
}

// routeOthers are other paths, some close to the route.
var routeOthers = []string{
	"/",
	"/api/workspace/account",
	"/api/workspace/account/",
	"/api/workspace/account/profiles",
	"/api/workspace/account/profile/x",
	"/api/workspace/account/profile/..",
	"/api/workspace/account/profile%2Fx",
	"/api/workspace/account/%2570rofile", // decoded once by backends: %70rofile
	"/api/workspace/account/pro%ZZfile",
	"/api/workspace/account/profile.json",
	"/other/api/workspace/account/profile",
	"",
}

func TestMatchRoute(t *testing.T) {
	const route = DefaultPath
	for _, p := range routeSpellings {
		if got := matchRoute(p, route); got != routeOwned {
			t.Errorf("%q: %d, want owned", p, got)
		}
	}
	for _, p := range routeRefusals {
		if got := matchRoute(p, route); got != routeRefused {
			t.Errorf("%q: %d, want refused", p, got)
		}
	}
	for _, p := range routeOthers {
		if got := matchRoute(p, route); got != routeOther {
			t.Errorf("%q: %d, want passed on", p, got)
		}
	}
}

// TestMatchRouteOtherPath: the same rules hold for a configured path other
// than the default.
func TestMatchRouteOtherPath(t *testing.T) {
	const route = "/v2/Me"
	for p, want := range map[string]routeMatch{
		"/v2/Me": routeOwned, "/V2/me/": routeOwned, "//v2//ME": routeOwned, "/v2/x/../me;p": routeOwned,
		"/v2/%4De": routeOwned, "/v2%2Fme": routeRefused, "/v2\\me": routeRefused, "/v2/me%00": routeRefused,
		"/v2/mee": routeOther, "/v2": routeOther, DefaultPath: routeOther,
	} {
		if got := matchRoute(p, route); got != want {
			t.Errorf("%q: %d, want %d", p, got, want)
		}
	}
}

// TestRouteSpellingsNeedAToken: through the handler, every spelling of the
// route is the route: no token is 401, a refused spelling is 400 problem
// details, and neither reaches the next handler or the store.
func TestRouteSpellingsNeedAToken(t *testing.T) {
	h, store := newFileHandler(t, jwtauthtest.JWKS(t, jwtauthtest.NewKey(t, jwa.RS256(), "k")), nil)
	for _, p := range routeSpellings {
		rec := serveRaw(t, h, "GET", p, nil)
		if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), `"code":"MissingToken"`) {
			t.Errorf("%q: %d %s, want 401 MissingToken", p, rec.Code, rec.Body)
		}
	}
	for _, p := range routeRefusals {
		rec := serveRaw(t, h, "GET", p, nil)
		if rec.Code != http.StatusBadRequest || rec.Header().Get("Content-Type") != "application/problem+json" ||
			!strings.Contains(rec.Body.String(), `"code":"InvalidPath"`) ||
			!strings.Contains(rec.Body.String(), `"instance":"`+DefaultPath+`"`) {
			t.Errorf("%q: %d %s, want 400 InvalidPath", p, rec.Code, rec.Body)
		}
	}
	if n := store.calls.Load(); n != 0 {
		t.Errorf("%d store calls", n)
	}
}

// TestIdentityHeadersScrubbedEverywhere: client X-Workspace-* headers, in
// any case and with _ for -, never reach the next handler on any path,
// unless keep_client_identity_headers is on.
func TestIdentityHeadersScrubbedEverywhere(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	for _, keep := range []bool{false, true} {
		h, _ := newFileHandler(t, jwtauthtest.JWKS(t, k), func(h *Handler) { h.KeepClientIdentityHeaders = keep })
		req := newRawRequest("GET", "/api/other", nil)
		for _, name := range []string{"X-Workspace-User-Id", "x-workspace-user-type", "X_Workspace_User_Id", "X-WORKSPACE-ROLE"} {
			req.Header[name] = []string{"victim"}
		}
		req.Header.Set("X-Other", "kept")
		var seen http.Header
		rec := serveRequest(t, h, req, func(w http.ResponseWriter, r *http.Request) { seen = r.Header.Clone() })
		if rec.Code != nextStatus {
			t.Fatalf("status %d", rec.Code)
		}
		var identity []string
		for name := range seen {
			if isIdentityHeader(name) {
				identity = append(identity, name)
			}
		}
		if !keep && len(identity) != 0 || keep && len(identity) != 4 || seen.Get("X-Other") != "kept" {
			t.Errorf("keep=%v: the next handler saw %v", keep, seen)
		}
	}
}

func FuzzMatchRoute(f *testing.F) {
	for _, seeds := range [][]string{routeSpellings, routeRefusals, routeOthers} {
		for _, p := range seeds {
			f.Add(p)
		}
	}
	f.Fuzz(func(t *testing.T, p string) {
		got := matchRoute(p, DefaultPath)
		segs, suspicious := canonicalSegments(p)
		names := segmentsEqual(segs, DefaultPath)
		switch got {
		case routeOther:
			// fast paths must agree with the full reading
			if names {
				t.Fatalf("%q names the route but is passed on", p)
			}
		case routeRefused:
			if !names || !suspicious {
				t.Fatalf("%q refused: names=%v suspicious=%v", p, names, suspicious)
			}
		case routeOwned:
			if !names || suspicious {
				t.Fatalf("%q owned: names=%v suspicious=%v", p, names, suspicious)
			}
		}
	})
}
