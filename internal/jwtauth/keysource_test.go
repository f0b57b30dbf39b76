package jwtauth

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// newTestSource is an unstarted source on the fake clock: the test drives
// its fetches.
func newTestSource(url string, clock *jwtauthtest.Clock, opts RefreshOptions) *URLSource {
	return NewURLSource(url, URLOptions{Refresh: opts, Now: clock.Now})
}

// loadedSource is a source on the fake clock whose first fetch is done.
func loadedSource(t *testing.T, idp *jwtauthtest.Server, clock *jwtauthtest.Clock, opts RefreshOptions) *URLSource {
	t.Helper()
	s := newTestSource(idp.URL, clock, opts)
	if _, err := s.refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// newTestVerifier verifies the test tokens (jwtauthtest.Issuer and
// Audience, every default algorithm) on the fake clock, without a cache.
func newTestVerifier(t testing.TB, clock *jwtauthtest.Clock, sources ...Source) *Verifier {
	t.Helper()
	v, err := New(Config{Sources: sources, Issuers: []string{jwtauthtest.Issuer}, Audiences: []string{jwtauthtest.Audience},
		Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func code(aerr *Error) string {
	if aerr == nil {
		return "ok"
	}
	return aerr.Code
}

func TestKeyRotation(t *testing.T) {
	clock := jwtauthtest.NewClock()
	idp := jwtauthtest.NewServer(t)
	k1, k2 := jwtauthtest.NewKey(t, jwa.RS256(), "k1"), jwtauthtest.NewKey(t, jwa.ES256(), "k2")
	idp.ServeKeys(t, "", k1)
	s := loadedSource(t, idp, clock, RefreshOptions{})
	ctx := context.Background()
	v := newTestVerifier(t, clock, s)
	if _, aerr := v.Verify(ctx, k1.Mint(t, jwtauthtest.ClaimsAt(clock, "u", time.Hour), nil)); aerr != nil {
		t.Fatalf("k1 before rotation: %v", aerr)
	}

	// the provider rotates: k2 in, k1 out
	idp.ServeKeys(t, "", k2)
	clock.Advance(unknownKidSpacing) // 4s after the last fetch, well within min_refresh
	before := idp.Fetches.Load()
	if _, aerr := v.Verify(ctx, k2.Mint(t, jwtauthtest.ClaimsAt(clock, "u", time.Hour), nil)); aerr != nil {
		t.Fatalf("new kid k2 not accepted after one refresh: %v", aerr)
	}
	if idp.Fetches.Load() != before+1 {
		t.Fatalf("%d fetches for one unknown kid", idp.Fetches.Load()-before)
	}
	if _, aerr := v.Verify(ctx, k1.Mint(t, jwtauthtest.ClaimsAt(clock, "u", time.Hour), nil)); code(aerr) != CodeInvalidToken {
		t.Fatalf("removed kid k1: %s, want InvalidToken", code(aerr))
	}
}

func TestStaleKeysServeThenExpire(t *testing.T) {
	clock := jwtauthtest.NewClock()
	idp := jwtauthtest.NewServer(t)
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	idp.ServeKeys(t, "", k)
	s := loadedSource(t, idp, clock, RefreshOptions{MaxStale: time.Hour})
	ctx := context.Background()
	v := newTestVerifier(t, clock, s)

	for name, answer := range map[string]http.HandlerFunc{
		"5xx":       func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) },
		"HTML":      func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("<html>maintenance</html>")) },
		"truncated": func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(jwtauthtest.JWKS(t, k)[:40]) },
		"oversized": func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(strings.Repeat(" ", maxKeySetBytes+10)))
		},
		"only HMAC": func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`))
		},
		"empty set":  func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"keys":[]}`)) },
		"not a JWKS": func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"hello":"world"}`)) },
		"too many keys": func(w http.ResponseWriter, r *http.Request) {
			one := string(jwtauthtest.JWKS(t, k))
			one = one[strings.Index(one, "[")+1 : strings.LastIndex(one, "]")]
			_, _ = w.Write([]byte(`{"keys":[` + strings.TrimSuffix(strings.Repeat(one+",", maxKeysPerSet+1), ",") + `]}`))
		},
	} {
		idp.Serve(answer)
		clock.Advance(time.Minute)
		if _, err := s.refresh(ctx); err == nil {
			t.Fatalf("%s: refresh succeeded", name)
		}
		if _, aerr := v.Verify(ctx, k.Mint(t, jwtauthtest.ClaimsAt(clock, "u", time.Hour), nil)); aerr != nil {
			t.Fatalf("%s: the last good set stopped serving: %v", name, aerr)
		}
		if st := s.Status(); st.LastError == "" || len(st.Keys) != 1 {
			t.Fatalf("%s: status %+v", name, st)
		}
	}
	// past max_stale since the last good fetch: refuse
	clock.Advance(time.Hour)
	if _, aerr := v.Verify(ctx, k.Mint(t, jwtauthtest.ClaimsAt(clock, "u", time.Hour), nil)); code(aerr) != CodeKeysUnavailable {
		t.Fatalf("after max_stale: %s, want KeysUnavailable", code(aerr))
	}
	// the provider comes back: serving again
	idp.ServeKeys(t, "", k)
	if _, err := s.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, aerr := v.Verify(ctx, k.Mint(t, jwtauthtest.ClaimsAt(clock, "u", time.Hour), nil)); aerr != nil {
		t.Fatalf("after recovery: %v", aerr)
	}
}

func TestUnsupportedKeysSkipped(t *testing.T) {
	clock := jwtauthtest.NewClock()
	idp := jwtauthtest.NewServer(t)
	k := jwtauthtest.NewKey(t, jwa.EdDSA(), "ed")
	good := string(jwtauthtest.JWKS(t, k))
	idp.Serve(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(strings.Replace(good, `"keys":[`, `"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"hmac"},{"kty":"PQC","kid":"future"},`, 1)))
	})
	s := newTestSource(idp.URL, clock, RefreshOptions{})
	if _, err := s.refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := s.current().kids(); len(got) != 1 || got[0] != "ed" {
		t.Fatalf("kids %v", got)
	}
}

func TestRefreshHonoursCacheControl(t *testing.T) {
	clock := jwtauthtest.NewClock()
	idp := jwtauthtest.NewServer(t)
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	s := newTestSource(idp.URL, clock, RefreshOptions{MinRefresh: time.Minute, MaxRefresh: time.Hour})
	for cc, want := range map[string]time.Duration{
		"":                               time.Hour, // none: max_refresh
		"public, max-age=600":            10 * time.Minute,
		"max-age=5":                      time.Minute, // below min_refresh
		"max-age=86400":                  time.Hour,   // above max_refresh
		"no-cache":                       time.Minute,
		"s-maxage=1200, public":          20 * time.Minute,
		`max-age="900", must-revalidate`: 15 * time.Minute,
	} {
		idp.ServeKeys(t, cc, k)
		wait, err := s.refresh(context.Background())
		if err != nil || wait != want {
			t.Errorf("Cache-Control %q: next refresh in %v (%v), want %v", cc, wait, err, want)
		}
	}
	// after a failure the next try is min_refresh away
	idp.Serve(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	if wait, err := s.refresh(context.Background()); err == nil || wait != time.Minute {
		t.Errorf("after a failure: %v %v", wait, err)
	}
}

// TestUnknownKidStorm: 1000 tokens with random kids at once cost one
// fetch (the unknown-kid budget spaces them 4s apart; TestUnknownKidFlood
// spreads them over 10 minutes); and a token whose claims fail never
// causes a fetch at all.
func TestUnknownKidStorm(t *testing.T) {
	clock := jwtauthtest.NewClock()
	idp := jwtauthtest.NewServer(t)
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	idp.ServeKeys(t, "", k)
	s := loadedSource(t, idp, clock, RefreshOptions{})
	ctx := context.Background()
	v := newTestVerifier(t, clock, s)
	clock.Advance(defaultMinRefresh)
	before := idp.Fetches.Load()
	var wg sync.WaitGroup
	for i := range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := k.Mint(t, jwtauthtest.ClaimsAt(clock, "u", time.Hour), map[string]any{"kid": fmt.Sprintf("random-%d", i)})
			if _, aerr := v.Verify(ctx, tok); code(aerr) != CodeInvalidToken {
				t.Errorf("random kid: %s", code(aerr))
			}
		}()
	}
	wg.Wait()
	if n := idp.Fetches.Load() - before; n != 1 {
		t.Fatalf("%d fetches for 1000 unknown kids at once, want 1", n)
	}

	// expired, foreign or malformed: no fetch whatever kid they name
	clock.Advance(defaultMinRefresh)
	before = idp.Fetches.Load()
	expired := jwtauthtest.ClaimsAt(clock, "u", -time.Hour)
	foreign := jwtauthtest.ClaimsAt(clock, "u", time.Hour)
	foreign["iss"] = "https://evil.invalid"
	for _, c := range []map[string]any{expired, foreign} {
		_, _ = v.Verify(ctx, k.Mint(t, c, map[string]any{"kid": "nope"}))
	}
	_, _ = v.Verify(ctx, "x.y.z")
	if n := idp.Fetches.Load() - before; n != 0 {
		t.Fatalf("%d fetches caused by tokens whose claims fail", n)
	}
}

// TestConcurrentMissesShareOneFetch: a key rotated in, then 100 requests
// with it at once: one fetch, and all of them verified.
func TestConcurrentMissesShareOneFetch(t *testing.T) {
	clock := jwtauthtest.NewClock()
	idp := jwtauthtest.NewServer(t)
	old, fresh := jwtauthtest.NewKey(t, jwa.RS256(), "old"), jwtauthtest.NewKey(t, jwa.RS256(), "fresh")
	idp.ServeKeys(t, "", old)
	s := loadedSource(t, idp, clock, RefreshOptions{})
	ctx := context.Background()
	v := newTestVerifier(t, clock, s)
	// the provider is slow, so the 100 requests really overlap the fetch
	doc := jwtauthtest.JWKS(t, old, fresh)
	idp.Serve(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(100 * time.Millisecond)
		_, _ = w.Write(doc)
	})
	clock.Advance(defaultMinRefresh)
	before := idp.Fetches.Load()
	tok := fresh.Mint(t, jwtauthtest.ClaimsAt(clock, "u", time.Hour), nil)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, aerr := v.Verify(ctx, tok); aerr != nil {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := idp.Fetches.Load() - before; n != 1 || failed.Load() != 0 {
		t.Fatalf("%d fetches, %d failures; want 1 fetch and none", n, failed.Load())
	}
}

// TestSlowProviderDoesNotBlockKnownKeys: while a background refresh waits
// on a provider that does not answer, requests with known keys go on.
func TestSlowProviderDoesNotBlockKnownKeys(t *testing.T) {
	clock := jwtauthtest.NewClock()
	idp := jwtauthtest.NewServer(t)
	k := jwtauthtest.NewKey(t, jwa.ES256(), "k")
	idp.ServeKeys(t, "", k)
	s := loadedSource(t, idp, clock, RefreshOptions{})
	ctx := context.Background()
	v := newTestVerifier(t, clock, s)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	idp.Serve(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		_, _ = w.Write(jwtauthtest.JWKS(t, k))
	})
	done := make(chan struct{})
	go func() { _, _ = s.refresh(ctx); close(done) }()
	<-entered // the refresh is now stuck in the provider
	tok := k.Mint(t, jwtauthtest.ClaimsAt(clock, "u", time.Hour), nil)
	start := time.Now()
	for range 50 {
		if _, aerr := v.Verify(ctx, tok); aerr != nil {
			t.Fatal(aerr)
		}
	}
	took := time.Since(start)
	close(release)
	<-done
	if took > time.Second {
		t.Fatalf("50 verifications took %v while the provider hung", took)
	}
	t.Logf("50 verifications took %v during a hung fetch", took.Round(time.Millisecond))
}

func TestDiscovery(t *testing.T) {
	clock := jwtauthtest.NewClock()
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	var issuer string
	var doc string
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(doc)) })
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(jwtauthtest.JWKS(t, k)) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	issuer = srv.URL

	for name, c := range map[string]struct {
		doc string
		ok  bool
	}{
		"good":              {fmt.Sprintf(`{"issuer":%q,"jwks_uri":%q}`, issuer, srv.URL+"/keys"), true},
		"issuer mismatch":   {fmt.Sprintf(`{"issuer":"https://evil.invalid","jwks_uri":%q}`, srv.URL+"/keys"), false},
		"no jwks_uri":       {fmt.Sprintf(`{"issuer":%q}`, issuer), false},
		"plain http remote": {fmt.Sprintf(`{"issuer":%q,"jwks_uri":"http://keys.example.com/jwks"}`, issuer), false},
		"not JSON":          {`<html>`, false},
	} {
		t.Run(name, func(t *testing.T) {
			doc = c.doc
			s := newTestSource(DiscoveryURL(issuer), clock, RefreshOptions{})
			s.issuer = issuer
			_, err := s.refresh(context.Background())
			if (err == nil) != c.ok {
				t.Fatalf("refresh: %v", err)
			}
			if c.ok && (s.current() == nil || s.Status().JWKSURI != srv.URL+"/keys") {
				t.Fatalf("status %+v", s.Status())
			}
		})
	}
}
