package dpop

import (
	"crypto/sha256"
	"encoding/binary"
	"runtime"
	"testing"
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
