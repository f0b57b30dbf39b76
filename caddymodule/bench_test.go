package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/workspace-edge/caddy-workspace-profile/internal/drain"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
	"github.com/workspace-edge/caddy-workspace-profile/profile/boltstore"
)

// BenchmarkGet measures GET with a valid RS256 token through the handler
// (recorder, no network, a real bolt file) against two floors in the same
// run: jwx's jwt.Parse of the token with the key plus a bolt read (the
// library's ordinary verification), and jws.VerifyCompactFast plus a bolt
// read (signature only, the strictest floor). It reports the ratios.
//
//	go test ./caddymodule -run '^$' -bench BenchmarkGet -benchmem
func BenchmarkGet(b *testing.B) {
	k := jwtauthtest.NewKey(b, jwa.RS256(), "bench")
	dbPath := filepath.Join(b.TempDir(), "bench.db")
	off := 0
	h, _ := newFileHandler(b, jwtauthtest.JWKS(b, k), func(h *Handler) {
		h.CreateMissing = true
		h.TokenCache = &off // every request verifies: the floor is a full verification
		h.StorageRaw = json.RawMessage(fmt.Sprintf(`{"backend":"bolt","path":%q}`, dbPath))
	})
	h.service.Store = h.service.Store.(*countingStore).Store // no counting in the timed path
	claims := jwtauthtest.Claims("bench-user")
	claims["exp"] = time.Now().Add(24 * time.Hour).Unix()
	tok := k.Mint(b, claims, nil)
	if rec := serve(b, h, "GET", profilePath, bearer(tok), ""); rec.Code != 200 {
		b.Fatalf("warm-up: %d %s", rec.Code, rec.Body)
	}
	// the floors read the bolt file directly, under the route's wrappers
	store := h.service.Store.(drain.Timeout).Store.Store.(*boltstore.Store)
	var rawPub any
	if err := jwkExport(k, &rawPub); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()

	req := httptest.NewRequest("GET", profilePath, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	viaHandler := func() {
		r := req.WithContext(context.WithValue(ctx, caddy.ReplacerCtxKey, caddy.NewReplacer()))
		rec := httptest.NewRecorder()
		_ = h.ServeHTTP(rec, r, next)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
	viaJWT := func() {
		t, err := jwt.Parse([]byte(tok), jwt.WithKey(jwa.RS256(), rawPub), jwt.WithIssuer(testIssuer), jwt.WithAudience(testAudience))
		if err != nil {
			b.Fatal(err)
		}
		sub, _ := t.Subject()
		if _, err := store.Get(ctx, sub); err != nil {
			b.Fatal(err)
		}
	}
	viaJWS := func() {
		if _, err := jws.VerifyCompactFast(rawPub, []byte(tok), jwa.RS256()); err != nil {
			b.Fatal(err)
		}
		if _, err := store.Get(ctx, "bench-user"); err != nil {
			b.Fatal(err)
		}
	}
	loop := func(f func()) func(*testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				f()
			}
		}
	}
	b.Run("handler", loop(viaHandler))
	b.Run("floor=jwt.Parse+bolt", loop(viaJWT))
	b.Run("floor=jws.VerifyCompactFast+bolt", loop(viaJWS))

	// The ratios: each iteration runs all three back to back, so machine
	// noise falls on them alike.
	b.Run("ratio", func(b *testing.B) {
		var th, tj, ts time.Duration
		for b.Loop() {
			t0 := time.Now()
			viaHandler()
			t1 := time.Now()
			viaJWT()
			t2 := time.Now()
			viaJWS()
			t3 := time.Now()
			th, tj, ts = th+t1.Sub(t0), tj+t2.Sub(t1), ts+t3.Sub(t2)
		}
		b.ReportMetric(float64(th.Nanoseconds())/float64(b.N), "handler-ns/op")
		b.ReportMetric(float64(th)/float64(tj), "x-jwt-floor")
		b.ReportMetric(float64(th)/float64(ts), "x-jws-floor")
	})
}
