package caddymodule

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
	"github.com/workspace-edge/caddy-workspace-profile/profile/boltstore"
	"github.com/workspace-edge/caddy-workspace-profile/profile/memstore"
)

func init() {
	caddy.RegisterModule(MemoryStorage{})
	caddy.RegisterModule(BoltStorage{})
}

// MemoryStorage keeps profiles in memory for as long as the config that
// loaded it: a reload or restart empties it. For tests and experiments.
type MemoryStorage struct {
	store *memstore.Store
}

// CaddyModule returns the Caddy module information.
func (MemoryStorage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.workspace_profile.storage.memory",
		New: func() caddy.Module { return new(MemoryStorage) },
	}
}

// Provision creates the empty store.
func (m *MemoryStorage) Provision(caddy.Context) error {
	m.store = memstore.New()
	return nil
}

// ProfileStore implements StorageBackend.
func (m *MemoryStorage) ProfileStore() profile.Store { return m.store }

// StoreName implements StorageBackend.
func (m *MemoryStorage) StoreName() string { return fmt.Sprintf("memory:%p", m.store) }

// boltPool shares each open bolt file between every handler and config
// generation that names it: bbolt locks its file, so opening it again in
// the new config of a reload would wait for the old one and time out.
var boltPool = caddy.NewUsagePool()

// DefaultBoltFile is the bolt file's name in Caddy's data directory.
const DefaultBoltFile = "workspace_profile.db"

// BoltStorage keeps profiles in an embedded bbolt file. The file is opened
// once per process and shared across config reloads.
type BoltStorage struct {
	// The bolt file. Default: workspace_profile.db in Caddy's data
	// directory. Placeholders such as {env.PROFILE_DB} are replaced.
	Path string `json:"path,omitempty"`

	// How long to wait for the file lock when another process holds the
	// file. Default: 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	key    string
	store  *boltstore.Store
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (BoltStorage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.workspace_profile.storage.bolt",
		New: func() caddy.Module { return new(BoltStorage) },
	}
}

type boltCloser struct{ *boltstore.Store }

func (b boltCloser) Destruct() error { return b.Close() }

// Provision opens the file, or takes the already open one from the pool.
func (b *BoltStorage) Provision(ctx caddy.Context) error {
	b.logger = ctx.Logger()
	path := caddy.NewReplacer().ReplaceKnown(b.Path, "")
	if path == "" {
		path = filepath.Join(caddy.AppDataDir(), DefaultBoltFile)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	timeout := time.Duration(b.Timeout)
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	val, _, err := boltPool.LoadOrNew(abs, func() (caddy.Destructor, error) {
		if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
			return nil, err
		}
		s, err := boltstore.Open(abs, timeout)
		if err != nil {
			return nil, err
		}
		b.logger.Info("opened profile store", zap.String("path", abs))
		return boltCloser{s}, nil
	})
	if err != nil {
		return fmt.Errorf("bolt storage: %w", err)
	}
	b.key = abs
	b.store = val.(boltCloser).Store
	return nil
}

// Cleanup releases this config's use of the file; the last user closes it.
func (b *BoltStorage) Cleanup() error {
	if b.key == "" {
		return nil
	}
	_, err := boltPool.Delete(b.key)
	return err
}

// ProfileStore implements StorageBackend.
func (b *BoltStorage) ProfileStore() profile.Store { return b.store }

// StoreName implements StorageBackend.
func (b *BoltStorage) StoreName() string { return "bolt:" + b.key }

// UnmarshalCaddyfile sets up the bolt storage from `storage bolt [<file>]`.
func (b *BoltStorage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // backend name
	if d.NextArg() {
		b.Path = d.Val()
	}
	if d.NextArg() {
		return d.Errf("storage bolt: unexpected argument %q", d.Val())
	}
	return nil
}

// Interface guards
var (
	_ StorageBackend        = (*MemoryStorage)(nil)
	_ StorageBackend        = (*BoltStorage)(nil)
	_ caddy.Provisioner     = (*BoltStorage)(nil)
	_ caddy.CleanerUpper    = (*BoltStorage)(nil)
	_ caddyfile.Unmarshaler = (*BoltStorage)(nil)
)
