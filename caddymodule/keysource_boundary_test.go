package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// observedLogger records every entry at debug level and above.
func observedLogger() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(core), logs
}

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

// logStrings flattens every string value of an entry's message and fields,
// including the elements of string arrays.
func logStrings(e observer.LoggedEntry) map[string][]string {
	out := map[string][]string{"msg": {e.Message}}
	var walk func(key string, v any)
	walk = func(key string, v any) {
		switch v := v.(type) {
		case string:
			out[key] = append(out[key], v)
		case []any:
			for _, x := range v {
				walk(key, x)
			}
		case error:
			out[key] = append(out[key], v.Error())
		}
	}
	for k, v := range e.ContextMap() {
		walk(k, v)
	}
	return out
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

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://idp.example.com/jwks":                         "https://idp.example.com/jwks",
		"https://user:pass@idp.example.com/jwks":               "https://xxxxx@idp.example.com/jwks",
		"https://token@idp.example.com/jwks":                   "https://xxxxx@idp.example.com/jwks",
		"https://idp.example.com/jwks?key=s3cret&b=1":          "https://idp.example.com/jwks?key=REDACTED&b=REDACTED",
		"https://idp.example.com/jwks?s3cret":                  "https://idp.example.com/jwks?REDACTED",
		"https://u:p@idp.example.com:8443/a/b?sig=x#frag":      "https://xxxxx@idp.example.com:8443/a/b?sig=REDACTED",
		"http://127.0.0.1:9/jwks?a=1&a=2":                      "http://127.0.0.1:9/jwks?a=REDACTED&a=REDACTED",
		"https://user:p%zzass@idp.example.com/jwks?key=s3cret": "[unparsable URL]",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestKeySetURLRedacted: credentials and query values of a jwks_url never
// show in clear, in log lines, in errors or on the admin endpoint.
func TestKeySetURLRedacted(t *testing.T) {
	const user, pass, secret = "alice", "pa55word", "t0psecret"
	secrets := []string{user, pass, secret}
	k := newTestKey(t, jwa.ES256(), "k")
	idp := newTestServer(t)
	idp.serveKeys(t, "", k)
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

	// one source through a good fetch, a failed one, an unknown kid and an
	// unreachable provider
	logger, logs := observedLogger()
	clock := newFakeClock()
	s := newURLSource(withSecrets(idp.URL), remoteOptions{}, logger)
	s.now = clock.now
	if _, err := s.refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	idp.serve(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	clock.advance(time.Hour)
	if _, err := s.refresh(context.Background()); err == nil {
		t.Fatal("refresh against a 500 succeeded")
	} else {
		check("the refresh error", err.Error())
	}
	check("last_error after a 500", s.status().LastError)
	clock.advance(time.Hour)
	s.refreshForUnknownKid(context.Background(), "unknown")

	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	gone := newURLSource(withSecrets(dead.URL), remoteOptions{}, logger)
	if _, err := gone.refresh(context.Background()); err == nil {
		t.Fatal("refresh against a closed port succeeded")
	}
	check("last_error of an unreachable provider", gone.status().LastError)

	if logs.Len() < 4 {
		t.Fatalf("only %d log entries", logs.Len())
	}
	sawURL := false
	for _, e := range logs.All() {
		for field, vals := range logStrings(e) {
			for _, v := range vals {
				check(fmt.Sprintf("log %q field %s", e.Message, field), v)
				sawURL = sawURL || (field == "url" && strings.Contains(v, "REDACTED"))
			}
		}
	}
	if !sawURL {
		t.Error("no log line names the source's URL in redacted form")
	}

	// the admin view of a source in the pool
	key := withSecrets(idp.URL)
	idp.serveKeys(t, "", k)
	pooled, err := loadURLSource(key, "", remoteOptions{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = keySourcePool.Delete(key) })
	eventually(t, 5*time.Second, "pooled source loaded", func() bool { return pooled.current() != nil })
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

func TestLogKid(t *testing.T) {
	for in, want := range map[string]string{
		"":                               "",
		"k1":                             "k1",
		"a\"b\\c":                        `a\"b\\c`,
		"\x00\x1b[31m\n":                 `\x00\x1b[31m\n`,
		"clé":                            `cl\u00e9`,
		"\xff":                           `\xff`,
		strings.Repeat("a", 64):          strings.Repeat("a", 64),
		strings.Repeat("a", 65):          strings.Repeat("a", 61) + "…",
		strings.Repeat("\n", 40):         strings.Repeat(`\n`, 30) + "…",
		strings.Repeat("é", 40):          strings.Repeat(`\u00e9`, 10) + "…",
		"x" + strings.Repeat("\x01", 20): "x" + strings.Repeat(`\x01`, 15) + "…",
	} {
		got := logKid(in)
		if got != want {
			t.Errorf("logKid(%q) = %q, want %q", in, got, want)
		}
		if len(got) > maxLoggedKid {
			t.Errorf("logKid(%q) is %d bytes", in, len(got))
		}
	}
}

// TestKidLoggedBounded: a 10 KiB kid full of control characters, in a
// token or in a key set, is logged bounded and escaped; so is every other
// string a provider's document puts into a log line.
func TestKidLoggedBounded(t *testing.T) {
	huge := strings.Repeat("\x1b[2J\r\n\x00evil\u202e", 10<<10/13)
	if len(huge) < 10<<10-20 {
		t.Fatalf("kid of %d bytes", len(huge))
	}
	k := newTestKey(t, jwa.ES256(), huge)
	good := string(jwksOf(t, k))
	hugeJSON := string(mustJSON(t, huge))
	doc := strings.Replace(good, `"keys":[`, `"keys":[{"kty":"oct","k":"c2VjcmV0","kid":`+hugeJSON+`},`+
		`{"kty":`+hugeJSON+`,"kid":"odd"},{"kty":"RSA","kid":`+hugeJSON+`,"use":"enc","n":"AQAB","e":"AQAB"},`, 1)

	logger, logs := observedLogger()
	clock := newFakeClock()
	idp := newTestServer(t)
	idp.set(http.StatusOK, []byte(doc))
	s := newURLSource(idp.URL, remoteOptions{}, logger)
	s.now = clock.now
	if _, err := s.refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	clock.advance(time.Hour)
	s.refreshForUnknownKid(context.Background(), huge)
	// a discovery document naming a huge issuer: the error is bounded too
	idp.set(http.StatusOK, []byte(`{"issuer":`+hugeJSON+`,"jwks_uri":"x"}`))
	d := newURLSource(idp.URL, remoteOptions{}, logger)
	d.issuer = "https://idp.example.com"
	if _, err := d.refresh(context.Background()); err == nil {
		t.Fatal("discovery with a foreign issuer succeeded")
	}
	if n := len(d.status().LastError); n > maxLoggedText+10 {
		t.Errorf("last_error of %d bytes", n)
	}

	kidFields := 0
	for _, e := range logs.All() {
		for field, vals := range logStrings(e) {
			for _, v := range vals {
				limit := maxLoggedText
				if field == "kid" || field == "kids" {
					limit = maxLoggedKid
					kidFields++
				}
				if len(v) > limit {
					t.Errorf("log %q field %s is %d bytes", e.Message, field, len(v))
				}
				for _, b := range []byte(v) {
					if b < 0x20 || b == 0x7f {
						t.Errorf("log %q field %s has control byte %#x", e.Message, field, b)
						break
					}
				}
				if strings.Contains(v, "\u202e") {
					t.Errorf("log %q field %s has a bidi override", e.Message, field)
				}
			}
		}
	}
	// skipped oct, skipped enc, the loaded set's kids, the unknown kid
	if kidFields < 4 {
		t.Errorf("only %d kid fields logged", kidFields)
	}
}

// TestDuplicateKidsLoggedOnce: a key set naming one kid three times gets
// one warning naming it, and keeps every key as before.
func TestDuplicateKidsLoggedOnce(t *testing.T) {
	a, b, c := newTestKey(t, jwa.ES256(), "dup"), newTestKey(t, jwa.ES256(), "dup"), newTestKey(t, jwa.ES256(), "dup")
	other := newTestKey(t, jwa.ES256(), "other")
	logger, logs := observedLogger()
	clock := newFakeClock()
	idp := newTestServer(t)
	idp.serveKeys(t, "", a, b, other, c)
	s := newURLSource(idp.URL, remoteOptions{}, logger)
	s.now = clock.now
	if _, err := s.refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(s.current().keys); n != 4 {
		t.Fatalf("%d keys in force, want all 4", n)
	}
	v := newTestVerifier(clock, s)
	for i, key := range []testKey{a, b, c} {
		if _, aerr := v.verify(context.Background(), key.mint(t, claimsAt(clock, "u", time.Hour), nil)); aerr != nil {
			t.Fatalf("duplicate %d: %v", i, aerr)
		}
	}
	var dups []observer.LoggedEntry
	for _, e := range logs.All() {
		if strings.Contains(e.Message, "duplicate") {
			dups = append(dups, e)
		}
	}
	if len(dups) != 1 || dups[0].ContextMap()["kid"] != "dup" || dups[0].Level != zapcore.WarnLevel {
		t.Fatalf("duplicate warnings: %+v, want one warning naming dup", dups)
	}
}
