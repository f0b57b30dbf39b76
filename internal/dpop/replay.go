package dpop

import (
	"container/heap"
	"crypto/sha256"
	"sync"
)

// DefaultReplayCacheSize is how many proofs a ReplayCache remembers when
// no size is configured: about 1,100 proofs a second sustained over the
// default window of 90 s (60 s plus 30 s leeway), in at most 100 bytes an
// entry (about 10 MB).
const DefaultReplayCacheSize = 100_000

// ReplayCache remembers the proofs used within their iat window, so that
// each is accepted once (RFC 9449 §11.1). It holds at most max entries:
// a 32-byte key (the SHA-256 of the key thumbprint, htu and jti) and the
// proof's iat, in a map and a heap ordered by iat.
//
// An entry leaves when its iat falls out of the window: such a proof is
// refused as stale anyway. When the cache is full of proofs still in
// their window, there are two choices and both are bad: refusing every new
// proof makes a flood of proofs (from a client holding a valid bound
// token) deny service to everyone, and evicting an entry makes its proof
// usable once more. This cache evicts the oldest proof and raises a floor
// to its iat, and from then on refuses every proof whose iat is not above
// the floor. A replay is never accepted: every proof still in its window
// whose iat is above the floor is remembered (entries go in iat order).
// What a flood costs is that the window shrinks from its old end to the
// newest iats, so clients that make a fresh proof for each request, as RFC
// 9449 asks, keep working; only more than max proofs with the very same
// iat would refuse fresh proofs too. The floor also covers a wall clock
// that steps back: an entry dropped as stale leaves the floor at its iat.
//
// A ReplayCache is safe for concurrent use, and may be shared by
// verifiers that use the same window (so a proof stays used across a
// config reload).
type ReplayCache struct {
	mu    sync.Mutex
	max   int
	seen  map[[sha256.Size]byte]struct{}
	order entries // min-heap by iat
	floor float64 // every proof with iat <= floor is refused
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
	return &ReplayCache{max: max, seen: make(map[[sha256.Size]byte]struct{})}
}

// Len is how many proofs the cache remembers.
func (c *ReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// Max is the most proofs it remembers.
func (c *ReplayCache) Max() int { return c.max }

// replay outcomes of use
const (
	useOK = iota
	useReplayed
	useTooOld // at or below the floor: possibly a forgotten proof
)

// use records a proof. horizon is the oldest iat the caller's window still
// accepts: older entries are dropped first.
func (c *ReplayCache) use(key [sha256.Size]byte, iat, horizon float64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.order) > 0 && c.order[0].iat < horizon {
		c.forget()
	}
	if _, ok := c.seen[key]; ok {
		return useReplayed
	}
	if iat <= c.floor {
		return useTooOld
	}
	if len(c.order) >= c.max {
		// the newcomer is the oldest: refusing it loses nothing remembered
		if iat <= c.order[0].iat {
			return useTooOld
		}
		c.forget()
	}
	c.seen[key] = struct{}{}
	heap.Push(&c.order, entry{key: key, iat: iat})
	return useOK
}

// forget drops the oldest entry and raises the floor to its iat.
func (c *ReplayCache) forget() {
	e := heap.Pop(&c.order).(entry)
	delete(c.seen, e.key)
	if e.iat > c.floor {
		c.floor = e.iat
	}
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
