package jwtauth

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// observedLogger records every entry at debug level and above.
func observedLogger() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(core), logs
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
// caller needs no fetch of its own.
func TestUnknownKidFetchSurvivesCallerCancel(t *testing.T) {
	clock := jwtauthtest.NewClock()
	idp := jwtauthtest.NewServer(t)
	old, fresh := jwtauthtest.NewKey(t, jwa.ES256(), "old"), jwtauthtest.NewKey(t, jwa.ES256(), "fresh")
	idp.ServeKeys(t, "", old)
	s := loadedSource(t, idp, clock, RefreshOptions{})
	v := newTestVerifier(t, clock, s)

	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	doc := jwtauthtest.JWKS(t, old, fresh)
	idp.Serve(func(w http.ResponseWriter, r *http.Request) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		_, _ = w.Write(doc)
	})
	clock.Advance(defaultMinRefresh)
	before := idp.Fetches.Load()

	tok := fresh.Mint(t, jwtauthtest.ClaimsAt(clock, "u", time.Hour), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = v.Verify(ctx, tok)
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
		t.Fatalf("the fetch was cancelled with its caller: the new key is not in force (last error %q)", s.Status().LastError)
	}
	if _, aerr := v.Verify(context.Background(), tok); aerr != nil {
		t.Fatalf("second caller: %v", aerr)
	}
	if n := idp.Fetches.Load() - before; n != 1 {
		t.Fatalf("%d fetches, want the one shared fetch", n)
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
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestKeySetURLRedacted: credentials and query values of a jwks_url never
// show in clear, in log lines, in errors or in a source's status (the
// admin endpoint itself is caddymodule's TestKeySetURLRedactedOnAdmin).
func TestKeySetURLRedacted(t *testing.T) {
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

	// one source through a good fetch, a failed one, an unknown kid and an
	// unreachable provider
	logger, logs := observedLogger()
	clock := jwtauthtest.NewClock()
	s := NewURLSource(withSecrets(idp.URL), URLOptions{Logger: logger})
	s.now = clock.Now
	if _, err := s.refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	idp.Serve(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	clock.Advance(time.Hour)
	if _, err := s.refresh(context.Background()); err == nil {
		t.Fatal("refresh against a 500 succeeded")
	} else {
		check("the refresh error", err.Error())
	}
	check("last_error after a 500", s.Status().LastError)
	clock.Advance(time.Hour)
	s.refreshForUnknownKid(context.Background(), "unknown")

	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	gone := NewURLSource(withSecrets(dead.URL), URLOptions{Logger: logger})
	if _, err := gone.refresh(context.Background()); err == nil {
		t.Fatal("refresh against a closed port succeeded")
	}
	check("last_error of an unreachable provider", gone.Status().LastError)

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
	k := jwtauthtest.NewKey(t, jwa.ES256(), huge)
	good := string(jwtauthtest.JWKS(t, k))
	hugeJSON := string(jwtauthtest.MustJSON(t, huge))
	doc := strings.Replace(good, `"keys":[`, `"keys":[{"kty":"oct","k":"c2VjcmV0","kid":`+hugeJSON+`},`+
		`{"kty":`+hugeJSON+`,"kid":"odd"},{"kty":"RSA","kid":`+hugeJSON+`,"use":"enc","n":"AQAB","e":"AQAB"},`, 1)

	logger, logs := observedLogger()
	clock := jwtauthtest.NewClock()
	idp := jwtauthtest.NewServer(t)
	idp.Set(http.StatusOK, []byte(doc))
	s := NewURLSource(idp.URL, URLOptions{Logger: logger})
	s.now = clock.Now
	if _, err := s.refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	s.refreshForUnknownKid(context.Background(), huge)
	// a discovery document naming a huge issuer: the error is bounded too
	idp.Set(http.StatusOK, []byte(`{"issuer":`+hugeJSON+`,"jwks_uri":"x"}`))
	d := NewURLSource(idp.URL, URLOptions{Logger: logger})
	d.issuer = "https://idp.example.com"
	if _, err := d.refresh(context.Background()); err == nil {
		t.Fatal("discovery with a foreign issuer succeeded")
	}
	if n := len(d.Status().LastError); n > maxLoggedText+10 {
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
	a, b, c := jwtauthtest.NewKey(t, jwa.ES256(), "dup"), jwtauthtest.NewKey(t, jwa.ES256(), "dup"), jwtauthtest.NewKey(t, jwa.ES256(), "dup")
	other := jwtauthtest.NewKey(t, jwa.ES256(), "other")
	logger, logs := observedLogger()
	clock := jwtauthtest.NewClock()
	idp := jwtauthtest.NewServer(t)
	idp.ServeKeys(t, "", a, b, other, c)
	s := NewURLSource(idp.URL, URLOptions{Logger: logger})
	s.now = clock.Now
	if _, err := s.refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(s.current().keys); n != 4 {
		t.Fatalf("%d keys in force, want all 4", n)
	}
	v := newTestVerifier(t, clock, s)
	for i, key := range []jwtauthtest.Key{a, b, c} {
		if _, aerr := v.Verify(context.Background(), key.Mint(t, jwtauthtest.ClaimsAt(clock, "u", time.Hour), nil)); aerr != nil {
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
