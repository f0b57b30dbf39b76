package caddymodule

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	"go.uber.org/zap"
)

func cacheCount(result string) float64 {
	return testutil.ToFloat64(metricTokenCache.WithLabelValues(result))
}

func TestTokenCache(t *testing.T) {
	clock := newFakeClock()
	idp := newTestServer(t)
	k1, k2 := newTestKey(t, jwa.RS256(), "k1"), newTestKey(t, jwa.RS256(), "k2")
	idp.serveKeys(t, "", k1, k2)
	s := loadedSource(t, idp, clock, remoteOptions{})
	ctx := context.Background()
	v := newTestVerifier(clock, s)
	v.cache = newTokenCache(100)
	tok := k1.mint(t, claimsAt(clock, "u", time.Minute), nil)

	hits, misses := cacheCount("hit"), cacheCount("miss")
	for range 3 {
		if c, aerr := v.verify(ctx, tok); aerr != nil {
			t.Fatal(aerr)
		} else if sub, _ := c.str("sub"); sub != "u" {
			t.Fatalf("cached claims: %v", c)
		}
	}
	if cacheCount("miss")-misses != 1 || cacheCount("hit")-hits != 2 {
		t.Fatalf("hits %v misses %v, want 2 and 1", cacheCount("hit")-hits, cacheCount("miss")-misses)
	}

	// a failure is never cached: the same bad token fails every time
	bad := k1.mint(t, claimsAt(clock, "u", -time.Hour), nil)
	for range 2 {
		if _, aerr := v.verify(ctx, bad); code(aerr) != codeTokenExpired {
			t.Fatalf("expired token: %s", code(aerr))
		}
	}
	if v.cache.lru.Len() != 1 {
		t.Fatalf("%d entries, want only the good token", v.cache.lru.Len())
	}

	// an entry never outlives exp plus leeway
	clock.advance(time.Minute + DefaultLeeway + time.Second)
	if _, aerr := v.verify(ctx, tok); code(aerr) != codeTokenExpired {
		t.Fatalf("expired cached token: %s, want TokenExpired", code(aerr))
	}

	// a key that leaves the set takes its tokens with it
	tok2 := k2.mint(t, claimsAt(clock, "u", time.Hour), nil)
	if _, aerr := v.verify(ctx, tok2); aerr != nil {
		t.Fatal(aerr)
	}
	idp.serveKeys(t, "", k1)
	clock.advance(defaultMinRefresh)
	if _, err := s.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, aerr := v.verify(ctx, tok2); code(aerr) != codeInvalidToken {
		t.Fatalf("token of a removed key: %s, want InvalidToken", code(aerr))
	}
}

// TestMetricsAfterKnownRequests: outcome counters move by exactly what a
// known sequence of requests should make them move.
func TestMetricsAfterKnownRequests(t *testing.T) {
	k := newTestKey(t, jwa.RS256(), "k")
	h, _ := newFileHandler(t, jwksOf(t, k), nil)
	reg := prometheus.NewRegistry()
	if err := registerMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if err := registerMetrics(reg); err != nil { // a reload registers again
		t.Fatalf("second registration: %v", err)
	}
	count := func(o string) float64 { return testutil.ToFloat64(metricRequests.WithLabelValues(o)) }
	outcomes := []string{outcomeOK, outcomeMissingToken, outcomeNotFound, outcomeValidationError, outcomeMethodNotAllowed, outcomeServiceAccount, outcomeExpired}
	before := map[string]float64{}
	for _, o := range outcomes {
		before[o] = count(o)
	}
	tok := k.mint(t, claimsFor("m"), nil)
	svc := claimsFor("robot")
	svc["UserType"] = 2
	expired := claimsFor("m")
	expired["exp"] = time.Now().Add(-time.Hour).Unix()
	serve(t, h, "GET", profilePath, nil, "")                              // missing_token
	serve(t, h, "GET", profilePath, bearer(tok), "")                      // not_found (no create_missing)
	serve(t, h, "PUT", profilePath, jsonPut(tok, ""), `{"UserName":"x"}`) // validation_error
	serve(t, h, "DELETE", profilePath, bearer(tok), "")                   // method_not_allowed
	serve(t, h, "GET", profilePath, bearer(k.mint(t, svc, nil)), "")      // service_account
	serve(t, h, "GET", profilePath, bearer(k.mint(t, expired, nil)), "")  // expired
	h.service.CreateMissing = true
	serve(t, h, "GET", profilePath, bearer(tok), "") // ok
	serve(t, h, "GET", profilePath, bearer(tok), "") // ok
	want := map[string]float64{outcomeOK: 2, outcomeMissingToken: 1, outcomeNotFound: 1, outcomeValidationError: 1,
		outcomeMethodNotAllowed: 1, outcomeServiceAccount: 1, outcomeExpired: 1}
	for o, n := range want {
		if got := count(o) - before[o]; got != n {
			t.Errorf("%s moved by %v, want %v", o, got, n)
		}
	}
	// the exposition names nothing personal
	out, err := testutil.CollectAndLint(metricRequests)
	if err != nil || len(out) > 0 {
		t.Fatalf("lint: %v %v", out, err)
	}
	if n, _ := testutil.GatherAndCount(reg, "caddy_workspace_profile_requests_total"); n == 0 {
		t.Fatal("requests_total not on the registry")
	}
}

// TestSharedSourceAndAdminView: two handlers (or two config generations)
// naming one URL share one source and one fetch; the admin view lists it
// with its kids and nothing secret; the last Cleanup stops it.
func TestSharedSourceAndAdminView(t *testing.T) {
	k := newTestKey(t, jwa.ES256(), "shared-kid")
	idp := newJWKSServer(t, jwksOf(t, k))
	mk := func() *Handler {
		h := &Handler{JWKSURLs: []string{idp.URL}, Issuers: []string{testIssuer}, Audiences: []string{testAudience},
			StorageRaw: json.RawMessage(`{"backend":"memory"}`)}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		t.Cleanup(cancel)
		if err := h.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		return h
	}
	a, b := mk(), mk()
	if a.verifier.sources[0] != b.verifier.sources[0] {
		t.Fatal("two handlers got two sources for one URL")
	}
	waitFor(t, func() bool { return a.verifier.sources[0].current() != nil })
	if n := idp.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for two handlers", n)
	}

	rec := httptest.NewRecorder()
	if err := serveKeys(rec, httptest.NewRequest("GET", "/workspace-profile/keys", nil)); err != nil {
		t.Fatal(err)
	}
	var view struct{ Sources []sourceStatus }
	if err := json.Unmarshal(rec.Body.Bytes(), &view); err != nil {
		t.Fatal(err)
	}
	var mine *sourceStatus
	for i := range view.Sources {
		if view.Sources[i].URL == idp.URL {
			mine = &view.Sources[i]
		}
	}
	if mine == nil || len(mine.Keys) != 1 || mine.Keys[0].Kid != "shared-kid" || mine.Keys[0].Alg != "ES256" || mine.LastGood == nil || mine.NextRefresh == nil {
		t.Fatalf("admin view: %s", rec.Body)
	}
	for _, secret := range []string{`"d":`, `"x":`, `"y":`, `"k":`, `"n":`} {
		if strings.Contains(rec.Body.String(), secret) {
			t.Fatalf("admin view shows key material %s: %s", secret, rec.Body)
		}
	}
	if rec := httptest.NewRecorder(); serveKeys(rec, httptest.NewRequest("POST", "/workspace-profile/keys", nil)) == nil {
		t.Fatal("POST accepted")
	}

	_ = a.Cleanup()
	if _, ok := keySourcePool.References(idp.URL); !ok {
		t.Fatal("the source went away while b still uses it")
	}
	_ = b.Cleanup()
	if _, ok := keySourcePool.References(idp.URL); ok {
		t.Fatal("the source outlived its last user")
	}
}

// TestNoGoroutineLeakAcrossReloads: 20 config generations, each provisioned
// before the previous one is cleaned up (as a reload does), share the
// source; once the last is cleaned up, no goroutine of ours is left.
func TestNoGoroutineLeakAcrossReloads(t *testing.T) {
	k := newTestKey(t, jwa.RS256(), "k")
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(jwksOf(t, k)) }))
	defer idp.Close()
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	var prev *Handler
	var cancels []context.CancelFunc
	for range 20 {
		h := &Handler{JWKSURLs: []string{idp.URL}, Issuers: []string{testIssuer}, Audiences: []string{testAudience},
			StorageRaw: json.RawMessage(`{"backend":"memory"}`), logger: zap.NewNop()}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		cancels = append(cancels, cancel)
		if err := h.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		if prev != nil {
			_ = prev.Cleanup()
		}
		prev = h
	}
	_ = prev.Cleanup()
	for _, c := range cancels {
		c()
	}
	idp.CloseClientConnections()
}
