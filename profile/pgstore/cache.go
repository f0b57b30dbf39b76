package pgstore

import (
	"math"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// A node's cache of profiles, kept coherent with the database by
// versions: every committed change of a profile raises its version (an
// update sets cur+1, an import version+1), so a change is fully named by
// its user and its version, and an entry is stale exactly when some
// committed version of its profile is higher.
//
// Each write on any node announces (user, version) after it commits, by
// notification and, should that be lost, through the poll of changed
// rows (profiles_watch.go); both call invalidate, which drops an entry
// older than the announced version. Reads and writes that fill the cache
// race with those announcements: a read of the database may return
// version 5 while the announcement of 6 arrives before it is stored. So a
// fill is registered (begin) before it reads or writes, every
// announcement raises its floor, and finish stores the result only if it
// is not below that floor. A node's own writes are stored the same way:
// it reads them at once, and their own announcement, naming the version
// the entry already has, leaves them in place.
//
// Only profiles that exist are cached; a missing profile is read from
// the database each time (the route then creates it, a write).

// profileCache is a bounded LRU of profiles by user ID.
type profileCache struct {
	mu    sync.Mutex
	lru   *simplelru.LRU[string, profile.Profile]
	fills map[string]*cacheFill
	size  int
	// dropping is set while invalidate or reset removes entries, which
	// the LRU reports through the same callback as evictions
	dropping bool

	hits, misses, evictions, invalidations atomic.Uint64
}

// cacheFill is the reads and writes of one user in flight: what they
// bring is stored only if its version is at least floor.
type cacheFill struct {
	user  string
	floor uint64
	n     int // fills sharing it
}

// newProfileCache is a cache of size entries; nil (no cache) when size
// is negative.
func newProfileCache(size int) *profileCache {
	if size < 0 {
		return nil
	}
	if size == 0 {
		size = DefaultCache
	}
	c := &profileCache{fills: map[string]*cacheFill{}, size: size}
	// the size is positive, so NewLRU cannot fail
	c.lru, _ = simplelru.NewLRU(size, func(string, profile.Profile) {
		if !c.dropping {
			c.evictions.Add(1)
		}
	})
	return c
}

// get is the cached profile of user, counting the hit or the miss.
func (c *profileCache) get(user string) (profile.Profile, bool) {
	c.mu.Lock()
	p, ok := c.lru.Get(user)
	c.mu.Unlock()
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
	return p, ok
}

// peek is the cached profile of user, without counting or refreshing it.
func (c *profileCache) peek(user string) (profile.Profile, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Peek(user)
}

// begin registers a fill of user, before its read or write starts.
func (c *profileCache) begin(user string) *cacheFill {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.fills[user]
	if f == nil {
		f = &cacheFill{user: user}
		c.fills[user] = f
	}
	f.n++
	return f
}

// finish ends a fill: p, when found, is stored unless an announcement of
// a newer version came since begin, or the cache holds a newer one.
func (c *profileCache) finish(f *cacheFill, p profile.Profile, found bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.n--; f.n == 0 && c.fills[f.user] == f {
		delete(c.fills, f.user)
	}
	if !found || p.Version < f.floor {
		return
	}
	if old, ok := c.lru.Peek(f.user); ok && old.Version >= p.Version {
		return
	}
	c.lru.Add(f.user, p)
}

// invalidate applies the announcement that user's profile reached
// version: an older entry is dropped, and fills in flight must bring at
// least that version to be stored. It reports whether an entry was
// dropped.
func (c *profileCache) invalidate(user string, version uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := c.fills[user]; f != nil && f.floor < version {
		f.floor = version
	}
	if old, ok := c.lru.Peek(user); ok && old.Version < version {
		c.dropping = true
		c.lru.Remove(user)
		c.dropping = false
		c.invalidations.Add(1)
		return true
	}
	return false
}

// reset drops every entry and every fill in flight: changes may have
// been missed (the listening connection was down, or a poll found more
// changes than the cache holds).
func (c *profileCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.invalidations.Add(uint64(c.lru.Len()))
	c.dropping = true
	c.lru.Purge()
	c.dropping = false
	for _, f := range c.fills {
		f.floor = math.MaxUint64
	}
}

// len is how many profiles the cache holds; capacity the most it holds.
func (c *profileCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

func (c *profileCache) capacity() int { return c.size }
