// Package pgstore is the PostgreSQL profile.Store, for several Caddy nodes
// sharing one profile database: each update is one transaction holding the
// profile's row lock, and a unique index on the lower-cased user name makes
// the database itself refuse a second holder of a name.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// Options tune the store; zero values take the defaults.
type Options struct {
	// Schema holds the store's tables. Default: workspace_profile.
	Schema string
	// MaxConns bounds the pool. Default: pgxpool's (the larger of 4 and
	// the number of CPUs).
	MaxConns int32
	// Timeout bounds every operation, including waiting for a connection,
	// so that a database that is down answers quickly. Default: 5s.
	Timeout time.Duration
	// StatementTimeout is set as the sessions' statement_timeout.
	// Default: 5s.
	StatementTimeout time.Duration
}

const (
	defaultSchema  = "workspace_profile"
	defaultTimeout = 5 * time.Second
	maxAttempts    = 5
)

// Store is a profile.Store in PostgreSQL.
type Store struct {
	pool    *pgxpool.Pool
	schema  string // quoted identifier
	timeout time.Duration
}

// ErrBadDSN is returned for a DSN that does not parse; the DSN itself is
// never repeated, since it may hold a password.
var ErrBadDSN = errors.New("invalid PostgreSQL DSN")

// Open connects a pool to dsn and migrates the schema.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, ErrBadDSN
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if opts.Timeout <= 0 {
		opts.Timeout = defaultTimeout
	}
	if opts.StatementTimeout <= 0 {
		opts.StatementTimeout = defaultTimeout
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > opts.Timeout {
		cfg.ConnConfig.ConnectTimeout = opts.Timeout
	}
	cfg.ConnConfig.RuntimeParams["statement_timeout"] = fmt.Sprint(opts.StatementTimeout.Milliseconds())
	cfg.ConnConfig.RuntimeParams["application_name"] = "caddy-workspace-profile"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres pool: %w", err)
	}
	schema := opts.Schema
	if schema == "" {
		schema = defaultSchema
	}
	s := &Store{pool: pool, schema: pgx.Identifier{schema}.Sanitize(), timeout: opts.Timeout}
	mctx, cancel := context.WithTimeout(ctx, 4*opts.Timeout)
	defer cancel()
	if err := s.migrate(mctx, schema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres migration: %w", err)
	}
	return s, nil
}

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

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
}

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
			return fmt.Errorf("schema %s is at version %d, newer than this build understands (%d)", schema, current, LatestVersion())
		}
		for v := current + 1; v <= LatestVersion(); v++ {
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

const columns = "user_name, email, first_name, last_name, user_type, version"

func scanProfile(row pgx.Row, userID string) (profile.Profile, error) {
	p := profile.Profile{UserID: userID}
	var ut int16
	var version int64
	err := row.Scan(&p.UserName, &p.Email, &p.FirstName, &p.LastName, &ut, &version)
	p.UserType, p.Version = profile.UserType(ut), uint64(version)
	return p, err
}

// Get implements profile.Store.
func (s *Store) Get(ctx context.Context, userID string) (profile.Profile, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	p, err := scanProfile(s.pool.QueryRow(ctx, "SELECT "+columns+" FROM "+s.schema+".profiles WHERE user_id = $1", userID), userID)
	if errors.Is(err, pgx.ErrNoRows) {
		return profile.Profile{}, profile.ErrNotFound
	}
	if err != nil {
		return profile.Profile{}, unavailable(err)
	}
	return p, nil
}

// errDomain carries fn's own error out of the transaction untouched.
type errDomain struct{ err error }

func (e errDomain) Error() string { return e.err.Error() }
func (e errDomain) Unwrap() error { return e.err }

// errRaced: another node inserted the same new profile first; try again,
// this time finding (and locking) its row.
var errRaced = errors.New("concurrent insert")

// Update implements profile.Store: one transaction with the row locked
// (SELECT ... FOR UPDATE), fn, then the write. A new profile is inserted
// with ON CONFLICT DO NOTHING, so a node that loses the race retries with
// the winner's row. Serialization failures and deadlocks are retried a few
// times; a user-name collision is ErrUserNameTaken; nothing is ever half
// written, since every error rolls the transaction back.
func (s *Store) Update(ctx context.Context, userID string, fn profile.UpdateFunc) (profile.Profile, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var out profile.Profile
	var err error
	for attempt := 0; attempt < maxAttempts; attempt++ {
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var txErr error
			out, txErr = s.updateTx(ctx, tx, userID, fn)
			return txErr
		})
		if !errors.Is(err, errRaced) && !retryable(err) {
			break
		}
	}
	var de errDomain
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return out, nil
	case errors.As(err, &de):
		return profile.Profile{}, de.err
	case errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "profiles_user_name_key":
		return profile.Profile{}, profile.ErrUserNameTaken
	default:
		return profile.Profile{}, unavailable(err)
	}
}

func (s *Store) updateTx(ctx context.Context, tx pgx.Tx, userID string, fn profile.UpdateFunc) (profile.Profile, error) {
	cur, err := scanProfile(tx.QueryRow(ctx, "SELECT "+columns+" FROM "+s.schema+".profiles WHERE user_id = $1 FOR UPDATE", userID), userID)
	exists := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return profile.Profile{}, err
	}
	if !exists {
		cur = profile.Profile{}
	}
	next, changed, err := fn(cur, exists)
	if err != nil {
		return profile.Profile{}, errDomain{err}
	}
	if !changed {
		return cur, nil
	}
	next.UserID, next.Version = userID, cur.Version+1
	if exists {
		_, err = tx.Exec(ctx, "UPDATE "+s.schema+".profiles SET user_name=$2, email=$3, first_name=$4, last_name=$5, user_type=$6, version=$7 WHERE user_id=$1",
			userID, next.UserName, next.Email, next.FirstName, next.LastName, int16(next.UserType), int64(next.Version))
		return next, err
	}
	tag, err := tx.Exec(ctx, "INSERT INTO "+s.schema+".profiles (user_id, "+columns+") VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (user_id) DO NOTHING",
		userID, next.UserName, next.Email, next.FirstName, next.LastName, int16(next.UserType), int64(next.Version))
	if err != nil {
		return profile.Profile{}, err
	}
	if tag.RowsAffected() == 0 {
		return profile.Profile{}, errRaced
	}
	return next, nil
}

// Export implements profile.Exporter, streaming rows in user-ID order.
func (s *Store) Export(ctx context.Context, fn func(profile.Profile) error) error {
	rows, err := s.pool.Query(ctx, "SELECT user_id, "+columns+" FROM "+s.schema+".profiles ORDER BY user_id")
	if err != nil {
		return unavailable(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		p := profile.Profile{}
		var ut int16
		var version int64
		if err := rows.Scan(&id, &p.UserName, &p.Email, &p.FirstName, &p.LastName, &ut, &version); err != nil {
			return unavailable(err)
		}
		p.UserID, p.UserType, p.Version = id, profile.UserType(ut), uint64(version)
		if err := fn(p); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// Import implements profile.Importer in one transaction: the user names of
// the profiles being replaced are cleared first, so renames within one
// import never collide on the unique index whatever their order, then
// every profile is upserted in one batch. A unique violation names the
// profile that caused it; any error rolls everything back.
func (s *Store) Import(ctx context.Context, profiles []profile.Profile) error {
	ids := make([]string, len(profiles))
	for i, p := range profiles {
		ids[i] = p.UserID
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE "+s.schema+".profiles SET user_name = '' WHERE user_id = ANY($1)", ids); err != nil {
			return err
		}
		batch := &pgx.Batch{}
		for _, p := range profiles {
			batch.Queue("INSERT INTO "+s.schema+".profiles (user_id, "+columns+") VALUES ($1,$2,$3,$4,$5,$6,1) "+
				"ON CONFLICT (user_id) DO UPDATE SET user_name=EXCLUDED.user_name, email=EXCLUDED.email, first_name=EXCLUDED.first_name, "+
				"last_name=EXCLUDED.last_name, user_type=EXCLUDED.user_type, version="+s.schema+".profiles.version+1",
				p.UserID, p.UserName, p.Email, p.FirstName, p.LastName, int16(p.UserType))
		}
		results := tx.SendBatch(ctx, batch)
		for i := range profiles {
			if _, err := results.Exec(); err != nil {
				results.Close()
				var pgErr *pgconn.PgError
				if errors.As(err, &pgErr) && pgErr.Code == "23505" {
					return errDomain{&profile.ImportConflict{Index: i, Err: profile.ErrUserNameTaken}}
				}
				return err
			}
		}
		return results.Close()
	})
	var de errDomain
	switch {
	case err == nil:
		return nil
	case errors.As(err, &de):
		return de.err
	default:
		return unavailable(err)
	}
}

// retryable: serialization failure, deadlock.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

func unavailable(err error) error {
	return fmt.Errorf("%w: %v", profile.ErrUnavailable, err)
}

// Interface guards
var (
	_ profile.Store    = (*Store)(nil)
	_ profile.Exporter = (*Store)(nil)
	_ profile.Importer = (*Store)(nil)
)
