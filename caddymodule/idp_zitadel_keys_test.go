package caddymodule

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/workspace-edge/caddy-workspace-profile/internal/idptest"
)

// The key set of a real provider over time: rotation, the provider down
// while Caddy runs, and down when Caddy starts.

// rotationTarget is the rotation promise: a token signed by a newly published
// key is accepted within 5 s of its publication, whatever was fetched
// before.
const rotationTarget = 5 * time.Second

// untilAccepted sends tok until the route answers 200, at most for limit
// after published. Every refusal before must be the unknown key's 401.
// It returns the time from publication to the sending of the request that
// was accepted (or the time given up after), whether one was, and the
// number of refusals.
func untilAccepted(t *testing.T, tc *caddytest.Tester, tok string, published time.Time, limit time.Duration) (time.Duration, bool, int) {
	t.Helper()
	const desc = "No configured key matches the token."
	refusals := 0
	for {
		sent := time.Now()
		r := do(t, tc.Client, http.MethodGet, itBase+zitadelRoute, bearer(tok), "")
		if r.status == http.StatusOK {
			return sent.Sub(published), true, refusals
		}
		wantProblem(t, "a token of the new key, before it is accepted", r, http.StatusUnauthorized, "InvalidToken", desc,
			`Bearer realm="workspace", error="invalid_token", error_description="`+desc+`"`)
		refusals++
		if time.Since(published) > limit {
			return time.Since(published), false, refusals
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestZitadelRotation: the provider starts signing with a new key, which
// it publishes in its JWKS at the same moment, right after the module
// fetched the set: at start for the first rotation, for the first new key
// when the second comes (the provider made its keys ahead, so nothing
// stands between that fetch and the publication). Each new key's tokens
// are accepted within rotationTarget of the publication, with the default
// refresh options; the old key's tokens keep passing. The time measured
// ends when the first accepted request was sent; requests go every 5 ms.
func TestZitadelRotation(t *testing.T) {
	p := idptest.Start(t, jose.RS256, zApp)
	tc := startZitadelCaddy(t, []string{"discovery " + p.Issuer}, "")
	old := p.MustToken(t, zApp)
	if r := getProfile(t, tc, old); r.status != http.StatusOK {
		t.Fatalf("the first key's token: %d %s", r.status, r.body)
	}

	for i := 1; i <= 2; i++ {
		kid, published, err := p.Rotate()
		if err != nil {
			t.Fatal(err)
		}
		tok := p.MustToken(t, zApp)
		if got := jwtPart(t, tok, 0)["kid"]; got != kid {
			t.Fatalf("rotation %d: the provider signs with %v, not its new key %s", i, got, kid)
		}
		// past the target, keep going a while to measure how long it does take
		took, ok, refusals := untilAccepted(t, tc, tok, published, 35*time.Second)
		t.Logf("rotation %d: a token of the new key accepted %v after its publication, %d refusals before (accepted: %v)",
			i, took.Round(time.Millisecond), refusals, ok)
		if !ok || took > rotationTarget {
			t.Fatalf("rotation %d: a token of the newly published key was accepted after %v (accepted: %v), want within %v",
				i, took.Round(time.Millisecond), ok, rotationTarget)
		}
	}
	if r := do(t, tc.Client, http.MethodGet, itBase+zitadelRoute, bearer(old), ""); r.status != http.StatusOK {
		t.Fatalf("the old key's token after the rotations: %d %s", r.status, r.body)
	}
}

// keySetStatus is the admin view's entry for url.
func keySetStatus(t *testing.T, tc *caddytest.Tester, url string) (lastError string, keys int) {
	t.Helper()
	r := do(t, tc.Client, http.MethodGet, itAdmin+"/workspace-profile/keys", nil, "")
	var view struct {
		Sources []struct {
			URL       string            `json:"url"`
			Keys      []json.RawMessage `json:"keys"`
			LastError string            `json:"last_error"`
		} `json:"sources"`
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &view) != nil {
		t.Fatalf("admin view of the key sets: %d %s", r.status, r.body)
	}
	for _, s := range view.Sources {
		if s.URL == url {
			return s.LastError, len(s.Keys)
		}
	}
	t.Fatalf("admin view has no source %s: %s", url, r.body)
	return "", 0
}

// TestZitadelProviderDown: the provider stops while Caddy runs (jwks_url
// and issuer, short refresh times so that fetches fail meanwhile). Tokens
// of the keys already fetched keep passing, a token never seen before
// included (it is verified with the cached key, not found in the token
// cache); once the provider is back with the same keys, the module fetches
// from it again and its new tokens pass.
func TestZitadelProviderDown(t *testing.T) {
	p := idptest.Start(t, jose.EdDSA, zApp)
	tc := startZitadelCaddy(t, []string{"jwks_url " + p.JWKSURI, "issuer " + p.Issuer},
		"min_refresh 100ms\n\t\tmax_refresh 300ms")
	seen := p.MustToken(t, zApp)
	if r := getProfile(t, tc, seen); r.status != http.StatusOK {
		t.Fatalf("before the outage: %d %s", r.status, r.body)
	}
	unseen := p.MustToken(t, zApp)

	p.Stop()
	if _, err := p.Token(zApp.ID, zApp.Secret); err == nil {
		t.Fatal("the stopped provider still issues tokens")
	}
	// the module has tried to refetch and failed, and still has the key
	eventually(t, 10*time.Second, "a failed fetch in the admin view", func() bool {
		e, _ := keySetStatus(t, tc, p.JWKSURI)
		return e != ""
	})
	if _, keys := keySetStatus(t, tc, p.JWKSURI); keys != 1 {
		t.Fatalf("keys in force while the provider is down: %d, want 1", keys)
	}
	for name, tok := range map[string]string{"a token seen before": seen, "a token not seen before": unseen} {
		if r := do(t, tc.Client, http.MethodGet, itBase+zitadelRoute, bearer(tok), ""); r.status != http.StatusOK {
			t.Fatalf("provider down, %s: %d %s", name, r.status, r.body)
		}
	}

	fetched := p.KeyFetches.Load()
	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "a good fetch from the restarted provider", func() bool {
		e, _ := keySetStatus(t, tc, p.JWKSURI)
		return p.KeyFetches.Load() > fetched && e == ""
	})
	after := p.MustToken(t, zApp)
	for name, tok := range map[string]string{"a token from before the outage": seen, "a token from after": after} {
		if r := do(t, tc.Client, http.MethodGet, itBase+zitadelRoute, bearer(tok), ""); r.status != http.StatusOK {
			t.Fatalf("provider back, %s: %d %s", name, r.status, r.body)
		}
	}
}

// TestZitadelProviderDownAtStart: Caddy starts while the provider (found
// by discovery) is down. The route answers exactly 503 KeysUnavailable
// with Retry-After until the provider is back, and then serves, with no
// reload.
func TestZitadelProviderDownAtStart(t *testing.T) {
	p := idptest.Start(t, jose.PS256, zApp)
	tok := p.MustToken(t, zApp)
	p.Stop()
	tc := startZitadelCaddy(t, []string{"discovery " + p.Issuer}, "")

	const desc = "The signing keys could not be loaded yet. Try again shortly."
	// twice, the second time after the first retry (1 s) has failed too
	for range 2 {
		r := do(t, tc.Client, http.MethodGet, itBase+zitadelRoute, bearer(tok), "")
		wantProblem(t, "provider down at start", r, http.StatusServiceUnavailable, "KeysUnavailable", desc, "")
		time.Sleep(1200 * time.Millisecond)
	}

	discoveries, fetches := p.Discoveries.Load(), p.KeyFetches.Load()
	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	for {
		r := do(t, tc.Client, http.MethodGet, itBase+zitadelRoute, bearer(tok), "")
		if r.status == http.StatusOK {
			break
		}
		wantProblem(t, "before the module has fetched from the restarted provider", r,
			http.StatusServiceUnavailable, "KeysUnavailable", desc, "")
		if time.Since(back) > 20*time.Second {
			t.Fatal("the route still answers 503 20 s after the provider came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("served %v after the provider came back", time.Since(back).Round(time.Millisecond))
	if p.Discoveries.Load() == discoveries || p.KeyFetches.Load() == fetches {
		t.Fatalf("the restarted provider served discovery %d times and its JWKS %d times",
			p.Discoveries.Load()-discoveries, p.KeyFetches.Load()-fetches)
	}
}
