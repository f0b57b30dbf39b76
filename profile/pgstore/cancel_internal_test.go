package pgstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/workspace-edge/caddy-workspace-profile/internal/pgtest"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// TestCancelMidStatementKeepsConnection: a caller that hangs up while its
// statement waits on a row lock gets context.Canceled, and the pool keeps
// its connection (the same server session serves the next request).
func TestCancelMidStatementKeepsConnection(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	schema := fmt.Sprintf("wp_cancel_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
	s, err := Open(ctx, dsn, Options{Schema: schema, MaxConns: 1, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_, _ = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+s.schema+" CASCADE")
		conn.Close(ctx)
	}()
	set := func(profile.Profile, bool) (profile.Profile, bool, error) {
		return profile.Profile{FirstName: "x"}, true, nil
	}
	if _, err := s.Update(ctx, "u1", set); err != nil {
		t.Fatal(err)
	}
	pid := func() (p uint32) {
		if err := s.pool.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	before := pid()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1 FROM "+s.schema+".profiles WHERE user_id = 'u1' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	hangUp, stop := context.WithCancel(ctx)
	time.AfterFunc(300*time.Millisecond, stop)
	_, err = s.Update(hangUp, "u1", set)
	_ = tx.Rollback(ctx)
	if !errors.Is(err, context.Canceled) || errors.Is(err, profile.ErrUnavailable) {
		t.Fatalf("Update cancelled by its caller: %v", err)
	}
	if after := pid(); after != before {
		t.Fatalf("the pool's session changed from %d to %d: the cancel cost a connection", before, after)
	}
	if _, err := s.Get(ctx, "u1"); err != nil {
		t.Fatalf("after the cancel: %v", err)
	}
}
