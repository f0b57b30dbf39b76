package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
)

// Export and import of the API keys, as for profiles (export.go,
// import.go): on a connection of their own, outside the pool.

// Export implements apikey.Store: every record by creation, from one
// read-only REPEATABLE READ snapshot, bounded by ExportTimeout rather
// than the statement timeout.
func (k keyStore) Export(ctx context.Context, fn func(apikey.Record) error) error {
	s := k.s
	return s.readSnapshot(ctx, "SELECT "+keyColumns+" FROM "+s.schema+".api_keys ORDER BY created, id", s.keyFail, func(rows pgx.Rows) error {
		r, err := scanKey(rows)
		if err != nil {
			return err
		}
		return callerErr(fn(r))
	})
}

// Import implements apikey.Store in one transaction: the records are
// copied into a temporary table, inserted with ON CONFLICT DO NOTHING,
// and then every one of them must be in the table exactly as given; one
// that is not (its id or hash held by a different record, stored or
// inserted meanwhile) rolls everything back with apikey.ErrExists. The
// new ids are notified after the commit.
func (k keyStore) Import(ctx context.Context, rs []apikey.Record) error {
	s := k.s
	seenID, seenHash := map[string]bool{}, map[apikey.Hash]bool{}
	for _, r := range rs {
		if err := checkRecord(r); err != nil {
			return err
		}
		if seenID[r.ID] || seenHash[r.Hash] {
			return apikey.ErrExists
		}
		seenID[r.ID], seenHash[r.Hash] = true, true
	}
	if err := ctx.Err(); err != nil {
		return s.keyFail(ctx, err)
	}
	if len(rs) == 0 {
		return nil
	}
	opCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	conn, release, err := s.transferConn(opCtx)
	if err != nil {
		return s.keyFail(ctx, err)
	}
	defer release()
	var added []string
	for attempt := 0; attempt < maxAttempts; attempt++ {
		added = nil
		err = s.inTx(opCtx, conn, func(tx pgx.Tx) error {
			var err error
			added, err = s.importKeysTx(opCtx, tx, rs)
			return err
		})
		if !retryable(err) {
			break
		}
	}
	var de errDomain
	switch {
	case err == nil:
		_ = s.notify(ctx, concernAPIKeys, added)
		return nil
	case errors.As(err, &de):
		return de.err
	case isUniqueViolation(err):
		return apikey.ErrExists
	default:
		return s.keyFail(ctx, fmt.Errorf("import of %d api keys: %w", len(rs), err))
	}
}

func (s *Store) importKeysTx(ctx context.Context, tx pgx.Tx, rs []apikey.Record) (added []string, err error) {
	if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", s.timeout.Milliseconds())); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `CREATE TEMPORARY TABLE wp_key_import (id text NOT NULL, hash bytea NOT NULL, subject text NOT NULL,
		kind text NOT NULL, name text NOT NULL, created timestamptz NOT NULL, expires timestamptz, revoked timestamptz,
		last_used timestamptz) ON COMMIT DROP`); err != nil {
		return nil, err
	}
	cols := []string{"id", "hash", "subject", "kind", "name", "created", "expires", "revoked", "last_used"}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"wp_key_import"}, cols, pgx.CopyFromSlice(len(rs), func(i int) ([]any, error) {
		r := rs[i]
		return []any{r.ID, r.Hash[:], r.Subject, string(r.Kind), r.Name, r.Created, toNull(r.Expires), toNull(r.Revoked), toNull(r.LastUsed)}, nil
	})); err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, "INSERT INTO "+s.schema+".api_keys ("+keyColumns+") SELECT "+keyColumns+
		" FROM wp_key_import ORDER BY id ON CONFLICT DO NOTHING RETURNING id")
	if err != nil {
		return nil, err
	}
	added, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	var differ int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM wp_key_import i LEFT JOIN "+s.schema+".api_keys k ON k.id = i.id "+
		"WHERE k.id IS NULL OR (k.hash, k.subject, k.kind, k.name, k.created) IS DISTINCT FROM (i.hash, i.subject, i.kind, i.name, i.created) "+
		"OR (k.expires, k.revoked, k.last_used) IS DISTINCT FROM (i.expires, i.revoked, i.last_used)").Scan(&differ); err != nil {
		return nil, err
	}
	if differ > 0 {
		return nil, errDomain{apikey.ErrExists}
	}
	return added, nil
}
