package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
	"github.com/workspace-edge/caddy-workspace-profile/profile/memstore"
)

func init() {
	caddy.RegisterModule(MemoryStorage{})
}

// MemoryStorage keeps profiles in memory for as long as the config that
// loaded it: a reload or restart empties it. For tests and experiments.
type MemoryStorage struct {
	store *memstore.Store
	keys  *apikey.Memory
	id    uint64
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
	m.keys = apikey.NewMemory()
	m.id = memoryStores.Add(1)
	return nil
}

// ProfileStore implements StorageBackend.
func (m *MemoryStorage) ProfileStore() profile.Store { return m.store }

// APIKeyStore is the store's API keys, as empty and as short-lived as
// its profiles.
func (m *MemoryStorage) APIKeyStore() (apikey.Store, error) { return m.keys, nil }

// StoreName implements StorageBackend: "memory:<n>", n counting the
// memory stores provisioned by this process (a reload makes a new one).
func (m *MemoryStorage) StoreName() string { return "memory:" + strconv.FormatUint(m.id, 10) }

// Interface guards
var (
	_ StorageBackend    = (*MemoryStorage)(nil)
	_ keyStoreBackend   = (*MemoryStorage)(nil)
	_ caddy.Provisioner = (*MemoryStorage)(nil)
)
