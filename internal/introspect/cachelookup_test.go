package introspect

import (
	"testing"
	"time"
)

// TestCacheLookupsByAnswerKind: each lookup is told to the observer as a
// miss, a hit on an active answer or a hit on a cached refusal, each
// kind after a Verify that must produce it and no other, so that a
// positive hit counted as negative (or the other way) fails.
func TestCacheLookupsByAnswerKind(t *testing.T) {
	e := newEnv(t, nil)
	const other = "opaque-token-inactive-0001"
	want := map[CacheResult]int{}
	step := func(name, tok, code string, r CacheResult) {
		t.Helper()
		_, aerr := e.verify(tok)
		wantCode(t, aerr, code)
		want[r]++
		for _, k := range []CacheResult{CacheMiss, CacheHitPositive, CacheHitNegative} {
			if got := e.obs.lookup(k); got != want[k] {
				t.Fatalf("after %s: %s counted %d times, want %d", name, k, got, want[k])
			}
		}
	}
	e.serve(e.answer(nil))
	step("the first active token", testToken, "", CacheMiss)
	step("the active token again", testToken, "", CacheHitPositive)
	e.serve([]byte(`{"active":false}`))
	step("the first inactive token", other, "InvalidToken", CacheMiss)
	step("the inactive token again", other, "InvalidToken", CacheHitNegative)
	step("the active token a third time", testToken, "", CacheHitPositive)
	// past negative_ttl (5s) the refusal is gone: a miss again
	e.clock.Advance(6 * time.Second)
	step("the inactive token past negative_ttl", other, "InvalidToken", CacheMiss)
	if e.calls() != 3 {
		t.Fatalf("%d calls, want 3", e.calls())
	}
	for r, s := range map[CacheResult]string{CacheMiss: "miss", CacheHitPositive: "hit_positive", CacheHitNegative: "hit_negative"} {
		if r.String() != s {
			t.Errorf("%d names itself %q, want %q", r, r, s)
		}
	}
}
