package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"go.uber.org/zap"
)

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestUnknownKidFetchSurvivesCallerCancel: the request that triggers the
// shared unknown-kid fetch hangs up while the provider is slow. The fetch
// still completes for everyone, the new key is in force, and the next
// caller within min_refresh needs no fetch of its own.
func TestUnknownKidFetchSurvivesCallerCancel(t *testing.T) {
	clock := newFakeClock()
	idp := newTestServer(t)
	old, fresh := newTestKey(t, jwa.ES256(), "old"), newTestKey(t, jwa.ES256(), "fresh")
	idp.serveKeys(t, "", old)
	s := loadedSource(t, idp, clock, remoteOptions{})
	v := newTestVerifier(clock, s)

	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	doc := jwksOf(t, old, fresh)
	idp.serve(func(w http.ResponseWriter, r *http.Request) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		_, _ = w.Write(doc)
	})
	clock.advance(defaultMinRefresh)
	before := idp.fetches.Load()

	tok := fresh.mint(t, claimsAt(clock, "u", time.Hour), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = v.verify(ctx, tok)
	}()
	<-entered // the fetch is in the slow provider
	cancel()  // the client hangs up
	select {
	case <-done: // a fetch tied to the request gives up here
	case <-time.After(200 * time.Millisecond):
	}
	unblock()
	<-done

	if ks := s.current(); ks == nil || len(ks.candidates("ES256", "fresh", nil)) != 1 {
		t.Fatalf("the fetch was cancelled with its caller: the new key is not in force (last error %q)", s.status().LastError)
	}
	if _, aerr := v.verify(context.Background(), tok); aerr != nil {
		t.Fatalf("second caller: %v", aerr)
	}
	if n := idp.fetches.Load() - before; n != 1 {
		t.Fatalf("%d fetches, want the one shared fetch", n)
	}
}

// TestReloadUpdatesRemoteOptions: a reload that names a key-set URL
// already in the pool with new min_refresh/max_refresh/max_stale gets
// them; the newest config's options win, and the running source uses them
// without waiting out the old max_refresh.
func TestReloadUpdatesRemoteOptions(t *testing.T) {
	idp := newTestServer(t)
	k := newTestKey(t, jwa.ES256(), "k")
	idp.serveKeys(t, "", k)
	key := idp.URL + "/reload-options"
	load := func(opts remoteOptions) *urlSource {
		s, err := loadURLSource(key, "", opts, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = keySourcePool.Delete(key) })
		return s
	}

	// the first config: refresh hourly
	s := load(remoteOptions{maxRefresh: time.Hour})
	eventually(t, 5*time.Second, "first fetch", func() bool { return s.current() != nil })
	fetched := idp.fetches.Load()

	// a reload shortens max_refresh: the source refetches soon, not in an hour
	if s2 := load(remoteOptions{minRefresh: 20 * time.Millisecond, maxRefresh: 50 * time.Millisecond}); s2 != s {
		t.Fatal("a reload made a second source for the same URL")
	}
	eventually(t, 3*time.Second, "a refetch after max_refresh was shortened", func() bool {
		return idp.fetches.Load() >= fetched+2
	})

	// the provider goes down, and a reload shortens max_stale: the set
	// stops serving once it is older than the new max_stale
	idp.serve(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	load(remoteOptions{minRefresh: 20 * time.Millisecond, maxRefresh: 50 * time.Millisecond, maxStale: 200 * time.Millisecond})
	eventually(t, 3*time.Second, "keys stale after max_stale was shortened", func() bool { return s.current() == nil })
	if !s.status().Stale {
		t.Fatalf("status %+v, want stale", s.status())
	}
}

// TestDiscoveryIssuerPlaceholder: discovery {env.X} accepts the issuer the
// placeholder names, not the placeholder's text.
func TestDiscoveryIssuerPlaceholder(t *testing.T) {
	k := newTestKey(t, jwa.ES256(), "k")
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	issuer := srv.URL + "/tenant"
	mux.HandleFunc("/tenant/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q}`, issuer, srv.URL+"/keys")
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(jwksOf(t, k)) })
	t.Setenv("WSP_BOUNDARY_TEST_ISSUER", issuer)

	h := &Handler{
		Discovery:  []string{"{env.WSP_BOUNDARY_TEST_ISSUER}"},
		Audiences:  []string{testAudience},
		StorageRaw: json.RawMessage(`{"backend":"memory"}`),
	}
	provisionHandler(t, h)
	eventually(t, 5*time.Second, "discovery key set loaded", func() bool {
		for _, s := range h.verifier.sources {
			if s.current() != nil {
				return true
			}
		}
		return false
	})
	claims := claimsFor("u")
	claims["iss"] = issuer
	if _, aerr := h.verifier.verify(context.Background(), k.mint(t, claims, nil)); aerr != nil {
		t.Fatalf("token from the discovered issuer: %s %v", aerr.code, aerr)
	}
	claims["iss"] = "{env.WSP_BOUNDARY_TEST_ISSUER}"
	if _, aerr := h.verifier.verify(context.Background(), k.mint(t, claims, nil)); code(aerr) != codeInvalidIssuer {
		t.Fatalf("token naming the placeholder as issuer: %s, want InvalidIssuer", code(aerr))
	}
}

// TestRefreshOptionsConflict: max_refresh below min_refresh, or max_stale
// below max_refresh, once the defaults fill the unset ones, is a config
// error naming both options.
func TestRefreshOptionsConflict(t *testing.T) {
	base := func(min, max, stale time.Duration) *Handler {
		return &Handler{JWKSURLs: []string{"https://idp.example.com/jwks"}, Issuers: []string{"i"}, Audiences: []string{"a"},
			MinRefresh: caddy.Duration(min), MaxRefresh: caddy.Duration(max), MaxStale: caddy.Duration(stale)}
	}
	for name, tt := range map[string]struct {
		h    *Handler
		want string // "" for a valid config
	}{
		"max below min":         {base(30*time.Second, 10*time.Second, 0), "workspace_profile: max_refresh: 10s is shorter than min_refresh 30s"},
		"min above default max": {base(20*time.Minute, 0, 0), "workspace_profile: max_refresh: 15m (the default) is shorter than min_refresh 20m"},
		"stale below max":       {base(0, 2*time.Hour, time.Hour), "workspace_profile: max_stale: 1h is shorter than max_refresh 2h"},
		"stale below default":   {base(0, 0, 10*time.Minute), "workspace_profile: max_stale: 10m is shorter than max_refresh 15m (the default)"},
		"max above def. stale":  {base(0, 48*time.Hour, 0), "workspace_profile: max_stale: 24h (the default) is shorter than max_refresh 48h"},
		"odd durations":         {base(90*time.Second, 0, 0), ""},
		"defaults":              {base(0, 0, 0), ""},
		"all set":               {base(time.Minute, time.Hour, 2*time.Hour), ""},
		"equal":                 {base(15*time.Minute, 0, 15*time.Minute), ""},
		"max equals def. stale": {base(0, 24*time.Hour, 0), ""},
		"min 90s max 2m30s":     {base(90*time.Second, 150*time.Second, 0), ""},
		"seconds formatting":    {base(0, 90*time.Minute+30*time.Second, time.Hour), "workspace_profile: max_stale: 1h is shorter than max_refresh 1h30m30s"},
	} {
		t.Run(name, func(t *testing.T) {
			err := tt.h.validateConfig()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || err.Error() != tt.want):
				t.Fatalf("error %v, want %s", err, tt.want)
			}
		})
	}

	// the same through the Caddyfile: the parser fills the fields,
	// provision refuses them
	var h Handler
	input := "workspace_profile {\njwks_url https://idp.example.com/jwks\nissuer i\naudience a\nmin_refresh 20m\n}"
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := newTestContext()
	defer cancel()
	err := h.Provision(ctx)
	_ = h.Cleanup()
	if err == nil || !strings.Contains(err.Error(), "max_refresh") || !strings.Contains(err.Error(), "min_refresh 20m") {
		t.Fatalf("Caddyfile min_refresh 20m alone: %v", err)
	}
}
