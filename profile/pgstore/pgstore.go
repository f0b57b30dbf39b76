// Package pgstore is the PostgreSQL profile.Store, for several Caddy nodes
// sharing one profile database: each update is one transaction holding the
// profile's row lock, and a unique index on the lower-cased user name makes
// the database itself refuse a second holder of a name.
package pgstore

import (
	"context"
	"errors"
	"fmt"
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
	// Poll is how often a node reads the profiles (see profiles_watch.go)
	// and, when it watches them, the API keys (keys_watch.go) changed
	// since its last read, in case a notification was lost. Default: 2s.
	Poll time.Duration
	// Cache is how many profiles the node keeps in its cache, kept
	// coherent across nodes by notifications and the poll (see
	// cache.go). 0: DefaultCache; negative: no cache, every read goes
	// to the database.
	Cache int
	// DPoPPrune is how often a node deletes expired DPoP proofs, once it
	// has spent one (see dpop_proofs.go). Default: DPoPPruneInterval.
	DPoPPrune time.Duration
	// ListenDSN, when set, is where the store's one listening connection
	// goes instead of the DSN: LISTEN needs a session of its own, which
	// PgBouncer in transaction mode cannot give (use a session-mode pool
	// or the server itself).
	ListenDSN string
}

const (
	defaultSchema        = "workspace_profile"
	defaultTimeout       = 5 * time.Second
	defaultExportTimeout = time.Hour
	defaultPoll          = 2 * time.Second
	// DefaultCache is the size of a node's profile cache when Options
	// does not set one.
	DefaultCache = 10000
	maxAttempts  = 5
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
	schemaName    string          // as given, for channel names
	timeout       time.Duration
	exportTimeout time.Duration
	transfers     chan struct{} // a slot per running export or import

	listenConfig *pgx.ConnConfig // for the listening connection
	poll         time.Duration
	watch        watchState // the listener and the key watchers (keys_watch.go)

	cache      *profileCache // nil when Options.Cache is negative (cache.go)
	profiles   profileWatch  // what keeps it coherent (profiles_watch.go)
	prune      pruneState    // the pruning of expired DPoP proofs (dpop_proofs.go)
	pruneEvery time.Duration
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
	if opts.Poll <= 0 {
		opts.Poll = defaultPoll
	}
	if opts.DPoPPrune <= 0 {
		opts.DPoPPrune = DPoPPruneInterval
	}
	listenConfig := cfg.ConnConfig
	if opts.ListenDSN != "" {
		lc, err := pgx.ParseConfig(opts.ListenDSN)
		if err != nil {
			return nil, ErrBadDSN
		}
		if lc.ConnectTimeout == 0 || lc.ConnectTimeout > opts.Timeout {
			lc.ConnectTimeout = opts.Timeout
		}
		lc.RuntimeParams["statement_timeout"] = cfg.ConnConfig.RuntimeParams["statement_timeout"]
		listenConfig = lc
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres pool: %s", describe(err))
	}
	schema := opts.Schema
	if schema == "" {
		schema = defaultSchema
	}
	s := &Store{pool: pool, connConfig: cfg.ConnConfig, schema: pgx.Identifier{schema}.Sanitize(), schemaName: schema, timeout: opts.Timeout,
		exportTimeout: opts.ExportTimeout, transfers: make(chan struct{}, maxTransfers), listenConfig: listenConfig, poll: opts.Poll,
		cache: newProfileCache(opts.Cache), pruneEvery: opts.DPoPPrune}
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

// Close sends the profile announcements still queued, stops the
// listening connection, the polls and the pruning of DPoP proofs, if
// started, and closes the pool. Exports and imports in progress run on
// connections of their own and end on their own terms (ExportTimeout,
// their caller's context).
//
// It waits at most the store's timeout for the pool: pgx closes a
// connection whose statement failed by sending the server a cancel
// request and draining the socket for up to 15 s, and the pool's Close
// waits for that; on a network that silently drops packets, Caddy would
// then take that long to stop. The pool goes on closing in the
// background.
func (s *Store) Close() error {
	s.stopProfileWatch()
	s.stopWatching()
	s.stopPruning()
	closed := make(chan struct{})
	go func() {
		s.pool.Close()
		close(closed)
	}()
	t := time.NewTimer(s.timeout)
	defer t.Stop()
	select {
	case <-closed:
	case <-t.C:
	}
	return nil
}

// errDomain carries fn's own error out of the transaction untouched.
type errDomain struct{ err error }

func (e errDomain) Error() string { return e.err.Error() }
func (e errDomain) Unwrap() error { return e.err }

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

// Interface guards
var (
	_ profile.Store    = (*Store)(nil)
	_ profile.Exporter = (*Store)(nil)
	_ profile.Importer = (*Store)(nil)
)
