package dpop

import (
	"container/heap"
	"crypto/sha256"
	"sync"
)

// DefaultReplayCacheSize is how many proofs a ReplayCache remembers when
// no size is configured: about 1,100 proofs a second sustained over the
// default window of 90 s (60 s plus 30 s leeway), in about 100 bytes an
// entry when few keys hold them (about 10 MB), up to about 500 when each
// entry is another key's (about 50 MB).
const DefaultReplayCacheSize = 100_000

// ReplayCache remembers the proofs used within their iat window, so that
// each is accepted once (RFC 9449 §11.1). It holds at most max entries,
// grouped by the proof key's thumbprint: each key's proofs are a set of
// 32-byte replay keys (the SHA-256 of thumbprint, htu and jti) and a heap
// of their iats.
//
// An entry leaves when its iat falls out of the window: such a proof is
// refused as stale anyway. When the cache is full of proofs still in
// their window, it must either refuse the newcomer (so a flood denies
// service to everyone) or forget an entry (which would make that proof
// usable once more). It forgets, from the key that holds the most proofs,
// that key's oldest one, and raises that key's floor to its iat: from then
// on a proof of that key whose iat is not above its floor is refused. A
// replay is never accepted, and what a flood costs falls on the flooding
// key alone: its window shrinks from the old end, while every other
// client's proofs (and the flooder's own fresh ones, as RFC 9449 asks)
// keep passing, whatever iat the flood's proofs claim. Only when every key
// holds a single proof (as many distinct bound keys as the cache holds, all
// within the window) is a newcomer refused instead.
//
// The proofs of a wall clock that steps back stay refused too: an entry
// dropped as stale raises a floor common to all keys to its iat, which is
// already older than the window.
//
// A ReplayCache is safe for concurrent use, and may be shared by
// verifiers that use the same window (so a proof stays used across a
// config reload).
type ReplayCache struct {
	mu    sync.Mutex
	max   int
	n     int                   // entries in all keys
	keys  map[string]*keyProofs // by thumbprint
	big   *keyProofs            // a key holding the most proofs, kept loosely
	floor float64               // every proof with iat <= floor is refused
	swept float64               // the horizon of the last sweep
}

// keyProofs are the remembered proofs of one key.
type keyProofs struct {
	thumb string
	seen  map[[sha256.Size]byte]struct{}
	order entries // min-heap by iat
	floor float64 // this key's proofs with iat <= floor are refused
}

type entry struct {
	key [sha256.Size]byte
	iat float64
}

// NewReplayCache is a cache of at most max proofs (DefaultReplayCacheSize
// when max <= 0).
func NewReplayCache(max int) *ReplayCache {
	if max <= 0 {
		max = DefaultReplayCacheSize
	}
	return &ReplayCache{max: max, keys: make(map[string]*keyProofs)}
}

// Len is how many proofs the cache remembers.
func (c *ReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// Max is the most proofs it remembers.
func (c *ReplayCache) Max() int { return c.max }

// replay outcomes of use
const (
	useOK = iota
	useReplayed
	useTooOld // at or below a floor: possibly a forgotten proof
)

// use records a proof of the key thumb. horizon is the oldest iat the
// caller's window still accepts: older entries are dropped.
func (c *ReplayCache) use(thumb string, key [sha256.Size]byte, iat, horizon float64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.keys[thumb]
	if k != nil {
		c.expire(k, horizon)
		k = c.keys[thumb] // expire drops a key left with nothing
	}
	if k != nil {
		if _, ok := k.seen[key]; ok {
			return useReplayed
		}
		if iat <= k.floor {
			return useTooOld
		}
	}
	if iat <= c.floor {
		return useTooOld
	}
	if c.n >= c.max {
		c.sweep(horizon)
	}
	if c.n >= c.max {
		victim := c.largest()
		switch {
		case len(victim.order) <= 1:
			// every key holds one proof: forgetting one would let it be
			// replayed, and no key stands out as the flood
			return useTooOld
		case victim == k && iat <= k.order[0].iat:
			// the newcomer would be its own key's oldest: refusing it
			// forgets nothing
			return useTooOld
		}
		c.forget(victim)
	}
	if k == nil {
		k = &keyProofs{thumb: thumb, seen: make(map[[sha256.Size]byte]struct{})}
		c.keys[thumb] = k
	}
	k.seen[key] = struct{}{}
	heap.Push(&k.order, entry{key: key, iat: iat})
	c.n++
	if c.big == nil || len(k.order) > len(c.big.order) {
		c.big = k
	}
	return useOK
}

// expire drops k's entries older than horizon, raising the common floor
// to their iat, and k itself when it is left empty.
func (c *ReplayCache) expire(k *keyProofs, horizon float64) {
	for len(k.order) > 0 && k.order[0].iat < horizon {
		e := heap.Pop(&k.order).(entry)
		delete(k.seen, e.key)
		c.n--
		c.floor = max(c.floor, e.iat)
	}
	if len(k.order) == 0 {
		// its floor was at most the iat of an entry it held, all now
		// older than the horizon: nothing of it is needed any more
		delete(c.keys, k.thumb)
		if c.big == k {
			c.big = nil
		}
	}
}

// sweep expires every key, at most once per second of horizon: a full
// cache would otherwise walk all keys on each proof.
func (c *ReplayCache) sweep(horizon float64) {
	if horizon < c.swept+1 {
		return
	}
	c.swept = horizon
	for _, k := range c.keys {
		c.expire(k, horizon)
	}
}

// largest is a key holding the most proofs: the one use last saw grow
// past the others, checked and found anew when it no longer leads.
func (c *ReplayCache) largest() *keyProofs {
	if c.big != nil && len(c.big.order) > 1 {
		return c.big
	}
	c.big = nil
	for _, k := range c.keys {
		if c.big == nil || len(k.order) > len(c.big.order) {
			c.big = k
		}
	}
	return c.big
}

// forget drops k's oldest entry and raises k's floor to its iat. k holds
// more than one entry, so it stays.
func (c *ReplayCache) forget(k *keyProofs) {
	e := heap.Pop(&k.order).(entry)
	delete(k.seen, e.key)
	c.n--
	k.floor = max(k.floor, e.iat)
}

type entries []entry

func (h entries) Len() int           { return len(h) }
func (h entries) Less(i, j int) bool { return h[i].iat < h[j].iat }
func (h entries) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *entries) Push(x any)        { *h = append(*h, x.(entry)) }
func (h *entries) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
