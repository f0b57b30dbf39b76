package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
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

// pooledURLSource is the URL source keySourcePool holds for key, or nil.
func pooledURLSource(key string) *jwtauth.URLSource {
	var found *jwtauth.URLSource
	keySourcePool.Range(func(k, v any) bool {
		if k == key {
			found = v.(pooledSource).URLSource
		}
		return found == nil
	})
	return found
}

// TestReloadUpdatesRemoteOptions: a reload that names a key-set URL
// already in the pool with new min_refresh/max_refresh/max_stale gets
// them; the newest config's options win, and the running source uses them
// without waiting out the old max_refresh.
func TestReloadUpdatesRemoteOptions(t *testing.T) {
	idp := jwtauthtest.NewServer(t)
	k := jwtauthtest.NewKey(t, jwa.ES256(), "k")
	idp.ServeKeys(t, "", k)
	key := idp.URL + "/reload-options"
	load := func(opts jwtauth.RefreshOptions) *jwtauth.URLSource {
		s, err := loadURLSource(key, "", opts, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = keySourcePool.Delete(key) })
		return s
	}

	// the first config: refresh hourly
	s := load(jwtauth.RefreshOptions{MaxRefresh: time.Hour})
	eventually(t, 5*time.Second, "first fetch", func() bool { return s.KeysInForce() > 0 })
	fetched := idp.Fetches.Load()

	// a reload shortens max_refresh: the source refetches soon, not in an hour
	if s2 := load(jwtauth.RefreshOptions{MinRefresh: 20 * time.Millisecond, MaxRefresh: 50 * time.Millisecond}); s2 != s {
		t.Fatal("a reload made a second source for the same URL")
	}
	eventually(t, 3*time.Second, "a refetch after max_refresh was shortened", func() bool {
		return idp.Fetches.Load() >= fetched+2
	})

	// the provider goes down, and a reload shortens max_stale: the set
	// stops serving once it is older than the new max_stale
	idp.Serve(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	load(jwtauth.RefreshOptions{MinRefresh: 20 * time.Millisecond, MaxRefresh: 50 * time.Millisecond, MaxStale: 200 * time.Millisecond})
	eventually(t, 3*time.Second, "keys stale after max_stale was shortened", func() bool { return s.KeysInForce() == 0 })
	if !s.Status().Stale {
		t.Fatalf("status %+v, want stale", s.Status())
	}
}

// TestDiscoveryIssuerPlaceholder: discovery {env.X} accepts the issuer the
// placeholder names, not the placeholder's text.
func TestDiscoveryIssuerPlaceholder(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.ES256(), "k")
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	issuer := srv.URL + "/tenant"
	mux.HandleFunc("/tenant/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q}`, issuer, srv.URL+"/keys")
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(jwtauthtest.JWKS(t, k)) })
	t.Setenv("WSP_BOUNDARY_TEST_ISSUER", issuer)

	h := &Handler{
		Discovery:  []string{"{env.WSP_BOUNDARY_TEST_ISSUER}"},
		Audiences:  []string{testAudience},
		StorageRaw: json.RawMessage(`{"backend":"memory"}`),
	}
	provisionHandler(t, h)
	eventually(t, 5*time.Second, "discovery key set loaded", func() bool {
		return pooledURLSource(jwtauth.DiscoveryURL(issuer)).KeysInForce() > 0
	})
	claims := jwtauthtest.Claims("u")
	claims["iss"] = issuer
	if _, aerr := h.verifier.Verify(context.Background(), k.Mint(t, claims, nil)); aerr != nil {
		t.Fatalf("token from the discovered issuer: %s %v", aerr.Code, aerr)
	}
	claims["iss"] = "{env.WSP_BOUNDARY_TEST_ISSUER}"
	if _, aerr := h.verifier.Verify(context.Background(), k.Mint(t, claims, nil)); aerr == nil || aerr.Code != jwtauth.CodeInvalidIssuer {
		t.Fatalf("token naming the placeholder as issuer: %v, want InvalidIssuer", aerr)
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
		"max below min":         {base(30*time.Second, 10*time.Second, 0), "max_refresh: 10s is shorter than min_refresh 30s"},
		"min above default max": {base(20*time.Minute, 0, 0), "max_refresh: 15m (the default) is shorter than min_refresh 20m"},
		"stale below max":       {base(0, 2*time.Hour, time.Hour), "max_stale: 1h is shorter than max_refresh 2h"},
		"stale below default":   {base(0, 0, 10*time.Minute), "max_stale: 10m is shorter than max_refresh 15m (the default)"},
		"max above def. stale":  {base(0, 48*time.Hour, 0), "max_stale: 24h (the default) is shorter than max_refresh 48h"},
		"odd durations":         {base(90*time.Second, 0, 0), ""},
		"defaults":              {base(0, 0, 0), ""},
		"all set":               {base(time.Minute, time.Hour, 2*time.Hour), ""},
		"equal":                 {base(15*time.Minute, 0, 15*time.Minute), ""},
		"max equals def. stale": {base(0, 24*time.Hour, 0), ""},
		"min 90s max 2m30s":     {base(90*time.Second, 150*time.Second, 0), ""},
		"seconds formatting":    {base(0, 90*time.Minute+30*time.Second, time.Hour), "max_stale: 1h is shorter than max_refresh 1h30m30s"},
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

// TestKeySetURLRedactedOnAdmin: credentials and query values of a jwks_url
// never show in clear on the admin endpoint (jwtauth's tests cover log
// lines and errors).
func TestKeySetURLRedactedOnAdmin(t *testing.T) {
	const user, pass, secret = "alice", "pa55word", "t0psecret"
	secrets := []string{user, pass, secret}
	k := jwtauthtest.NewKey(t, jwa.ES256(), "k")
	idp := jwtauthtest.NewServer(t)
	idp.ServeKeys(t, "", k)
	withSecrets := func(base string) string {
		u, _ := url.Parse(base)
		u.User = url.UserPassword(user, pass)
		u.Path = "/jwks"
		u.RawQuery = "key=" + secret
		return u.String()
	}
	check := func(where, text string) {
		t.Helper()
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s shows %q: %s", where, s, text)
			}
		}
	}

	// the admin view of a source in the pool
	key := withSecrets(idp.URL)
	idp.ServeKeys(t, "", k)
	pooled, err := loadURLSource(key, "", jwtauth.RefreshOptions{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = keySourcePool.Delete(key) })
	eventually(t, 5*time.Second, "pooled source loaded", func() bool { return pooled.KeysInForce() > 0 })
	rec := httptest.NewRecorder()
	if err := serveKeys(rec, httptest.NewRequest(http.MethodGet, "/workspace-profile/keys", nil)); err != nil {
		t.Fatal(err)
	}
	body := rec.Body.String()
	check("the admin view", body)
	if !strings.Contains(body, "xxxxx@127.0.0.1") || !strings.Contains(body, "key=REDACTED") {
		t.Errorf("the admin view does not show the redacted URL: %s", body)
	}
}

// TestSharedSourceAndAdminView: two handlers (or two config generations)
// naming one URL share one source and one fetch; the admin view lists it
// with its kids and nothing secret; the last Cleanup stops it.
func TestSharedSourceAndAdminView(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.ES256(), "shared-kid")
	idp := jwtauthtest.NewJWKSServer(t, jwtauthtest.JWKS(t, k))
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
	if n, _ := keySourcePool.References(idp.URL); n != 2 || a.sourceKeys[0] != b.sourceKeys[0] {
		t.Fatalf("two handlers hold %d references to one URL's source", n)
	}
	waitFor(t, func() bool { return pooledURLSource(idp.URL).KeysInForce() > 0 })
	if n := idp.Fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for two handlers", n)
	}

	rec := httptest.NewRecorder()
	if err := serveKeys(rec, httptest.NewRequest("GET", "/workspace-profile/keys", nil)); err != nil {
		t.Fatal(err)
	}
	var view struct{ Sources []jwtauth.SourceStatus }
	if err := json.Unmarshal(rec.Body.Bytes(), &view); err != nil {
		t.Fatal(err)
	}
	var mine *jwtauth.SourceStatus
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
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(jwtauthtest.JWKS(t, k)) }))
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

// TestFailedProvisionReleasesSources: a Provision that fails after it took
// key sources (a second jwks_file that cannot be read, a storage module
// that does not exist) leaves none of them behind once Caddy has called
// Cleanup: no file on the admin view, no reference to a URL's source.
func TestFailedProvisionReleasesSources(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.ES256(), "k")
	idp := jwtauthtest.NewJWKSServer(t, jwtauthtest.JWKS(t, k))
	good := writeFile(t, "good.json", jwtauthtest.JWKS(t, k))
	listed := func() bool {
		found := false
		liveFiles.Range(func(f, _ any) bool {
			found = f.(*jwtauth.FileSource).Status().File == good
			return !found
		})
		return found
	}
	for name, h := range map[string]Handler{
		"second file unreadable": {JWKSFiles: []string{good, filepath.Join(t.TempDir(), "missing.json")},
			Issuers: []string{testIssuer}, Audiences: []string{testAudience}, StorageRaw: json.RawMessage(`{"backend":"memory"}`)},
		"unknown storage": {JWKSFiles: []string{good}, JWKSURLs: []string{idp.URL},
			Issuers: []string{testIssuer}, Audiences: []string{testAudience}, StorageRaw: json.RawMessage(`{"backend":"nope"}`)},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := newTestContext()
			defer cancel()
			if _, err := ctx.LoadModuleByID("http.handlers.workspace_profile", caddyconfig.JSON(h, nil)); err == nil {
				t.Fatal("provisioned")
			}
			if listed() {
				t.Error("the file source of a failed Provision is still on the admin view")
			}
			if n, ok := keySourcePool.References(idp.URL); ok {
				t.Errorf("the URL source of a failed Provision still has %d references", n)
			}
		})
	}
}
