package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"
	// the standard modules, as in cmd/caddy: log filters, reverse_proxy...
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/jackc/pgx/v5"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

const (
	testIssuer   = jwtauthtest.Issuer
	testAudience = jwtauthtest.Audience
)

func writeFile(t testing.TB, name string, data []byte) string {
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// countingStore is the real store with a count of the calls that reached
// it, to prove that refused requests never touch storage.
type countingStore struct {
	profile.Store
	calls atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, id string) (profile.Profile, error) {
	c.calls.Add(1)
	return c.Store.Get(ctx, id)
}

func (c *countingStore) Update(ctx context.Context, id string, fn profile.UpdateFunc) (profile.Profile, error) {
	c.calls.Add(1)
	return c.Store.Update(ctx, id, fn)
}

// provisionHandler provisions h in a fresh Caddy context that is cancelled
// (and so cleaned up) when the test ends.
func provisionHandler(t testing.TB, h *Handler) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("provision: %v", err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
}

// newFileHandler is a handler on the memory store with keys from a file;
// the store is wrapped to count the calls that reach it.
func newFileHandler(t testing.TB, jwks []byte, mod func(*Handler)) (*Handler, *countingStore) {
	h := &Handler{
		JWKSFiles:  []string{writeFile(t, "jwks.json", jwks)},
		Issuers:    []string{testIssuer},
		Audiences:  []string{testAudience},
		StorageRaw: json.RawMessage(`{"backend":"memory"}`),
	}
	if mod != nil {
		mod(h)
	}
	provisionHandler(t, h)
	cs := &countingStore{Store: h.service.Store}
	h.service.Store = cs
	return h, cs
}

func newTestContext() (caddy.Context, context.CancelFunc) {
	return caddy.NewContext(caddy.Context{Context: context.Background()})
}

func caddyReplacerKey() any        { return caddy.ReplacerCtxKey }
func newReplacer() *caddy.Replacer { return caddy.NewReplacer() }

func jwkExport(k jwtauthtest.Key, dst *any) error { return jwk.Export(k.Pub, dst) }

// dropSchema removes a test's PostgreSQL schema.
func dropSchema(dsn, schema string) {
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		return
	}
	defer conn.Close(context.Background())
	_, _ = conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
}

// pgSchema is a PostgreSQL schema of this test's own, dropped after, and
// the test database's DSN; without PROFILE_TEST_PG_DSN the test is skipped.
func pgSchema(t *testing.T, prefix string) (dsn, schema string) {
	pgStorage(t) // skips without PROFILE_TEST_PG_DSN
	dsn = os.Getenv("PROFILE_TEST_PG_DSN")
	schema = fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), time.Now().UnixNano()%1e12)
	t.Cleanup(func() { dropSchema(dsn, schema) })
	return dsn, schema
}

func pgExec(t *testing.T, dsn, sql string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// startLoad runs workers goroutines, each calling step with its worker
// index and its iteration number (0, 1, ...) until halt is called. halt
// waits for the workers to return; calling it again does nothing, so it
// can also be deferred.
func startLoad(workers int, step func(worker, n int)) (halt func()) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				step(w, n)
			}
		}()
	}
	var once sync.Once
	return func() { once.Do(func() { close(stop); wg.Wait() }) }
}

// lockProfileRow holds a lock on the row of profile id in schema, in a
// transaction on a connection of its own, until the test ends or the
// transaction is rolled back; it returns that connection and transaction.
func lockProfileRow(t *testing.T, dsn, schema, id string) (*pgx.Conn, pgx.Tx) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	if _, err := tx.Exec(ctx, "SELECT 1 FROM "+pgx.Identifier{schema}.Sanitize()+".profiles WHERE user_id = $1 FOR UPDATE", id); err != nil {
		t.Fatal(err)
	}
	return conn, tx
}

// startCaddyfile loads the Caddyfile cfg into the test Caddy (on this
// run's ports, see main_test.go) and ends the test if it does not load.
func startCaddyfile(t *testing.T, cfg string) *caddytest.Tester {
	t.Helper()
	tc := newTester(t)
	tc.InitServer(cfg, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	return tc
}

// startCaddy starts the test Caddy on the Caddyfile of cfg, its bolt file
// in the test's own directory unless cfg names one.
func startCaddy(t *testing.T, cfg itConfig) *caddytest.Tester {
	t.Helper()
	if cfg.dbPath == "" {
		cfg.dbPath = filepath.Join(t.TempDir(), "profiles.db")
	}
	return startCaddyfile(t, cfg.caddyfile())
}
