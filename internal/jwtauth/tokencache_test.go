package jwtauth

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
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

// jwkWith is k's public JWK as a JSON object with members set (a nil value
// removes the member), for republishing the same key material otherwise.
func jwkWith(t *testing.T, k jwtauthtest.Key, set map[string]any) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(jwtauthtest.MustJSON(t, k.Pub), &m); err != nil {
		t.Fatal(err)
	}
	return overlay(m, set)
}

// TestTokenCacheHitRefusedWhenMissWould: after the provider republishes
// its set, a token the cache holds gets exactly the answer a token of the
// same shape (same key, header and claims but another jti, so never
// cached) gets on a miss. A hit stands only while a miss would try the
// same key for it: the kid the token names still names that key material,
// the key's alg still admits the token's, and the key is still among the
// keys a miss would try. When it stands, it is a hit: no signature is
// checked again.
func TestTokenCacheHitRefusedWhenMissWould(t *testing.T) {
	rs := jwtauthtest.NewKey(t, jwa.RS256(), "k1")
	es := jwtauthtest.NewKey(t, jwa.ES256(), "k1")
	ed := jwtauthtest.NewKey(t, jwa.EdDSAEd25519(), "k1")
	other := jwtauthtest.NewKey(t, jwa.RS256(), "k2")
	var crowd []any // eight ES256 keys without kid, listed before the signer
	for range maxCandidateKeys {
		crowd = append(crowd, jwkWith(t, jwtauthtest.NewKey(t, jwa.ES256(), ""), map[string]any{"kid": nil}))
	}
	rows := []struct {
		name    string
		signer  jwtauthtest.Key
		header  map[string]any // the token's header beyond Mint's
		before  []any          // the JWKs published when the token is cached
		after   []any          // the JWKs republished
		wantHit bool
	}{
		{name: "unchanged_refetched", signer: rs,
			before: []any{jwkWith(t, rs, nil)}, after: []any{jwkWith(t, rs, nil), jwkWith(t, other, nil)}, wantHit: true},
		{name: "unchanged_okp_key_with_alg_Ed25519_refetched", signer: ed,
			before: []any{jwkWith(t, ed, nil)}, after: []any{jwkWith(t, other, nil), jwkWith(t, ed, nil)}, wantHit: true},
		{name: "alg_dropped_from_the_key", signer: rs,
			before: []any{jwkWith(t, rs, nil)}, after: []any{jwkWith(t, rs, map[string]any{"alg": nil})}, wantHit: true},
		{name: "same_key_under_another_kid", signer: rs,
			before: []any{jwkWith(t, rs, nil)}, after: []any{jwkWith(t, rs, map[string]any{"kid": "k1-renamed"})}},
		{name: "same_ec_key_under_another_kid", signer: es,
			before: []any{jwkWith(t, es, nil)}, after: []any{jwkWith(t, es, map[string]any{"kid": "k9"}), jwkWith(t, other, nil)}},
		{name: "same_kid_key_alg_changed", signer: rs,
			before: []any{jwkWith(t, rs, nil)}, after: []any{jwkWith(t, rs, map[string]any{"alg": "PS256"})}},
		{name: "same_kid_okp_key_alg_pinned_to_EdDSA", signer: ed,
			before: []any{jwkWith(t, ed, map[string]any{"alg": nil})}, after: []any{jwkWith(t, ed, map[string]any{"alg": "EdDSA"})}},
		{name: "same_kid_another_key", signer: rs,
			before: []any{jwkWith(t, rs, nil)}, after: []any{jwkWith(t, other, map[string]any{"kid": "k1"})}},
		{name: "key_now_for_encryption", signer: rs,
			before: []any{jwkWith(t, rs, nil)}, after: []any{jwkWith(t, rs, map[string]any{"use": "enc"}), jwkWith(t, other, nil)}},
		{name: "key_rotated_away", signer: rs,
			before: []any{jwkWith(t, rs, nil), jwkWith(t, other, nil)}, after: []any{jwkWith(t, other, nil)}},
		{name: "no_kid_key_beyond_the_candidates", signer: es, header: map[string]any{"kid": nil},
			before: []any{jwkWith(t, es, map[string]any{"kid": nil})}, after: append(crowd[:len(crowd):len(crowd)], jwkWith(t, es, map[string]any{"kid": nil}))},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			ctx := context.Background()
			clock := jwtauthtest.NewClock()
			idp := jwtauthtest.NewServer(t)
			idp.Set(http.StatusOK, jwtauthtest.MustJSON(t, map[string]any{"keys": row.before}))
			s, _ := rotationSource(t, idp, clock)
			obs := new(countingObserver)
			v, err := New(Config{Sources: []Source{s}, Issuers: []string{jwtauthtest.Issuer}, Audiences: []string{jwtauthtest.Audience},
				Now: clock.Now, CacheSize: 100, Observer: obs})
			if err != nil {
				t.Fatal(err)
			}
			mint := func(jti string) string {
				c := jwtauthtest.ClaimsAt(clock, "u", time.Hour)
				c["jti"] = jti
				return row.signer.Mint(t, c, row.header)
			}
			cached := mint("cached")
			for range 2 {
				if _, aerr := v.Verify(ctx, cached); aerr != nil {
					t.Fatalf("before republishing: %v", aerr)
				}
			}
			if obs.hits.Load() != 1 {
				t.Fatalf("%d hits before republishing, want 1", obs.hits.Load())
			}

			idp.Set(http.StatusOK, jwtauthtest.MustJSON(t, map[string]any{"keys": row.after}))
			clock.Advance(defaultMinRefresh)
			if _, err := s.refresh(ctx); err != nil {
				t.Fatal(err)
			}
			hits := obs.hits.Load()
			_, got := v.Verify(ctx, cached)
			hit := obs.hits.Load() > hits
			_, fresh := v.Verify(ctx, mint("fresh"))
			if row.wantHit != (fresh == nil) {
				t.Fatalf("a token of that shape on a miss: %v; the row expects it %s", fresh, map[bool]string{true: "accepted", false: "refused"}[row.wantHit])
			}
			if hit != row.wantHit {
				t.Errorf("cached token a hit: %v, want %v", hit, row.wantHit)
			}
			if !reflect.DeepEqual(got, fresh) {
				t.Errorf("cached token: %v; a token of that shape on a miss: %v", got, fresh)
			}
		})
	}
}
