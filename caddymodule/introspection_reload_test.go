package caddymodule

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// introspectorsInPool counts the shared introspectors and their holders.
func introspectorsInPool() (entries, refs int) {
	introspectorPool.Range(func(k, _ any) bool {
		entries++
		n, _ := introspectorPool.References(k)
		refs += n
		return true
	})
	return entries, refs
}

// loadCaddyfile posts a Caddyfile to the admin endpoint, as a reload does.
func loadCaddyfile(cfg string) error {
	resp, err := http.Post(itAdmin+"/load", "text/caddyfile", bytes.NewBufferString(cfg))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("load: %d", resp.StatusCode)
	}
	return nil
}

// TestIntrospectionSharedAcrossReloads: the introspector outlives a
// config reload: requests waiting on a call when the config is reloaded
// are answered by that one call; an answer cached before the reload is
// used after it; and once no config uses introspection the pool is
// empty, the introspector closed.
func TestIntrospectionSharedAcrossReloads(t *testing.T) {
	e := newIntrospectionEndpoint(t)
	k := jwtauthtest.NewKey(t, jwa.ES256(), "k")
	keys := writeFile(t, "k.json", jwtauthtest.JWKS(t, k))
	config := func(maxBody string) string {
		return itConfig{jwksFiles: []string{keys}, storage: "storage memory",
			extra: "introspection " + e.URL + " {\n client_id edge\n client_secret s3cr3t\n timeout 20s\n}\nmax_body " + maxBody}.caddyfile()
	}
	tc := startCaddyfile(t, config("64KiB"))
	url := itBase + profilePath

	// a cached answer survives the reload
	cached := opaqueToken()
	e.active(cached, `,"sub":"intro-reload-1"`)
	if r := do(t, tc.Client, "GET", url, bearer(cached), ""); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}

	// requests waiting on a call that a reload interrupts
	hold := make(chan bool)
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(hold) }) }) // also when the test fails early
	e.mu.Lock()
	e.hold = hold
	e.mu.Unlock()
	flying := opaqueToken()
	e.active(flying, `,"sub":"intro-reload-2"`)
	before := e.calls.Load()
	statuses := make([]int, 20)
	waiting := &http.Client{} // no timeout: they wait on the held call
	var wg sync.WaitGroup
	for i := range statuses {
		wg.Go(func() { statuses[i] = do(t, waiting, "GET", url, bearer(flying), "").status })
	}
	eventually(t, 5*time.Second, "the call is made", func() bool { return e.calls.Load() == before+1 })
	time.Sleep(50 * time.Millisecond) // the other requests join the call
	// the reload provisions the new config and cleans the old one up
	// while the call is held: the old handler gives the introspector
	// back, the new one holds it
	if err := loadCaddyfile(config("128KiB")); err != nil {
		t.Fatal(err)
	}
	if n, refs := introspectorsInPool(); n != 1 || refs != 1 {
		t.Fatalf("after the reload: %d introspectors, %d holders", n, refs)
	}
	release.Do(func() { close(hold) })
	wg.Wait()
	e.mu.Lock()
	e.hold = nil
	e.mu.Unlock()
	for i, s := range statuses {
		if s != 200 {
			t.Fatalf("waiting request %d: %d", i, s)
		}
	}
	wantIntrospectionCalls(t, e, before, 1)

	before = e.calls.Load()
	if r := do(t, tc.Client, "GET", url, bearer(cached), ""); r.status != 200 {
		t.Fatalf("cached token after the reload: %d %s", r.status, r.body)
	}
	wantIntrospectionCalls(t, e, before, 0)

	// the last Cleanup closes it
	if err := loadCaddyfile(itConfig{jwksFiles: []string{keys}, storage: "storage memory"}.caddyfile()); err != nil {
		t.Fatal(err)
	}
	if n, refs := introspectorsInPool(); n != 0 || refs != 0 {
		t.Fatalf("with no introspection configured: %d introspectors, %d holders", n, refs)
	}
}
