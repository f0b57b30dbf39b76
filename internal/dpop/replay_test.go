package dpop

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// useH is use with the cache's horizon (the oldest iat it keeps) at
// horizon.
func useH(c *ReplayCache, thumb string, key [sha256.Size]byte, iat, horizon float64) int {
	return c.use(thumb, key, iat, horizon+c.window)
}

func replayKey(i int) [sha256.Size]byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	return sha256.Sum256(b[:])
}

// TestReplayCacheBounded: 100,000 distinct proofs, all within their
// window, never make the cache hold more than its bound, nor its memory
// grow with them; and no proof still remembered is accepted twice.
func TestReplayCacheBounded(t *testing.T) {
	const max = 1000
	c := NewReplayCache(max)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range 100_000 {
		// iats rise slowly, as a flood's do: 10 proofs a "second"
		iat := 1_700_000_000 + float64(i/10)
		if r := useH(c, "k", replayKey(i), iat, 0); r != useOK {
			t.Fatalf("proof %d refused (%d)", i, r)
		}
		if c.Len() > max || c.n > max {
			t.Fatalf("after %d proofs the cache holds %d entries, bound %d", i+1, c.Len(), max)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 1<<20 {
		t.Fatalf("heap grew by %d bytes for a cache of %d entries", grown, max)
	}
	// the last proofs are remembered: replays refused
	for i := 100_000 - max; i < 100_000; i++ {
		if r := useH(c, "k", replayKey(i), 1_700_000_000+float64(i/10), 0); r != useReplayed {
			t.Fatalf("replay of remembered proof %d: %d", i, r)
		}
	}
	// a forgotten proof is refused too: its iat is not above the floor
	if r := useH(c, "k", replayKey(0), 1_700_000_000, 0); r != useTooOld {
		t.Fatalf("replay of an evicted proof: %d, want refused as too old", r)
	}
	// a fresh proof still passes
	if r := useH(c, "k", replayKey(-1), 1_700_000_000+10_001, 0); r != useOK {
		t.Fatalf("fresh proof after the flood: %d", r)
	}
}

// TestReplayCacheExpiry: entries leave when their iat leaves the window,
// and the floor follows them, so a clock that steps back cannot revive a
// forgotten proof.
func TestReplayCacheExpiry(t *testing.T) {
	c := NewReplayCache(10)
	for i := range 5 {
		useH(c, "k", replayKey(i), float64(100+i), 0)
	}
	if useH(c, "k", replayKey(100), 200, 103) != useOK || c.Len() != 3 {
		t.Fatalf("expiry: %d entries, want 3 (iat 103, 104 and 200)", c.Len())
	}
	if r := useH(c, "k", replayKey(1), 101, 0); r != useTooOld {
		t.Fatalf("expired proof with the horizon stepped back: %d, want too old", r)
	}
	// full of newer proofs, a proof older than all of them is refused
	// without evicting any
	for i := range 7 {
		useH(c, "k", replayKey(200+i), float64(300+i), 0)
	}
	if c.Len() != 10 {
		t.Fatalf("%d entries, want 10", c.Len())
	}
	if r := useH(c, "k", replayKey(999), 102.5, 0); r != useTooOld {
		t.Fatalf("older than the whole full cache: %d", r)
	}
	if c.Len() != 10 {
		t.Fatal("an entry was evicted for a refused proof")
	}
}

// TestReplayCacheFloodFallsOnTheFlooder: when one key fills the cache, the
// entries forgotten are that key's own: other keys' proofs stay
// remembered (their replays refused) and their fresh proofs pass, whatever
// iat the flood claims; the flooder's forgotten proofs stay refused.
func TestReplayCacheFloodFallsOnTheFlooder(t *testing.T) {
	c := NewReplayCache(100)
	if r := useH(c, "victim", replayKey(-1), 1000, 0); r != useOK {
		t.Fatal(r)
	}
	for i := range 1000 {
		// dated in the future, ever newer: the shape that once locked
		// everyone else out
		useH(c, "flood", replayKey(i), 2000+float64(i), 0)
	}
	if c.Len() > 100 {
		t.Fatalf("%d entries, bound 100", c.Len())
	}
	if r := useH(c, "victim", replayKey(-1), 1000, 0); r != useReplayed {
		t.Fatalf("the victim's proof was forgotten by another key's flood: %d", r)
	}
	if r := useH(c, "victim", replayKey(-2), 1001, 0); r != useOK {
		t.Fatalf("the victim's fresh proof after the flood: %d", r)
	}
	if r := useH(c, "flood", replayKey(0), 2000, 0); r != useTooOld {
		t.Fatalf("a forgotten proof of the flooder: %d, want refused as too old", r)
	}
}

// TestReplayCacheAllSingletons: with as many keys as entries, each holding
// one proof, nothing is forgotten for a new key: it is refused as the
// cache is full.
func TestReplayCacheAllSingletons(t *testing.T) {
	c := NewReplayCache(3)
	for i := range 3 {
		if r := useH(c, string(rune('a'+i)), replayKey(i), 100, 0); r != useOK {
			t.Fatal(r)
		}
	}
	if r := useH(c, "d", replayKey(3), 101, 0); r != useFull {
		t.Fatalf("a fourth key on a cache of three singletons: %d, want refused as full", r)
	}
	for i := range 3 {
		if r := useH(c, string(rune('a'+i)), replayKey(i), 100, 0); r != useReplayed {
			t.Fatalf("key %d's proof was forgotten: %d", i, r)
		}
	}
	// once the window moves past them, room is made again
	if r := useH(c, "d", replayKey(3), 200, 150); r != useOK {
		t.Fatalf("after the horizon passed: %d", r)
	}
}

// TestReplayCacheManyKeyFloodSparesKeysWithHistory: a flood over many
// keys, each holding fewer proofs than an established key, fills the
// cache; the established key, a proof a second, is accepted throughout,
// new keys are refused while the cache is full, nothing of the
// established key is forgotten for the flood, and no used proof is ever
// accepted again.
func TestReplayCacheManyKeyFloodSparesKeysWithHistory(t *testing.T) {
	const size = 100
	c := NewReplayCache(size)
	c.SetWindow(90 * time.Second)
	now := 1_000_000.0
	type used struct {
		thumb string
		key   [sha256.Size]byte
		iat   float64
	}
	var spent []used
	try := func(thumb string, i int, iat float64) int {
		r := c.use(thumb, replayKey(i), iat, now)
		if r == useOK {
			spent = append(spent, used{thumb, replayKey(i), iat})
		}
		return r
	}
	// the victim's last 30 s: a proof a second
	for i := range 30 {
		if r := try("victim", -1-i, now-30+float64(i)); r != useOK {
			t.Fatalf("victim's history %d: %d", i, r)
		}
	}
	refusedNew := 0
	for i := range 2000 {
		if i%20 == 19 {
			now++ // 20 flood proofs a second, from ever new keys, some dated ahead
			if r := try("victim", -1000-i, now); r != useOK {
				t.Fatalf("victim's proof at %.0f during the flood: %d", now, r)
			}
		}
		iat := now
		if i%2 == 1 {
			iat += 34
		}
		switch try("flood-"+strconv.Itoa(i/2), i, iat) { // each flood key makes two proofs
		case useFull:
			refusedNew++
		}
	}
	if refusedNew == 0 || c.Len() < size {
		t.Fatalf("the flood never filled the cache (%d entries, %d refused)", c.Len(), refusedNew)
	}
	// it had 30: one key's flood above KeptPerKey would be its own, so it
	// may go down to KeptPerKey, never below
	if n := len(c.keys["victim"].order); n < KeptPerKey {
		t.Fatalf("the victim holds %d proofs, fewer than KeptPerKey", n)
	}
	for _, u := range spent {
		if r := c.use(u.thumb, u.key, u.iat, now); r == useOK {
			t.Fatalf("a used proof of %s (iat %.0f) was accepted again", u.thumb, u.iat)
		}
	}
}

// TestReplayCacheOneKeyFloodFallsOnIt: one key holding more than
// KeptPerKey proofs pays for everyone's new proofs, new keys included,
// down to KeptPerKey; its forgotten proofs stay refused.
func TestReplayCacheOneKeyFloodFallsOnIt(t *testing.T) {
	c := NewReplayCache(50)
	for i := range 50 {
		if r := useH(c, "flood", replayKey(i), 100+float64(i), 0); r != useOK {
			t.Fatal(r)
		}
	}
	for i := range 50 - KeptPerKey {
		if r := useH(c, "new-"+strconv.Itoa(i), replayKey(1000+i), 150, 0); r != useOK {
			t.Fatalf("new key %d on a cache full of one key's flood: %d", i, r)
		}
	}
	if n := len(c.keys["flood"].order); n != KeptPerKey {
		t.Fatalf("the flooder holds %d proofs, want %d", n, KeptPerKey)
	}
	if r := useH(c, "one-more", replayKey(2000), 150, 0); r != useFull {
		t.Fatalf("a new key once the flooder is down to KeptPerKey: %d, want refused as full", r)
	}
	if r := useH(c, "flood", replayKey(0), 100, 0); r != useTooOld {
		t.Fatalf("a forgotten proof of the flooder: %d, want refused", r)
	}
}

// TestReplayCacheWindowIsTheLongest: verifiers with different windows
// sharing a cache each keep their own: the cache keeps entries for the
// longest, so a short verifier's traffic never drops a proof a long one
// still accepts; a shorter window set later drops them, and their proofs
// stay refused when a longer window comes back.
func TestReplayCacheWindowIsTheLongest(t *testing.T) {
	c := NewReplayCache(100)
	now := 1_000_000.0
	short, err := New(Config{Window: 10 * time.Second, Replay: c, Now: func() time.Time { return time.Unix(int64(now), 0) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Window: 5 * time.Minute, Replay: c}); err != nil {
		t.Fatal(err)
	}
	if got := c.Window(); got != 5*time.Minute {
		t.Fatalf("window %v, want the longest, 5m", got)
	}
	if r := c.use("k", replayKey(1), now-120, now); r != useOK {
		t.Fatal(r)
	}
	// the short verifier's proof of the same key drops nothing the long
	// one still accepts
	if err := short.Commit(context.Background(), Proof{Thumbprint: "k", iat: now, replayKey: replayKey(2)}); err != nil {
		t.Fatal(err)
	}
	if r := c.use("k", replayKey(3), now-150, now); r != useOK {
		t.Fatalf("an unused proof 150 s old after the short verifier's: %d", r)
	}
	if r := c.use("k", replayKey(1), now-120, now); r != useReplayed {
		t.Fatalf("replay: %d", r)
	}
	// the long window goes (a reload): the entries leave, and their
	// proofs stay refused under a long window again
	c.SetWindow(10 * time.Second)
	c.use("other", replayKey(4), now, now)
	c.sweep(now - 10)
	c.SetWindow(5 * time.Minute)
	for i, age := range map[int]float64{1: 120, 3: 150} {
		if r := c.use("k", replayKey(i), now-age, now); r == useOK {
			t.Fatalf("proof %d accepted again after the window shrank and grew back", i)
		}
	}
}

// TestReplayCacheResizeForgetsNothing: a smaller size keeps every entry;
// the cache is full until they leave, and a larger size takes in more.
func TestReplayCacheResizeForgetsNothing(t *testing.T) {
	c := NewReplayCache(10)
	for i := range 10 {
		useH(c, strconv.Itoa(i), replayKey(i), 100, 0)
	}
	c.Resize(5)
	if c.Len() != 10 || c.Max() != 5 {
		t.Fatalf("%d entries of %d after shrinking", c.Len(), c.Max())
	}
	for i := range 10 {
		if r := useH(c, strconv.Itoa(i), replayKey(i), 100, 0); r != useReplayed {
			t.Fatalf("proof %d after shrinking: %d", i, r)
		}
	}
	if r := useH(c, "new", replayKey(99), 101, 0); r != useFull {
		t.Fatalf("a new key over the smaller size: %d", r)
	}
	c.Resize(20)
	if r := useH(c, "new", replayKey(99), 101, 0); r != useOK {
		t.Fatalf("a new key after growing: %d", r)
	}
}
