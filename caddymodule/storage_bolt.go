package caddymodule

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
	"github.com/workspace-edge/caddy-workspace-profile/internal/drain"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
	"github.com/workspace-edge/caddy-workspace-profile/profile/boltstore"
)

func init() {
	caddy.RegisterModule(BoltStorage{})
}

// DefaultBoltFile is the bolt file's name in Caddy's data directory.
const DefaultBoltFile = "workspace_profile.db"

// BoltStorage keeps profiles in an embedded bbolt file. The file is opened
// once per process and shared across config reloads.
type BoltStorage struct {
	// The bolt file. Default: workspace_profile.db in Caddy's data
	// directory. Placeholders such as {env.PROFILE_DB} are replaced.
	Path string `json:"path,omitempty"`

	// How long to wait for the file lock when another process holds the
	// file, and how long a GET or PUT on the route waits for the store
	// (bbolt's single writer, or a remap of the growing file) before it
	// answers 503 StorageUnavailable. Default: 5s. A write given up this
	// way may still commit, whole, a moment later (as after a timeout in
	// any database); one whose transaction had not begun never does.
	// Imports are bounded by their admin request only.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	key    string
	store  drain.Timeout
	logger *zap.Logger
}

// resolveBoltPath names the file a path reaches, so that every spelling
// of one file (through symlinked directories, or a symlink to the file,
// even one whose target does not exist yet) is one pool key: opening one
// file twice would wait for bbolt's lock. A path that does not exist yet
// keeps its resolved directory.
func resolveBoltPath(p string) string {
	for range 40 { // as the kernel's limit on symlinks followed
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return r
		}
		dir, base := filepath.Split(p)
		if r, err := filepath.EvalSymlinks(dir); err == nil {
			dir = r
		}
		p = filepath.Join(dir, base)
		target, err := os.Readlink(p)
		if err != nil { // not a symlink: a file yet to be created
			return p
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(dir, target)
		}
		p = filepath.Clean(target)
	}
	return p
}

// CaddyModule returns the Caddy module information.
func (BoltStorage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.workspace_profile.storage.bolt",
		New: func() caddy.Module { return new(BoltStorage) },
	}
}

// check checks the options, before anything is opened.
func (b *BoltStorage) check() error {
	if b.Timeout < 0 {
		return errors.New("timeout: must not be negative")
	}
	return nil
}

// Provision opens the file, or takes the already open one from the pool.
func (b *BoltStorage) Provision(ctx caddy.Context) error {
	if err := b.check(); err != nil {
		return fmt.Errorf("bolt storage: %w", err)
	}
	b.logger = ctx.Logger()
	path := caddy.NewReplacer().ReplaceKnown(b.Path, "")
	if path == "" {
		path = filepath.Join(caddy.AppDataDir(), DefaultBoltFile)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	abs = resolveBoltPath(abs)
	timeout := time.Duration(b.Timeout)
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	ds, err := openShared(boltPool, abs, "bolt:"+abs, func() (profile.Store, error) {
		if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
			return nil, err
		}
		s, err := boltstore.Open(abs, timeout)
		if err != nil {
			return nil, err
		}
		b.logger.Info("opened profile store", zap.String("path", abs))
		return s, nil
	})
	if err != nil {
		return fmt.Errorf("bolt storage: %w", err)
	}
	b.key = abs
	b.store = drain.Timeout{Store: ds, D: timeout}
	return nil
}

// Cleanup releases this config's use of the file; the last user closes it.
func (b *BoltStorage) Cleanup() error { return releaseShared(boltPool, &b.key) }

// ProfileStore implements StorageBackend.
func (b *BoltStorage) ProfileStore() profile.Store { return b.store }

// APIKeyStore is the API keys kept in the same file (profile/boltstore),
// on the same open store.
func (b *BoltStorage) APIKeyStore() (apikey.Store, error) { return apiKeysOf(b.store.Store.Store) }

// StoreName implements StorageBackend.
func (b *BoltStorage) StoreName() string { return "bolt:" + b.key }

// UnmarshalCaddyfile sets up the bolt storage from
// `storage bolt [<file>] [timeout <duration>]`.
func (b *BoltStorage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // backend name
	args := d.RemainingArgs()
	if len(args)%2 == 1 {
		b.Path, args = args[0], args[1:]
	}
	for ; len(args) > 0; args = args[2:] {
		if args[0] != "timeout" {
			return d.Errf("storage bolt: unexpected argument %q", args[0])
		}
		dur, ok := durationArg(args[1], false)
		if !ok {
			return d.Errf("storage bolt: timeout %q is not a positive duration", args[1])
		}
		b.Timeout = dur
	}
	if err := b.check(); err != nil {
		return d.Err("storage bolt: " + err.Error())
	}
	return nil
}

// Interface guards
var (
	_ StorageBackend        = (*BoltStorage)(nil)
	_ keyStoreBackend       = (*BoltStorage)(nil)
	_ caddy.Provisioner     = (*BoltStorage)(nil)
	_ caddy.CleanerUpper    = (*BoltStorage)(nil)
	_ caddyfile.Unmarshaler = (*BoltStorage)(nil)
)
