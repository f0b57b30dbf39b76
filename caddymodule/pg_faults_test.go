package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
	"github.com/workspace-edge/caddy-workspace-profile/internal/pgtest"
)

// Faults of a real PostgreSQL server, through a real Caddy: a node started
// while the database is down, a server restart mid-load, statement
// timeouts, pool exhaustion, and serialization failures and deadlocks
// injected through the store's retry path.

// pgFaultClient bounds every request of these tests: a request that hangs
// is a failure, not a stuck test. Without keep-alives: every test runs its
// Caddy on the same port, and a connection kept from the last one's would
// answer EOF.
var pgFaultClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

type pgAnswer struct {
	status     int
	code       string // the problem or envelope code of an error
	retryAfter string
	took       time.Duration
	err        error
}

// pgDo is do for goroutines: it returns its error instead of failing t.
func pgDo(method, url, tok, body string) pgAnswer {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := pgFaultClient.Do(req)
	if err != nil {
		return pgAnswer{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := pgAnswer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), took: time.Since(start)}
	if resp.StatusCode >= 400 {
		var e struct {
			Code   string
			Errors []struct{ Code string }
		}
		_ = json.Unmarshal(b, &e)
		a.code = e.Code
		if a.code == "" && len(e.Errors) > 0 {
			a.code = e.Errors[0].Code
		}
	}
	return a
}

func (a pgAnswer) unavailable() bool {
	return a.err == nil && a.status == 503 && a.code == "StorageUnavailable" && a.retryAfter != ""
}

func (a pgAnswer) String() string {
	if a.err != nil {
		return fmt.Sprintf("error %v after %v", a.err, a.took)
	}
	return fmt.Sprintf("%d %s (Retry-After %q) after %v", a.status, a.code, a.retryAfter, a.took.Round(time.Millisecond))
}

// pgQuery runs one query on its own connection and scans its one row.
func pgQuery(t *testing.T, dsn, sql string, dst ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, sql).Scan(dst...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func pgFaultCaddy(t *testing.T, storage string) (url, tok string, k jwtauthtest.Key) {
	k = jwtauthtest.NewKey(t, jwa.RS256(), "k")
	startCaddy(t, itConfig{jwksFiles: []string{writeFile(t, "k.json", jwtauthtest.JWKS(t, k))}, storage: storage})
	return itBase + profilePath, k.Mint(t, jwtauthtest.Claims("fault-user"), nil), k
}

// TestIntegrationPgStartWhileDatabaseDown: a node whose database is down
// at start loads its config, answers 503 StorageUnavailable with
// Retry-After on the route while another route of the site answers, and
// serves within seconds of the database coming up, without a reload.
func TestIntegrationPgStartWhileDatabaseDown(t *testing.T) {
	srv := pgtest.NewServer(t)
	srv.Stop(t)
	schema := pgtest.Schema("wp_lazy")
	url, tok, _ := pgFaultCaddy(t, fmt.Sprintf("storage postgres %q schema %s timeout 1s", srv.DSN+"&connect_timeout=1", schema))

	for i := range 3 {
		if a := pgDo("GET", url, tok, ""); !a.unavailable() || a.took > 2*time.Second {
			t.Fatalf("route with the database down (request %d): %v", i, a)
		}
		if a := pgDo("GET", itBase+"/api/other", tok, ""); a.err != nil || a.status != 299 {
			t.Fatalf("another route of the site: %v", a)
		}
	}
	time.Sleep(1500 * time.Millisecond) // let the background retries back off
	srv.Start(t)
	up := time.Now()
	for {
		a := pgDo("PUT", url, tok, `{"FirstName":"Lazy"}`)
		if a.status == 200 {
			break
		}
		if !a.unavailable() {
			t.Fatalf("while the store opens: %v", a)
		}
		if time.Since(up) > 10*time.Second {
			t.Fatalf("not serving 10s after the database came up: %v", a)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("route served %v after the database came up", time.Since(up).Round(time.Millisecond))
	var n int
	pgQuery(t, srv.DSN, "SELECT count(*) FROM "+pgx.Identifier{schema}.Sanitize()+".profiles WHERE first_name = 'Lazy'", &n)
	if n != 1 {
		t.Fatalf("%d rows written", n)
	}
}

// TestIntegrationPgServerRestartMidLoad: pg_ctl restart of the server
// under concurrent PUTs. Every request answers 200 or 503
// StorageUnavailable within the timeout (none hangs), no row is half
// written, and service returns without restarting Caddy.
func TestIntegrationPgServerRestartMidLoad(t *testing.T) {
	srv := pgtest.NewServer(t)
	schema := pgtest.Schema("wp_restart")
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	startCaddy(t, itConfig{jwksFiles: []string{writeFile(t, "k.json", jwtauthtest.JWKS(t, k))},
		storage: fmt.Sprintf("storage postgres %q schema %s timeout 1s", srv.DSN+"&connect_timeout=1", schema)})
	url := itBase + profilePath
	tokens := make([]string, 8)
	for i := range tokens {
		tokens[i] = k.Mint(t, jwtauthtest.Claims(fmt.Sprintf("restart-%d", i)), nil)
		if a := pgDo("GET", url, tokens[i], ""); a.status != 200 {
			t.Fatalf("before the restart: %v", a)
		}
	}
	var mu sync.Mutex
	var results []pgAnswer
	halt := startLoad(len(tokens), func(w, n int) {
		a := pgDo("PUT", url, tokens[w], fmt.Sprintf(`{"FirstName":"F%d","LastName":"L%d"}`, n, n))
		mu.Lock()
		results = append(results, a)
		mu.Unlock()
	})
	time.Sleep(300 * time.Millisecond)
	restarted := time.Now()
	srv.Restart(t)
	t.Logf("pg_ctl restart took %v", time.Since(restarted).Round(time.Millisecond))
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := pgDo("PUT", url, tokens[0], `{"FirstName":"Back","LastName":"Again"}`)
		if a.status == 200 {
			t.Logf("serving again %v after the restart began", time.Since(restarted).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not back 10s after the restart: %v", a)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	halt()

	var ok, unavailable int
	var slowest time.Duration
	for _, a := range results {
		switch {
		case a.err == nil && a.status == 200:
			ok++
		case a.unavailable():
			unavailable++
			slowest = max(slowest, a.took)
			if a.took > 3*time.Second {
				t.Errorf("a 503 took %v: the timeout (1s) must bound it", a.took)
			}
		default:
			t.Errorf("during the restart: %v", a)
		}
	}
	t.Logf("%d requests: %d ok, %d StorageUnavailable (slowest 503: %v)", len(results), ok, unavailable, slowest.Round(time.Millisecond))
	if ok == 0 || unavailable == 0 {
		t.Fatalf("%d ok, %d unavailable: the restart was not observed", ok, unavailable)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, srv.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT user_id, first_name, last_name FROM "+pgx.Identifier{schema}.Sanitize()+".profiles")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, first, last string
		_ = rows.Scan(&id, &first, &last)
		if strings.TrimPrefix(first, "F") != strings.TrimPrefix(last, "L") && !(first == "Back" && last == "Again") {
			t.Errorf("half-written row %s: %q %q", id, first, last)
		}
	}
}

// TestIntegrationPgStatementTimeout: a PUT whose statement outlasts
// statement_timeout answers 503 StorageUnavailable and writes nothing.
func TestIntegrationPgStatementTimeout(t *testing.T) {
	dsn, schema := pgSchema(t, "wp_stmt")
	url, tok, _ := pgFaultCaddy(t, fmt.Sprintf("storage postgres {env.PROFILE_TEST_PG_DSN} schema %s timeout 3s statement_timeout 300ms", schema))
	if a := pgDo("PUT", url, tok, `{"FirstName":"Before"}`); a.status != 200 {
		t.Fatalf("before: %v", a)
	}
	s := pgx.Identifier{schema}.Sanitize()
	pgExec(t, dsn, "CREATE FUNCTION "+s+".slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "+
		"IF NEW.first_name = 'Slow' THEN PERFORM pg_sleep(2); END IF; RETURN NEW; END $$")
	pgExec(t, dsn, "CREATE TRIGGER slow BEFORE UPDATE ON "+s+".profiles FOR EACH ROW EXECUTE FUNCTION "+s+".slow()")

	a := pgDo("PUT", url, tok, `{"FirstName":"Slow","LastName":"Never"}`)
	if !a.unavailable() || a.took > 2*time.Second {
		t.Fatalf("a statement over statement_timeout: %v", a)
	}
	t.Logf("statement over statement_timeout 300ms: %v", a)
	var first, last string
	var version int64
	pgQuery(t, dsn, "SELECT first_name, last_name, version FROM "+s+".profiles WHERE user_id = 'fault-user'", &first, &last, &version)
	if first != "Before" || last != "" || version != 1 {
		t.Fatalf("written after a statement timeout: %q %q version %d", first, last, version)
	}
	if a := pgDo("PUT", url, tok, `{"FirstName":"After"}`); a.status != 200 {
		t.Fatalf("after: %v", a)
	}
}

// TestIntegrationPgPoolExhausted: with max_conns 1 and the only
// connection held past the route's timeout (a PUT waiting on a row lock
// whose server process is then frozen, so that it cannot even take the
// cancel request), another request that needs the database answers 503
// StorageUnavailable within the timeout instead of queueing; the held PUT gives up too, writing
// nothing, and the pool serves again once the server process is back.
func TestIntegrationPgPoolExhausted(t *testing.T) {
	srv := pgtest.NewServer(t) // its server processes are ours to freeze
	schema := pgtest.Schema("wp_pool")
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	startCaddy(t, itConfig{jwksFiles: []string{writeFile(t, "k.json", jwtauthtest.JWKS(t, k))},
		storage: fmt.Sprintf("storage postgres %q schema %s max_conns 1 timeout 1s statement_timeout 20s", srv.DSN, schema)})
	url := itBase + profilePath
	holder, other := k.Mint(t, jwtauthtest.Claims("holder"), nil), k.Mint(t, jwtauthtest.Claims("other"), nil)
	for _, tok := range []string{holder, other} {
		if a := pgDo("GET", url, tok, ""); a.status != 200 {
			t.Fatalf("before: %v", a)
		}
	}
	ctx := context.Background()
	conn, tx := lockProfileRow(t, srv.DSN, schema, "holder")
	s := pgx.Identifier{schema}.Sanitize()
	held := make(chan pgAnswer, 1)
	go func() { held <- pgDo("PUT", url, holder, `{"FirstName":"Held"}`) }()
	// the PUT has the pool's only connection and waits on the lock: freeze
	// the server process behind it
	var pid int
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		err := conn.QueryRow(ctx, "SELECT pid FROM pg_stat_activity WHERE application_name = 'caddy-workspace-profile' AND wait_event_type = 'Lock'").Scan(&pid)
		if err == nil {
			break
		}
		if time.Since(start) > 800*time.Millisecond {
			t.Fatalf("the PUT is not waiting on the lock: %v", err)
		}
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGCONT)
	// a profile not in the node's cache (other's is: reading it needs no
	// connection)
	a := pgDo("GET", url, k.Mint(t, jwtauthtest.Claims("third"), nil), "")
	if !a.unavailable() || a.took > 1500*time.Millisecond {
		t.Fatalf("a request with the pool exhausted: %v", a)
	}
	t.Logf("request with the pool exhausted: %v", a)
	h := <-held
	if !h.unavailable() || h.took > 3*time.Second {
		t.Fatalf("the PUT holding the connection: %v", h)
	}
	t.Logf("the PUT holding the connection: %v", h)
	_ = syscall.Kill(pid, syscall.SIGCONT)
	_ = tx.Rollback(ctx)
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		a := pgDo("GET", url, other, "")
		if a.status == 200 {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("after: %v", a)
		}
	}
	var first string
	pgQuery(t, srv.DSN, "SELECT first_name FROM "+s+".profiles WHERE user_id = 'holder'", &first)
	if first != "" {
		t.Fatalf("the PUT that gave up wrote %q", first)
	}
	if a := pgDo("PUT", url, holder, `{"FirstName":"Free"}`); a.status != 200 {
		t.Fatalf("after: %v", a)
	}
}

// TestIntegrationPgRetryableErrors: serialization failures (40001) and
// deadlocks (40P01), injected by a trigger the first n times, go through
// the store's retry path: 4 are retried and the PUT succeeds once; with
// more than the 5 attempts the store makes, the PUT answers 503
// StorageUnavailable and nothing is written.
func TestIntegrationPgRetryableErrors(t *testing.T) {
	dsn, schema := pgSchema(t, "wp_retry")
	url, tok, _ := pgFaultCaddy(t, fmt.Sprintf("storage postgres {env.PROFILE_TEST_PG_DSN} schema %s timeout 3s", schema))
	if a := pgDo("PUT", url, tok, `{"FirstName":"Start"}`); a.status != 200 {
		t.Fatalf("before: %v", a)
	}
	s := pgx.Identifier{schema}.Sanitize()
	// a sequence counts the attempts: nextval is not rolled back with them
	pgExec(t, dsn, "CREATE SEQUENCE "+s+".attempts")
	pgExec(t, dsn, "CREATE TABLE "+s+".fault (fail_first bigint NOT NULL, code text NOT NULL)")
	pgExec(t, dsn, "INSERT INTO "+s+".fault VALUES (0, '40001')")
	pgExec(t, dsn, "CREATE FUNCTION "+s+".inject() RETURNS trigger LANGUAGE plpgsql AS $$ DECLARE f record; BEGIN "+
		"SELECT * INTO f FROM "+s+".fault; "+
		"IF nextval('"+s+".attempts') <= f.fail_first THEN RAISE EXCEPTION 'injected fault' USING ERRCODE = f.code; END IF; "+
		"RETURN NEW; END $$")
	pgExec(t, dsn, "CREATE TRIGGER inject BEFORE UPDATE ON "+s+".profiles FOR EACH ROW EXECUTE FUNCTION "+s+".inject()")

	version := int64(1)
	for _, c := range []struct {
		code      string
		failFirst int
		ok        bool
	}{{"40001", 4, true}, {"40P01", 4, true}, {"40001", 5, false}, {"40P01", 100, false}} {
		t.Run(fmt.Sprintf("%s first %d", c.code, c.failFirst), func(t *testing.T) {
			pgExec(t, dsn, "UPDATE "+s+".fault SET fail_first = $1, code = $2", c.failFirst, c.code)
			pgExec(t, dsn, "ALTER SEQUENCE "+s+".attempts RESTART")
			name := fmt.Sprintf("N%s%d", c.code, c.failFirst)
			a := pgDo("PUT", url, tok, fmt.Sprintf(`{"FirstName":%q}`, name))
			var attempts int64
			pgQuery(t, dsn, "SELECT last_value FROM "+s+".attempts", &attempts)
			var first string
			var v int64
			pgQuery(t, dsn, "SELECT first_name, version FROM "+s+".profiles WHERE user_id = 'fault-user'", &first, &v)
			if c.ok {
				version++
				if a.status != 200 || attempts != 5 || first != name || v != version {
					t.Fatalf("%v after %d attempts; row %q version %d (want %q version %d)", a, attempts, first, v, name, version)
				}
				return
			}
			if !a.unavailable() || attempts != 5 || first == name || v != version {
				t.Fatalf("%v after %d attempts (want 503 after 5); row %q version %d (want version %d)", a, attempts, first, v, version)
			}
		})
	}
}
