package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/workspace-edge/caddy-workspace-profile/internal/pgtest"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
	"github.com/workspace-edge/caddy-workspace-profile/profile/pgstore"
)

// fill inserts n profiles u0000001..un straight into the schema's table,
// so that a large store takes a second to make.
func fill(t *testing.T, schema string, n int) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "INSERT INTO "+pgx.Identifier{schema}.Sanitize()+".profiles (user_id, user_name, email, first_name, version) "+
		"SELECT 'u'||lpad(g::text, 7, '0'), 'name'||g, 'user'||g||'@example.com', 'First '||g, 1 FROM generate_series(1, $1::int) g", n); err != nil {
		t.Fatal(err)
	}
}

// TestExportOutlivesStatementTimeout: an export takes longer than the
// sessions' statement_timeout and still returns every row, in order.
func TestExportOutlivesStatementTimeout(t *testing.T) {
	schema := freshSchema(t)
	s, err := pgstore.Open(context.Background(), dsn(t), pgstore.Options{Schema: schema, Timeout: 3 * time.Second, StatementTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 200000
	fill(t, schema, n)
	start := time.Now()
	count, last := 0, ""
	err = s.Export(context.Background(), func(p profile.Profile) error {
		if p.UserID <= last {
			return fmt.Errorf("%q after %q: not in user-ID order", p.UserID, last)
		}
		last = p.UserID
		if count++; count%20000 == 0 {
			time.Sleep(20 * time.Millisecond) // a reader slower than the timeout
		}
		return nil
	})
	if err != nil || count != n {
		t.Fatalf("export: %d of %d rows, %v", count, n, err)
	}
	t.Logf("exported %d rows in %v with statement_timeout 50ms", n, time.Since(start).Round(time.Millisecond))
}

// TestExportBrokenMidwayIsAnError: when the export's session dies midway,
// Export says so; a caller never takes a cut-off export for a whole one.
func TestExportBrokenMidwayIsAnError(t *testing.T) {
	schema := freshSchema(t)
	s := open(t, schema)
	fill(t, schema, 50000)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	count := 0
	err = s.Export(ctx, func(profile.Profile) error {
		if count++; count == 1000 {
			var killed int
			if err := conn.QueryRow(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE $1",
				"%"+schema+"%ORDER BY%").Scan(&killed); err != nil || killed != 1 {
				return fmt.Errorf("terminating the export's session: %d, %v", killed, err)
			}
		}
		return nil
	})
	if err == nil || !errors.Is(err, profile.ErrUnavailable) || count >= 50000 {
		t.Fatalf("export cut off after %d rows returned %v", count, err)
	}
}

// TestConcurrentImportsInOppositeOrder: two imports of the same ids, one
// file in the reverse order of the other, both succeed, new ids and
// existing ones alike, and nothing is lost.
func TestConcurrentImportsInOppositeOrder(t *testing.T) {
	s := open(t, freshSchema(t))
	ctx := context.Background()
	const n = 2000
	for round := 1; round <= 3; round++ {
		up := make([]profile.Profile, n)
		for i := range up {
			up[i] = profile.Profile{UserID: fmt.Sprintf("imp-%05d", i), UserName: fmt.Sprintf("name-%05d", i), FirstName: "R" + strconv.Itoa(round)}
		}
		down := slices.Clone(up)
		slices.Reverse(down)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, file := range [][]profile.Profile{up, down} {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = s.Import(ctx, file) }()
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("round %d: %v / %v", round, errs[0], errs[1])
		}
		count := 0
		if err := s.Export(ctx, func(p profile.Profile) error {
			count++
			want := uint64(2 * round)
			if p.FirstName != "R"+strconv.Itoa(round) || p.Version != want || p.UserName != "name-"+p.UserID[4:] {
				return fmt.Errorf("round %d: %+v, want version %d", round, p, want)
			}
			return nil
		}); err != nil || count != n {
			t.Fatalf("round %d: %d profiles, %v", round, count, err)
		}
	}
}

// TestCancelledRequestIsNotAStoreFailure: a caller that gave up gets
// context.Canceled back, not ErrUnavailable, and the pooled connection
// survives a cancel in the middle of a statement.
func TestCancelledRequestIsNotAStoreFailure(t *testing.T) {
	s := open(t, freshSchema(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Get(ctx, "u1"); !errors.Is(err, context.Canceled) || errors.Is(err, profile.ErrUnavailable) {
		t.Fatalf("Get with a cancelled context: %v", err)
	}
	if _, err := s.Update(ctx, "u1", func(profile.Profile, bool) (profile.Profile, bool, error) {
		return profile.Profile{UserName: "x"}, true, nil
	}); !errors.Is(err, context.Canceled) || errors.Is(err, profile.ErrUnavailable) {
		t.Fatalf("Update with a cancelled context: %v", err)
	}
}

// TestStoreErrorsNameNoServer: when the database goes away, the error says
// what kind of failure it is but names no user, database, host or port.
func TestStoreErrorsNameNoServer(t *testing.T) {
	cfg, err := pgx.ParseConfig(dsn(t))
	if err != nil {
		t.Fatal(err)
	}
	px, proxied := pgtest.NewProxyFor(t, dsn(t))
	_, port, _ := net.SplitHostPort(px.Addr)
	s, err := pgstore.Open(context.Background(), proxied, pgstore.Options{Schema: freshSchema(t), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	px.Cut()
	for _, op := range []string{"get", "get again", "update"} {
		var err error
		if op == "update" {
			_, err = s.Update(context.Background(), "u1", func(profile.Profile, bool) (profile.Profile, bool, error) {
				return profile.Profile{UserName: "x"}, true, nil
			})
		} else {
			_, err = s.Get(context.Background(), "u1")
		}
		if err == nil || !errors.Is(err, profile.ErrUnavailable) {
			t.Fatalf("%s with the database gone: %v", op, err)
		}
		text := err.Error()
		for _, leak := range []string{"user=", "database=", cfg.User, cfg.Database, "127.0.0.1", "localhost", port, ":" + strconv.Itoa(int(cfg.Port))} {
			if strings.Contains(text, leak) {
				t.Errorf("%s: error %q names %q", op, text, leak)
			}
		}
		t.Logf("%s: %s", op, text)
	}
}
