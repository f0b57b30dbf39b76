package pgstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
)

// API keys: the api_keys table of the store's schema (migration 3), on
// the store's pool, with its timeouts and its errors.

// APIKeys is the store's API-key store. Its errors are those of the
// profile store, except that a failure errors.Is apikey.ErrUnavailable.
func (s *Store) APIKeys() apikey.Store { return keyStore{s} }

type keyStore struct{ s *Store }

const keyColumns = "id, hash, subject, kind, name, created, expires, revoked, last_used"

func scanKey(row pgx.Row) (apikey.Record, error) {
	var r apikey.Record
	var hash []byte
	var kind string
	var expires, revoked, lastUsed *time.Time
	if err := row.Scan(&r.ID, &hash, &r.Subject, &kind, &r.Name, &r.Created, &expires, &revoked, &lastUsed); err != nil {
		return apikey.Record{}, err
	}
	if len(hash) != len(r.Hash) {
		return apikey.Record{}, fmt.Errorf("api key %s: stored hash has %d bytes", r.ID, len(hash))
	}
	copy(r.Hash[:], hash)
	r.Kind = apikey.Kind(kind)
	r.Created = r.Created.UTC()
	r.Expires, r.Revoked, r.LastUsed = fromNull(expires), fromNull(revoked), fromNull(lastUsed)
	return r, nil
}

func fromNull(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func toNull(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// checkRecord refuses what the table's constraints would.
func checkRecord(r apikey.Record) error {
	if r.ID == "" || !r.Kind.Valid() {
		return fmt.Errorf("api key record: id %q, kind %q: not valid", r.ID, r.Kind)
	}
	return nil
}

// isUniqueViolation: the id or the hash is taken.
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

func (k keyStore) op(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, k.s.keyFail(ctx, err)
	}
	opCtx, cancel := context.WithTimeout(ctx, k.s.timeout)
	return opCtx, cancel, nil
}

// Lookup implements apikey.Store.
func (k keyStore) Lookup(ctx context.Context, h apikey.Hash) (apikey.Record, error) {
	opCtx, cancel, err := k.op(ctx)
	if err != nil {
		return apikey.Record{}, err
	}
	defer cancel()
	r, err := scanKey(k.s.pool.QueryRow(opCtx, "SELECT "+keyColumns+" FROM "+k.s.schema+".api_keys WHERE hash = $1", h[:]))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return apikey.Record{}, apikey.ErrNotFound
	case err != nil:
		return apikey.Record{}, k.s.keyFail(ctx, err)
	}
	return r, nil
}

// Create implements apikey.Store, then notifies the other nodes.
func (k keyStore) Create(ctx context.Context, r apikey.Record) error {
	if err := checkRecord(r); err != nil {
		return err
	}
	opCtx, cancel, err := k.op(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	_, err = k.s.pool.Exec(opCtx, "INSERT INTO "+k.s.schema+".api_keys ("+keyColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
		r.ID, r.Hash[:], r.Subject, string(r.Kind), r.Name, r.Created, toNull(r.Expires), toNull(r.Revoked), toNull(r.LastUsed))
	switch {
	case isUniqueViolation(err):
		return apikey.ErrExists
	case err != nil:
		return k.s.keyFail(ctx, err)
	}
	_ = k.s.notify(ctx, concernAPIKeys, []string{r.ID})
	return nil
}

// List implements apikey.Store.
func (k keyStore) List(ctx context.Context, subject string) ([]apikey.Record, error) {
	opCtx, cancel, err := k.op(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	rows, err := k.s.pool.Query(opCtx, "SELECT "+keyColumns+" FROM "+k.s.schema+".api_keys WHERE $1 = '' OR subject = $1 ORDER BY created, id", subject)
	if err != nil {
		return nil, k.s.keyFail(ctx, err)
	}
	defer rows.Close()
	out := []apikey.Record{}
	for rows.Next() {
		r, err := scanKey(rows)
		if err != nil {
			return nil, k.s.keyFail(ctx, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, k.s.keyFail(ctx, err)
	}
	return out, nil
}

// Revoke implements apikey.Store, then notifies the other nodes.
func (k keyStore) Revoke(ctx context.Context, id string, at time.Time) (apikey.Record, error) {
	opCtx, cancel, err := k.op(ctx)
	if err != nil {
		return apikey.Record{}, err
	}
	defer cancel()
	r, err := scanKey(k.s.pool.QueryRow(opCtx, "UPDATE "+k.s.schema+".api_keys SET revoked = coalesce(revoked, $2), "+
		"changed_at = now(), changed_xid = pg_current_xact_id() WHERE id = $1 RETURNING "+keyColumns, id, at))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return apikey.Record{}, apikey.ErrNotFound
	case err != nil:
		return apikey.Record{}, k.s.keyFail(ctx, err)
	}
	_ = k.s.notify(ctx, concernAPIKeys, []string{id})
	return r, nil
}

// TouchLastUsed implements apikey.Store in one statement for the whole
// batch, which only ever moves last_used forward (GREATEST, and rows
// already at or past the time are not written). It leaves changed_at and
// changed_xid alone and notifies nobody: a use changes nothing a cache
// holds. Ids are locked in id order as far as the plan allows; a deadlock
// with another batch is retried.
func (k keyStore) TouchLastUsed(ctx context.Context, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	ids := make([]string, 0, len(used))
	for id := range used {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	ats := make([]time.Time, len(ids))
	for i, id := range ids {
		ats[i] = used[id]
	}
	opCtx, cancel, err := k.op(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	for attempt := 0; attempt < maxAttempts; attempt++ {
		_, err = k.s.pool.Exec(opCtx, "UPDATE "+k.s.schema+".api_keys t SET last_used = GREATEST(t.last_used, u.at) "+
			"FROM (SELECT * FROM unnest($1::text[], $2::timestamptz[]) AS u(id, at) ORDER BY id) u "+
			"WHERE t.id = u.id AND (t.last_used IS NULL OR t.last_used < u.at)", ids, ats)
		if !retryable(err) {
			break
		}
	}
	if err != nil {
		return k.s.keyFail(ctx, err)
	}
	return nil
}

// Interface guards
var _ apikey.Store = keyStore{}
