package pgstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/jackc/pgx/v5"
)

// The schema: its migrations, and how a store brings a database up to
// date.

// migrations are applied in order, each once, recorded in schema_migrations.
// They are never destructive: a column is added, never dropped.
var migrations = []string{
	1: `CREATE TABLE {s}.profiles (
		user_id    text PRIMARY KEY,
		user_name  text NOT NULL DEFAULT '',
		email      text NOT NULL DEFAULT '',
		first_name text NOT NULL DEFAULT '',
		last_name  text NOT NULL DEFAULT '',
		user_type  smallint NOT NULL DEFAULT 0 CHECK (user_type BETWEEN 0 AND 2),
		version    bigint NOT NULL
	);
	CREATE UNIQUE INDEX profiles_user_name_key ON {s}.profiles (lower(user_name)) WHERE user_name <> ''`,
	// Version 2: the user-name index folds ASCII case whatever the
	// collation of the column or the database (lower() under a Turkish
	// collation makes 'I' a dotless 'ı'), as profile.NormalizeUserName
	// and the other backends do. It keeps its name, so that a node still
	// on version 1 maps a violation to UserNameTaken. migrate refuses to
	// apply it to names that collide under the new fold (errCollide).
	2: `CREATE UNIQUE INDEX profiles_user_name_fold ON {s}.profiles (lower(user_name COLLATE "C")) WHERE user_name <> '';
	DROP INDEX {s}.profiles_user_name_key;
	ALTER INDEX {s}.profiles_user_name_fold RENAME TO profiles_user_name_key`,
	// Version 3: API keys (see keys.go). Online: a new table and its
	// indexes, nothing a running node of an older build reads or locks.
	3: apiKeysMigration,
	// Version 4: change tracking of profiles, for the poll of the nodes'
	// caches (see profiles_watch.go). Online: a nullable column without a
	// default is added without rewriting the table, and the trigger stamps
	// every row written from then on, by this build or an older one (whose
	// writes the poll must see too during a rolling upgrade). Rows never
	// written since keep NULL: no poll needs them. The index build holds
	// writes back while it runs; on a large table a DBA creates it first
	// with CREATE INDEX CONCURRENTLY under the same name (docs/storage.md).
	4: profileTrackingMigration,
	// Version 5: the DPoP proofs used on any node (see dpop_proofs.go), so
	// that a proof is accepted once across the nodes. Online: a new table.
	5: dpopProofsMigration,
}

// profileTrackingMigration is migration 4, also printed in
// docs/storage.md (a test holds the two the same).
const profileTrackingMigration = `ALTER TABLE {s}.profiles ADD COLUMN IF NOT EXISTS changed_xid xid8;
CREATE OR REPLACE FUNCTION {s}.profiles_track_change() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN NEW.changed_xid := pg_current_xact_id(); RETURN NEW; END$$;
DROP TRIGGER IF EXISTS profiles_track_change ON {s}.profiles;
CREATE TRIGGER profiles_track_change BEFORE INSERT OR UPDATE ON {s}.profiles
	FOR EACH ROW EXECUTE FUNCTION {s}.profiles_track_change();
CREATE INDEX IF NOT EXISTS profiles_changed_xid ON {s}.profiles (changed_xid)`

// dpopProofsMigration is migration 5, also printed in docs/storage.md.
// A proof is kept by the SHA-256 of its key's thumbprint, its htu and its
// jti (the key the per-node replay cache uses), never by the client's jti
// itself, so a row has a fixed size whatever the client sent.
const dpopProofsMigration = `CREATE TABLE IF NOT EXISTS {s}.dpop_proofs (
	jkt        text NOT NULL,
	proof_hash bytea NOT NULL CHECK (octet_length(proof_hash) = 32),
	expires    timestamptz NOT NULL,
	PRIMARY KEY (jkt, proof_hash)
);
CREATE INDEX IF NOT EXISTS dpop_proofs_expires ON {s}.dpop_proofs (expires)`

// apiKeysMigration is migration 3, also printed in docs/storage.md for a
// DBA who runs it by hand (a test holds the two the same).
//
// changed_at and changed_xid are set by each write that changes what a
// key lets in (create, revoke, import), not by TouchLastUsed: the poll of
// the other nodes reads changed_xid (see keys_watch.go for why not
// changed_at), and a use of a key must not make every node drop it from
// its cache each minute.
const apiKeysMigration = `CREATE TABLE IF NOT EXISTS {s}.api_keys (
	id          text PRIMARY KEY,
	hash        bytea NOT NULL UNIQUE CHECK (octet_length(hash) = 32),
	subject     text NOT NULL,
	kind        text NOT NULL CHECK (kind IN ('user', 'service')),
	name        text NOT NULL DEFAULT '',
	created     timestamptz NOT NULL,
	expires     timestamptz,
	revoked     timestamptz,
	last_used   timestamptz,
	changed_at  timestamptz NOT NULL DEFAULT now(),
	changed_xid xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX IF NOT EXISTS api_keys_subject ON {s}.api_keys (subject, created);
CREATE INDEX IF NOT EXISTS api_keys_changed_at ON {s}.api_keys (changed_at);
CREATE INDEX IF NOT EXISTS api_keys_changed_xid ON {s}.api_keys (changed_xid)`

// nameKey is the user-name index's expression: ASCII lower-casing, the
// same as profile.NormalizeUserName (user names are ASCII).
const nameKey = `lower(user_name COLLATE "C")`

var (
	errNewer   = errors.New("the schema is newer than this build understands")
	errCollide = errors.New("user names collide when compared ignoring ASCII case")
)

// LatestVersion is the schema version this build migrates to.
func LatestVersion() int { return len(migrations) - 1 }

// migrate brings the schema up to date. Several nodes may start at once:
// a transaction-scoped advisory lock, keyed by the schema name, lets one
// migrate while the others wait and then find nothing left to do.
func (s *Store) migrate(ctx context.Context, schema string) error {
	h := fnv.New64a()
	_, _ = h.Write([]byte("caddy-workspace-profile:" + schema))
	lockKey := int64(h.Sum64())
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey); err != nil {
			return err
		}
		// A schema already up to date is left alone, without a DDL
		// statement: a role that may not create (see docs/storage.md) can
		// then use tables its DBA migrated.
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", s.schema+".schema_migrations").Scan(&exists); err != nil {
			return err
		}
		if exists {
			var current int
			if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+s.schema+".schema_migrations").Scan(&current); err != nil {
				return err
			}
			if current > LatestVersion() {
				return fmt.Errorf("%w: schema %s is at version %d, this build at %d", errNewer, schema, current, LatestVersion())
			}
			if current == LatestVersion() {
				return nil
			}
		}
		if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+s.schema); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+s.schema+".schema_migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"); err != nil {
			return err
		}
		var current int
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+s.schema+".schema_migrations").Scan(&current); err != nil {
			return err
		}
		if current > LatestVersion() {
			return fmt.Errorf("%w: schema %s is at version %d, this build at %d", errNewer, schema, current, LatestVersion())
		}
		for v := current + 1; v <= LatestVersion(); v++ {
			if v == 2 {
				var n int
				if err := tx.QueryRow(ctx, "SELECT count(*) FROM (SELECT 1 FROM "+s.schema+".profiles WHERE user_name <> '' GROUP BY "+nameKey+" HAVING count(*) > 1) d").Scan(&n); err != nil {
					return err
				}
				if n > 0 {
					return fmt.Errorf("migration 2: %w: %d names are held by more than one profile in schema %s; nothing was changed. "+
						"Find them with SELECT lower(user_name COLLATE \"C\"), array_agg(user_id) FROM %s.profiles WHERE user_name <> '' GROUP BY 1 HAVING count(*) > 1, "+
						"rename all but one, then start again", errCollide, n, schema, s.schema)
				}
			}
			if _, err := tx.Exec(ctx, expand(migrations[v], s.schema)); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO "+s.schema+".schema_migrations (version) VALUES ($1)", v); err != nil {
				return err
			}
		}
		return nil
	})
}

func expand(sql, schema string) string {
	out := make([]byte, 0, len(sql)+len(schema)*2)
	for i := 0; i < len(sql); i++ {
		if sql[i] == '{' && i+2 < len(sql) && sql[i+1] == 's' && sql[i+2] == '}' {
			out = append(out, schema...)
			i += 2
			continue
		}
		out = append(out, sql[i])
	}
	return string(out)
}
