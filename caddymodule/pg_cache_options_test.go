package caddymodule

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestPostgresPoolKeyedByCacheOptions: cache, poll and listen_dsn are part
// of the pool's key, so that a reload changing one of them opens a pool
// that has it, while a reload keeping them keeps the pool; the key names
// the listening DSN by hash, never by its text. (The DSNs point at a
// closed port: the stores are released before their first attempt.)
func TestPostgresPoolKeyedByCacheOptions(t *testing.T) {
	const dsn, listen = "postgres://127.0.0.1:1/x", "postgres://listener:hunter2@127.0.0.1:2/x"
	zero, ten := 0, 10
	variants := map[string]PostgresStorage{
		"defaults":     {DSN: dsn},
		"cache 0":      {DSN: dsn, Cache: &zero},
		"cache 10":     {DSN: dsn, Cache: &ten},
		"poll 300ms":   {DSN: dsn, Poll: caddy.Duration(300e6)},
		"listen_dsn":   {DSN: dsn, ListenDSN: listen},
		"listen_dsn 2": {DSN: dsn, ListenDSN: listen + "?sslmode=disable"},
	}
	ctx, cancel := newTestContext()
	t.Cleanup(cancel)
	provision := func(name string, p PostgresStorage) *PostgresStorage {
		t.Helper()
		if err := p.Provision(ctx); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Cleanup(func() { _ = p.Cleanup() })
		if strings.Contains(p.key, "hunter2") || strings.Contains(p.key, "listener") {
			t.Fatalf("%s: the pool key %q holds the listening DSN", name, p.key)
		}
		return &p
	}
	pools := map[string]string{} // pool key -> variant
	for name, v := range variants {
		p := provision(name, v)
		if other, ok := pools[p.key]; ok {
			t.Errorf("%s and %s share a pool", name, other)
		}
		pools[p.key] = name
		// the same options again (a reload that keeps them): the same pool
		if again := provision(name, v); again.store != p.store {
			t.Errorf("%s: the same options opened a second pool", name)
		}
	}
}
