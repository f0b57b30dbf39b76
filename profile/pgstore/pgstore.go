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
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
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
	// Timeout bounds every Get and Update, including waiting for a
	// connection, so that a database that is down answers quickly; an
	// export or import waits this long at most for its connection, and an
	// import this long for each row lock (lock_timeout). Default: 5s.
	Timeout time.Duration
	// StatementTimeout is set as the sessions' statement_timeout.
	// Default: 5s. Exports do not have it (see Export).
	StatementTimeout time.Duration
	// ExportTimeout bounds one export from start to end. Default: 1h.
	ExportTimeout time.Duration
}

const (
	defaultSchema        = "workspace_profile"
	defaultTimeout       = 5 * time.Second
	defaultExportTimeout = time.Hour
	maxAttempts          = 5
	// maxTransfers is how many exports and imports may run at once, each
	// on a connection of its own outside the pool.
	maxTransfers = 2
	// importChunk is how many rows one statement of an import handles.
	importChunk = 5000
)

// Store is a profile.Store in PostgreSQL.
type Store struct {
	pool          *pgxpool.Pool
	connConfig    *pgx.ConnConfig // for the exports' and imports' own connections
	schema        string          // quoted identifier
	timeout       time.Duration
	exportTimeout time.Duration
	transfers     chan struct{} // a slot per running export or import
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
	// A cancelled context (a client that hung up, a timeout) asks the
	// server to cancel the statement, so the connection stays usable; the
	// socket is only cut if the server does not answer soon.
	cfg.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: time.Second}
	}
	if opts.ExportTimeout <= 0 {
		opts.ExportTimeout = defaultExportTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres pool: %s", describe(err))
	}
	schema := opts.Schema
	if schema == "" {
		schema = defaultSchema
	}
	s := &Store{pool: pool, connConfig: cfg.ConnConfig, schema: pgx.Identifier{schema}.Sanitize(), timeout: opts.Timeout,
		exportTimeout: opts.ExportTimeout, transfers: make(chan struct{}, maxTransfers)}
	mctx, cancel := context.WithTimeout(ctx, 4*opts.Timeout)
	defer cancel()
	if err := s.migrate(mctx, schema); err != nil {
		s.Close()
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) || errors.Is(err, errNewer) || errors.Is(err, errCollide) {
			return nil, fmt.Errorf("postgres migration: %w", err)
		}
		return nil, fmt.Errorf("postgres migration: %s", describe(err))
	}
	return s, nil
}

// Close closes the pool. Exports and imports in progress run on
// connections of their own and end on their own terms (ExportTimeout,
// their caller's context).
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
	// Version 2: the user-name index folds ASCII case whatever the
	// collation of the column or the database (lower() under a Turkish
	// collation makes 'I' a dotless 'ı'), as profile.NormalizeUserName
	// and the other backends do. It keeps its name, so that a node still
	// on version 1 maps a violation to UserNameTaken. migrate refuses to
	// apply it to names that collide under the new fold (errCollide).
	2: `CREATE UNIQUE INDEX profiles_user_name_fold ON {s}.profiles (lower(user_name COLLATE "C")) WHERE user_name <> '';
	DROP INDEX {s}.profiles_user_name_key;
	ALTER INDEX {s}.profiles_user_name_fold RENAME TO profiles_user_name_key`,
}

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
	if err := ctx.Err(); err != nil {
		return profile.Profile{}, s.fail(ctx, err)
	}
	opCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	p, err := scanProfile(s.pool.QueryRow(opCtx, "SELECT "+columns+" FROM "+s.schema+".profiles WHERE user_id = $1", userID), userID)
	if errors.Is(err, pgx.ErrNoRows) {
		return profile.Profile{}, profile.ErrNotFound
	}
	if err != nil {
		return profile.Profile{}, s.fail(ctx, err)
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

// inTx runs fn in a transaction on db, committing when it returns nil.
// Unlike pgx.BeginFunc it rolls back on a context of its own: a caller
// that hung up must not cost the pool its connection (a rollback on a
// cancelled context fails, and pgx then closes the connection).
func (s *Store) inTx(ctx context.Context, db interface {
	Begin(context.Context) (pgx.Tx, error)
}, fn func(pgx.Tx) error) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = tx.Rollback(rctx)
		cancel()
		return err
	}
	return tx.Commit(ctx)
}

// Update implements profile.Store: one transaction with the row locked
// (SELECT ... FOR UPDATE), fn, then the write. A new profile is inserted
// with ON CONFLICT DO NOTHING, so a node that loses the race retries with
// the winner's row. Serialization failures and deadlocks are retried a few
// times; a user-name collision is ErrUserNameTaken; nothing is ever half
// written, since every error rolls the transaction back.
func (s *Store) Update(ctx context.Context, userID string, fn profile.UpdateFunc) (profile.Profile, error) {
	if err := ctx.Err(); err != nil {
		return profile.Profile{}, s.fail(ctx, err)
	}
	opCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var out profile.Profile
	var err error
	for attempt := 0; attempt < maxAttempts; attempt++ {
		err = s.inTx(opCtx, s.pool, func(tx pgx.Tx) error {
			var txErr error
			out, txErr = s.updateTx(opCtx, tx, userID, fn)
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
		return profile.Profile{}, s.fail(ctx, err)
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

// errBusy: maxTransfers exports and imports are running already.
var errBusy = errors.New("too many exports and imports running")

// transferConn opens a connection of its own for an export or an import,
// outside the pool, so that neither can take the connections requests
// need however long it runs: at most maxTransfers at once, waiting at most
// the store's timeout for a slot. release closes it.
func (s *Store) transferConn(ctx context.Context) (conn *pgx.Conn, release func(), err error) {
	wait, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	select {
	case s.transfers <- struct{}{}:
	case <-wait.Done():
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, errBusy
	}
	conn, err = pgx.ConnectConfig(wait, s.connConfig.Copy())
	if err != nil {
		<-s.transfers
		return nil, nil, err
	}
	return conn, func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = conn.Close(cctx)
		cancel()
		<-s.transfers
	}, nil
}

// Export implements profile.Exporter, streaming rows in user-ID order.
//
// It reads one consistent snapshot: a read-only REPEATABLE READ
// transaction on a connection of its own (see transferConn), without the
// statement_timeout, so that a large export is never cut off midway.
// ExportTimeout bounds it instead, from start to end, however slowly the
// caller reads. Any failure midway (the timeout, the connection, the
// server) is returned: an export that returns nil is complete.
func (s *Store) Export(ctx context.Context, fn func(profile.Profile) error) error {
	if err := ctx.Err(); err != nil {
		return s.fail(ctx, err)
	}
	opCtx, cancel := context.WithTimeout(ctx, s.exportTimeout)
	defer cancel()
	conn, release, err := s.transferConn(opCtx)
	if err != nil {
		return s.fail(ctx, err)
	}
	defer release()
	var fnErr error
	err = s.inTx(opCtx, txBeginner{conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(opCtx, "SET LOCAL statement_timeout = 0"); err != nil {
			return err
		}
		rows, err := tx.Query(opCtx, "SELECT user_id, "+columns+" FROM "+s.schema+".profiles ORDER BY user_id")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			p := profile.Profile{}
			var ut int16
			var version int64
			if err := rows.Scan(&id, &p.UserName, &p.Email, &p.FirstName, &p.LastName, &ut, &version); err != nil {
				return err
			}
			p.UserID, p.UserType, p.Version = id, profile.UserType(ut), uint64(version)
			if err := fn(p); err != nil {
				fnErr = err
				return err
			}
		}
		return rows.Err()
	})
	switch {
	case err == nil:
		return nil
	case fnErr != nil:
		return fnErr
	default:
		return s.fail(ctx, err)
	}
}

// txBeginner begins transactions with options on one connection.
type txBeginner struct {
	conn *pgx.Conn
	opts pgx.TxOptions
}

func (b txBeginner) Begin(ctx context.Context) (pgx.Tx, error) { return b.conn.BeginTx(ctx, b.opts) }

// errNameRaced: a user name clashed on the write after the import's check:
// a profile outside the import took it meanwhile (the next attempt's check
// finds it), or a row of the import's own users appeared after its locking
// pass (the next attempt locks and clears it).
var errNameRaced = errors.New("a user name was taken during the import")

// Import implements profile.Importer in one transaction on a connection
// of its own (see transferConn):
//
//  1. the profiles are copied, in user-ID order, into a temporary table:
//     no lock on the profiles is taken yet;
//  2. with lock_timeout set to the store's timeout, the existing rows
//     among them are locked in user-ID order, importChunk at a time, and
//     their user names cleared, so that renames within one import never
//     collide whatever their order;
//  3. a user name held by a profile outside the import, or twice inside
//     it, fails the import with an ImportConflict naming the first line;
//  4. every profile is upserted, importChunk rows per statement, in
//     user-ID order (version + 1).
//
// Row locks are held from step 2 to the commit, on the file's rows only.
// Since every import takes its locks in the same order, two imports of
// the same profiles wait for each other instead of deadlocking; a
// deadlock or serialization failure that happens all the same is retried
// up to 5 times, as in Update. Any error rolls everything back.
func (s *Store) Import(ctx context.Context, profiles []profile.Profile) error {
	if err := ctx.Err(); err != nil {
		return s.fail(ctx, err)
	}
	opCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	order := make([]int, len(profiles))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(profiles[a].UserID, profiles[b].UserID) })
	conn, release, err := s.transferConn(opCtx)
	if err != nil {
		return s.fail(ctx, err)
	}
	defer release()
	for attempt := 0; attempt < maxAttempts; attempt++ {
		err = s.inTx(opCtx, conn, func(tx pgx.Tx) error { return s.importTx(opCtx, tx, profiles, order) })
		if !retryable(err) && !errors.Is(err, errNameRaced) {
			break
		}
	}
	var de errDomain
	switch {
	case err == nil:
		return nil
	case errors.As(err, &de):
		return de.err
	default:
		return s.fail(ctx, fmt.Errorf("import of %d profiles: %w", len(profiles), err))
	}
}

func (s *Store) importTx(ctx context.Context, tx pgx.Tx, profiles []profile.Profile, order []int) error {
	if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", s.timeout.Milliseconds())); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `CREATE TEMPORARY TABLE wp_import (ord int NOT NULL, idx int NOT NULL, user_id text NOT NULL,
		user_name text NOT NULL, email text NOT NULL, first_name text NOT NULL, last_name text NOT NULL, user_type smallint NOT NULL) ON COMMIT DROP`); err != nil {
		return err
	}
	cols := []string{"ord", "idx", "user_id", "user_name", "email", "first_name", "last_name", "user_type"}
	for lo := 0; lo < len(order); lo += importChunk {
		hi := min(lo+importChunk, len(order))
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"wp_import"}, cols, pgx.CopyFromSlice(hi-lo, func(i int) ([]any, error) {
			idx := order[lo+i]
			p := profiles[idx]
			return []any{int32(lo + i), int32(idx), p.UserID, p.UserName, p.Email, p.FirstName, p.LastName, int16(p.UserType)}, nil
		})); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, "CREATE UNIQUE INDEX ON wp_import (ord); ANALYZE wp_import"); err != nil {
		return err
	}
	// step 2: lock the existing rows in user-ID order, clear their names
	for lo := 0; lo < len(order); lo += importChunk {
		if _, err := tx.Exec(ctx, "SELECT count(*) FROM (SELECT 1 FROM wp_import i JOIN "+s.schema+".profiles p ON p.user_id = i.user_id "+
			"WHERE i.ord >= $1 AND i.ord < $2 ORDER BY i.ord FOR UPDATE OF p) locked", lo, lo+importChunk); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE "+s.schema+".profiles p SET user_name = '' FROM wp_import i "+
			"WHERE p.user_id = i.user_id AND i.ord >= $1 AND i.ord < $2 AND p.user_name <> ''", lo, lo+importChunk); err != nil {
			return err
		}
	}
	// step 3: names held outside the import, or twice inside it. The
	// import's own rows are never outside holders: those step 2 locked
	// have no name now, and one another import or a PUT created and
	// committed since (this transaction reads committed rows statement by
	// statement) is its own user's row, which step 4 overwrites; if that
	// clashes on a name, step 4 reports errNameRaced and the next attempt's
	// step 2 locks and clears it.
	var idx int
	err := tx.QueryRow(ctx, "SELECT min(idx) FROM ("+
		"SELECT i.idx FROM wp_import i JOIN "+s.schema+".profiles p ON lower(p.user_name COLLATE \"C\") = lower(i.user_name COLLATE \"C\") "+
		"WHERE i.user_name <> '' AND p.user_name <> '' AND NOT EXISTS (SELECT 1 FROM wp_import o WHERE o.user_id = p.user_id) "+
		"UNION ALL SELECT idx FROM (SELECT idx, row_number() OVER (PARTITION BY lower(user_name COLLATE \"C\") ORDER BY idx) AS n "+
		"FROM wp_import WHERE user_name <> '') d WHERE n > 1) c HAVING count(*) > 0").Scan(&idx)
	switch {
	case err == nil:
		return errDomain{&profile.ImportConflict{Index: idx, Err: profile.ErrUserNameTaken}}
	case !errors.Is(err, pgx.ErrNoRows):
		return err
	}
	// step 4: upsert in user-ID order
	for lo := 0; lo < len(order); lo += importChunk {
		_, err := tx.Exec(ctx, "INSERT INTO "+s.schema+".profiles (user_id, "+columns+") "+
			"SELECT user_id, user_name, email, first_name, last_name, user_type, 1 FROM wp_import WHERE ord >= $1 AND ord < $2 ORDER BY ord "+
			"ON CONFLICT (user_id) DO UPDATE SET user_name=EXCLUDED.user_name, email=EXCLUDED.email, first_name=EXCLUDED.first_name, "+
			"last_name=EXCLUDED.last_name, user_type=EXCLUDED.user_type, version="+s.schema+".profiles.version+1", lo, lo+importChunk)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "profiles_user_name_key" {
			return errNameRaced
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// retryable: serialization failure, deadlock.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// Interface guards
var (
	_ profile.Store    = (*Store)(nil)
	_ profile.Exporter = (*Store)(nil)
	_ profile.Importer = (*Store)(nil)
)
