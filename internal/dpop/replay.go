package dpop

import (
	"container/heap"
	"container/list"
	"crypto/sha256"
	"sync"
	"time"
)

// DefaultReplayCacheSize is how many proofs a ReplayCache remembers when
// no size is configured: about 1,100 proofs a second sustained over the
// default window of 90 s (60 s plus 30 s leeway), in about 100 bytes an
// entry when few keys hold them (about 10 MB), up to about 500 when each
// entry is another key's (about 50 MB).
const DefaultReplayCacheSize = 100_000

// KeptPerKey is how many of its proofs a key always keeps when the cache
// is full: others' proofs never make it forget more. A client is refused
// because of a flood only if it makes more proofs within one second of iat
// than it holds (its proofs within the window, at least this many when it
// had them).
const KeptPerKey = 16

// ReplayCache remembers the proofs used within their iat window, so that
// each is accepted once (RFC 9449 §11.1). It holds at most max entries,
// grouped by the proof key's thumbprint: each key's proofs are a set of
// 32-byte replay keys (the SHA-256 of thumbprint, htu and jti) and a heap
// of their iats.
//
// Entries are kept for the longest window of the verifiers that use the
// cache (SetWindow, New), so that each verifier's window is its own: a
// proof used through any of them is remembered as long as any of them
// would accept it. An entry leaves once its iat falls out of that window,
// raising a floor common to all keys to its iat: a proof not newer than
// it is refused as too old to be checked, so neither a verifier with a
// longer window added later nor a wall clock that steps back can revive a
// forgotten proof.
//
// When the cache is full of proofs still in their window, it must refuse
// the newcomer or forget an entry; forgetting the oldest entry of a key
// raises that key's floor to its iat (its proofs not newer than it are
// refused from then on), so a replay is never accepted either way. Which
// it does keeps a flood on the flooder:
//
//   - a key holding more than KeptPerKey proofs (one key's flood) forgets
//     its oldest for any newcomer, the largest such key first;
//   - else a key with proofs in the cache pays for its new proof with its
//     own oldest (refused if that is not older than the new one);
//   - else the newcomer, a key with no proof in the window, is refused.
//
// So a flood spread over many keys, each below KeptPerKey, can keep new
// keys out while it keeps the cache full, but never makes a key with
// history forget anything: that key goes on at its own pace (fewer proofs
// within a second of iat than it holds), whatever iats the flood claims.
//
// A ReplayCache is safe for concurrent use and may be shared by verifiers
// with different windows.
type ReplayCache struct {
	mu     sync.Mutex
	max    int
	window float64               // seconds entries are kept, the longest window
	n      int                   // entries in all keys
	keys   map[string]*keyProofs // by thumbprint
	big    *keyProofs            // a key holding the most proofs, kept loosely
	over   list.List             // the keys holding more than KeptPerKey
	floor  float64               // every proof with iat <= floor is refused
	swept  float64               // the horizon of the last sweep
}

// keyProofs are the remembered proofs of one key.
type keyProofs struct {
	thumb string
	seen  map[[sha256.Size]byte]struct{}
	order entries       // min-heap by iat
	floor float64       // this key's proofs with iat <= floor are refused
	over  *list.Element // in ReplayCache.over while it holds more than KeptPerKey
}

type entry struct {
	key [sha256.Size]byte
	iat float64
}

// NewReplayCache is a cache of at most max proofs (DefaultReplayCacheSize
// when max <= 0), kept for DefaultWindow until a verifier says otherwise.
func NewReplayCache(max int) *ReplayCache {
	if max <= 0 {
		max = DefaultReplayCacheSize
	}
	return &ReplayCache{max: max, window: DefaultWindow.Seconds(), keys: make(map[string]*keyProofs)}
}

// Len is how many proofs the cache remembers.
func (c *ReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// Max is the most proofs it takes in.
func (c *ReplayCache) Max() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.max
}

// Window is how long entries are kept after their iat.
func (c *ReplayCache) Window() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Duration(c.window * float64(time.Second))
}

// Resize sets the most proofs the cache takes in (DefaultReplayCacheSize
// when max <= 0). A smaller size forgets nothing: the entries above it
// leave as their window ends, and until then the cache is full.
func (c *ReplayCache) Resize(max int) {
	if max <= 0 {
		max = DefaultReplayCacheSize
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.max = max
}

// SetWindow sets how long entries are kept after their iat: the longest
// past window (Window plus Leeway) of the verifiers that use the cache. A
// shorter one drops entries sooner, raising the common floor, so their
// proofs stay refused (as too old to be checked) under any later window.
func (c *ReplayCache) SetWindow(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.window = d.Seconds()
}

// keepAtLeast makes the cache keep entries for d at least.
func (c *ReplayCache) keepAtLeast(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.window = max(c.window, d.Seconds())
}

// replay outcomes of use
const (
	useOK = iota
	useReplayed
	useTooOld // at or below a floor: possibly a forgotten proof
	useFull   // a new key, and the cache is full of keys that keep theirs
)

// use records a proof of the key thumb at the time now (unix seconds).
func (c *ReplayCache) use(thumb string, key [sha256.Size]byte, iat, now float64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	horizon := now - c.window
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
		c.sweep(horizon) // k, expired above, stays
	}
	if c.n >= c.max {
		victim := c.heaviest()
		switch {
		case victim == nil && k == nil:
			return useFull
		case victim == nil:
			victim = k // a key with history pays for its own proof
		}
		if victim == k && iat <= k.order[0].iat {
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
	if len(k.order) > KeptPerKey && k.over == nil {
		k.over = c.over.PushBack(k)
	}
	if c.big == nil || len(k.order) > len(c.big.order) {
		c.big = k
	}
	return useOK
}

// expire drops k's entries older than horizon, raising the common floor
// to their iat, and k itself when it is left empty.
func (c *ReplayCache) expire(k *keyProofs, horizon float64) {
	for len(k.order) > 0 && k.order[0].iat < horizon {
		e := c.pop(k)
		c.floor = max(c.floor, e.iat)
	}
	if len(k.order) == 0 {
		// its floor was at most the iat of an entry it held (forget takes
		// the oldest), all now older than the horizon: nothing of it is
		// needed any more
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

// heaviest is a key holding more than KeptPerKey proofs, the one use last
// saw grow past the others when it still does, nil when none does.
func (c *ReplayCache) heaviest() *keyProofs {
	if c.big != nil && len(c.big.order) > KeptPerKey {
		return c.big
	}
	if e := c.over.Front(); e != nil {
		c.big = e.Value.(*keyProofs)
		return c.big
	}
	return nil
}

// forget drops k's oldest entry and raises k's floor to its iat; k is
// kept, its floor needed (use adds to it, or it held more than
// KeptPerKey).
func (c *ReplayCache) forget(k *keyProofs) {
	e := c.pop(k)
	k.floor = max(k.floor, e.iat)
}

// pop takes k's oldest entry out of the cache.
func (c *ReplayCache) pop(k *keyProofs) entry {
	e := heap.Pop(&k.order).(entry)
	delete(k.seen, e.key)
	c.n--
	if k.over != nil && len(k.order) <= KeptPerKey {
		c.over.Remove(k.over)
		k.over = nil
	}
	return e
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
