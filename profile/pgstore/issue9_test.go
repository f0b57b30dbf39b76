package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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

// proxy forwards one port to PostgreSQL until cut: then the database is
// unreachable at that address.
type proxy struct {
	addr  string
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{addr: ln.Addr().String(), ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) cut() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestStoreErrorsNameNoServer: when the database goes away, the error says
// what kind of failure it is but names no user, database, host or port.
func TestStoreErrorsNameNoServer(t *testing.T) {
	cfg, err := pgx.ParseConfig(dsn(t))
	if err != nil {
		t.Fatal(err)
	}
	px := startProxy(t, net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))))
	_, port, _ := net.SplitHostPort(px.addr)
	proxied := fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable&connect_timeout=1", cfg.User, px.addr, cfg.Database)
	s, err := pgstore.Open(context.Background(), proxied, pgstore.Options{Schema: freshSchema(t), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	px.cut()
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

// icu skips a test on a server without ICU collations.
func icu(t *testing.T) {
	conn, err := pgx.Connect(context.Background(), dsn(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_collation WHERE collname = 'tr-TR-x-icu'`).Scan(&n); err != nil || n == 0 {
		t.Skipf("the server has no ICU collation tr-TR-x-icu (%v)", err)
	}
}

func exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func setName(name string) profile.UpdateFunc {
	return func(cur profile.Profile, _ bool) (profile.Profile, bool, error) {
		cur.UserName = name
		return cur, true, nil
	}
}

// TestUserNamesUniqueUnderTurkishCollation: under a Turkish ICU collation,
// lower('I') is a dotless ı; uniqueness must still fold ASCII as bolt and
// memory do, so ALICE and alice are one name.
func TestUserNamesUniqueUnderTurkishCollation(t *testing.T) {
	icu(t)
	ctx := context.Background()

	t.Run("column collation changed", func(t *testing.T) {
		schema := freshSchema(t)
		s := open(t, schema)
		exec(t, `ALTER TABLE `+pgx.Identifier{schema}.Sanitize()+`.profiles ALTER COLUMN user_name TYPE text COLLATE "tr-TR-x-icu"`)
		if _, err := s.Update(ctx, "u1", setName("ALICE")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Update(ctx, "u2", setName("alice")); !errors.Is(err, profile.ErrUserNameTaken) {
			t.Fatalf("alice beside ALICE: %v", err)
		}
		if err := s.Import(ctx, []profile.Profile{{UserID: "u3", UserName: "Alice"}}); !errors.Is(err, profile.ErrUserNameTaken) {
			t.Fatalf("imported Alice beside ALICE: %v", err)
		}
	})

	// a schema made by an older build (version 1) in a Turkish database
	v1 := func(t *testing.T, names ...string) string {
		schema := freshSchema(t)
		q := pgx.Identifier{schema}.Sanitize()
		exec(t, `CREATE SCHEMA `+q+`;
			CREATE TABLE `+q+`.schema_migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
			INSERT INTO `+q+`.schema_migrations (version) VALUES (1);
			CREATE TABLE `+q+`.profiles (user_id text PRIMARY KEY, user_name text COLLATE "tr-TR-x-icu" NOT NULL DEFAULT '',
				email text NOT NULL DEFAULT '', first_name text NOT NULL DEFAULT '', last_name text NOT NULL DEFAULT '',
				user_type smallint NOT NULL DEFAULT 0 CHECK (user_type BETWEEN 0 AND 2), version bigint NOT NULL);
			CREATE UNIQUE INDEX profiles_user_name_key ON `+q+`.profiles (lower(user_name)) WHERE user_name <> ''`)
		for i, name := range names {
			exec(t, `INSERT INTO `+q+`.profiles (user_id, user_name, version) VALUES ($1, $2, 1)`, fmt.Sprintf("old-%d", i), name)
		}
		return schema
	}
	t.Run("upgraded from version 1", func(t *testing.T) {
		s := open(t, v1(t, "ALICE", "bob"))
		if p, err := s.Get(ctx, "old-0"); err != nil || p.UserName != "ALICE" {
			t.Fatalf("after the migration: %+v %v", p, err)
		}
		if _, err := s.Update(ctx, "u2", setName("alice")); !errors.Is(err, profile.ErrUserNameTaken) {
			t.Fatalf("alice beside ALICE after the migration: %v", err)
		}
	})
	t.Run("version 1 holding names that now collide", func(t *testing.T) {
		schema := v1(t, "ALICE", "alice")
		_, err := pgstore.Open(ctx, dsn(t), pgstore.Options{Schema: schema, Timeout: 3 * time.Second})
		if err == nil || !strings.Contains(err.Error(), "collide") {
			t.Fatalf("opening a schema whose names collide: %v", err)
		}
		conn, _ := pgx.Connect(ctx, dsn(t))
		defer conn.Close(ctx)
		var n, version int
		_ = conn.QueryRow(ctx, "SELECT (SELECT count(*) FROM "+pgx.Identifier{schema}.Sanitize()+".profiles WHERE user_name <> ''), (SELECT max(version) FROM "+pgx.Identifier{schema}.Sanitize()+".schema_migrations)").Scan(&n, &version)
		if n != 2 || version != 1 {
			t.Fatalf("the refused migration changed the schema: %d names, version %d", n, version)
		}
	})
}
