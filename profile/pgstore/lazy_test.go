package pgstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/workspace-edge/caddy-workspace-profile/internal/pgtest"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
	"github.com/workspace-edge/caddy-workspace-profile/profile/pgstore"
)

func schemaExists(t *testing.T, dsn, schema string) bool {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// TestPgLazyClosedBeforeDelayNeverConnects: a store closed before its
// first attempt (a validated config) creates nothing in the database.
func TestPgLazyClosedBeforeDelayNeverConnects(t *testing.T) {
	d := dsn(t)
	schema := freshSchema(t)
	l, err := pgstore.OpenLazy(d, pgstore.Options{Schema: schema}, pgstore.LazyOptions{Delay: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	_ = l.Close()
	time.Sleep(400 * time.Millisecond)
	if schemaExists(t, d, schema) {
		t.Fatal("a store closed before its first attempt migrated the database")
	}
	if _, err := l.Get(context.Background(), "u1"); !errors.Is(err, profile.ErrUnavailable) {
		t.Fatalf("Get on a closed lazy store: %v", err)
	}
}

// TestPgLazyOpensAfterDelay: with no call at all, the store opens (and
// migrates) once the delay has passed.
func TestPgLazyOpensAfterDelay(t *testing.T) {
	d := dsn(t)
	schema := freshSchema(t)
	l, err := pgstore.OpenLazy(d, pgstore.Options{Schema: schema}, pgstore.LazyOptions{Delay: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	select {
	case <-l.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("not open 10s after the delay")
	}
	if !schemaExists(t, d, schema) {
		t.Fatal("open but not migrated")
	}
}

// TestPgLazyBadDSN: a DSN that does not parse is refused at once, and not
// repeated.
func TestPgLazyBadDSN(t *testing.T) {
	if _, err := pgstore.OpenLazy("postgres://u:s3cret@host:notaport/db", pgstore.Options{}, pgstore.LazyOptions{}); !errors.Is(err, pgstore.ErrBadDSN) {
		t.Fatalf("bad DSN: %v", err)
	}
}

// TestPgLazyStartsWhileDown: with the server down, calls fail at once
// with ErrUnavailable, saying why without the DSN; the background retries
// (no calls) open the store after the server starts, within the backoff.
func TestPgLazyStartsWhileDown(t *testing.T) {
	srv := pgtest.NewServer(t)
	srv.Stop(t)
	fails := make(chan time.Duration, 100)
	l, err := pgstore.OpenLazy(srv.DSN+"&connect_timeout=1", pgstore.Options{Schema: "wp_lazy", Timeout: time.Second},
		pgstore.LazyOptions{Delay: 50 * time.Millisecond, MinBackoff: 200 * time.Millisecond, MaxBackoff: 800 * time.Millisecond,
			OnFail: func(_ error, _ int, retryIn time.Duration) { fails <- retryIn }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	start := time.Now()
	_, err = l.Get(context.Background(), "u1")
	if !errors.Is(err, profile.ErrUnavailable) || time.Since(start) > 1500*time.Millisecond {
		t.Fatalf("Get with the server down: %v after %v", err, time.Since(start))
	}
	if s := err.Error(); !strings.Contains(s, "not open yet") || strings.Contains(s, "127.0.0.1") || strings.Contains(s, "postgres@") {
		t.Fatalf("error text %q", s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Update(ctx, "u1", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("a caller that hung up: %v", err)
	}
	time.Sleep(2 * time.Second)
	var backoffs []time.Duration
	for len(fails) > 0 {
		backoffs = append(backoffs, <-fails)
	}
	if len(backoffs) < 3 || backoffs[0] != 200*time.Millisecond || backoffs[len(backoffs)-1] != 800*time.Millisecond {
		t.Fatalf("backoffs %v: want 200ms doubling to 800ms", backoffs)
	}
	srv.Start(t)
	up := time.Now()
	select {
	case <-l.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("not open 5s after the server started")
	}
	t.Logf("opened %v after the server started, no call made (backoff at most 800ms)", time.Since(up).Round(time.Millisecond))
	if _, err := l.Update(context.Background(), "u1", func(profile.Profile, bool) (profile.Profile, bool, error) {
		return profile.Profile{FirstName: "x"}, true, nil
	}); err != nil {
		t.Fatal(err)
	}
}
