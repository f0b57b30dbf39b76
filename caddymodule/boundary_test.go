package caddymodule

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// The edge's boundary (catalogue part F, docs/threat-model.md), attacked
// through a real Caddy with raw sockets, so that nothing on the client side
// normalizes what is sent. The site is the usual deployment: the module in
// upstream mode in front of the route's backend, then a catch-all
// reverse_proxy to the same legacy API for everything else.

type edgeSite struct {
	tc     *caddytest.Tester
	key    jwtauthtest.Key
	route  *jwtauthtest.Server // the backend of the profile route
	legacy *jwtauthtest.Server // the catch-all legacy API
}

func startEdgeSite(t *testing.T, extra string) *edgeSite {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	s := &edgeSite{key: k, route: jwtauthtest.NewServer(t), legacy: jwtauthtest.NewServer(t)}
	s.route.Set(200, []byte(`{"userId":"u-1","userName":"alice"}`))
	s.legacy.Set(200, []byte(`{"legacy":true}`))
	s.tc = startCaddyfile(t, fmt.Sprintf(itGlobal+itSite+` {
	workspace_profile {
		jwks_file %s
		issuer %s
		audience %s
		upstream %s
		%s
	}
	reverse_proxy %s
}
`, writeFile(t, "jwks.json", jwtauthtest.JWKS(t, k)), testIssuer, testAudience, strings.TrimPrefix(s.route.URL, "http://"), extra,
		strings.TrimPrefix(s.legacy.URL, "http://")))
	return s
}

// noneReached fails when a backend saw more requests than before.
func noneReached(t *testing.T, what string, s *jwtauthtest.Server, before int64) {
	t.Helper()
	if n := s.Fetches.Load() - before; n != 0 {
		t.Errorf("%s: %d request(s) reached the backend", what, n)
	}
}

func (s *edgeSite) lastRoute(t *testing.T) jwtauthtest.Request {
	t.Helper()
	seen := s.route.Requests()
	if len(seen) == 0 {
		t.Fatal("the route's backend saw nothing")
	}
	return seen[len(seen)-1]
}

// TestEdgeRouteSpellings: every spelling of the route that a common
// backend would route to the profile endpoint needs a token, and the
// backend sees only the route's own path (catalogue row F01, see
// docs/threat-model.md).
func TestEdgeRouteSpellings(t *testing.T) {
	s := startEdgeSite(t, "")
	tok := s.key.Mint(t, jwtauthtest.Claims("u-1"), nil)
	auth := "Authorization: Bearer " + tok

	t.Run("F01_route_spellings", func(t *testing.T) {
		for _, p := range routeSpellings {
			before, legacyBefore := s.route.Fetches.Load(), s.legacy.Fetches.Load()
			if r := rawRoundTrip(t, rawGet(p)); r.status != 401 || !strings.Contains(r.body, `"MissingToken"`) {
				t.Errorf("%q without a token: %d %s", p, r.status, r.body)
			}
			noneReached(t, p+" without a token", s.route, before)
			r := rawRoundTrip(t, rawGet(p+"?b=%2F&a=1", auth))
			if r.status != 200 {
				t.Errorf("%q with a token: %d %s", p, r.status, r.body)
				continue
			}
			if got := s.lastRoute(t); got.RequestURI != profilePath+"?b=%2F&a=1" {
				t.Errorf("%q: the backend saw %q, want the route's own path and the query byte for byte", p, got.RequestURI)
			}
			noneReached(t, p, s.legacy, legacyBefore)
		}
		for _, p := range routeRefusals {
			before, legacyBefore := s.route.Fetches.Load(), s.legacy.Fetches.Load()
			r := rawRoundTrip(t, rawGet(p, auth))
			if r.status != 400 || r.header.Get("Content-Type") != "application/problem+json" || !strings.Contains(r.body, `"code":"InvalidPath"`) {
				t.Errorf("%q: %d %s, want 400 InvalidPath", p, r.status, r.body)
			}
			noneReached(t, p, s.route, before)
			noneReached(t, p, s.legacy, legacyBefore)
		}
		// other paths still pass on
		before := s.legacy.Fetches.Load()
		if r := rawRoundTrip(t, rawGet("/api/workspace/account/profiles")); r.status != 200 || s.legacy.Fetches.Load() != before+1 {
			t.Errorf("a neighbour path: %d %s", r.status, r.body)
		}
	})
}

// TestEdgeBackendRequestHygiene: the module is the only source of identity
// headers on the site: client copies, Connection tricks and trailers never
// reach a backend (rows F02-F04); the route's backend is asked for an
// uncompressed answer whatever the client accepts.
func TestEdgeBackendRequestHygiene(t *testing.T) {
	s := startEdgeSite(t, "")
	tok := s.key.Mint(t, jwtauthtest.Claims("u-1"), nil)
	auth := "Authorization: Bearer " + tok

	t.Run("F02_identity_headers_on_any_path", func(t *testing.T) {
		forged := []string{"X-Workspace-User-Id: victim", "x-workspace-user-type: 1", "X_Workspace_User_Id: victim", "X-WORKSPACE-ROLE: admin"}
		if r := rawRoundTrip(t, rawGet("/api/other", forged...)); r.status != 200 {
			t.Fatalf("other path: %d %s", r.status, r.body)
		}
		seen := s.legacy.Requests()
		for name := range seen[len(seen)-1].Header {
			if isIdentityHeader(name) {
				t.Errorf("the legacy API got the client's %s", name)
			}
		}
		if r := rawRoundTrip(t, rawGet(profilePath, append(forged, auth)...)); r.status != 200 {
			t.Fatalf("route: %d %s", r.status, r.body)
		}
		got := s.lastRoute(t).Header
		if got.Get("X-Workspace-User-Id") != "u-1" || got.Get("X-Workspace-Role") != "" || got.Get("X_Workspace_User_Id") != "" || got.Get("X-Workspace-User-Type") != "" {
			t.Errorf("the route's backend got %v", got)
		}
	})

	t.Run("F03_Connection_names_the_edges_headers", func(t *testing.T) {
		r := rawRoundTrip(t, rawGet(profilePath, auth, "X-Other: gone",
			"Connection: X-Workspace-User-Id, Authorization, X-Workspace-User-Type, X-Other"))
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		got := s.lastRoute(t).Header
		if got.Get("X-Workspace-User-Id") != "u-1" || got.Get("Authorization") != "Bearer "+tok {
			t.Errorf("the backend lost the edge's headers: %v", got)
		}
		if got.Get("X-Other") != "" {
			t.Errorf("a header the client named in Connection was forwarded")
		}
	})

	t.Run("F04_trailers", func(t *testing.T) {
		body := `{"FirstName":"Al"}`
		req := "PUT " + profilePath + " HTTP/1.1\r\nHost: " + itHost + "\r\n" + auth + "\r\n" +
			"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nTrailer: X-Workspace-User-Id, Authorization\r\nConnection: close\r\n\r\n" +
			fmt.Sprintf("%x\r\n%s\r\n0\r\n", len(body), body) +
			"X-Workspace-User-Id: victim\r\nAuthorization: Bearer forged\r\nX-Extra: t\r\n\r\n"
		if r := rawRoundTrip(t, req); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		got := s.lastRoute(t)
		if len(got.Trailer) != 0 || got.Header.Get("Trailer") != "" {
			t.Errorf("the backend got trailers %v / %q", got.Trailer, got.Header.Get("Trailer"))
		}
		if got.Header.Get("X-Workspace-User-Id") != "u-1" || got.Header.Get("Authorization") != "Bearer "+tok || string(got.Body) != body {
			t.Errorf("the backend got %v %q", got.Header, got.Body)
		}

		// response trailers never become client headers or trailers
		s.route.Serve(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-Workspace-Role, Set-Cookie")
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"userId":"u-1"}`)
			w.Header().Set("X-Workspace-Role", "admin")
			w.Header().Set("Set-Cookie", "session=forged")
			w.Header().Set(http.TrailerPrefix+"X-Late", "late")
		})
		defer s.route.Set(200, []byte(`{"userId":"u-1","userName":"alice"}`))
		r := rawRoundTrip(t, rawGet(profilePath, auth))
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		for _, name := range []string{"X-Workspace-Role", "Set-Cookie", "X-Late", "Trailer"} {
			if r.header.Get(name) != "" || r.trailer.Get(name) != "" {
				t.Errorf("the backend's trailer %s reached the client: %v / %v", name, r.header, r.trailer)
			}
		}
	})

	t.Run("F02_F04_trailers_and_path_overrides_on_any_path", func(t *testing.T) {
		before := len(s.legacy.Requests())
		req := "POST /api/other HTTP/1.1\r\nHost: " + itHost + "\r\nTransfer-Encoding: chunked\r\nTrailer: X-Foo\r\n" +
			"Content-Type: application/json\r\nX-Original-URL: /API/workspace/account/profile?x\r\nX-Rewrite-URL: /somewhere/else\r\nConnection: close\r\n\r\n" +
			"7\r\n{\"a\":1}\r\n0\r\nX-Foo: 1\r\nX-Workspace-User-Id: victim\r\nAuthorization: Bearer forged\r\n\r\n"
		if r := rawRoundTrip(t, req); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		seen := s.legacy.Requests()
		if len(seen) != before+1 {
			t.Fatalf("the legacy API saw %d requests", len(seen)-before)
		}
		got := seen[len(seen)-1]
		if len(got.Trailer) != 0 || got.Header.Get("X-Workspace-User-Id") != "" || got.Header.Get("Authorization") != "" {
			t.Errorf("trailers reached the legacy API: %v %v", got.Trailer, got.Header)
		}
		if got.Header.Get("X-Original-Url") != "" || got.Header.Get("X-Rewrite-Url") != "/somewhere/else" {
			t.Errorf("path overrides: X-Original-URL %q (must be gone), X-Rewrite-URL %q (must stay)", got.Header.Get("X-Original-Url"), got.Header.Get("X-Rewrite-Url"))
		}
	})

	t.Run("upstream_gets_identity_encoding", func(t *testing.T) {
		if r := rawRoundTrip(t, rawGet(profilePath, auth, "Accept-Encoding: gzip, br")); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if got := s.lastRoute(t).Header.Values("Accept-Encoding"); len(got) != 1 || got[0] != "identity" {
			t.Errorf("the backend got Accept-Encoding %q", got)
		}
	})
}

// TestEdgeTokenParameter: the query token under any spelling is refused or
// removed, never forwarded, and OPTIONS never carries it on (row F05).
func TestEdgeTokenParameter(t *testing.T) {
	s := startEdgeSite(t, "")
	tok := s.key.Mint(t, jwtauthtest.Claims("u-1"), nil)
	auth := "Authorization: Bearer " + tok

	t.Run("F05_token_parameter_spellings", func(t *testing.T) {
		for _, q := range []string{"ACCESS_TOKEN=" + tok, "Access%5FToken=" + tok, "a=1;access_token=" + tok,
			"access.token=" + tok, "access_token[]=" + tok, "%61ccess_token=" + tok, "access_tokeN=x", "access_token=" + tok + "&Access_Token=x",
			// PHP: an unclosed [ reads as _, a NUL ends the name; IIS: %u escapes; - read as _
			"access[token=" + tok, "access_token%00=" + tok, "access_token%00junk=" + tok, "access%u005ftoken=" + tok, "access-token=" + tok} {
			before := s.route.Fetches.Load()
			for _, hdr := range [][]string{nil, {auth}} {
				r := rawRoundTrip(t, rawGet(profilePath+"?"+q, hdr...))
				if r.status != 400 || !strings.Contains(r.body, `"InvalidRequest"`) {
					t.Errorf("?%s (header %v): %d %s", q[:min(len(q), 24)], hdr != nil, r.status, r.body)
				}
			}
			noneReached(t, q[:min(len(q), 24)], s.route, before)
		}
		// the literal name works and is never forwarded
		if r := rawRoundTrip(t, rawGet(profilePath+"?x=1&access_token="+tok+"&y=%41")); r.status != 200 {
			t.Fatalf("literal access_token: %d %s", r.status, r.body)
		}
		if got := s.lastRoute(t).RawQuery; got != "x=1&y=%41" {
			t.Errorf("the backend's query is %q", got)
		}
	})

	t.Run("F05_OPTIONS_never_carries_the_token_on", func(t *testing.T) {
		before := len(s.legacy.Requests())
		r := rawRoundTrip(t, "OPTIONS /API/workspace/account/profile?x=1&access_token="+tok+"&ACCESS_TOKEN="+tok+"&y=2 HTTP/1.1\r\nHost: "+itHost+"\r\nConnection: close\r\n\r\n")
		seen := s.legacy.Requests()
		if r.status != 200 || len(seen) != before+1 {
			t.Fatalf("OPTIONS: %d, the legacy API saw %d requests", r.status, len(seen)-before)
		}
		if q := seen[len(seen)-1].RawQuery; q != "x=1&y=2" {
			t.Errorf("OPTIONS reached the legacy API with the query %q", q)
		}
	})
}

// TestEdgeClaimForms: claims that another parser would read differently
// (the service-account claim in other forms, duplicate members, control
// characters, invalid text, padding a parser would trim) are refused or
// read as ASP.NET would (rows F06, F08).
func TestEdgeClaimForms(t *testing.T) {
	s := startEdgeSite(t, "")
	tok := s.key.Mint(t, jwtauthtest.Claims("u-1"), nil)
	auth := "Authorization: Bearer " + tok

	t.Run("F06_service_account_claim_forms_and_duplicate_members", func(t *testing.T) {
		for _, form := range []string{`"UserType":2.0`, `"UserType":2e0`, `"UserType":"2"`, `"usertype":2`,
			`"USERTYPE":"2.0"`, `"UserType":["1",2]`, `"UserType":0,"userType":2`} {
			payload := fmt.Sprintf(`{"iss":%q,"aud":%q,"sub":"svc","exp":%d,%s}`, testIssuer, testAudience, time.Now().Add(time.Hour).Unix(), form)
			before := s.route.Fetches.Load()
			st := s.key.SignRaw(t, []byte(`{"alg":"RS256","kid":"k"}`), []byte(payload))
			if r := rawRoundTrip(t, rawGet(profilePath, "Authorization: Bearer "+st)); r.status != 403 || !strings.Contains(r.body, `"ServiceAccountForbidden"`) {
				t.Errorf("%s: %d %s", form, r.status, r.body)
			}
			noneReached(t, form, s.route, before)
		}
		for _, payload := range []string{
			fmt.Sprintf(`{"iss":%q,"aud":%q,"sub":"a","sub":"b","exp":%d}`, testIssuer, testAudience, time.Now().Add(time.Hour).Unix()),
			fmt.Sprintf(`{"iss":%q,"aud":%q,"sub":"a","s\u0075b":"b","exp":%d}`, testIssuer, testAudience, time.Now().Add(time.Hour).Unix()),
			fmt.Sprintf(`{"iss":%q,"aud":%q,"sub":"a","UserType":0,"UserType":2,"exp":%d}`, testIssuer, testAudience, time.Now().Add(time.Hour).Unix()),
		} {
			st := s.key.SignRaw(t, []byte(`{"alg":"RS256","kid":"k"}`), []byte(payload))
			if r := rawRoundTrip(t, rawGet(profilePath, "Authorization: Bearer "+st)); r.status != 401 || !strings.Contains(r.body, `"InvalidToken"`) {
				t.Errorf("duplicate member %s: %d %s", payload, r.status, r.body)
			}
		}
		// an admin written as 1.0 reaches the backend in canonical form
		payload := fmt.Sprintf(`{"iss":%q,"aud":%q,"sub":"adm","exp":%d,"userType":1.0}`, testIssuer, testAudience, time.Now().Add(time.Hour).Unix())
		st := s.key.SignRaw(t, []byte(`{"alg":"RS256","kid":"k"}`), []byte(payload))
		if r := rawRoundTrip(t, rawGet(profilePath, "Authorization: Bearer "+st)); r.status != 200 || s.lastRoute(t).Header.Get("X-Workspace-User-Type") != "1" {
			t.Errorf("admin 1.0: %d, X-Workspace-User-Type %q", r.status, s.lastRoute(t).Header.Get("X-Workspace-User-Type"))
		}
	})

	t.Run("F08_claim_values_that_two_parsers_read_apart", func(t *testing.T) {
		exp := time.Now().Add(time.Hour).Unix()
		for name, sub := range map[string]string{
			"invalid UTF-8 \\xff": "\"user\xff\"", "invalid UTF-8 \\xfe": "\"user\xfe\"", "lone high surrogate": `"user\ud800"`,
			"lone low surrogate": `"user\udc00"`, "NUL": `"user\u0000"`, "CR LF": `"user\r\nX-Workspace-User-Id: victim"`,
			"DEL": "\"user\x7f\"", "C1": `"user\u0085"`, "escaped control in another claim": `"user","name":"a\u001bb"`,
		} {
			payload := fmt.Sprintf(`{"iss":%q,"aud":%q,"exp":%d,"sub":%s}`, testIssuer, testAudience, exp, sub)
			before := s.route.Fetches.Load()
			st := s.key.SignRaw(t, []byte(`{"alg":"RS256","kid":"k"}`), []byte(payload))
			if r := rawRoundTrip(t, rawGet(profilePath, "Authorization: Bearer "+st)); r.status != 401 || !strings.Contains(r.body, `"InvalidToken"`) {
				t.Errorf("%s: %d %s", name, r.status, r.body)
			}
			noneReached(t, name, s.route, before)
		}
		// a valid pair of surrogates, and plain non-ASCII, are accepted as written
		payload := fmt.Sprintf(`{"iss":%q,"aud":%q,"exp":%d,"sub":"us\ud83d\ude00er-é"}`, testIssuer, testAudience, exp)
		st := s.key.SignRaw(t, []byte(`{"alg":"RS256","kid":"k"}`), []byte(payload))
		if r := rawRoundTrip(t, rawGet(profilePath, "Authorization: Bearer "+st)); r.status != 200 || s.lastRoute(t).Header.Get("X-Workspace-User-Id") != "us😀er-é" {
			t.Errorf("a valid non-ASCII subject: %d %q", r.status, s.lastRoute(t).Header.Get("X-Workspace-User-Id"))
		}
		// control characters in profile fields: 400 at the edge, never forwarded
		before := s.route.Fetches.Load()
		put := "PUT " + profilePath + " HTTP/1.1\r\nHost: " + itHost + "\r\n" + auth + "\r\nContent-Type: application/json\r\nContent-Length: 25\r\nConnection: close\r\n\r\n" + `{"FirstName":"a\u0000b"} `
		if r := rawRoundTrip(t, put); r.status != 400 {
			t.Errorf("a NUL in FirstName: %d %s", r.status, r.body)
		}
		noneReached(t, "a NUL in FirstName", s.route, before)
	})

	t.Run("F08_identities_that_HTTP_would_trim_or_a_parser_would_choose", func(t *testing.T) {
		exp := time.Now().Add(time.Hour).Unix()
		mint := func(members string) string {
			payload := fmt.Sprintf(`{"iss":%q,"aud":%q,"exp":%d,%s}`, testIssuer, testAudience, exp, members)
			return "Authorization: Bearer " + s.key.SignRaw(t, []byte(`{"alg":"RS256","kid":"k"}`), []byte(payload))
		}
		for members, want := range map[string]int{
			`"sub":" u-1"`: 401, `"sub":"u-1 "`: 401, `"sub":" "`: 401, `"sub":"u-1 "`: 401,
			`"sub":"a","SUB":"b"`: 401, `"sub":"a","usertype":"0","USERTYPE":"1"`: 401,
			`"sub":"a","UserType":"2 "`: 403, `"sub":"a","UserType":" 2"`: 403, `"sub":"a","UserType":"+2"`: 403, `"sub":"a","UserType":"02"`: 403,
		} {
			before := s.route.Fetches.Load()
			if r := rawRoundTrip(t, rawGet(profilePath, mint(members))); r.status != want {
				t.Errorf("%s: %d, want %d: %s", members, r.status, want, r.body)
			}
			noneReached(t, members, s.route, before)
		}
		if r := rawRoundTrip(t, rawGet(profilePath, mint(`"sub":"a","UserType":" 01 "`))); r.status != 200 || s.lastRoute(t).Header.Get("X-Workspace-User-Type") != "1" {
			t.Errorf("UserType \" 01 \": %d, the backend got %q", r.status, s.lastRoute(t).Header.Get("X-Workspace-User-Type"))
		}
	})
}

// TestRouteSpellingsOfConfiguredPath: the route rules of row F01 hold for a
// configured path other than the default.
func TestRouteSpellingsOfConfiguredPath(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	route := jwtauthtest.NewServer(t)
	route.Set(200, []byte(`{"userId":"u-1"}`))
	tc := newTester(t)
	tc.InitServer(fmt.Sprintf(itGlobal+itSite+` {
	workspace_profile /v2/Me {
		jwks_file %s
		issuer %s
		audience %s
		upstream %s
	}
	respond "next" 299
}
`, writeFile(t, "jwks.json", jwtauthtest.JWKS(t, k)), testIssuer, testAudience, strings.TrimPrefix(route.URL, "http://")), "caddyfile")
	tok := k.Mint(t, jwtauthtest.Claims("u-1"), nil)
	for target, want := range map[string]int{"/V2/me": 401, "//v2/./x/../ME;a=b/": 401, "/v2/%4De": 401, "/v2%2Fme": 400, "/v2/me%00": 400, "/v2/mee": 299, DefaultPath: 299} {
		if r := rawRoundTrip(t, rawGet(target)); r.status != want {
			t.Errorf("%q: %d, want %d", target, r.status, want)
		}
	}
	if r := rawRoundTrip(t, rawGet("/V2//ME/", "Authorization: Bearer "+tok)); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if seen := route.Requests(); seen[len(seen)-1].RequestURI != "/v2/Me" {
		t.Errorf("the backend saw %q", seen[len(seen)-1].RequestURI)
	}
}
