package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/dpop/dpoptest"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
	"github.com/workspace-edge/caddy-workspace-profile/internal/pgtest"
)

// BenchmarkDPoPSharedCheck measures a GET with a DPoP-bound token and a
// fresh proof through the handler (recorder, no network, profiles in
// memory) on two routes: one whose proofs are spent in the process's
// replay cache only, one that also spends them in PostgreSQL (its API keys
// there). The proofs are made outside the timed calls. It reports both
// costs per request and their ratio, each iteration running both back to
// back so that machine noise falls on them alike.
//
//	PROFILE_TEST_PG_DSN=... go test ./caddymodule -run '^$' -bench BenchmarkDPoPSharedCheck
func BenchmarkDPoPSharedCheck(b *testing.B) {
	dsn := pgtest.DSN(b)
	schema := pgtest.Schema("wp_bench_dpop")
	b.Cleanup(func() { dropSchema(dsn, schema) })
	k := jwtauthtest.NewKey(b, jwa.RS256(), "bench")
	client := dpoptest.NewProver(b, jwa.ES256())
	claims := jwtauthtest.Claims("bench-dpop")
	claims["exp"] = time.Now().Add(24 * time.Hour).Unix()
	claims["cnf"] = map[string]any{"jkt": client.Thumbprint}
	tok := k.Mint(b, claims, nil)
	create := func(h *Handler) { h.CreateMissing = true }
	memory, _ := newFileHandler(b, jwtauthtest.JWKS(b, k), create)
	shared, _ := newFileHandler(b, jwtauthtest.JWKS(b, k), func(h *Handler) {
		create(h)
		h.APIKeys = &APIKeys{StoreRaw: json.RawMessage(fmt.Sprintf(`{"backend":"postgres","dsn":%q,"schema":%q}`, dsn, schema))}
	})
	htu := "http://example.com" + profilePath
	get := func(h *Handler, proof string) int {
		req := httptest.NewRequest("GET", profilePath, nil)
		req.Header.Set("Authorization", "DPoP "+tok)
		req.Header.Set("DPoP", proof)
		req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
		rec := httptest.NewRecorder()
		_ = h.ServeHTTP(rec, req, next)
		return rec.Code
	}
	proof := func() string { return client.Proof(b, "GET", htu, tok, time.Now(), nil, nil) }
	// the PostgreSQL store opens in the background: wait for it
	deadline := time.Now().Add(15 * time.Second)
	for get(shared, proof()) != 200 {
		if time.Now().After(deadline) {
			b.Fatal("the PostgreSQL store did not open within 15 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := get(memory, proof()); code != 200 {
		b.Fatalf("memory only: %d", code)
	}
	var tm, ts time.Duration
	for b.Loop() {
		p1, p2 := proof(), proof()
		t0 := time.Now()
		if code := get(memory, p1); code != 200 {
			b.Fatalf("memory only: %d", code)
		}
		t1 := time.Now()
		if code := get(shared, p2); code != 200 {
			b.Fatalf("memory and PostgreSQL: %d", code)
		}
		t2 := time.Now()
		tm, ts = tm+t1.Sub(t0), ts+t2.Sub(t1)
	}
	b.ReportMetric(float64(tm.Nanoseconds())/float64(b.N), "memory-ns/req")
	b.ReportMetric(float64(ts.Nanoseconds())/float64(b.N), "memory+pg-ns/req")
	b.ReportMetric(float64(ts-tm)/float64(b.N), "shared-check-ns/req")
	b.ReportMetric(float64(ts)/float64(tm), "x-memory")
}
