package caddymodule

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// TestIntegrationPgStalledExportKeepsRoute: with max_conns 1, a client that
// starts an export and stops reading does not take the route's only
// connection: GET and PUT on the route keep answering.
func TestIntegrationPgStalledExportKeepsRoute(t *testing.T) {
	dsn, schema := pgSchema(t, "wp_stall")
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	tc := startCaddy(t, itConfig{jwksFiles: []string{writeFile(t, "k.json", jwtauthtest.JWKS(t, k))},
		storage: fmt.Sprintf("storage postgres {env.PROFILE_TEST_PG_DSN} schema %s max_conns 1 timeout 2s statement_timeout 20s", schema)})
	tok := k.Mint(t, jwtauthtest.Claims("stall-user"), nil)
	if r := do(t, tc.Client, "GET", itBase+profilePath, bearer(tok), ""); r.status != 200 {
		t.Fatalf("before: %d %s", r.status, r.body)
	}
	// some 20 MB of export, far more than the socket buffers hold
	pgExec(t, dsn, "INSERT INTO "+pgx.Identifier{schema}.Sanitize()+".profiles (user_id, user_name, email, first_name, last_name, version) "+
		"SELECT 'bulk-'||lpad(g::text, 7, '0'), 'name'||g, 'user'||g||'@example.com', 'First name '||g, 'Last name '||g, 1 FROM generate_series(1, 200000) g")

	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(itAdminPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(c, "GET /workspace-profile/profiles HTTP/1.1\r\nHost: localhost:%d\r\n\r\n", itAdminPort)
	head := make([]byte, 512)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := io.ReadAtLeast(c, head, 64); err != nil || !bytes.HasPrefix(head[:n], []byte("HTTP/1.1 200")) {
		t.Fatalf("export: %q %v", head[:n], err)
	}
	time.Sleep(500 * time.Millisecond) // the export stalls on the full buffers

	var wg sync.WaitGroup
	var mu sync.Mutex
	var worst time.Duration
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			method, body := "GET", ""
			if i%2 == 1 {
				method, body = "PUT", fmt.Sprintf(`{"FirstName":"During %d"}`, i)
			}
			start := time.Now()
			r := do(t, tc.Client, method, itBase+profilePath, jsonPut(tok, ""), body)
			took := time.Since(start)
			mu.Lock()
			worst = max(worst, took)
			mu.Unlock()
			if r.status != 200 {
				t.Errorf("%s during a stalled export: %d %s after %v", method, r.status, r.body, took)
			}
		}()
	}
	wg.Wait()
	t.Logf("6 requests during a stalled export, max_conns 1: slowest %v", worst.Round(time.Millisecond))
}

// TestIntegrationPgPutDuringLargeImport: a PUT on a profile that a
// 20,000-line import rewrites answers within the route's timeout: the
// import holds its row locks for its write phase only, not for the whole
// file. (The timeout is 3 s so that CI's parallel packages, under -race on
// 2 cores, do not turn a scheduling delay into a failure; on a quiet
// machine the slowest PUT waits well under a second.)
func TestIntegrationPgPutDuringLargeImport(t *testing.T) {
	_, schema := pgSchema(t, "wp_impput")
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	tc := startCaddy(t, itConfig{jwksFiles: []string{writeFile(t, "k.json", jwtauthtest.JWKS(t, k))},
		storage: fmt.Sprintf("storage postgres {env.PROFILE_TEST_PG_DSN} schema %s timeout 3s", schema)})
	const n = 20000
	var file bytes.Buffer
	for i := range n {
		fmt.Fprintf(&file, `{"UserId":"imp-%05d","UserName":"user-%05d","Email":"user%d@example.com","FirstName":"First %d","LastName":"Last %d","UserType":%d}`+"\n", i, i, i, i, i, i%3)
	}
	tok := k.Mint(t, jwtauthtest.Claims("imp-10000"), nil)
	admin := &http.Client{Timeout: 60 * time.Second}
	importOnce := func() time.Duration {
		start := time.Now()
		resp, err := admin.Post(itAdmin+"/workspace-profile/profiles?verify=off", "application/x-ndjson", bytes.NewReader(file.Bytes()))
		if err != nil {
			t.Error(err)
			return 0
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("import: %d %s", resp.StatusCode, body)
		}
		return time.Since(start)
	}
	t.Logf("first import of %d lines (all new): %v", n, importOnce().Round(time.Millisecond))

	for round := range 2 {
		done := make(chan time.Duration)
		go func() { done <- importOnce() }()
		var lat []time.Duration
		var took time.Duration
	loop:
		for i := 0; ; i++ {
			start := time.Now()
			r := do(t, tc.Client, "PUT", itBase+profilePath, jsonPut(tok, ""), fmt.Sprintf(`{"FirstName":"Put %d"}`, i))
			lat = append(lat, time.Since(start))
			if r.status != 200 {
				t.Errorf("round %d: PUT %d during the import: %d %s after %v", round, i, r.status, r.body, lat[len(lat)-1])
			}
			select {
			case took = <-done:
				break loop
			default:
			}
		}
		worst := time.Duration(0)
		for _, l := range lat {
			worst = max(worst, l)
		}
		t.Logf("round %d: import of %d existing profiles took %v; %d PUTs on one of them meanwhile, slowest %v (timeout 3s)",
			round, n, took.Round(time.Millisecond), len(lat), worst.Round(time.Millisecond))
		if worst >= 3*time.Second {
			t.Errorf("a PUT took %v, past the 3s timeout", worst)
		}
	}
}

// TestIntegrationPgReloadAppliesOptions: a reload that changes max_conns,
// timeout or statement_timeout for the same DSN and schema takes effect.
// A row lock held by the test makes each observable: a PUT on the locked
// profile fails after `timeout` (or `statement_timeout` when shorter), and
// with max_conns 1 the blocked PUT leaves no connection for a GET.
func TestIntegrationPgReloadAppliesOptions(t *testing.T) {
	dsn, schema := pgSchema(t, "wp_reload")
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	jwks := writeFile(t, "k.json", jwtauthtest.JWKS(t, k))
	cfg := func(opts string) itConfig {
		return itConfig{jwksFiles: []string{jwks}, storage: fmt.Sprintf("storage postgres {env.PROFILE_TEST_PG_DSN} schema %s %s", schema, opts)}
	}
	tc := startCaddy(t, cfg("max_conns 1 timeout 1s statement_timeout 10s"))
	locked, free := k.Mint(t, jwtauthtest.Claims("locked"), nil), k.Mint(t, jwtauthtest.Claims("free"), nil)
	for _, tok := range []string{locked, free} {
		if r := do(t, tc.Client, "GET", itBase+profilePath, bearer(tok), ""); r.status != 200 {
			t.Fatalf("before: %d %s", r.status, r.body)
		}
	}
	ctx := context.Background()
	lockProfileRow(t, dsn, schema, "locked")
	watcher, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close(ctx)

	// probe sends 5 PUTs on the locked profile at once: it returns how
	// many sessions wait on a lock meanwhile (on the test's, or on the
	// first PUT's) (max_conns bounds
	// them) and how long the slowest PUT took to fail (the timeout, or
	// the statement_timeout when shorter)
	probe := func() (time.Duration, int) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var slowest time.Duration
		for i := range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				r := do(t, tc.Client, "PUT", itBase+profilePath, jsonPut(locked, ""), fmt.Sprintf(`{"FirstName":"Blocked %d"}`, i))
				if r.status != 503 {
					t.Errorf("PUT on a locked row: %d %s", r.status, r.body)
				}
				mu.Lock()
				slowest = max(slowest, time.Since(start))
				mu.Unlock()
			}()
		}
		time.Sleep(300 * time.Millisecond)
		var waiting int
		// from another session: within the locking transaction,
		// pg_stat_activity would be the snapshot of its first read
		if err := watcher.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE cardinality(pg_blocking_pids(pid)) > 0 AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()", schema).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		return slowest, waiting
	}
	near := func(got, want time.Duration) bool {
		return got > want-150*time.Millisecond && got < want+700*time.Millisecond
	}

	took, waiting := probe()
	t.Logf("max_conns 1 timeout 1s statement_timeout 10s: %d sessions waited on the lock, PUTs failed after %v", waiting, took.Round(time.Millisecond))
	if !near(took, time.Second) || waiting != 1 {
		t.Fatalf("first config not in force: PUT %v, %d waiting", took, waiting)
	}

	tc.InitServer(cfg("max_conns 3 timeout 2500ms statement_timeout 10s").caddyfile(), "caddyfile")
	took, waiting = probe()
	t.Logf("after a reload to max_conns 3 timeout 2500ms: %d sessions waited on the lock, PUTs failed after %v", waiting, took.Round(time.Millisecond))
	if !near(took, 2500*time.Millisecond) || waiting != 3 {
		t.Errorf("reload ignored: PUTs failed after %v (want ~2.5s), %d sessions waiting (want 3)", took, waiting)
	}

	tc.InitServer(cfg("max_conns 3 timeout 2500ms statement_timeout 400ms").caddyfile(), "caddyfile")
	took, _ = probe()
	t.Logf("after a reload to statement_timeout 400ms: PUTs failed after %v", took.Round(time.Millisecond))
	if took > 1500*time.Millisecond {
		t.Errorf("reload ignored: PUTs failed after %v (want ~400ms, at most 2 waves of 400ms)", took)
	}
}
