package caddymodule

import (
	"github.com/caddyserver/caddy/v2"

	"github.com/workspace-edge/caddy-workspace-profile/internal/drain"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// sharedStore is a store in a storage module's caddy.UsagePool (boltPool,
// pgPool): the last config that releases it closes it, after the calls
// still in progress on it have returned. name is its StoreName, for the
// metrics that range over a pool.
type sharedStore struct {
	*drain.Store
	name string
}

// Destruct implements caddy.Destructor.
func (s sharedStore) Destruct() error { return s.Close() }

// openShared takes the store under key (named name) from pool, opening it with open
// when no config holds it yet (a reload keeps the open one: bbolt locks its
// file, and a new pgx pool per reload would only churn connections).
func openShared(pool *caddy.UsagePool, key, name string, open func() (profile.Store, error)) (*drain.Store, error) {
	val, _, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) {
		s, err := open()
		if err != nil {
			return nil, err
		}
		return sharedStore{drain.New(s), name}, nil
	})
	if err != nil {
		return nil, err
	}
	return val.(sharedStore).Store, nil
}

// releaseShared gives back the use of *key that openShared took, once:
// *key is emptied, so that a second Cleanup releases nothing.
func releaseShared(pool *caddy.UsagePool, key *string) error {
	if *key == "" {
		return nil
	}
	_, err := pool.Delete(*key)
	*key = ""
	return err
}
