package jwtauth

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// fakeTimers stands in for time.AfterFunc on the injected clock: a timer
// fires when the test calls fire after moving the clock past it.
type fakeTimers struct {
	clock *jwtauthtest.Clock
	mu    sync.Mutex
	due   []*fakeTimer
	made  int
}

type fakeTimer struct {
	at      time.Duration
	f       func()
	stopped bool
}

func (t *fakeTimer) Stop() bool { was := !t.stopped; t.stopped = true; return was }

func (ft *fakeTimers) afterFunc(d time.Duration, f func()) interface{ Stop() bool } {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	t := &fakeTimer{at: ft.clock.Mono() + d, f: f}
	ft.due = append(ft.due, t)
	ft.made++
	return t
}

// fire runs the timers due by now, in the caller's goroutine.
func (ft *fakeTimers) fire() int {
	ft.mu.Lock()
	var run []func()
	keep := ft.due[:0]
	for _, t := range ft.due {
		switch {
		case t.stopped:
		case t.at <= ft.clock.Mono():
			run = append(run, t.f)
		default:
			keep = append(keep, t)
		}
	}
	ft.due = keep
	ft.mu.Unlock()
	for _, f := range run {
		f()
	}
	return len(run)
}

// TestRotationRightAfterFetch: the provider rotates one second after a
// fetch (scheduled, at start, or for another kid) and signs with its new
// key at once. A token with the new kid is accepted within 5s of the
// rotation: by the deferred fetch the first refusal scheduled, or by a
// fetch of its own once 4s (unknownKidSpacing) have passed since the last one. Each way costs
// one fetch.
func TestRotationRightAfterFetch(t *testing.T) {
	old, fresh := jwtauthtest.NewKey(t, jwa.ES256(), "old"), jwtauthtest.NewKey(t, jwa.ES256(), "fresh")
	for _, mode := range []string{"deferred fetch", "next request fetches"} {
		t.Run(mode, func(t *testing.T) {
			clock, idp, _, timers, v := newRotationVerifier(t, old)
			ctx := context.Background()
			clock.Advance(time.Second)
			idp.ServeKeys(t, "", old, fresh) // the rotation
			rotated := clock.Mono()
			before := idp.Fetches.Load()
			tok := fresh.Mint(t, jwtauthtest.ClaimsAt(clock, "u", time.Hour), nil)
			if _, aerr := v.Verify(ctx, tok); code(aerr) != CodeInvalidToken {
				t.Fatalf("1s after the last fetch: %s, want InvalidToken (the budget spaces fetches 4s apart)", code(aerr))
			}
			if timers.made != 1 {
				t.Fatalf("%d deferred fetches scheduled, want 1", timers.made)
			}
			// more refusals meanwhile schedule nothing more
			clock.Advance(2 * time.Second)
			_, _ = v.Verify(ctx, tok)
			if timers.made != 1 || idp.Fetches.Load() != before {
				t.Fatalf("%d timers, %d fetches before the 4s", timers.made, idp.Fetches.Load()-before)
			}
			clock.Advance(time.Second) // 4s since the last fetch
			if mode == "deferred fetch" {
				if n := timers.fire(); n != 1 {
					t.Fatalf("%d deferred fetches due at 4s", n)
				}
			}
			if _, aerr := v.Verify(ctx, tok); aerr != nil {
				t.Fatalf("%v after the rotation: %v", clock.Mono()-rotated, aerr)
			}
			if took := clock.Mono() - rotated; took > 5*time.Second {
				t.Fatalf("accepted %v after the rotation, want within 5s", took)
			}
			if n := idp.Fetches.Load() - before; n != 1 {
				t.Fatalf("%d fetches, want 1", n)
			}
			if mode == "next request fetches" && timers.fire() != 0 {
				t.Fatal("the deferred fetch ran after the request's own fetch made it needless")
			}
		})
	}
}

// TestKeysGeneratedTwiceAtStart: Hydra generates its keys twice as it
// starts, so the set the edge loaded first is replaced within a second.
// Tokens signed with the second key are refused for at most 5s after it
// appeared, then accepted: not for min_refresh (30s).
func TestKeysGeneratedTwiceAtStart(t *testing.T) {
	first, second := jwtauthtest.NewKey(t, jwa.RS256(), "gen-1"), jwtauthtest.NewKey(t, jwa.RS256(), "gen-2")
	clock, idp, _, timers, v := newRotationVerifier(t, first)
	clock.Advance(400 * time.Millisecond)
	idp.ServeKeys(t, "", second) // generated again; the first is gone
	published := clock.Mono()
	var acceptedAt time.Duration
	for range 100 { // a request every 100ms
		clock.Advance(100 * time.Millisecond)
		timers.fire()
		if _, aerr := v.Verify(context.Background(), second.Mint(t, jwtauthtest.ClaimsAt(clock, "u", time.Hour), nil)); aerr == nil {
			acceptedAt = clock.Mono()
			break
		}
	}
	if acceptedAt == 0 || acceptedAt-published > 5*time.Second {
		t.Fatalf("accepted %v after the second generation (0: never within 10s), want within 5s", acceptedAt-published)
	}
	if n := idp.Fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want the first load and one more", n)
	}
}

// TestUnknownKidFlood: 1000 distinct unknown kids with valid claims at
// once cost one fetch; 1000 more spread over 10 minutes cost at most the
// budget (the burst of 12 plus one per 50s: 24), deferred fetches
// included; and tokens whose claims fail cost none at all, nor schedule
// any, whatever the budget allows.
func TestUnknownKidFlood(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.ES256(), "k")
	clock, idp, _, timers, v := newRotationVerifier(t, k)
	ctx := context.Background()

	clock.Advance(time.Minute)
	before := idp.Fetches.Load()
	claims := jwtauthtest.ClaimsAt(clock, "u", time.Hour)
	var wg sync.WaitGroup
	for i := range 1000 {
		wg.Go(func() {
			if _, aerr := v.Verify(ctx, k.Mint(t, claims, map[string]any{"kid": fmt.Sprintf("burst-%d", i)})); code(aerr) != CodeInvalidToken {
				t.Errorf("random kid: %s", code(aerr))
			}
		})
	}
	wg.Wait()
	if n := idp.Fetches.Load() - before; n != 1 {
		t.Fatalf("%d fetches for 1000 unknown kids at once, want 1", n)
	}

	clock.Advance(time.Hour) // the bucket is full again
	before = idp.Fetches.Load()
	for i := range 1000 {
		clock.Advance(600 * time.Millisecond)
		timers.fire()
		tok := k.Mint(t, jwtauthtest.ClaimsAt(clock, "u", time.Hour), map[string]any{"kid": fmt.Sprintf("spread-%d", i)})
		if _, aerr := v.Verify(ctx, tok); code(aerr) != CodeInvalidToken {
			t.Fatalf("random kid: %s", code(aerr))
		}
	}
	n := idp.Fetches.Load() - before
	if n > 2*unknownKidBurst || n < unknownKidBurst {
		t.Fatalf("%d fetches for 1000 unknown kids over 10 minutes, want between %d and %d", n, unknownKidBurst, 2*unknownKidBurst)
	}
	t.Logf("%d fetches for 1000 unknown kids over 10 minutes", n)

	// claims that fail: never a fetch, never a deferred one
	clock.Advance(time.Hour)
	for timers.fire() > 0 {
	}
	before, made := idp.Fetches.Load(), timers.made
	expired := jwtauthtest.ClaimsAt(clock, "u", -time.Hour)
	foreign := jwtauthtest.ClaimsAt(clock, "u", time.Hour)
	foreign["iss"] = "https://evil.invalid"
	for i, c := range []map[string]any{expired, foreign} {
		_, _ = v.Verify(ctx, k.Mint(t, c, map[string]any{"kid": fmt.Sprintf("bad-claims-%d", i)}))
	}
	clock.Advance(time.Minute)
	timers.fire()
	if n := idp.Fetches.Load() - before; n != 0 || timers.made != made {
		t.Fatalf("%d fetches and %d deferred ones for tokens whose claims fail", n, timers.made-made)
	}
}

// TestDeferredFetchEndsWithSource: a deferred fetch pending when the
// source is closed never runs.
func TestDeferredFetchEndsWithSource(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.ES256(), "k")
	clock, idp, s, timers, v := newRotationVerifier(t, k)
	_, _ = v.Verify(context.Background(), k.Mint(t, jwtauthtest.ClaimsAt(clock, "u", time.Hour), map[string]any{"kid": "new"}))
	if timers.made != 1 {
		t.Fatalf("%d deferred fetches scheduled, want 1", timers.made)
	}
	before := idp.Fetches.Load()
	_ = s.Close()
	clock.Advance(time.Minute)
	timers.fire()
	s.deferredUnknownKidFetch() // even if its timer had fired already
	if n := idp.Fetches.Load() - before; n != 0 {
		t.Fatalf("%d fetches after Close", n)
	}
}

// TestSkippedKeysLoggedOncePerChange: a set that keeps publishing keys this
// module skips (an encryption key, a symmetric key, an unknown type, a
// short RSA key, key_ops without verify) warns about them when they first
// appear and when they change, not on every fetch.
func TestSkippedKeysLoggedOncePerChange(t *testing.T) {
	good := jwtauthtest.NewKey(t, jwa.ES256(), "good")
	goodJSON := string(jwtauthtest.MustJSON(t, good.Pub))
	enc := strings.Replace(goodJSON, `"kid":"good"`, `"kid":"enc","use":"enc"`, 1)
	signOnly := strings.Replace(goodJSON, `"kid":"good"`, `"kid":"sign-only","key_ops":["sign"]`, 1)
	skipped := []string{enc, `{"kty":"oct","k":"c2VjcmV0","kid":"hmac"}`, `{"kty":"PQC","kid":"future"}`,
		`{"kty":"RSA","kid":"short","n":"` + jwtauthtest.B64(make([]byte, 128)) + `","e":"AQAB"}`, signOnly}
	doc := `{"keys":[` + goodJSON + "," + strings.Join(skipped, ",") + `]}`
	logger, logs := observedLogger()
	clock := jwtauthtest.NewClock()
	idp := jwtauthtest.NewServer(t)
	idp.Set(http.StatusOK, []byte(doc))
	s := NewURLSource(idp.URL, URLOptions{Logger: logger, Now: clock.Now, Mono: clock.Mono})
	warnings := func() int { return logs.FilterMessageSnippet("skipping").Len() }
	refresh := func(times int) {
		for range times {
			clock.Advance(time.Minute)
			if _, err := s.refresh(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	refresh(5)
	if n := warnings(); n != len(skipped) {
		t.Fatalf("%d warnings after 5 fetches of one set, want %d (one per skipped key, once)", n, len(skipped))
	}
	// the provider adds one more encryption key: the set changed
	enc2 := strings.Replace(enc, `"kid":"enc"`, `"kid":"enc-2"`, 1)
	idp.Set(http.StatusOK, []byte(strings.Replace(doc, `]}`, ","+enc2+`]}`, 1)))
	refresh(5)
	if n := warnings(); n != 2*len(skipped)+1 {
		t.Fatalf("%d warnings after the set changed, want %d", n, 2*len(skipped)+1)
	}
	// and drops them all: nothing to warn about, and back again warns again
	idp.ServeKeys(t, "", good)
	refresh(2)
	idp.Set(http.StatusOK, []byte(doc))
	refresh(3)
	if n := warnings(); n != 3*len(skipped)+1 {
		t.Fatalf("%d warnings after the skipped keys came back, want %d", n, 3*len(skipped)+1)
	}
}
