package jwtauth

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// BenchmarkTokenCacheMemory: the verified-token cache's heap at 100000
// entries of realistic tokens.
//
//	go test ./internal/jwtauth -run '^$' -bench BenchmarkTokenCacheMemory
func BenchmarkTokenCacheMemory(b *testing.B) {
	// a realistic payload: the claims of an OIDC access token
	claims := func(i int) map[string]any {
		c := jwtauthtest.Claims(fmt.Sprintf("00u%017d", i))
		c["preferred_username"] = fmt.Sprintf("user%d@example.com", i)
		c["email"] = fmt.Sprintf("user%d@example.com", i)
		c["given_name"], c["family_name"] = "Given", "Family"
		c["scp"] = []string{"openid", "profile", "email"}
		c["UserType"] = 0
		c["jti"] = fmt.Sprintf("AT.%032d", i)
		return c
	}
	ks := &keySet{keys: []verifyKey{{thumbprint: "tp"}}}
	src := &FileSource{set: ks}
	for b.Loop() {
		// the baseline is taken before anything of the cache exists; each
		// payload is made, decoded and dropped as the miss path does, so
		// only what the cache keeps is counted
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c := newTokenCache(100000)
		for i := range 100000 {
			payload := jwtauthtest.MustJSON(b, claims(i))
			if _, err := decodeClaims(payload); err != nil {
				b.Fatal(err)
			}
			var key [32]byte // a distinct SHA-256-sized key per entry
			copy(key[:], fmt.Sprintf("%032d", i))
			c.add(key, cachedToken{payload: payload, exp: float64(time.Now().Add(time.Hour).Unix()), alg: "RS256", kid: "k", thumbprint: "tp"})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if c.lru.Len() != 100000 {
			b.Fatalf("%d entries", c.lru.Len())
		}
		if _, ok := c.lookup([32]byte{}, time.Now(), 0, []Source{src}); ok {
			b.Fatal("hit on an absent key")
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB/100000-entries")
		runtime.KeepAlive(c)
	}

}

// BenchmarkTokenCacheHit: Verify of a token the cache holds, in a set of
// one key and in a set of 20 where the verifying key is the last, so that
// what a hit checks against the set in force shows on its own.
//
//	go test ./internal/jwtauth -run '^$' -bench BenchmarkTokenCacheHit -benchmem
func BenchmarkTokenCacheHit(b *testing.B) {
	for _, n := range []int{1, 20} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			keys := make([]jwtauthtest.Key, n)
			for i := range keys {
				keys[i] = jwtauthtest.NewKey(b, jwa.ES256(), fmt.Sprintf("k%d", i))
			}
			ks, _, err := parseKeySet(jwtauthtest.JWKS(b, keys...))
			if err != nil {
				b.Fatal(err)
			}
			v, err := New(Config{Sources: []Source{&FileSource{set: ks}}, Issuers: []string{jwtauthtest.Issuer},
				Audiences: []string{jwtauthtest.Audience}, CacheSize: 100})
			if err != nil {
				b.Fatal(err)
			}
			tok := keys[n-1].Mint(b, jwtauthtest.Claims("bench"), nil)
			ctx := context.Background()
			if _, aerr := v.Verify(ctx, tok); aerr != nil {
				b.Fatal(aerr)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, aerr := v.Verify(ctx, tok); aerr != nil {
					b.Fatal(aerr)
				}
			}
		})
	}
}
