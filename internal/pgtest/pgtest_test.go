package pgtest_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/workspace-edge/caddy-workspace-profile/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

func ping(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var n int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&n)
}

// TestPgSharedDSN: the shared server answers, and its DSN is in the
// environment for placeholders and child processes.
func TestPgSharedDSN(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ping(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	if os.Getenv(pgtest.EnvDSN) != dsn {
		t.Fatalf("%s is %q, want %q", pgtest.EnvDSN, os.Getenv(pgtest.EnvDSN), dsn)
	}
	if pgtest.DSN(t) != dsn {
		t.Fatal("a second call gave another server")
	}
}

// TestPgPrivateServerRestarts: a private server stops (connections
// refused), starts again on the same port, and restarts; its directory is
// gone after the test.
func TestPgPrivateServerRestarts(t *testing.T) {
	var dir string
	t.Run("server", func(t *testing.T) {
		s := pgtest.NewServer(t)
		dir = s.Dir
		if s.DSN == os.Getenv(pgtest.EnvDSN) {
			t.Fatal("the private server is the shared one")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := ping(ctx, s.DSN); err != nil {
			t.Fatal(err)
		}
		s.Stop(t)
		if err := ping(ctx, s.DSN); err == nil {
			t.Fatal("a stopped server answered")
		}
		s.Start(t)
		if err := ping(ctx, s.DSN); err != nil {
			t.Fatalf("after start: %v", err)
		}
		s.Restart(t)
		if err := ping(ctx, s.DSN); err != nil {
			t.Fatalf("after restart: %v", err)
		}
	})
	if dir != "" {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Fatalf("%s left behind: %v", dir, err)
		}
	}
}
