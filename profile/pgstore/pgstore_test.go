package pgstore_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/workspace-edge/caddy-workspace-profile/internal/pgtest"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
	"github.com/workspace-edge/caddy-workspace-profile/profile/pgstore"
	"github.com/workspace-edge/caddy-workspace-profile/profile/storetest"
)

// dsn is the test database: PROFILE_TEST_PG_DSN, or else a throwaway
// server this test binary starts (see internal/pgtest); the test is
// skipped, saying how to run it, when there is neither.
func dsn(t testing.TB) string { return pgtest.DSN(t) }

var schemaSeq atomic.Int64

// freshSchema is a schema no other test or run uses; it is dropped after.
func freshSchema(t *testing.T) string {
	name := fmt.Sprintf("wp_test_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9, schemaSeq.Add(1))
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), dsn(t))
		if err == nil {
			_, _ = conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE")
			conn.Close(context.Background())
		}
	})
	return name
}

func open(t *testing.T, schema string) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(context.Background(), dsn(t), pgstore.Options{Schema: schema, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestStore runs the behaviour suite every backend passes.
func TestStore(t *testing.T) {
	dsn(t)
	storetest.Run(t, func(t *testing.T) profile.Store { return open(t, freshSchema(t)) })
}

func TestMigrations(t *testing.T) {
	d := dsn(t)
	ctx := context.Background()

	t.Run("fresh, then already migrated", func(t *testing.T) {
		schema := freshSchema(t)
		a := open(t, schema)
		if _, err := a.Update(ctx, "u1", func(profile.Profile, bool) (profile.Profile, bool, error) {
			return profile.Profile{UserName: "kept"}, true, nil
		}); err != nil {
			t.Fatal(err)
		}
		_ = a.Close()
		b := open(t, schema) // nothing to do, nothing lost
		if p, err := b.Get(ctx, "u1"); err != nil || p.UserName != "kept" {
			t.Fatalf("after reopening: %+v %v", p, err)
		}
		conn, _ := pgx.Connect(ctx, d)
		defer conn.Close(ctx)
		var n, max int
		_ = conn.QueryRow(ctx, "SELECT count(*), max(version) FROM "+pgx.Identifier{schema}.Sanitize()+".schema_migrations").Scan(&n, &max)
		if n != pgstore.LatestVersion() || max != pgstore.LatestVersion() {
			t.Fatalf("%d migrations recorded up to %d", n, max)
		}
	})

	t.Run("nodes migrating at once", func(t *testing.T) {
		schema := freshSchema(t)
		var wg sync.WaitGroup
		errs := make([]error, 6)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := pgstore.Open(ctx, d, pgstore.Options{Schema: schema})
				if err == nil {
					_ = s.Close()
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("concurrent migration: %v", err)
			}
		}
	})

	t.Run("newer schema refused", func(t *testing.T) {
		schema := freshSchema(t)
		_ = open(t, schema).Close()
		conn, _ := pgx.Connect(ctx, d)
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, "INSERT INTO "+pgx.Identifier{schema}.Sanitize()+".schema_migrations (version) VALUES (99)")
		if _, err := pgstore.Open(ctx, d, pgstore.Options{Schema: schema}); err == nil || !strings.Contains(err.Error(), "newer") {
			t.Fatalf("newer schema: %v", err)
		}
	})
}

func TestBadDSNIsNotRepeated(t *testing.T) {
	_, err := pgstore.Open(context.Background(), "postgres://user:s3cret@host:notaport/db", pgstore.Options{})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error %v", err)
	}
}

// TestDatabaseDownIsQuick: a database that does not answer gives
// ErrUnavailable within the timeout, not a hung request.
func TestDatabaseDownIsQuick(t *testing.T) {
	s := open(t, freshSchema(t))
	_ = s.Close() // what a vanished database looks like to the store
	start := time.Now()
	_, err := s.Get(context.Background(), "u1")
	if err == nil || !strings.Contains(err.Error(), profile.ErrUnavailable.Error()) || time.Since(start) > 3*time.Second {
		t.Fatalf("closed pool: %v after %v", err, time.Since(start))
	}
	// nothing listens here: the connect timeout bounds the wait
	start = time.Now()
	if _, err := pgstore.Open(context.Background(), "postgres://postgres@127.0.0.1:1/test?connect_timeout=1", pgstore.Options{Timeout: time.Second}); err == nil {
		t.Fatal("opened a store on a closed port")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("took %v", took)
	}
}
