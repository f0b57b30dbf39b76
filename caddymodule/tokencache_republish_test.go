package caddymodule

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// publishedJWK is k's public JWK as a JSON object with members set, so a
// test can republish the same key material under another kid or alg.
func publishedJWK(t *testing.T, k jwtauthtest.Key, set map[string]any) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(jwtauthtest.MustJSON(t, k.Pub), &m); err != nil {
		t.Fatal(err)
	}
	for name, v := range set {
		m[name] = v
	}
	return m
}

// sameProblem: two bodies are the same answer, but for traceId, which
// names the request.
func sameProblem(t *testing.T, a, b []byte) bool {
	t.Helper()
	var ma, mb map[string]any
	if json.Unmarshal(a, &ma) != nil || json.Unmarshal(b, &mb) != nil {
		return bytes.Equal(a, b)
	}
	delete(ma, "traceId")
	delete(mb, "traceId")
	return reflect.DeepEqual(ma, mb)
}

// TestTokenCacheHitRefusedAfterRepublishThroughCaddy: tokens accepted (and
// so cached) through a real Caddy, then the provider republishes its key
// set: one key under another kid, another with another alg, a third
// unchanged. Once the module has fetched the new set, each cached token of
// a changed key gets exactly the answer (status, challenge, body but its traceId) a fresh
// token of the same shape gets, and the unchanged key's token is still
// served.
func TestTokenCacheHitRefusedAfterRepublishThroughCaddy(t *testing.T) {
	ec := jwtauthtest.NewKey(t, jwa.ES256(), "ec-1")
	rs := jwtauthtest.NewKey(t, jwa.RS256(), "rs-1")
	steady := jwtauthtest.NewKey(t, jwa.ES256(), "steady")
	idp := jwtauthtest.NewServer(t)
	publish := func(keys ...any) { idp.Set(http.StatusOK, jwtauthtest.MustJSON(t, map[string]any{"keys": keys})) }
	publish(publishedJWK(t, ec, nil), publishedJWK(t, rs, nil), publishedJWK(t, steady, nil))
	tc := startCaddy(t, itConfig{jwksURL: idp.URL, storage: "storage memory", extra: "min_refresh 50ms\nmax_refresh 100ms"})
	url := itBase + profilePath
	waitFor(t, func() bool { return idp.Fetches.Load() > 0 })

	mint := func(k jwtauthtest.Key, sub string) string { return k.Mint(t, jwtauthtest.Claims(sub), nil) }
	cached := map[string]string{"ec": mint(ec, "cached-ec"), "rs": mint(rs, "cached-rs"), "steady": mint(steady, "cached-steady")}
	for name, tok := range cached {
		for range 2 { // the second answer is the cache's
			if r := do(t, tc.Client, "GET", url, bearer(tok), ""); r.status != 200 {
				t.Fatalf("%s token before republishing: %d %s", name, r.status, r.body)
			}
		}
	}

	publish(publishedJWK(t, ec, map[string]any{"kid": "ec-renamed"}), publishedJWK(t, rs, map[string]any{"alg": "PS256"}), publishedJWK(t, steady, nil))
	eventually(t, 10*time.Second, "the module fetched the republished set", func() bool {
		r := do(t, tc.Client, "GET", itAdmin+"/workspace-profile/keys", nil, "")
		return bytes.Contains(r.body, []byte(`"kid":"ec-renamed"`)) && bytes.Contains(r.body, []byte(`"alg":"PS256"`))
	})

	for _, row := range []struct {
		name  string
		fresh string
	}{
		{"ec", mint(ec, "fresh-ec")}, // names ec-1, which no key has now
		{"rs", mint(rs, "fresh-rs")}, // RS256 on a key now published for PS256
	} {
		got := do(t, tc.Client, "GET", url, bearer(cached[row.name]), "")
		want := do(t, tc.Client, "GET", url, bearer(row.fresh), "")
		if want.status != 401 || want.problemCode(t) != "InvalidToken" {
			t.Fatalf("%s: a fresh token of the cached one's shape: %d %s, want 401 InvalidToken", row.name, want.status, want.body)
		}
		if got.status != want.status || !sameProblem(t, got.body, want.body) || got.header.Get("WWW-Authenticate") != want.header.Get("WWW-Authenticate") {
			t.Errorf("%s: cached token: %d %q %s; a fresh token of that shape: %d %q %s", row.name,
				got.status, got.header.Get("WWW-Authenticate"), got.body, want.status, want.header.Get("WWW-Authenticate"), want.body)
		}
	}
	if r := do(t, tc.Client, "GET", url, bearer(cached["steady"]), ""); r.status != 200 {
		t.Fatalf("the unchanged key's cached token: %d %s", r.status, r.body)
	}
}
