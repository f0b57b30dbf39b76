package caddymodule

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

const (
	apiKeyDetail    = "The API key is not valid."
	apiKeyChallenge = `Bearer realm="workspace", error="invalid_token", error_description="` + apiKeyDetail + `"`
	twoCredsDetail  = "The request carries more than one credential: send X-Api-Key or Authorization, once."
)

// wantBadRequest checks a 400 InvalidRequest answer exactly.
func wantBadRequest(t *testing.T, r itResponse, detail string) {
	t.Helper()
	if r.status != 400 || r.header.Get("WWW-Authenticate") != `Bearer realm="workspace", error="invalid_request"` {
		t.Fatalf("%d %q %s", r.status, r.header.Get("WWW-Authenticate"), r.body)
	}
	want := `{"type":"https://tools.ietf.org/html/rfc9110#section-15.5.1","title":"Bad Request","status":400,` +
		`"detail":"` + detail + `","instance":"` + profilePath + `","code":"InvalidRequest","traceId":""}`
	if got := traceIDField.ReplaceAllString(string(r.body), `"traceId":""`); got != want {
		t.Fatalf("problem details\n got %s\nwant %s", got, want)
	}
}

// TestAPIKeyRefusedInStorageMode: with no API-key store, an API key (in
// X-Api-Key, or a wsk_ token in Bearer or access_token) is answered 401
// InvalidToken with its exact body and challenge, through a real Caddy,
// and the store is never asked; X-Api-Key beside a token, or twice, is
// 400 InvalidRequest. A JWT still reaches the store, so the counter is
// seen to count.
func TestAPIKeyRefusedInStorageMode(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	tc := startCaddy(t, itConfig{jwksFiles: []string{writeFile(t, "k.json", jwtauthtest.JWKS(t, k))},
		storage: "storage test_fault ok", extra: "query_token on"})
	tok := k.Mint(t, jwtauthtest.Claims("u-1"), nil)
	url := itBase + profilePath
	before := faultCalls.Load()
	for name, hdr := range map[string]map[string]string{
		"X-Api-Key":          {"X-Api-Key": "wsk_live_0123456789"},
		"X-Api-Key JWT":      {"X-Api-Key": tok},
		"wsk_ in Bearer":     {"Authorization": "Bearer wsk_live_0123456789"},
		"wsk_ access_token":  nil,
		"X-Api-Key with PUT": {"X-Api-Key": "wsk_live_0123456789", "Content-Type": "application/json"},
	} {
		t.Run("G06_"+strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			target, method, body := url, "GET", ""
			switch name {
			case "wsk_ access_token":
				target += "?access_token=wsk_live_0123456789"
			case "X-Api-Key with PUT":
				method, body = "PUT", `{"firstName":"A"}`
			}
			wantRefusal(t, do(t, tc.Client, method, target, hdr, body), "InvalidToken", apiKeyDetail, apiKeyChallenge)
		})
	}
	wantBadRequest(t, do(t, tc.Client, "GET", url, map[string]string{"X-Api-Key": "wsk_1", "Authorization": "Bearer " + tok}, ""), twoCredsDetail)
	twice, _ := http.NewRequest("GET", url, nil)
	twice.Header.Add("X-Api-Key", "wsk_1")
	twice.Header.Add("X-Api-Key", "wsk_2")
	resp, err := tc.Client.Do(twice)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("X-Api-Key twice: %d", resp.StatusCode)
	}
	if n := faultCalls.Load() - before; n != 0 {
		t.Fatalf("the store was asked %d times", n)
	}
	if r := do(t, tc.Client, "GET", url, bearer(tok), ""); r.status != 404 && r.status != 200 || faultCalls.Load() == before {
		t.Fatalf("a JWT: %d %s, store calls %d", r.status, r.body, faultCalls.Load()-before)
	}
}

// TestAPIKeyNeverForwarded: in upstream mode an API key is refused at the
// edge and the backend never sees a request; a JWT's request reaches it
// with {http.auth.user.method} saying jwt.
func TestAPIKeyNeverForwarded(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	var hits atomic.Int64
	var method atomic.Value
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		method.Store(r.Header.Get("X-Method"))
		if r.Header.Get("X-Api-Key") != "" {
			t.Errorf("the backend got X-Api-Key")
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"userId":"u-1","userName":"u"}`)
	}))
	t.Cleanup(backend.Close)
	cfg := fmt.Sprintf(itGlobal+itSite+` {
	workspace_profile {
		jwks_file %s
		issuer %s
		audience %s
		upstream %s {
			header_up X-Method {http.auth.user.method}
		}
	}
}
`, writeFile(t, "jwks.json", jwtauthtest.JWKS(t, k)), testIssuer, testAudience, strings.TrimPrefix(backend.URL, "http://"))
	tc := startCaddyfile(t, cfg)
	url := itBase + profilePath
	tok := k.Mint(t, jwtauthtest.Claims("u-1"), nil)

	t.Run("G06_api_key_refused_at_the_edge_never_forwarded", func(t *testing.T) {
		wantRefusal(t, do(t, tc.Client, "GET", url, map[string]string{"X-Api-Key": "wsk_live_0123456789"}, ""), "InvalidToken", apiKeyDetail, apiKeyChallenge)
		wantRefusal(t, do(t, tc.Client, "PUT", url, map[string]string{"X-Api-Key": "wsk_live_0123456789", "Content-Type": "application/json"}, `{"firstName":"A"}`),
			"InvalidToken", apiKeyDetail, apiKeyChallenge)
		wantRefusal(t, do(t, tc.Client, "GET", url, bearer("wsk_live_0123456789"), ""), "InvalidToken", apiKeyDetail, apiKeyChallenge)
		wantRefusal(t, do(t, tc.Client, "GET", url+"?access_token=wsk_live_0123456789", nil, ""), "InvalidToken", apiKeyDetail, apiKeyChallenge)
		wantBadRequest(t, do(t, tc.Client, "GET", url, map[string]string{"X-Api-Key": "wsk_1", "Authorization": "Bearer " + tok}, ""), twoCredsDetail)
		if n := hits.Load(); n != 0 {
			t.Fatalf("the backend got %d requests", n)
		}
	})
	if r := do(t, tc.Client, "GET", url, bearer(tok), ""); r.status != 200 || hits.Load() != 1 {
		t.Fatalf("a JWT: %d %s, backend hits %d", r.status, r.body, hits.Load())
	}
	if got := method.Load(); got != "jwt" {
		t.Fatalf("{http.auth.user.method} = %q, want jwt", got)
	}
}
