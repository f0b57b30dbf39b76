package caddymodule

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// drainGrace bounds how long closing a store waits for the calls still in
// progress on it.
const drainGrace = 10 * time.Second

// drainingStore counts the calls in progress on a store that config
// generations share. Caddy cleans up an old config as soon as the new one
// runs, without waiting for the old config's requests; closing the store
// then would fail them ("database not open", "closed pool"). Close waits
// until the calls in progress have returned, at most drainGrace, and then
// closes the store.
type drainingStore struct {
	profile.Store

	mu     sync.Mutex
	active int
	idle   chan struct{} // closed when active reaches 0 after Close began
}

func newDrainingStore(s profile.Store) *drainingStore { return &drainingStore{Store: s} }

// enter records a call in progress; the returned func ends it. The
// handler holds one for each route request in storage mode, from before
// authentication to its answer, so that a request between two store calls
// keeps the store open too.
func (d *drainingStore) enter() func() {
	d.mu.Lock()
	d.active++
	d.mu.Unlock()
	return func() {
		d.mu.Lock()
		d.active--
		if d.active == 0 && d.idle != nil {
			close(d.idle)
			d.idle = nil
		}
		d.mu.Unlock()
	}
}

func (d *drainingStore) Get(ctx context.Context, id string) (profile.Profile, error) {
	defer d.enter()()
	return d.Store.Get(ctx, id)
}

func (d *drainingStore) Update(ctx context.Context, id string, fn profile.UpdateFunc) (profile.Profile, error) {
	defer d.enter()()
	return d.Store.Update(ctx, id, fn)
}

var errNoTransfer = errors.New("this store cannot export or import")

// Export implements profile.Exporter when the store does.
func (d *drainingStore) Export(ctx context.Context, fn func(profile.Profile) error) error {
	ex, ok := d.Store.(profile.Exporter)
	if !ok {
		return errNoTransfer
	}
	defer d.enter()()
	return ex.Export(ctx, fn)
}

// Import implements profile.Importer when the store does.
func (d *drainingStore) Import(ctx context.Context, profiles []profile.Profile) error {
	im, ok := d.Store.(profile.Importer)
	if !ok {
		return errNoTransfer
	}
	defer d.enter()()
	return im.Import(ctx, profiles)
}

// Close waits until no call has been in progress for drainQuiet (a
// request that Caddy handed to the old config just before may still be on
// its way to the store), at most drainGrace in all, then closes the store.
func (d *drainingStore) Close() error {
	deadline := time.Now().Add(drainGrace)
	for time.Now().Before(deadline) {
		d.mu.Lock()
		if d.active == 0 {
			d.mu.Unlock()
			time.Sleep(drainQuiet)
			d.mu.Lock()
			if d.active == 0 {
				d.mu.Unlock()
				break
			}
		}
		if d.idle == nil {
			d.idle = make(chan struct{})
		}
		idle := d.idle
		d.mu.Unlock()
		select {
		case <-idle:
		case <-time.After(time.Until(deadline)):
		}
	}
	return d.Store.Close()
}

// drainQuiet is how long a store must have no call in progress before it
// closes.
const drainQuiet = 100 * time.Millisecond

// sharedStore is a store in a storage module's caddy.UsagePool (boltPool,
// pgPool): the last config that releases it closes it, after the calls
// still in progress on it have returned.
type sharedStore struct{ *drainingStore }

// Destruct implements caddy.Destructor.
func (s sharedStore) Destruct() error { return s.Close() }

// openShared takes the store under key from pool, opening it with open
// when no config holds it yet (a reload keeps the open one: bbolt locks its
// file, and a new pgx pool per reload would only churn connections).
func openShared(pool *caddy.UsagePool, key string, open func() (profile.Store, error)) (*drainingStore, error) {
	val, _, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) {
		s, err := open()
		if err != nil {
			return nil, err
		}
		return sharedStore{newDrainingStore(s)}, nil
	})
	if err != nil {
		return nil, err
	}
	return val.(sharedStore).drainingStore, nil
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
