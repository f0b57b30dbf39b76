package apikey

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
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
	// CacheSize bounds the records kept, and apart from them the unknown
	// hashes kept. Default 10000.
	CacheSize int
	// MaxReads bounds the store reads in progress at once. Default 8.
	MaxReads int
	// Timeout bounds a wait for a read slot and the read together, and
	// each write of last-used times. Default 2s.
	Timeout time.Duration
	// FlushEvery is how often last-used times are written. Default 1m;
	// whatever it is, a key's time is written at most once per minute of
	// the clock, since times are kept at minute precision.
	FlushEvery time.Duration
	// Observer is told outcomes, cache lookups and store reads; nil for
	// none.
	Observer Observer
}

// Keyring verifies presented keys against a Store, with the caches and
// bounds that keep a spray of random keys off the store: found records
// (usable or not) are trusted for MaxAge, unknown hashes answered for
// NegativeTTL, concurrent requests with one new key make one read, and at
// most MaxReads reads run at once. Store errors are never cached. It
// keeps the last-used time of each key in memory, at minute precision,
// and writes them in the background at most once a minute per key. One
// Keyring serves one store; it is safe for concurrent use. Close it.
type Keyring struct {
	store Store
	opts  Options
	obs   Observer
	dummy Record
	slots chan struct{} // a token per read in progress

	mu      sync.Mutex
	found   *simplelru.LRU[Hash, foundEntry]
	unknown *simplelru.LRU[Hash, time.Time] // hash -> end of its negative answer
	ids     map[string]Hash                 // id -> hash, of the records in found
	flights map[Hash]*flight
	gen     uint64 // counts Forget and ForgetAll: a read begun before one is not cached
	used    lastUsed
}

// foundEntry is a record read at at.
type foundEntry struct {
	rec Record
	at  time.Time
}

// flight is one store read that the requests with one hash wait for.
type flight struct {
	done chan struct{}
	gen  uint64 // the keyring's gen when it began
	rec  Record
	err  error // nil, ErrNotFound, or an error wrapping ErrUnavailable
}

// NewKeyring makes the keyring of store. No goroutine runs until a key
// is first found valid.
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
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = time.Minute
	}
	k := &Keyring{store: store, opts: opts, obs: opts.Observer, dummy: Record{Kind: KindUser},
		slots: make(chan struct{}, opts.MaxReads), ids: map[string]Hash{}, flights: map[Hash]*flight{}}
	// the size is positive, so NewLRU cannot fail
	k.found, _ = simplelru.NewLRU(opts.CacheSize, func(h Hash, e foundEntry) {
		if k.ids[e.rec.ID] == h {
			delete(k.ids, e.rec.ID)
		}
	})
	k.unknown, _ = simplelru.NewLRU[Hash, time.Time](opts.CacheSize, nil)
	k.used.init()
	return k
}

// Verify returns the record of a usable key. Any bad key gets ErrInvalid;
// a store that cannot answer, an error wrapping ErrUnavailable. A key
// whose record is unknown costs the same checks as a known one.
func (k *Keyring) Verify(ctx context.Context, key string) (Record, error) {
	if !Presentable(key) {
		k.verified(OutcomeInvalid)
		return Record{}, ErrInvalid
	}
	h := HashKey(key)
	rec, found, err := k.lookup(ctx, h)
	if err != nil {
		k.verified(OutcomeUnavailable)
		return Record{}, err
	}
	if !found {
		rec = k.dummy // the same checks on a record that lets no one in
	}
	now := k.opts.Now()
	same := subtle.ConstantTimeCompare(rec.Hash[:], h[:]) == 1
	if !found || !same || !rec.Usable(now) {
		k.verified(OutcomeInvalid)
		return Record{}, ErrInvalid
	}
	k.markUsed(rec.ID, now)
	if rec.Kind == KindService {
		k.verified(OutcomeValidService)
	} else {
		k.verified(OutcomeValidUser)
	}
	return rec, nil
}

// lookup finds the record of h in the caches or the store: found false
// when the store holds none; err only when the store cannot answer.
func (k *Keyring) lookup(ctx context.Context, h Hash) (Record, bool, error) {
	now := k.opts.Now()
	k.mu.Lock()
	if e, ok := k.found.Get(h); ok {
		if now.Sub(e.at) < k.opts.MaxAge {
			k.mu.Unlock()
			k.cacheLookup(LookupHit)
			return e.rec, true, nil
		}
		k.found.Remove(h)
	}
	if until, ok := k.unknown.Get(h); ok {
		if now.Before(until) {
			k.mu.Unlock()
			k.cacheLookup(LookupNegativeHit)
			return Record{}, false, nil
		}
		k.unknown.Remove(h)
	}
	// a read begun before a Forget is not joined: it may be stale
	f, leader := k.flights[h], false
	if f == nil || f.gen != k.gen {
		f, leader = &flight{done: make(chan struct{}), gen: k.gen}, true
		k.flights[h] = f
	}
	k.mu.Unlock()
	k.cacheLookup(LookupMiss)
	if leader {
		k.read(ctx, h, f)
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return Record{}, false, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
	switch {
	case f.err == nil:
		return f.rec, true, nil
	case errors.Is(f.err, ErrNotFound):
		return Record{}, false, nil
	}
	return Record{}, false, f.err
}

// read is the flight f: a read slot, then the store read, within Timeout
// (the first caller's context may end; the others still wait for the
// read, so it runs under Timeout alone). Its answer is cached unless a
// Forget came meanwhile; an error never is.
func (k *Keyring) read(ctx context.Context, h Hash, f *flight) {
	defer close(f.done)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), k.opts.Timeout)
	defer cancel()
	start := time.Now()
	select {
	case k.slots <- struct{}{}:
	case <-rctx.Done():
		k.storeRead(ReadBusy, time.Since(start))
		f.err = fmt.Errorf("%w: no store read slot free within %v", ErrUnavailable, k.opts.Timeout)
		k.endFlight(h, f)
		return
	}
	rec, err := k.store.Lookup(rctx, h)
	<-k.slots
	switch {
	case err == nil && rec.Hash != h:
		err = fmt.Errorf("%w: the store answered another hash", ErrUnavailable)
		k.storeRead(ReadFailed, time.Since(start))
	case err == nil:
		k.storeRead(ReadFound, time.Since(start))
	case errors.Is(err, ErrNotFound):
		err = ErrNotFound
		k.storeRead(ReadNotFound, time.Since(start))
	case errors.Is(err, ErrUnavailable):
		k.storeRead(ReadFailed, time.Since(start))
	default:
		err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		k.storeRead(ReadFailed, time.Since(start))
	}
	f.rec, f.err = rec, err
	k.endFlight(h, f)
}

// endFlight removes f and caches its answer.
func (k *Keyring) endFlight(h Hash, f *flight) {
	now := k.opts.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.flights[h] == f {
		delete(k.flights, h)
	}
	if k.gen != f.gen {
		return // a Forget came during the read: its answer may be stale
	}
	switch {
	case f.err == nil:
		k.unknown.Remove(h)
		k.found.Add(h, foundEntry{rec: f.rec, at: now})
		k.ids[f.rec.ID] = h
	case errors.Is(f.err, ErrNotFound):
		k.unknown.Add(h, now.Add(k.opts.NegativeTTL))
	}
}

// Forget drops what the keyring holds of the key with id, so that its
// next use reads the store (a revocation seen on this node or notified
// by another). A read in progress is not cached.
func (k *Keyring) Forget(id string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.gen++
	if h, ok := k.ids[id]; ok {
		k.found.Remove(h)
		return
	}
	// an id never seen here may be a key just created or imported, whose
	// hash the unknown-key cache may hold (a client trying it a moment
	// early): drop those answers, not to refuse a new key for NegativeTTL
	k.unknown.Purge()
}

// ForgetAll drops everything the keyring holds (a notification connection
// lost: changes may have been missed; or keys imported, whose hashes may
// be among the unknown).
func (k *Keyring) ForgetAll() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.gen++
	k.found.Purge()
	k.unknown.Purge()
	clear(k.ids)
}

func (k *Keyring) verified(o Outcome) {
	if k.obs != nil {
		k.obs.Verified(o)
	}
}

func (k *Keyring) cacheLookup(l Lookup) {
	if k.obs != nil {
		k.obs.CacheLookup(l)
	}
}

func (k *Keyring) storeRead(r Read, took time.Duration) {
	if k.obs != nil {
		k.obs.StoreRead(r, took)
	}
}
