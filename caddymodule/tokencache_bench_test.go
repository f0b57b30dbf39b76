package caddymodule

import (
	"context"
	"fmt"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/lestrrat-go/jwx/v3/jwa"
)

// BenchmarkTokenCache: GET through the handler (recorder, memory store)
// with the token cache hit and missed, for RS256 and ES256, interleaved in
// one loop so the ratio is read off one run; and the cache's heap at 100000
// entries of realistic tokens.
//
//	go test ./caddymodule -run '^$' -bench BenchmarkTokenCache -benchmem
func BenchmarkTokenCache(b *testing.B) {
	for _, alg := range []jwa.SignatureAlgorithm{jwa.RS256(), jwa.ES256()} {
		b.Run(alg.String(), func(b *testing.B) {
			k := newTestKey(b, alg, "k")
			hit, _ := newFileHandler(b, jwksOf(b, k), func(h *Handler) { h.CreateMissing = true })
			off := 0
			miss, _ := newFileHandler(b, jwksOf(b, k), func(h *Handler) { h.CreateMissing = true; h.TokenCache = &off })
			tok := k.mint(b, claimsFor("bench"), nil)
			// the request is built once, so that only the handler is timed
			req := httptest.NewRequest("GET", profilePath, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			get := func(h *Handler) {
				r := req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
				rec := httptest.NewRecorder()
				if err := h.ServeHTTP(rec, r, next); err != nil || rec.Code != 200 {
					b.Fatal(err, rec.Code)
				}
			}
			get(hit) // fills the cache
			var th, tm time.Duration
			for b.Loop() {
				t0 := time.Now()
				get(hit)
				t1 := time.Now()
				get(miss)
				t2 := time.Now()
				th, tm = th+t1.Sub(t0), tm+t2.Sub(t1)
			}
			b.ReportMetric(float64(th.Nanoseconds())/float64(b.N), "hit-ns/op")
			b.ReportMetric(float64(tm.Nanoseconds())/float64(b.N), "miss-ns/op")
			b.ReportMetric(float64(th)/float64(tm), "hit/miss")
		})
	}

	b.Run("memory-100000", func(b *testing.B) {
		// a realistic payload: the claims of an OIDC access token
		claims := func(i int) map[string]any {
			c := claimsFor(fmt.Sprintf("00u%017d", i))
			c["preferred_username"] = fmt.Sprintf("user%d@example.com", i)
			c["email"] = fmt.Sprintf("user%d@example.com", i)
			c["given_name"], c["family_name"] = "Given", "Family"
			c["scp"] = []string{"openid", "profile", "email"}
			c["UserType"] = 0
			c["jti"] = fmt.Sprintf("AT.%032d", i)
			return c
		}
		ks := &keySet{keys: []verifyKey{{thumbprint: "tp"}}}
		src := &fileSource{set: ks}
		for b.Loop() {
			// the baseline is taken before anything of the cache exists; each
			// payload is made, decoded and dropped as the miss path does, so
			// only what the cache keeps is counted
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			c := newTokenCache(100000)
			for i := range 100000 {
				payload := mustJSON(b, claims(i))
				if _, err := decodeClaims(payload); err != nil {
					b.Fatal(err)
				}
				var key [32]byte // a distinct SHA-256-sized key per entry
				copy(key[:], fmt.Sprintf("%032d", i))
				c.add(key, cachedToken{payload: payload, exp: float64(time.Now().Add(time.Hour).Unix()), thumbprint: "tp"})
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			if c.lru.Len() != 100000 {
				b.Fatalf("%d entries", c.lru.Len())
			}
			if _, ok := c.lookup([32]byte{}, time.Now(), 0, []keySource{src}); ok {
				b.Fatal("hit on an absent key")
			}
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB/100000-entries")
			runtime.KeepAlive(c)
		}
	})
}
