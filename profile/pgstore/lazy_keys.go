package pgstore

import (
	"context"
	"sync"
	"time"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
	"github.com/workspace-edge/caddy-workspace-profile/internal/pglisten"
)

// The API keys of a Lazy store: until the store is open every call fails
// with an error that errors.Is apikey.ErrUnavailable, and watchers start
// watching once it is.

// APIKeys is the API-key store of the store once open.
func (l *Lazy) APIKeys() apikey.Store { return lazyKeys{l} }

type lazyKeys struct{ l *Lazy }

func (k lazyKeys) keys(ctx context.Context) (apikey.Store, error) {
	s, err := k.l.open(ctx)
	if err != nil {
		return nil, asKeyError(err)
	}
	return s.APIKeys(), nil
}

// Lookup implements apikey.Store.
func (k lazyKeys) Lookup(ctx context.Context, h apikey.Hash) (apikey.Record, error) {
	ks, err := k.keys(ctx)
	if err != nil {
		return apikey.Record{}, err
	}
	return ks.Lookup(ctx, h)
}

// Create implements apikey.Store.
func (k lazyKeys) Create(ctx context.Context, r apikey.Record) error {
	ks, err := k.keys(ctx)
	if err != nil {
		return err
	}
	return ks.Create(ctx, r)
}

// List implements apikey.Store.
func (k lazyKeys) List(ctx context.Context, subject string) ([]apikey.Record, error) {
	ks, err := k.keys(ctx)
	if err != nil {
		return nil, err
	}
	return ks.List(ctx, subject)
}

// Revoke implements apikey.Store.
func (k lazyKeys) Revoke(ctx context.Context, id string, at time.Time) (apikey.Record, error) {
	ks, err := k.keys(ctx)
	if err != nil {
		return apikey.Record{}, err
	}
	return ks.Revoke(ctx, id, at)
}

// TouchLastUsed implements apikey.Store.
func (k lazyKeys) TouchLastUsed(ctx context.Context, used map[string]time.Time) error {
	ks, err := k.keys(ctx)
	if err != nil {
		return err
	}
	return ks.TouchLastUsed(ctx, used)
}

// Export implements apikey.Store.
func (k lazyKeys) Export(ctx context.Context, fn func(apikey.Record) error) error {
	ks, err := k.keys(ctx)
	if err != nil {
		return err
	}
	return ks.Export(ctx, fn)
}

// Import implements apikey.Store.
func (k lazyKeys) Import(ctx context.Context, rs []apikey.Record) error {
	ks, err := k.keys(ctx)
	if err != nil {
		return err
	}
	return ks.Import(ctx, rs)
}

// WatchAPIKeys is Store.WatchAPIKeys once the store is open (its first
// onReset comes when the listening connection first listens); stop ends
// it, or the wait for the store.
func (l *Lazy) WatchAPIKeys(onChange func(id string), onReset func()) (stop func()) {
	ctx, cancel := context.WithCancel(l.ctx)
	done := make(chan struct{})
	var mu sync.Mutex
	var inner func()
	go func() {
		defer close(done)
		select {
		case <-l.ready:
		case <-ctx.Done():
			return
		}
		l.mu.Lock()
		s := l.store
		l.mu.Unlock()
		mu.Lock()
		inner = s.WatchAPIKeys(onChange, onReset)
		mu.Unlock()
	}()
	return func() {
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		if inner != nil {
			inner()
		}
	}
}

// ListenerHealth is the state of the listening connection (zero before
// the store is open).
func (l *Lazy) ListenerHealth() pglisten.Health {
	select {
	case <-l.ready:
	default:
		return pglisten.Health{}
	}
	l.mu.Lock()
	s := l.store
	l.mu.Unlock()
	return s.ListenerHealth()
}

// Interface guards
var _ apikey.Store = lazyKeys{}

// KeyPollHealth is the state of the poll of changed keys (zero before the
// store is open).
func (l *Lazy) KeyPollHealth() PollHealth {
	select {
	case <-l.ready:
	default:
		return PollHealth{}
	}
	l.mu.Lock()
	s := l.store
	l.mu.Unlock()
	return s.KeyPollHealth()
}
