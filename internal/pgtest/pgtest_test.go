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

// TestPgProxyStallsAndResumes: a stalled proxy holds a query without
// closing anything (the same connection answers it on Resume); a Cut ends
// the session.
func TestPgProxyStallsAndResumes(t *testing.T) {
	px, proxied := pgtest.NewProxyFor(t, pgtest.DSN(t))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, proxied)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&n); err != nil {
		t.Fatal(err)
	}

	px.Stall()
	answered := make(chan error, 1)
	go func() {
		var n int
		answered <- conn.QueryRow(ctx, "SELECT 1").Scan(&n)
	}()
	select {
	case err := <-answered:
		t.Fatalf("a query through a stalled proxy answered: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	px.Resume()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("the held query after Resume: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the held query never answered after Resume")
	}

	px.Cut()
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&n); err == nil {
		t.Fatal("a query answered through a cut proxy")
	}
}

// TestPgProxyHoldsReplies: while the proxy holds replies, a query still
// reaches the server and runs (another session sees its effect), and its
// answer arrives only on Resume.
func TestPgProxyHoldsReplies(t *testing.T) {
	px, proxied := pgtest.NewProxyFor(t, pgtest.DSN(t))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, proxied)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	direct, err := pgx.Connect(ctx, pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close(ctx)
	var pid int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}

	px.HoldReplies()
	answered := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, "SELECT set_config('application_name', 'held_reply', false)")
		answered <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var name string
		if err := direct.QueryRow(ctx, "SELECT application_name FROM pg_stat_activity WHERE pid = $1", pid).Scan(&name); err != nil {
			t.Fatal(err)
		}
		if name == "held_reply" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the query never ran while replies were held")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-answered:
		t.Fatalf("a reply came through while replies were held: %v", err)
	default:
	}
	px.Resume()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("the held reply after Resume: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the held reply never arrived after Resume")
	}
}
