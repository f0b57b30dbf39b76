// Package drain lets a store shared by several config generations close
// only after the calls in progress on it, and bounds the calls of a route
// by a deadline of the store's own. It knows no Caddy: caddymodule keeps
// these stores in its pools and closes them when the last config lets go.
package drain

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// drainGrace bounds how long closing a store waits for the calls still in
// progress on it.
const drainGrace = 10 * time.Second

// Store counts the calls in progress on a store that config
// generations share. Caddy cleans up an old config as soon as the new one
// runs, without waiting for the old config's requests; closing the store
// then would fail them ("database not open", "closed pool"). Close waits
// until the calls in progress have returned, at most drainGrace, and then
// closes the store.
type Store struct {
	profile.Store

	mu     sync.Mutex
	active int
	idle   chan struct{} // closed when active reaches 0 after Close began
}

// New wraps s; Close closes s once the calls in progress have returned.
func New(s profile.Store) *Store { return &Store{Store: s} }

// Enter records a call in progress; the returned func ends it. The
// handler holds one for each route request in storage mode, from before
// authentication to its answer, so that a request between two store calls
// keeps the store open too.
func (d *Store) Enter() func() {
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

func (d *Store) Get(ctx context.Context, id string) (profile.Profile, error) {
	defer d.Enter()()
	return d.Store.Get(ctx, id)
}

func (d *Store) Update(ctx context.Context, id string, fn profile.UpdateFunc) (profile.Profile, error) {
	defer d.Enter()()
	return d.Store.Update(ctx, id, fn)
}

var errNoTransfer = errors.New("this store cannot export or import")

// Export implements profile.Exporter when the store does.
func (d *Store) Export(ctx context.Context, fn func(profile.Profile) error) error {
	ex, ok := d.Store.(profile.Exporter)
	if !ok {
		return errNoTransfer
	}
	defer d.Enter()()
	return ex.Export(ctx, fn)
}

// Import implements profile.Importer when the store does.
func (d *Store) Import(ctx context.Context, profiles []profile.Profile) error {
	im, ok := d.Store.(profile.Importer)
	if !ok {
		return errNoTransfer
	}
	defer d.Enter()()
	return im.Import(ctx, profiles)
}

// Close waits until no call has been in progress for drainQuiet (a
// request that Caddy handed to the old config just before may still be on
// its way to the store), at most drainGrace in all, then closes the store.
func (d *Store) Close() error {
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

// Timeout bounds each Update by D on top of the caller's context (bolt
// storage's timeout; see boltstore's Deadlines). A Get (the drain Store's)
// gets no deadline of its own: bolt reads run in the caller's goroutine and
// wait for no writer, so a timer would never fire (boltstore.Store.Get
// honours a context only when it is done before the read begins) and would
// cost one per request on the route's hottest path.
// Export, Import, Enter and Close are the drain Store's.
type Timeout struct {
	*Store
	D time.Duration
}

// Update implements profile.Store.
func (t Timeout) Update(ctx context.Context, userID string, fn profile.UpdateFunc) (profile.Profile, error) {
	ctx, cancel := context.WithTimeout(ctx, t.D)
	defer cancel()
	return t.Store.Update(ctx, userID, fn)
}
