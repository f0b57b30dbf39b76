package caddymodule

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// BenchmarkTokenCache: GET through the handler (recorder, memory store)
// with the token cache hit and missed, for RS256 and ES256, interleaved in
// one loop so the ratio is read off one run. The cache's heap at 100000
// entries is jwtauth's BenchmarkTokenCacheMemory.
//
//	go test ./caddymodule -run '^$' -bench BenchmarkTokenCache -benchmem
func BenchmarkTokenCache(b *testing.B) {
	for _, alg := range []jwa.SignatureAlgorithm{jwa.RS256(), jwa.ES256()} {
		b.Run(alg.String(), func(b *testing.B) {
			k := jwtauthtest.NewKey(b, alg, "k")
			hit, _ := newFileHandler(b, jwtauthtest.JWKS(b, k), func(h *Handler) { h.CreateMissing = true })
			off := 0
			miss, _ := newFileHandler(b, jwtauthtest.JWKS(b, k), func(h *Handler) { h.CreateMissing = true; h.TokenCache = &off })
			tok := k.Mint(b, jwtauthtest.Claims("bench"), nil)
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

}
