package caddymodule

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// startKeyedSite starts the test Caddy with a route that has a key set
// and body (its storage or upstream, api_keys and whatever else).
func startKeyedSite(t *testing.T, body string) (*caddytest.Tester, jwtauthtest.Key) {
	t.Helper()
	k := jwtauthtest.NewKey(t, jwa.ES256(), "k")
	tc := startCaddyfile(t, fmt.Sprintf(itGlobal+itSite+` {
	workspace_profile {
		jwks_file %s
		issuer %s
		audience %s
		%s
	}
}
`, writeFile(t, "k.json", jwtauthtest.JWKS(t, k)), testIssuer, testAudience, body))
	return tc, k
}

// wantServiceAccountForbidden checks the 403 of a service account's key,
// byte for byte but the request's own trace id.
func wantServiceAccountForbidden(t *testing.T, r itResponse) {
	t.Helper()
	want := `{"type":"https://tools.ietf.org/html/rfc9110#section-15.5.4","title":"Forbidden","status":403,` +
		`"detail":"` + profile.ServiceAccountDetail + `","instance":"` + profilePath + `","code":"ServiceAccountForbidden","traceId":""}`
	if got := traceIDField.ReplaceAllString(string(r.body), `"traceId":""`); r.status != 403 || got != want {
		t.Fatalf("%d %s\nwant 403 %s", r.status, got, want)
	}
	if r.header.Get("WWW-Authenticate") != "" || r.header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("headers %v", r.header)
	}
}

// keyPlaces are the three places a key is presented in.
var keyPlaces = []struct {
	name string
	req  func(key string) (query string, hdr map[string]string)
}{
	{"header", func(key string) (string, map[string]string) { return "", map[string]string{"X-Api-Key": key} }},
	{"Bearer", func(key string) (string, map[string]string) { return "", bearer(key) }},
	{"access_token", func(key string) (string, map[string]string) { return "?access_token=" + key, nil }},
}

// TestAPIKeyUserActsAsOwner: a user's key, in each place a key may come,
// reads and writes its owner's profile (create_missing makes it as for a
// token without profile claims), and the owner's token sees the same
// profile.
func TestAPIKeyUserActsAsOwner(t *testing.T) {
	for _, b := range keyStoreBackends {
		t.Run(b.name, func(t *testing.T) {
			tc, k := startKeyedSite(t, "storage "+b.args(t)+"\n\t\tcreate_missing\n\t\tapi_keys")
			key, _ := issueKey(t, liveKeyStore(t), "key-owner", apikey.KindUser, nil)
			url := itBase + profilePath
			for i, place := range keyPlaces {
				t.Run(place.name, func(t *testing.T) {
					q, hdr := place.req(key)
					r := do(t, tc.Client, "GET", url+q, hdr, "")
					if r.status != 200 || r.envelope(t).Data.UserID != "key-owner" {
						t.Fatalf("GET %d %s", r.status, r.body)
					}
					if hdr == nil {
						hdr = map[string]string{}
					}
					hdr["Content-Type"] = "application/json"
					name := fmt.Sprintf("Key%d", i)
					r = do(t, tc.Client, "PUT", url+q, hdr, `{"UserName":"keyowner","FirstName":"`+name+`"}`)
					if r.status != 200 || r.envelope(t).Data.UserID != "key-owner" {
						t.Fatalf("PUT %d %s", r.status, r.body)
					}
					r = do(t, tc.Client, "GET", url, bearer(k.Mint(t, jwtauthtest.Claims("key-owner"), nil)), "")
					if d := r.envelope(t).Data; r.status != 200 || d.FirstName == nil || *d.FirstName != name {
						t.Fatalf("the owner's token sees %d %s", r.status, r.body)
					}
				})
			}
		})
	}
}

// TestAPIKeyVary: on a route with api_keys every answer varies on the key
// header as on Authorization (a cache that ignores no-store must not hand
// one key's profile to another), under its configured name, and a
// backend's own Vary is kept.
func TestAPIKeyVary(t *testing.T) {
	backend := newKeyBackendServer(t)
	for _, c := range []struct{ name, body, header string }{
		{"storage", "storage memory\n\t\tcreate_missing\n\t\tapi_keys", "X-Api-Key"},
		{"custom header", "storage memory\n\t\tcreate_missing\n\t\tapi_keys {\n\t\t\theader X-Partner-Key\n\t\t}", "X-Partner-Key"},
		{"upstream", "upstream " + backend.addr + "\n\t\tapi_keys {\n\t\t\tstore memory\n\t\t}", "X-Api-Key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tc, _ := startKeyedSite(t, c.body)
			key, _ := issueKey(t, liveKeyStore(t), "vary-owner", apikey.KindUser, nil)
			for what, hdr := range map[string]map[string]string{
				"a good key": {c.header: key}, "a bad key": {c.header: key + "x"}, "no credential": nil,
			} {
				r := do(t, tc.Client, "GET", itBase+profilePath, hdr, "")
				vary := strings.Join(r.header.Values("Vary"), ",")
				if !strings.Contains(vary, c.header) || !strings.Contains(vary, "Authorization") {
					t.Errorf("%s: %d, Vary %q, want %s and Authorization", what, r.status, vary, c.header)
				}
			}
		})
	}
}

// TestAPIKeyServiceAccountForbidden (G07): a valid service account's key
// gets the 403 with the workspace API's exact detail, and the profile
// store is never asked.
func TestAPIKeyServiceAccountForbidden(t *testing.T) {
	for _, b := range keyStoreBackends {
		t.Run("G07_"+b.name, func(t *testing.T) {
			tc, _ := startKeyedSite(t, "storage test_fault ok\n\t\tcreate_missing\n\t\tapi_keys {\n\t\t\tstore "+b.args(t)+"\n\t\t}")
			key, _ := issueKey(t, liveKeyStore(t), "robot", apikey.KindService, nil)
			before := faultCalls.Load()
			for _, place := range keyPlaces {
				for _, method := range []string{"GET", "PUT"} {
					q, hdr := place.req(key)
					body := ""
					if method == "PUT" {
						body = `{"UserName":"robot"}`
					}
					wantServiceAccountForbidden(t, do(t, tc.Client, method, itBase+profilePath+q, hdr, body))
				}
			}
			if n := faultCalls.Load() - before; n != 0 {
				t.Fatalf("the profile store was asked %d times", n)
			}
		})
	}
}

// TestAPIKeyUpstream (G07, G09): in upstream mode a service account's key
// is refused before the backend sees anything; a user's key reaches the
// backend as its owner's identity headers, and the key is nowhere in what
// the backend receives: not in a header (the key header and
// Authorization are removed), the URI or the body.
func TestAPIKeyUpstream(t *testing.T) {
	for _, b := range keyStoreBackends {
		t.Run(b.name, func(t *testing.T) {
			backend := newKeyBackendServer(t)
			tc, _ := startKeyedSite(t, "upstream "+backend.addr+"\n\t\tapi_keys {\n\t\t\tstore "+b.args(t)+"\n\t\t}")
			ks := liveKeyStore(t)
			service, _ := issueKey(t, ks, "robot", apikey.KindService, nil)
			user, _ := issueKey(t, ks, "key-owner", apikey.KindUser, nil)
			url := itBase + profilePath
			t.Run("G07_service_key_never_reaches_the_backend", func(t *testing.T) {
				for _, place := range keyPlaces {
					q, hdr := place.req(service)
					wantServiceAccountForbidden(t, do(t, tc.Client, "GET", url+q, hdr, ""))
				}
				if n := backend.n.Load(); n != 0 {
					t.Fatalf("the backend received %d requests", n)
				}
			})
			t.Run("G09_user_key_not_forwarded", func(t *testing.T) {
				for _, place := range keyPlaces {
					q, hdr := place.req(user)
					hdr2 := map[string]string{"Content-Type": "application/json"}
					for k, v := range hdr {
						hdr2[k] = v
					}
					if r := do(t, tc.Client, "GET", url+q, hdr, ""); r.status != 200 || r.envelope(t).Data.UserID != "key-owner" {
						t.Fatalf("GET %s: %d %s", place.name, r.status, r.body)
					}
					if r := do(t, tc.Client, "PUT", url+q, hdr2, `{"UserName":"keyowner"}`); r.status != 200 {
						t.Fatalf("PUT %s: %d %s", place.name, r.status, r.body)
					}
				}
				seen := backend.requests()
				if len(seen) != 2*len(keyPlaces) {
					t.Fatalf("the backend received %d requests", len(seen))
				}
				for _, s := range seen {
					if s.header.Get("X-Workspace-User-Id") != "key-owner" {
						t.Fatalf("identity headers %v", s.header)
					}
					if _, ok := s.header["X-Api-Key"]; ok || s.header.Get("Authorization") != "" {
						t.Fatalf("the backend got a credential: %v", s.header)
					}
					all := s.method + " " + s.uri + "\n" + string(s.body)
					for name, vals := range s.header {
						all += "\n" + name + ": " + strings.Join(vals, ", ")
					}
					if strings.Contains(all, user) || strings.Contains(all, user[len(ks.Prefix):]) {
						t.Fatalf("the key reached the backend:\n%s", all)
					}
				}
			})
			// a key where the route reads no credential (another query
			// parameter, a cookie) is not the caller's credential, but a
			// legacy backend could take it for its own: it never arrives
			t.Run("G09_keys_elsewhere_not_forwarded", func(t *testing.T) {
				before := len(backend.requests())
				q := "?api_key=" + service + "&keep=1&apikey=" + strings.ToUpper(ks.Prefix) + "x&enc=%77sk_" + service[len(ks.Prefix):]
				hdr := map[string]string{"X-Api-Key": user, "Cookie": "a=1; k=" + service + `; q="` + service + `"`}
				if r := do(t, tc.Client, "GET", url+q, hdr, ""); r.status != 200 || r.envelope(t).Data.UserID != "key-owner" {
					t.Fatalf("GET: %d %s", r.status, r.body)
				}
				seen := backend.requests()[before:]
				if len(seen) != 1 {
					t.Fatalf("the backend received %d requests", len(seen))
				}
				if s := seen[0]; !strings.HasSuffix(s.uri, "?keep=1") || s.header.Get("Cookie") != "a=1" {
					t.Fatalf("the backend got %s with Cookie %q, want only keep=1 and a=1", s.uri, s.header.Values("Cookie"))
				}
			})
		})
	}
}

// TestAPIKeyImportedByHash: a key the legacy API made, in a shape of its
// own, is imported through the admin endpoint by its SHA-256 alone, and its
// holder then reads the owner's profile with it unchanged in the key
// header; the import carries no key, and a service account's legacy key
// gets the 403 like any.
func TestAPIKeyImportedByHash(t *testing.T) {
	for _, b := range keyStoreBackends {
		t.Run(b.name, func(t *testing.T) {
			tc, _ := startKeyedSite(t, "storage "+b.args(t)+"\n\t\tcreate_missing\n\t\tapi_keys")
			legacy, robot := "LEGACY-7f3a9c2e-4b1d-4e8a-9f60-2d5c8b1e7a44", "LEGACY-robot-0b9e"
			lines := fmt.Sprintf(`{"id":"legacy-1","hash":"%s","subject":"legacy-owner","kind":"user","name":"from the old API","created":"2024-01-02T03:04:05Z","expires":null,"revoked":null,"last_used":null}
{"id":"legacy-2","hash":"%s","subject":"robot","kind":"service","name":"","created":"2024-01-02T03:04:05Z","expires":null,"revoked":null,"last_used":null}
`, apikey.HashKey(legacy), apikey.HashKey(robot))
			req, _ := http.NewRequest("POST", itAdmin+"/workspace-profile/api-keys/import?verify=off", strings.NewReader(lines))
			resp, err := adminClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(answer) != `{"imported":2,"success":true}`+"\n" {
				t.Fatalf("import: %d %s", resp.StatusCode, answer)
			}
			r := do(t, tc.Client, "GET", itBase+profilePath, map[string]string{"X-Api-Key": legacy}, "")
			if r.status != 200 || r.envelope(t).Data.UserID != "legacy-owner" {
				t.Fatalf("the legacy key: %d %s", r.status, r.body)
			}
			wantServiceAccountForbidden(t, do(t, tc.Client, "GET", itBase+profilePath, map[string]string{"X-Api-Key": robot}, ""))
			r = do(t, tc.Client, "GET", itBase+profilePath, map[string]string{"X-Api-Key": legacy + "x"}, "")
			if r.status != 401 {
				t.Fatalf("a key one character longer: %d %s", r.status, r.body)
			}
		})
	}
}
