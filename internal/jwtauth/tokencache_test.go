package jwtauth

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// countingObserver counts what a verifier tells it.
type countingObserver struct {
	hits, misses, fetchesOK, fetchesFailed atomic.Int64
}

func (o *countingObserver) KeySetFetched(ok bool) {
	if ok {
		o.fetchesOK.Add(1)
	} else {
		o.fetchesFailed.Add(1)
	}
}

func (o *countingObserver) TokenCacheLookup(hit bool) {
	if hit {
		o.hits.Add(1)
	} else {
		o.misses.Add(1)
	}
}

func TestTokenCache(t *testing.T) {
	clock := jwtauthtest.NewClock()
	idp := jwtauthtest.NewServer(t)
	k1, k2 := jwtauthtest.NewKey(t, jwa.RS256(), "k1"), jwtauthtest.NewKey(t, jwa.RS256(), "k2")
	idp.ServeKeys(t, "", k1, k2)
	s := loadedSource(t, idp, clock, RefreshOptions{})
	ctx := context.Background()
	obs := new(countingObserver)
	v, err := New(Config{Sources: []Source{s}, Issuers: []string{jwtauthtest.Issuer}, Audiences: []string{jwtauthtest.Audience},
		Now: clock.Now, CacheSize: 100, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	tok := k1.Mint(t, jwtauthtest.ClaimsAt(clock, "u", time.Minute), nil)

	for range 3 {
		if c, aerr := v.Verify(ctx, tok); aerr != nil {
			t.Fatal(aerr)
		} else if sub, _ := c.Str("sub"); sub != "u" {
			t.Fatalf("cached claims: %v", c)
		}
	}
	if obs.misses.Load() != 1 || obs.hits.Load() != 2 {
		t.Fatalf("hits %v misses %v, want 2 and 1", obs.hits.Load(), obs.misses.Load())
	}

	// a failure is never cached: the same bad token fails every time
	bad := k1.Mint(t, jwtauthtest.ClaimsAt(clock, "u", -time.Hour), nil)
	for range 2 {
		if _, aerr := v.Verify(ctx, bad); code(aerr) != CodeTokenExpired {
			t.Fatalf("expired token: %s", code(aerr))
		}
	}
	if v.cache.lru.Len() != 1 {
		t.Fatalf("%d entries, want only the good token", v.cache.lru.Len())
	}

	// an entry never outlives exp plus leeway
	clock.Advance(time.Minute + DefaultLeeway + time.Second)
	if _, aerr := v.Verify(ctx, tok); code(aerr) != CodeTokenExpired {
		t.Fatalf("expired cached token: %s, want TokenExpired", code(aerr))
	}

	// a key that leaves the set takes its tokens with it
	tok2 := k2.Mint(t, jwtauthtest.ClaimsAt(clock, "u", time.Hour), nil)
	if _, aerr := v.Verify(ctx, tok2); aerr != nil {
		t.Fatal(aerr)
	}
	idp.ServeKeys(t, "", k1)
	clock.Advance(defaultMinRefresh)
	if _, err := s.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, aerr := v.Verify(ctx, tok2); code(aerr) != CodeInvalidToken {
		t.Fatalf("token of a removed key: %s, want InvalidToken", code(aerr))
	}
}
