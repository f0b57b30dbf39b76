package caddymodule

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// TestReloadSwitchingStorageUnderLoad: reloads that switch the storage
// backend (memory, a bolt file, another bolt file, PostgreSQL, back) while
// clients PUT and GET. Caddy cleans up the old config without waiting for
// its requests, so a store closed at once answered some of them 503
// ("database not open", "closed pool"); a store now closes after the calls
// in progress on it. Every answer that arrives must be a 200.
func TestReloadSwitchingStorageUnderLoad(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "rs-1")
	dir := t.TempDir()
	cfg := itConfig{jwksFiles: []string{writeFile(t, "k.json", jwtauthtest.JWKS(t, k))}, storage: "storage memory"}
	startCaddy(t, cfg)
	storages := []string{
		"storage bolt " + filepath.Join(dir, "a.db"),
		"storage bolt " + filepath.Join(dir, "b.db"),
		pgStorage(t),
		"storage memory",
		"storage bolt " + filepath.Join(dir, "a.db"),
		pgStorage(t),
		"storage bolt " + filepath.Join(dir, "c.db"),
		"storage memory",
		"storage bolt " + filepath.Join(dir, "b.db"),
		pgStorage(t),
	}

	var mu sync.Mutex
	statuses := map[int]int{}
	var bodies []string
	var retries int
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	tokens := make([]string, 6)
	for i := range tokens {
		tokens[i] = k.Mint(t, jwtauthtest.Claims(fmt.Sprintf("reload-%d", i)), nil)
	}
	halt := startLoad(len(tokens), func(w, n int) {
		tok := tokens[w]
		method, body := "GET", ""
		if n%2 == 1 {
			method, body = "PUT", fmt.Sprintf(`{"FirstName":"n%d"}`, n)
		}
		// connection-level errors while Caddy swaps servers are
		// retried as a load balancer would; answers are counted
		for attempt := 0; attempt < 5; attempt++ {
			req, _ := http.NewRequest(method, itBase+profilePath, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tok)
			if body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := client.Do(req)
			if err != nil {
				mu.Lock()
				retries++
				mu.Unlock()
				time.Sleep(10 * time.Millisecond)
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			mu.Lock()
			statuses[resp.StatusCode]++
			if resp.StatusCode != 200 && len(bodies) < 5 {
				bodies = append(bodies, fmt.Sprintf("%s %d %s", method, resp.StatusCode, b))
			}
			mu.Unlock()
			break
		}
	})
	defer halt()
	admin := &http.Client{Timeout: 30 * time.Second}
	for _, st := range storages {
		time.Sleep(150 * time.Millisecond) // let requests run on this backend
		c := cfg
		c.storage = st
		resp, err := admin.Post(itAdmin+"/load", "text/caddyfile", strings.NewReader(c.caddyfile()))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("reload to %q: %d %s", strings.Fields(st)[1], resp.StatusCode, b)
		}
	}
	time.Sleep(150 * time.Millisecond)
	halt()
	total := 0
	for _, n := range statuses {
		total += n
	}
	if statuses[200] != total || total < 50 {
		t.Fatalf("answers by status %v (%d connection-level retries); first failures: %q", statuses, retries, bodies)
	}
	t.Logf("%d answers across %d reloads, all 200 (%d connection-level retries)", total, len(storages), retries)
}
