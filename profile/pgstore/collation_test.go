package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
	"github.com/workspace-edge/caddy-workspace-profile/profile/pgstore"
)

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
