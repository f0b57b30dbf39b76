package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
	"github.com/workspace-edge/caddy-workspace-profile/internal/drain"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
	"github.com/workspace-edge/caddy-workspace-profile/profile/pgstore"
)

func init() {
	caddy.RegisterModule(PostgresStorage{})
}

// PostgresStorage keeps profiles in PostgreSQL, for several Caddy nodes
// that share one database. The connection pool is opened once per DSN,
// schema and options in the process and shared across config reloads that
// keep them; a reload that changes max_conns, timeout, statement_timeout,
// export_timeout, cache, poll or listen_dsn opens a new pool, and the old
// one closes with the old config. The schema is created and migrated in
// the background, not at provision (safe when nodes start at once): a
// node whose database is down starts, answers 503 StorageUnavailable on
// the route, and retries with backoff (1s doubling to 15s, sooner on a
// request, at most once a second) until the database is back.
type PostgresStorage struct {
	// The connection string, a URL or key=value DSN as pgx reads it.
	// Placeholders such as {env.PROFILE_PG_DSN} are replaced. Required.
	// It is never logged.
	DSN string `json:"dsn,omitempty"`

	// The schema holding the tables. Default: workspace_profile.
	Schema string `json:"schema,omitempty"`

	// The most connections the pool opens, at most 1000. Default: pgx's
	// (the larger of 4 and the number of CPUs).
	MaxConns int32 `json:"max_conns,omitempty"`

	// Bounds every operation of the route, waiting for a connection
	// included, so that a database that is down gives 503
	// StorageUnavailable quickly. An export or import of the admin
	// endpoint waits this long at most for its connection, and an import
	// this long for each row lock (lock_timeout); their whole run is bound
	// by export_timeout and by statement_timeout per statement instead.
	// Default: 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// The sessions' statement_timeout. Default: 5s. An export does not
	// have it: it runs on a connection of its own, in one read-only
	// REPEATABLE READ transaction, bounded by export_timeout instead.
	StatementTimeout caddy.Duration `json:"statement_timeout,omitempty"`

	// Bounds one export from start to end, however slowly its client
	// reads. Default: 1h.
	ExportTimeout caddy.Duration `json:"export_timeout,omitempty"`

	// How many profiles this node keeps in its cache, at most 10,000,000;
	// 0 turns the cache off (every read goes to the database). Absent:
	// 10000. A pointer, so that 0 and absent differ.
	Cache *int `json:"cache,omitempty"`

	// How often the node reads the profiles changed since its last read,
	// which bounds how stale its cache can be when notifications are lost:
	// from 100ms to 1m. Default: 2s.
	Poll caddy.Duration `json:"poll,omitempty"`

	// Where the one listening connection goes instead of the DSN: LISTEN
	// needs a session of its own, which PgBouncer in transaction mode
	// cannot give, so point this at a session pool or at the server.
	// Placeholders are replaced as in the DSN. It is never logged.
	ListenDSN string `json:"listen_dsn,omitempty"`

	key    string
	dsnKey string // the hash of DSN and schema, for StoreName
	store  *drain.Store
}

// CaddyModule returns the Caddy module information.
func (PostgresStorage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.workspace_profile.storage.postgres",
		New: func() caddy.Module { return new(PostgresStorage) },
	}
}

// pgFirstAttemptDelay is how long a new store waits before its first
// attempt to connect and migrate, unless a request comes first: longer
// than validating a config takes, short enough not to be noticed.
var pgFirstAttemptDelay = time.Second

// maxPostgresConns is the largest max_conns: more connections than a
// PostgreSQL server allows by default many times over is a typo.
const maxPostgresConns = 1000

// The bounds of cache and poll: a cache larger than maxPostgresCache
// entries is a typo for some other unit; a poll faster than
// minPostgresPoll costs the database a query per node for little, and
// one slower than maxPostgresPoll leaves a node stale for that long
// whenever a notification is lost.
const (
	maxPostgresCache = 10_000_000
	minPostgresPoll  = 100 * time.Millisecond
	maxPostgresPoll  = time.Minute
)

// check checks the options, before anything is opened; the DSN is
// checked at Provision, once its placeholders are replaced.
func (p *PostgresStorage) check() error {
	if p.MaxConns < 0 || p.MaxConns > maxPostgresConns {
		return fmt.Errorf("max_conns: %d is not a number from 1 to %d", p.MaxConns, maxPostgresConns)
	}
	switch {
	case p.Timeout < 0:
		return errors.New("timeout: must not be negative")
	case p.StatementTimeout < 0:
		return errors.New("statement_timeout: must not be negative")
	case p.ExportTimeout < 0:
		return errors.New("export_timeout: must not be negative")
	case p.Cache != nil && (*p.Cache < 0 || *p.Cache > maxPostgresCache):
		return fmt.Errorf("cache: %d is not a number of entries from 0 (off) to %d", *p.Cache, maxPostgresCache)
	case p.Poll != 0 && (time.Duration(p.Poll) < minPostgresPoll || time.Duration(p.Poll) > maxPostgresPoll):
		return fmt.Errorf("poll: %v is not a duration from %v to %v", time.Duration(p.Poll), minPostgresPoll, maxPostgresPoll)
	}
	return nil
}

// Provision opens the pool, or takes the already open one.
func (p *PostgresStorage) Provision(ctx caddy.Context) error {
	if err := p.check(); err != nil {
		return fmt.Errorf("postgres storage: %w", err)
	}
	dsn := caddy.NewReplacer().ReplaceKnown(p.DSN, "")
	if dsn == "" {
		return fmt.Errorf("postgres storage: dsn: required")
	}
	listenDSN := caddy.NewReplacer().ReplaceKnown(p.ListenDSN, "")
	if listenDSN != "" {
		if _, err := pgx.ParseConfig(listenDSN); err != nil {
			// named, unlike the DSN's own error, since two DSNs may be
			// wrong; never repeated, since it may hold a password
			return fmt.Errorf("postgres storage: listen_dsn: %w", pgstore.ErrBadDSN)
		}
	}
	// the pool's key names the DSNs by hash, so they cannot leak through
	// it; the options are part of it, so that a reload changing them opens
	// a pool that has them
	opts := pgstore.Options{Schema: p.Schema, MaxConns: p.MaxConns, Timeout: time.Duration(p.Timeout),
		StatementTimeout: time.Duration(p.StatementTimeout), ExportTimeout: time.Duration(p.ExportTimeout),
		Poll: time.Duration(p.Poll), ListenDSN: listenDSN}
	if p.Cache != nil {
		// pgstore reads 0 as its default and a negative size as off
		opts.Cache = *p.Cache
		if opts.Cache == 0 {
			opts.Cache = -1
		}
	}
	sum := sha256.Sum256([]byte(dsn + "\x00" + p.Schema))
	p.dsnKey = hex.EncodeToString(sum[:])
	listenSum := sha256.Sum256([]byte(listenDSN))
	key := fmt.Sprintf("%s/%d/%d/%d/%d/%d/%d/%x", p.dsnKey, opts.MaxConns, opts.Timeout, opts.StatementTimeout, opts.ExportTimeout,
		opts.Cache, opts.Poll, listenSum[:8])
	logger := ctx.Logger()
	schema := opts.Schema
	if schema == "" {
		schema = "workspace_profile"
	}
	ds, err := openShared(pgPool, key, p.StoreName(), func() (profile.Store, error) {
		// The store connects and migrates in the background (see
		// pgstore.Lazy): a database that is down does not fail the config,
		// and so takes down no other site of this Caddy; the route answers
		// 503 StorageUnavailable until the store is open. The first attempt
		// waits for the route's first request or a second, whichever comes
		// first, and the store is closed when the last config using it is
		// cleaned up: `caddy validate` and `caddy adapt --validate`, which
		// provision the config and clean it up at once, never connect.
		return pgstore.OpenLazy(dsn, opts, pgstore.LazyOptions{
			Delay: pgFirstAttemptDelay,
			OnOpen: func(attempts int) {
				logger.Info("opened PostgreSQL profile store", zap.String("schema", schema), zap.Int("attempts", attempts))
			},
			OnFail: func(err error, attempt int, retryIn time.Duration) {
				logger.Error("PostgreSQL profile store not open yet; the route answers 503 StorageUnavailable until it is",
					zap.String("schema", schema), zap.Int("attempt", attempt), zap.Duration("retry_in", retryIn), zap.Error(err))
			},
		})
	})
	if err != nil {
		return fmt.Errorf("postgres storage: %w", err)
	}
	p.key, p.store = key, ds
	return nil
}

// Cleanup releases this config's use of the pool; the last user closes it.
func (p *PostgresStorage) Cleanup() error { return releaseShared(pgPool, &p.key) }

// ProfileStore implements StorageBackend.
func (p *PostgresStorage) ProfileStore() profile.Store { return p.store }

// APIKeyStore is the API keys kept in the same database and schema
// (profile/pgstore), on the same pool.
func (p *PostgresStorage) APIKeyStore() (apikey.Store, error) { return apiKeysOf(p.store.Store) }

// StoreName implements StorageBackend: the schema and a short hash of the
// DSN, never the DSN.
func (p *PostgresStorage) StoreName() string {
	schema := p.Schema
	if schema == "" {
		schema = "workspace_profile"
	}
	return "postgres:" + schema + "@" + p.dsnKey[:8]
}

// UnmarshalCaddyfile reads `storage postgres <dsn> [schema <name>]
// [max_conns <n>] [timeout <duration>] [statement_timeout <duration>]
// [export_timeout <duration>] [cache <entries>] [poll <duration>]
// [listen_dsn <dsn>]`.
func (p *PostgresStorage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // backend name
	if !d.NextArg() {
		return d.Err("storage postgres: the DSN is required")
	}
	p.DSN = d.Val()
	for d.NextArg() {
		opt := d.Val()
		if !d.NextArg() {
			return d.Errf("storage postgres: %s needs a value", opt)
		}
		val := d.Val()
		switch opt {
		case "schema":
			p.Schema = val
		case "listen_dsn":
			p.ListenDSN = val
		case "cache":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 || n > maxPostgresCache {
				return d.Errf("storage postgres: cache: %q is not a number of entries from 0 (off) to %d", val, maxPostgresCache)
			}
			p.Cache = &n
		case "poll":
			dur, ok := durationArg(val, false)
			if !ok {
				return d.Errf("storage postgres: poll: %q is not a positive duration", val)
			}
			p.Poll = dur
		case "max_conns":
			n, ok := countArg(val, 32)
			if !ok {
				return d.Errf("storage postgres: max_conns: %q is not a number from 1 to %d", val, maxPostgresConns)
			}
			p.MaxConns = int32(n)
		case "timeout", "statement_timeout", "export_timeout":
			dur, ok := durationArg(val, false)
			if !ok {
				return d.Errf("storage postgres: %s: %q is not a positive duration", opt, val)
			}
			switch opt {
			case "timeout":
				p.Timeout = dur
			case "statement_timeout":
				p.StatementTimeout = dur
			default:
				p.ExportTimeout = dur
			}
		default:
			return d.Errf("storage postgres: unknown option %q", opt)
		}
		if err := p.check(); err != nil {
			return d.Err("storage postgres: " + err.Error())
		}
	}
	return nil
}

// Interface guards
var (
	_ StorageBackend        = (*PostgresStorage)(nil)
	_ keyStoreBackend       = (*PostgresStorage)(nil)
	_ caddy.Provisioner     = (*PostgresStorage)(nil)
	_ caddy.CleanerUpper    = (*PostgresStorage)(nil)
	_ caddyfile.Unmarshaler = (*PostgresStorage)(nil)
)
