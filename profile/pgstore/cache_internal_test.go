package pgstore

import (
	"fmt"
	"math"
	"runtime"
	"testing"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

func cached(c *profileCache, user string) (uint64, bool) {
	p, ok := c.peek(user)
	return p.Version, ok
}

// TestCacheFillRacesAnnouncement: a read that began before the
// announcement of a newer version, and returns the older one, is not
// stored; one that returns the announced version is.
func TestCacheFillRacesAnnouncement(t *testing.T) {
	c := newProfileCache(10)
	f := c.begin("u")
	c.invalidate("u", 6)
	c.finish(f, profile.Profile{UserID: "u", Version: 5}, true)
	if _, ok := cached(c, "u"); ok {
		t.Fatal("version 5 stored after the announcement of 6")
	}
	f = c.begin("u")
	c.invalidate("u", 6)
	c.finish(f, profile.Profile{UserID: "u", Version: 6}, true)
	if v, ok := cached(c, "u"); !ok || v != 6 {
		t.Fatalf("version 6 not stored: %d %v", v, ok)
	}
	// its own announcement leaves it in place; an older one too
	c.invalidate("u", 6)
	c.invalidate("u", 2)
	if v, ok := cached(c, "u"); !ok || v != 6 || c.invalidations.Load() != 0 {
		t.Fatalf("entry after announcements of its own version and an older one: %d %v", v, ok)
	}
	c.invalidate("u", 7)
	if _, ok := cached(c, "u"); ok || c.invalidations.Load() != 1 {
		t.Fatal("version 6 kept after the announcement of 7")
	}
}

// TestCacheKeepsNewerEntry: a slow read bringing an older version never
// replaces a newer entry (a node's own write stored meanwhile).
func TestCacheKeepsNewerEntry(t *testing.T) {
	c := newProfileCache(10)
	slow := c.begin("u")
	write := c.begin("u")
	c.finish(write, profile.Profile{UserID: "u", Version: 4}, true)
	c.finish(slow, profile.Profile{UserID: "u", Version: 3}, true)
	if v, _ := cached(c, "u"); v != 4 {
		t.Fatalf("cached version %d, want 4", v)
	}
	if len(c.fills) != 0 {
		t.Fatalf("fills left: %v", c.fills)
	}
}

// TestCacheResetRefusesFillsInFlight: a reset (changes may have been
// missed) drops every entry, and what reads in flight bring is not
// stored, whatever its version.
func TestCacheResetRefusesFillsInFlight(t *testing.T) {
	c := newProfileCache(10)
	c.finish(c.begin("a"), profile.Profile{UserID: "a", Version: 1}, true)
	f := c.begin("b")
	c.reset()
	c.finish(f, profile.Profile{UserID: "b", Version: 9}, true)
	if c.len() != 0 {
		t.Fatalf("%d entries after a reset", c.len())
	}
	c.finish(c.begin("b"), profile.Profile{UserID: "b", Version: 9}, true)
	if c.len() != 1 {
		t.Fatal("a read begun after the reset was not stored")
	}
}

// TestCacheBoundedAndCountsEvictions: the cache holds at most its size;
// entries dropped for room are evictions, those dropped as stale are not.
func TestCacheBoundedAndCountsEvictions(t *testing.T) {
	c := newProfileCache(3)
	for i := range 5 {
		c.finish(c.begin(fmt.Sprint(i)), profile.Profile{Version: 1}, true)
	}
	c.invalidate("4", 2)
	if c.len() != 2 || c.evictions.Load() != 2 || c.invalidations.Load() != 1 {
		t.Fatalf("len %d, evictions %d, invalidations %d", c.len(), c.evictions.Load(), c.invalidations.Load())
	}
	if newProfileCache(-1) != nil || newProfileCache(0).capacity() != DefaultCache {
		t.Fatal("sizes: negative is no cache, 0 the default")
	}
}

// BenchmarkProfileCacheMemory fills a cache with 100,000 profiles of
// typical field lengths and reports the heap it holds per entry.
func BenchmarkProfileCacheMemory(b *testing.B) {
	const n = 100_000
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c := newProfileCache(n)
		for i := range n {
			id := fmt.Sprintf("auth0|%024d", i)
			c.finish(c.begin(id), profile.Profile{UserID: id, UserName: fmt.Sprintf("user.name.%06d", i),
				Email: fmt.Sprintf("user.name.%06d@example.com", i), FirstName: "Firstname", LastName: "Lastname-Lastname", Version: 3}, true)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if c.len() != n {
			b.Fatalf("%d entries", c.len())
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/entry")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB/100k")
		runtime.KeepAlive(c)
	}
}

// FuzzParseAnnouncement: any payload heard on the channel (another
// build's, or a NOTIFY by hand) is read without a panic, and what the
// store sends reads back as sent.
func FuzzParseAnnouncement(f *testing.F) {
	f.Add("7 1764979200000000 auth0|alice smith")
	f.Add(resetAnnouncement)
	f.Add("")
	f.Add("18446744073709551616 1 u")
	f.Add("1 -1 u")
	f.Add("1  u")
	f.Fuzz(func(t *testing.T, payload string) {
		user, version, sent, ok := parseAnnouncement(payload)
		if !ok {
			return
		}
		if user == "" {
			t.Fatalf("%q read as an empty user", payload)
		}
		u2, v2, s2, ok2 := parseAnnouncement(formatAnnouncement(user, version, sent))
		if !ok2 || u2 != user || v2 != version || !s2.Equal(sent) {
			t.Fatalf("%q: %q %d %v does not read back: %q %d %v %v", payload, user, version, sent, u2, v2, s2, ok2)
		}
	})
}

// TestNotificationLagSumNeverWraps: forged notifications each count an
// hour of lag at most, and millions of them leave the sum at its largest
// figure rather than wrapping it negative.
func TestNotificationLagSumNeverWraps(t *testing.T) {
	s := &Store{cache: newProfileCache(10)}
	const n = 2_600_000 // an hour each: more than an int64 of nanoseconds
	for range n {
		s.heardProfile("1 0 u")
	}
	st := s.CacheStats()
	if st.Notifications != n || st.NotificationLagSum != math.MaxInt64 {
		t.Fatalf("after %d notifications dated 1970: %d notifications, lag sum %v", n, st.Notifications, st.NotificationLagSum)
	}
}
