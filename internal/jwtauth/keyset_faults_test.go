package jwtauth

// Faults of the key set provider and of its documents (catalogue part B,
// docs/threat-model.md), each row a subtest on the row machinery of
// helpers_test.go.

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// hijackReset answers with the headers and half a body, then resets the
// connection (RST, not FIN).
func hijackReset(body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
		_, _ = buf.Write(body[:len(body)/2])
		_ = buf.Flush()
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = conn.Close()
	}
}

// hang answers only when the client gives up (or the test ends).
func hang(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

// quietTLSServer is httptest.NewTLSServer without the handshake errors
// an untrusting client causes in the test output.
func quietTLSServer(h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	return srv
}

type fetchHook func(ok bool)

func (f fetchHook) KeySetFetched(ok bool) { f(ok) }
func (fetchHook) TokenCacheLookup(bool)   {}

func mustURL(t *testing.T, raw string) *url.URL {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestKeySetProviderDown: a provider down at start gives KeysUnavailable
// until it is back, with no fetch per request; down later, the last good
// set keeps serving up to max_stale; a failed fetch is tried again after
// min_refresh (catalogue rows B01, B02, B15, docs/threat-model.md).
func TestKeySetProviderDown(t *testing.T) {
	k := newThreatKeys(t)
	ctx := context.Background()
	mint := func(e *threatEnv, key jwtauthtest.Key) string {
		return key.Mint(t, jwtauthtest.ClaimsAt(e.clock, "alice", time.Hour), nil)
	}
	rows := []threatRow{
		// down at start: refused, reset, hanging past the fetch timeout;
		// KeysUnavailable without a fetch per request, then recovery
		{"B01_down_at_start", 0, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, envOpts{keys: []jwtauthtest.Key{k.es}}) // only for the row's checks
			for name, answer := range map[string]http.HandlerFunc{
				"503":   func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) },
				"reset": hijackReset([]byte(`{"keys":[]}`)),
				"hang":  hang,
			} {
				t.Run(name, func(t *testing.T) {
					idp := jwtauthtest.NewServer(t)
					idp.Serve(answer)
					s := NewURLSource(idp.URL, URLOptions{Now: e.clock.Now, Mono: e.clock.Mono, FetchTimeout: testFetchTimeout})
					defer s.Close()
					v := newTestVerifier(t, e.clock, s)
					start := time.Now()
					if _, err := s.refresh(ctx); err == nil {
						t.Fatal("first fetch succeeded")
					}
					if d := time.Since(start); d > 2*time.Second {
						t.Fatalf("a failed fetch took %v", d)
					}
					before := idp.Fetches.Load()
					for range 5 {
						if _, aerr := v.Verify(ctx, mint(e, k.es)); code(aerr) != CodeKeysUnavailable {
							t.Fatalf("%s, want KeysUnavailable", code(aerr))
						}
					}
					if idp.Fetches.Load() != before {
						t.Fatal("requests without keys made fetches")
					}
					idp.ServeKeys(t, "", k.es)
					if _, err := s.refresh(ctx); err != nil {
						t.Fatal(err)
					}
					if _, aerr := v.Verify(ctx, mint(e, k.es)); aerr != nil {
						t.Fatalf("after recovery: %v", aerr)
					}
				})
			}
			t.Run("refused", func(t *testing.T) {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				addr := l.Addr().String()
				_ = l.Close()
				s := NewURLSource("http://"+addr+"/jwks", URLOptions{Now: e.clock.Now, Mono: e.clock.Mono, FetchTimeout: testFetchTimeout})
				defer s.Close()
				if _, err := s.refresh(ctx); err == nil {
					t.Fatal("fetch from a closed port succeeded")
				}
				if _, aerr := newTestVerifier(t, e.clock, s).Verify(ctx, mint(e, k.es)); code(aerr) != CodeKeysUnavailable {
					t.Fatalf("%s", code(aerr))
				}
			})
			t.Run("run loop retries until the provider is back", func(t *testing.T) {
				idp := jwtauthtest.NewServer(t)
				idp.Serve(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) })
				var once sync.Once
				s := NewURLSource(idp.URL, URLOptions{FetchTimeout: testFetchTimeout, Observer: fetchHook(func(ok bool) {
					once.Do(func() { idp.ServeKeys(t, "", k.es) }) // back right after the first failure
				})})
				s.Start()
				defer s.Close()
				deadline := time.Now().Add(5 * time.Second)
				for s.KeysInForce() == 0 {
					if time.Now().After(deadline) {
						t.Fatal("no key set 5s after the provider came back")
					}
					time.Sleep(20 * time.Millisecond) // the run loop's own backoff is on the real clock
				}
			})
		}},
		{"B02_down_later_keeps_last_good_set", 5 + 4, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, envOpts{keys: []jwtauthtest.Key{k.es}, source: URLOptions{Refresh: RefreshOptions{MaxStale: time.Hour}}})
			doc := jwtauthtest.JWKS(t, k.es)
			for name, answer := range map[string]http.HandlerFunc{
				"5xx":       func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(502) },
				"timeout":   hang,
				"reset":     hijackReset(doc),
				"text/html": func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<html>down</html>")) },
				"empty set": func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"keys":[]}`)) },
			} {
				e.idp.Serve(answer)
				e.clock.Advance(time.Minute)
				if _, err := e.src.refresh(ctx); err == nil {
					t.Fatalf("%s: fetch succeeded", name)
				}
				e.expect(t, mint(e, k.es), "ok")
				if e.src.Status().LastError == "" {
					t.Fatalf("%s: no last error", name)
				}
			}
			// max_stale on the monotonic clock: wall jumps neither age the
			// set early nor keep it past max_stale
			e.idp.Set(http.StatusOK, doc)
			if _, err := e.src.refresh(ctx); err != nil {
				t.Fatal(err)
			}
			e.idp.Serve(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) })
			e.clock.JumpWall(48 * time.Hour)
			if _, err := e.src.refresh(ctx); err == nil {
				t.Fatal("refresh succeeded")
			}
			e.expect(t, mint(e, k.es), "ok") // minted at the new wall time
			if age, _ := e.src.SinceLastGood(); age != 0 {
				t.Fatalf("age %v after a wall jump, want 0", age)
			}
			e.clock.JumpWall(-96 * time.Hour)
			e.clock.Advance(59 * time.Minute)
			e.expect(t, mint(e, k.es), "ok")
			e.clock.Advance(2 * time.Minute) // past max_stale, whatever the wall says
			if _, err := e.src.refresh(ctx); err == nil {
				t.Fatal("refresh succeeded")
			}
			e.expect(t, mint(e, k.es), CodeKeysUnavailable)
			e.idp.Set(http.StatusOK, doc)
			if _, err := e.src.refresh(ctx); err != nil {
				t.Fatal(err)
			}
			e.expect(t, mint(e, k.es), "ok")
		}},
		// by design, no jitter: a failed fetch is tried again after
		// min_refresh, the last good set serving meanwhile
		{"B15_failed_fetch_retried_after_min_refresh", 1, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, envOpts{keys: []jwtauthtest.Key{k.es}})
			e.idp.Serve(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) })
			wait, err := e.src.refresh(ctx)
			if err == nil || wait != defaultMinRefresh {
				t.Fatalf("wait %v (%v), want min_refresh", wait, err)
			}
			e.expect(t, mint(e, k.es), "ok")
		}},
	}
	runRows(t, rows)
}

// TestKeySetRotation: a new kid is in force after the scheduled refresh or
// one throttled fetch, a removed kid is refused, and Cache-Control only
// moves the refresh within [min_refresh, max_refresh] (rows B03-B05, B14).
func TestKeySetRotation(t *testing.T) {
	k := newThreatKeys(t)
	ctx := context.Background()
	mint := func(e *threatEnv, key jwtauthtest.Key) string {
		return key.Mint(t, jwtauthtest.ClaimsAt(e.clock, "alice", time.Hour), nil)
	}
	rows := []threatRow{
		{"B03_published_kid_after_refresh", 1, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, envOpts{keys: []jwtauthtest.Key{k.es}})
			e.idp.ServeKeys(t, "", k.es, k.ed)
			e.clock.Advance(defaultMaxRefresh)
			if _, err := e.src.refresh(ctx); err != nil { // the scheduled refresh
				t.Fatal(err)
			}
			e.expect(t, mint(e, k.ed), "ok")
		}},
		{"B04_unknown_kid_one_throttled_fetch", 1, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, envOpts{keys: []jwtauthtest.Key{k.es}})
			e.idp.ServeKeys(t, "", k.es, k.ed)
			e.clock.Advance(defaultMinRefresh)
			e.expect(t, mint(e, k.ed), "ok") // one throttled fetch, then accepted
			e.expect(t, mint(e, k.ed), "ok")
		}},
		{"B05_removed_kid_refused", 1, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, envOpts{keys: []jwtauthtest.Key{k.es, k.ed}})
			e.expect(t, mint(e, k.ed), "ok")
			e.idp.ServeKeys(t, "", k.es)
			e.clock.Advance(defaultMaxRefresh)
			if _, err := e.src.refresh(ctx); err != nil {
				t.Fatal(err)
			}
			e.expect(t, mint(e, k.ed), CodeInvalidToken)
		}},
		{"B14_cache_control_clamped", 3, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, envOpts{keys: []jwtauthtest.Key{k.es}})
			for cc, want := range map[string]time.Duration{"max-age=0": defaultMinRefresh, "max-age=1": defaultMinRefresh, "max-age=31536000": defaultMaxRefresh} {
				e.idp.ServeKeys(t, cc, k.es)
				wait, err := e.src.refresh(ctx)
				if err != nil || wait != want {
					t.Fatalf("%s: wait %v (%v), want %v", cc, wait, err, want)
				}
			}
		}},
	}
	runRows(t, rows)
}

// TestKeySetFetchBudget: requests never cost more than the throttled
// fetch: a flood of unknown kids and a cold herd make one, cheap refusals
// none, a slow refresh never holds a verification, and a cancelled fetch
// leaks no goroutine (rows B06-B08, B16, B17).
func TestKeySetFetchBudget(t *testing.T) {
	k := newThreatKeys(t)
	ctx := context.Background()
	mint := func(e *threatEnv, key jwtauthtest.Key) string {
		return key.Mint(t, jwtauthtest.ClaimsAt(e.clock, "alice", time.Hour), nil)
	}
	rows := []threatRow{
		{"B06_unknown_kid_flood_one_fetch", 1, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, envOpts{keys: []jwtauthtest.Key{k.es}})
			e.clock.Advance(defaultMinRefresh)
			claims := jwtauthtest.ClaimsAt(e.clock, "alice", time.Hour)
			for i := range 1000 {
				e.expect(t, k.es.Mint(t, claims, map[string]any{"kid": fmt.Sprintf("bogus-%d", i)}), CodeInvalidToken)
			}
			e.expect(t, mint(e, k.es), "ok")
		}},
		{"B07_cold_herd_single_flight", 1, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, envOpts{keys: []jwtauthtest.Key{k.es}})
			e.idp.ServeKeys(t, "", k.es, k.ed)
			e.clock.Advance(defaultMinRefresh)
			tok := mint(e, k.ed)
			e.seen = append(e.seen, tok)
			var wg sync.WaitGroup
			errs := make(chan string, 100)
			for range 100 {
				wg.Go(func() {
					if _, aerr := e.v.Verify(ctx, tok); aerr != nil {
						errs <- aerr.Code
					}
				})
			}
			wg.Wait()
			close(errs)
			for c := range errs {
				t.Errorf("a concurrent request got %s", c)
			}
		}},
		{"B08_slow_refresh_never_blocks", 1, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, envOpts{keys: []jwtauthtest.Key{k.es}})
			e.idp.Serve(hang)
			done := make(chan error, 1)
			start := time.Now()
			go func() { _, err := e.src.refresh(ctx); done <- err }()
			tok := mint(e, k.es)
			for range 50 {
				t0 := time.Now()
				e.expect(t, tok, "ok")
				if d := time.Since(t0); d > 50*time.Millisecond {
					t.Fatalf("a verification waited %v on the refresh", d)
				}
			}
			if err := <-done; err == nil {
				t.Fatal("a hanging fetch succeeded")
			}
			if d := time.Since(start); d < testFetchTimeout || d > 2*time.Second {
				t.Fatalf("the fetch ended after %v, want its timeout %v", d, testFetchTimeout)
			}
			e.expect(t, tok, "ok")
		}},
		{"B16_cheap_refusals_fetch_nothing", 0, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, envOpts{keys: []jwtauthtest.Key{k.es}})
			e.clock.Advance(defaultMinRefresh)
			unknown := jwtauthtest.NewKey(t, jwa.ES256(), "unknown")
			e.expect(t, unknown.Mint(t, jwtauthtest.ClaimsAt(e.clock, "alice", -time.Hour), nil), CodeInvalidToken)
			e.expect(t, unknown.Mint(t, claimsWith(e.clock, map[string]any{"iss": "https://other"}), nil), CodeInvalidToken)
			e.expect(t, unknown.Mint(t, claimsWith(e.clock, map[string]any{"aud": "other"}), nil), CodeInvalidToken)
			e.expect(t, unknown.Mint(t, claimsWith(e.clock, map[string]any{"nbf": e.clock.Now().Unix() + 3600}), nil), CodeInvalidToken)
			e.expect(t, unknown.SignRaw(t, []byte(`{"alg":"ES256","kid":"unknown"}`), []byte(`not json`)), CodeInvalidToken)
			e.expect(t, "aaaa.bbbb.cccc", CodeInvalidToken)
		}},
		{"B17_cancelled_fetch_leaks_nothing", 1, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, envOpts{keys: []jwtauthtest.Key{k.es}})
			baseline := runtime.NumGoroutine()
			e.idp.Serve(hang)
			e.clock.Advance(defaultMinRefresh)
			cctx, cancel := context.WithCancel(ctx)
			tok := mint(e, k.ed)
			e.seen = append(e.seen, tok)
			done := make(chan *Error, 2)
			go func() { _, aerr := e.v.Verify(cctx, tok); done <- aerr }()
			go func() { _, aerr := e.v.Verify(ctx, tok); done <- aerr }()
			cancel()
			for range 2 {
				if aerr := <-done; code(aerr) != CodeInvalidToken {
					t.Fatalf("%s", code(aerr))
				}
			}
			_ = e.src.Close()
			deadline := time.Now().Add(2 * time.Second)
			for runtime.NumGoroutine() > baseline {
				if time.Now().After(deadline) {
					t.Fatalf("%d goroutines, baseline %d", runtime.NumGoroutine(), baseline)
				}
				time.Sleep(10 * time.Millisecond) // waiting on the runtime, not on a clock
			}
		}},
	}
	runRows(t, rows)
}

// TestKeySetDocumentChecks: oversized and malformed key sets are failed
// fetches that keep the last good set, unsupported and unfit keys are
// skipped with a reason, and the transport refuses untrusted TLS,
// downgrades and long redirect chains (rows B09-B13).
func TestKeySetDocumentChecks(t *testing.T) {
	k := newThreatKeys(t)
	ctx := context.Background()
	mint := func(e *threatEnv, key jwtauthtest.Key) string {
		return key.Mint(t, jwtauthtest.ClaimsAt(e.clock, "alice", time.Hour), nil)
	}
	rows := []threatRow{
		{"B09_oversized_set_refused", 2, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, envOpts{keys: []jwtauthtest.Key{k.es}})
			one := string(jwtauthtest.MustJSON(t, k.es.Pub))
			for _, body := range []string{
				`{"keys":[` + strings.Repeat(" ", maxKeySetBytes) + `]}`,
				`{"keys":[` + strings.TrimSuffix(strings.Repeat(one+",", maxKeysPerSet+1), ",") + `]}`,
			} {
				e.idp.Set(http.StatusOK, []byte(body))
				e.clock.Advance(time.Minute)
				if _, err := e.src.refresh(ctx); err == nil {
					t.Fatal("oversized set accepted")
				}
				e.expect(t, mint(e, k.es), "ok")
			}
		}},
		{"B10_malformed_set_refused", 9, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, envOpts{keys: []jwtauthtest.Key{k.es}})
			one := string(jwtauthtest.MustJSON(t, k.es.Pub))
			for _, body := range []string{
				"<html>hi</html>", one[:20], `{"keys":[` + one + `,]}`, `{"keys":{}}`,
				`{"keys":[{"kty":"RSA","e":"AQAB"}]}`, `{"keys":[{"kty":"RSA","n":"!!!","e":"AQAB"}]}`,
				`{"keys":[{"kty":"EC","crv":"P-256","x":"AQ","y":"AQ"}]}`, // off-curve
				`{"keys":[{"kty":"EC","crv":"P-256","x":"` + strings.Repeat("A", 43) + `","y":"` + strings.Repeat("A", 43) + `"}]}`,
				`null`,
			} {
				e.idp.Set(http.StatusOK, []byte(body))
				e.clock.Advance(time.Minute)
				if _, err := e.src.refresh(ctx); err == nil {
					t.Fatalf("malformed set %.40q accepted", body)
				}
				e.expect(t, mint(e, k.es), "ok")
			}
		}},
		{"B11_unsupported_key_skipped", 0, func(t *testing.T, r *rowEnvs) {
			doc := strings.Replace(string(jwtauthtest.JWKS(t, k.es)), `"keys":[`, `"keys":[{"kty":"ML-DSA","kid":"pq","alg":"ML-DSA-65","pub":"AAAA"},{"kty":"oct","k":"c2VjcmV0"},`, 1)
			e := r.env(t, envOpts{doc: []byte(doc)})
			e.expect(t, mint(e, k.es), "ok")
		}},
		{"B12_unfit_keys_skipped", 3, func(t *testing.T, r *rowEnvs) {
			small, err := rsa.GenerateKey(rand.Reader, 1024)
			if err != nil {
				t.Fatal(err)
			}
			// written by hand: jwx v3 will not even import it
			smallJWK := fmt.Sprintf(`{"kty":"RSA","kid":"small","alg":"RS256","n":%q,"e":"AQAB"}`, jwtauthtest.B64(small.N.Bytes()))
			enc, _ := k.rs2.Pub.Clone()
			_ = enc.Set(jwk.KeyUsageKey, "enc")
			signOnly, _ := k.ps.Pub.Clone()
			_ = signOnly.Set(jwk.KeyOpsKey, jwk.KeyOperationList{jwk.KeyOpSign})
			verify, _ := k.ed.Pub.Clone()
			_ = verify.Set(jwk.KeyOpsKey, jwk.KeyOperationList{jwk.KeyOpVerify, jwk.KeyOpSign})
			hsOnRSA := strings.Replace(strings.Replace(string(jwtauthtest.MustJSON(t, k.rs.Pub)), `"RS256"`, `"HS256"`, 1), `"kid":"rs"`, `"kid":"hs"`, 1)
			es256OnP384 := strings.Replace(string(jwtauthtest.MustJSON(t, k.es384.Pub)), `"ES384"`, `"ES256"`, 1)
			members := []string{smallJWK, hsOnRSA, es256OnP384}
			for _, key := range []jwk.Key{enc, signOnly, verify, k.es.Pub} {
				members = append(members, string(jwtauthtest.MustJSON(t, key)))
			}
			e := r.env(t, envOpts{doc: []byte(`{"keys":[` + strings.Join(members, ",") + `]}`)})
			if got := strings.Join(e.src.current().kids(), ","); got != "ed,es" {
				t.Fatalf("keys in force %s, want ed,es", got)
			}
			smallKey := jwtauthtest.Key{Alg: jwa.RS256(), Kid: "small", Priv: small}
			e.expect(t, smallKey.Mint(t, jwtauthtest.ClaimsAt(e.clock, "alice", -time.Hour), nil), CodeInvalidToken)
			e.expect(t, smallKey.Mint(t, jwtauthtest.ClaimsAt(e.clock, "alice", -time.Hour), map[string]any{"kid": nil}), CodeInvalidToken)
			e.expect(t, k.rs2.Mint(t, jwtauthtest.ClaimsAt(e.clock, "alice", -time.Hour), nil), CodeInvalidToken)
			e.expect(t, k.ps.Mint(t, jwtauthtest.ClaimsAt(e.clock, "alice", -time.Hour), nil), CodeInvalidToken)
			e.expect(t, k.es384.Mint(t, jwtauthtest.ClaimsAt(e.clock, "alice", -time.Hour), nil), CodeInvalidToken)
			e.expect(t, mint(e, k.ed), "ok")
			reasons := ""
			for _, entry := range e.logs.All() {
				if strings.Contains(entry.Message, "skipping key") {
					reasons += entry.ContextMap()["reason"].(string) + "|"
				}
			}
			for _, want := range []string{"1024 bits is shorter than 2048", `use "enc"`, `key_ops does not include "verify"`, `alg "HS256" does not fit`, `alg "ES256" does not fit`} {
				if !strings.Contains(reasons, want) {
					t.Errorf("no skip reason %q in %s", want, reasons)
				}
			}
			// a PEM file holding only a short RSA key does not load
			der, _ := x509.MarshalPKIXPublicKey(small.Public())
			path := filepath.Join(t.TempDir(), "small.pem")
			if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadFile(path, e.src.log()); err == nil {
				t.Fatal("a PEM file of a 1024-bit key loaded")
			}
			// duplicate kids: warned when the set of them changes, not on
			// every refresh
			a, b := jwtauthtest.NewKey(t, jwa.ES256(), "dup"), jwtauthtest.NewKey(t, jwa.ES256(), "dup")
			c, d := jwtauthtest.NewKey(t, jwa.ES256(), "dup2"), jwtauthtest.NewKey(t, jwa.ES256(), "dup2")
			warnings := func() (n int) {
				for _, entry := range e.logs.All() {
					if strings.Contains(entry.Message, "duplicate kid") {
						n++
					}
				}
				return n
			}
			for i, step := range []struct {
				keys []jwtauthtest.Key
				want int
			}{{[]jwtauthtest.Key{a, b}, 1}, {[]jwtauthtest.Key{a, b, k.es}, 1}, {[]jwtauthtest.Key{a, b, c, d}, 3}} {
				e.idp.ServeKeys(t, "", step.keys...)
				e.clock.Advance(time.Minute)
				if _, err := e.src.refresh(ctx); err != nil {
					t.Fatal(err)
				}
				if got := warnings(); got != step.want {
					t.Fatalf("step %d: %d duplicate-kid warnings in all, want %d", i, got, step.want)
				}
			}
		}},
		{"B13_transport_rules", 0, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, envOpts{keys: []jwtauthtest.Key{k.es}})
			doc := jwtauthtest.JWKS(t, k.es)
			if err := CheckKeySetURL(mustURL(t, "http://idp.example.com/jwks")); err == nil {
				t.Fatal("plain http to a remote host allowed")
			}
			t.Run("untrusted certificate", func(t *testing.T) {
				srv := quietTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(doc) }))
				defer srv.Close()
				// a handshake on a busy machine may take longer than the
				// rows' short fetch timeout: the refusal, not its speed, is
				// the point here
				s := NewURLSource(srv.URL, URLOptions{Now: e.clock.Now, Mono: e.clock.Mono, FetchTimeout: 10 * time.Second})
				defer s.Close()
				if _, err := s.refresh(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
					t.Fatalf("untrusted TLS: %v", err)
				}
			})
			t.Run("https to http redirect", func(t *testing.T) {
				plain := jwtauthtest.NewJWKSServer(t, doc)
				var hits int
				srv := quietTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					hits++
					if hits == 1 {
						_, _ = w.Write(doc)
						return
					}
					http.Redirect(w, r, plain.URL, http.StatusFound)
				}))
				defer srv.Close()
				tlsCfg := srv.Client().Transport.(*http.Transport).TLSClientConfig
				s := NewURLSource(srv.URL, URLOptions{Now: e.clock.Now, Mono: e.clock.Mono, FetchTimeout: testFetchTimeout, TLSClientConfig: tlsCfg})
				defer s.Close()
				v := newTestVerifier(t, e.clock, s)
				if _, err := s.refresh(ctx); err != nil {
					t.Fatalf("trusted TLS: %v", err)
				}
				if _, err := s.refresh(ctx); err == nil || !strings.Contains(err.Error(), "https to plain http") {
					t.Fatalf("downgrade: %v", err)
				}
				if plain.Fetches.Load() != 0 {
					t.Fatal("the http target was fetched")
				}
				if _, aerr := v.Verify(ctx, mint(e, k.es)); aerr != nil {
					t.Fatalf("last good set lost: %v", aerr)
				}
			})
			t.Run("redirect chain", func(t *testing.T) {
				hop := jwtauthtest.NewServer(t)
				hop.Serve(func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, "/next"+r.URL.Path, http.StatusFound)
				})
				s := NewURLSource(hop.URL, URLOptions{Now: e.clock.Now, Mono: e.clock.Mono, FetchTimeout: testFetchTimeout})
				defer s.Close()
				if _, err := s.refresh(ctx); err == nil || !strings.Contains(err.Error(), "too many redirects") {
					t.Fatalf("redirect chain: %v", err)
				}
				if n := hop.Fetches.Load(); n != 3 {
					t.Fatalf("%d requests along the chain, want 3", n)
				}
			})
		}},
	}
	runRows(t, rows)
}
