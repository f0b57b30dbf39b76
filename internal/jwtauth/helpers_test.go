package jwtauth

// The catalogue rows' machinery (docs/threat-model.md): every row runs
// against a real URL source on a jwtauthtest.Server (a real HTTP server)
// whose fetches are counted, with a zap observer as the source's logger.
// Each row asserts its outcome, the exact number of key set fetches it may
// cause (0 for almost every token row), and that no log entry holds a
// token it verified or that token's signature.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"go.uber.org/zap/zaptest/observer"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// testFetchTimeout is the fetch timeout of the rows' sources, so that a
// provider that hangs costs a row well under a second.
const testFetchTimeout = 300 * time.Millisecond

// threatEnv is one verifier on one URL source, loaded once.
type threatEnv struct {
	clock *jwtauthtest.Clock
	idp   *jwtauthtest.Server
	src   *URLSource
	v     *Verifier
	logs  *observer.ObservedLogs
	base  int64    // the idp's fetches once loaded
	seen  []string // the tokens verified, which no log may hold
}

type envOpts struct {
	keys   []jwtauthtest.Key
	doc    []byte // the key set served, when not the keys' JWKS
	cfg    func(*Config)
	source URLOptions
}

// rowEnvs collects a row's environments, for its final checks.
type rowEnvs struct{ envs []*threatEnv }

func (r *rowEnvs) env(t *testing.T, o envOpts) *threatEnv {
	t.Helper()
	logger, logs := observedLogger()
	e := &threatEnv{clock: jwtauthtest.NewClock(), idp: jwtauthtest.NewServer(t), logs: logs}
	doc := o.doc
	if doc == nil {
		doc = jwtauthtest.JWKS(t, o.keys...)
	}
	e.idp.Set(http.StatusOK, doc)
	so := o.source
	so.Logger, so.Now, so.Mono = logger, e.clock.Now, e.clock.Mono
	if so.FetchTimeout == 0 {
		so.FetchTimeout = testFetchTimeout
	}
	e.src = NewURLSource(e.idp.URL, so)
	t.Cleanup(func() { _ = e.src.Close() })
	if _, err := e.src.refresh(context.Background()); err != nil {
		t.Fatalf("first load: %v", err)
	}
	cfg := Config{Sources: []Source{e.src}, Issuers: []string{jwtauthtest.Issuer}, Audiences: []string{jwtauthtest.Audience}, Now: e.clock.Now}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.v = v
	e.base = e.idp.Fetches.Load()
	r.envs = append(r.envs, e)
	return e
}

// expect verifies tok and asserts the exact outcome: a Code, or "ok".
func (e *threatEnv) expect(t *testing.T, tok, want string) Claims {
	t.Helper()
	e.seen = append(e.seen, tok)
	c, aerr := e.v.Verify(context.Background(), tok)
	if got := code(aerr); got != want {
		t.Fatalf("Verify(%.60q...) = %s (%v), want %s", tok, got, aerr, want)
	}
	if aerr != nil && len(tok) >= 16 && strings.Contains(aerr.Desc, tok) {
		t.Fatalf("refusal description holds the token: %q", aerr.Desc)
	}
	return c
}

// fetches is how many times the row made the source fetch.
func (e *threatEnv) fetches() int64 { return e.idp.Fetches.Load() - e.base }

// checkRow asserts what must not happen in any row: more fetches than the
// row allows, and any token bytes in any log entry.
func (r *rowEnvs) check(t *testing.T, fetches int64) {
	t.Helper()
	for _, e := range r.envs {
		if n := e.fetches(); n != fetches {
			t.Errorf("%d key set fetches, want exactly %d", n, fetches)
		}
		assertNoTokenLogged(t, e.logs, e.seen)
	}
}

// assertNoTokenLogged scans every entry's message and fields for each
// token and for its signature part.
func assertNoTokenLogged(t *testing.T, logs *observer.ObservedLogs, toks []string) {
	t.Helper()
	var needles []string
	for _, tok := range toks {
		if len(tok) >= 16 {
			needles = append(needles, tok)
		}
		if i := strings.LastIndexByte(tok, '.'); i >= 0 && len(tok)-i > 16 {
			needles = append(needles, tok[i+1:])
		}
	}
	for _, entry := range logs.All() {
		for field, values := range logStrings(entry) {
			for _, v := range values {
				for _, n := range needles {
					if strings.Contains(v, n) {
						t.Errorf("log %q field %s holds token bytes", entry.Message, field)
					}
				}
			}
		}
	}
}

type threatRow struct {
	id      string
	fetches int64 // exactly this many key set fetches in each env of the row
	run     func(t *testing.T, r *rowEnvs)
}

func runRows(t *testing.T, rows []threatRow) {
	t.Helper()
	for _, row := range rows {
		t.Run(row.id, func(t *testing.T) {
			r := &rowEnvs{}
			row.run(t, r)
			if len(r.envs) == 0 {
				t.Fatal("the row made no environment: nothing checked its fetches or logs")
			}
			r.check(t, row.fetches)
		})
	}
}

// parts of a compact token
func parts(tok string) (h, p, s string) {
	x := strings.SplitN(tok, ".", 3)
	return x[0], x[1], x[2]
}

func sigBytes(t *testing.T, tok string) []byte {
	_, _, s := parts(tok)
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func withSig(tok string, sig []byte) string {
	h, p, _ := parts(tok)
	return h + "." + p + "." + jwtauthtest.B64(sig)
}

func withHeader(tok, hdr string) string {
	_, p, s := parts(tok)
	return jwtauthtest.B64([]byte(hdr)) + "." + p + "." + s
}

// threatKeys are made once per test: RSA generation is the slow part.
type threatKeys struct {
	rs, rs2, ps, es, es384, ed jwtauthtest.Key
}

func newThreatKeys(t *testing.T) threatKeys {
	return threatKeys{
		rs:    jwtauthtest.NewKey(t, jwa.RS256(), "rs"),
		rs2:   jwtauthtest.NewKey(t, jwa.RS256(), "rs2"),
		ps:    jwtauthtest.NewKey(t, jwa.PS256(), "ps"),
		es:    jwtauthtest.NewKey(t, jwa.ES256(), "es"),
		es384: jwtauthtest.NewKey(t, jwa.ES384(), "es384"),
		ed:    jwtauthtest.NewKey(t, jwa.EdDSA(), "ed"),
	}
}

func (k threatKeys) all() []jwtauthtest.Key {
	return []jwtauthtest.Key{k.rs, k.rs2, k.ps, k.es, k.es384, k.ed}
}

// overlay sets the members of set in m, deleting those set to nil, and
// returns m: the one way the tests derive a claims set or a JWK from another.
func overlay(m, set map[string]any) map[string]any {
	for k, v := range set {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return m
}

func claimsWith(clock *jwtauthtest.Clock, set map[string]any) map[string]any {
	return overlay(jwtauthtest.ClaimsAt(clock, "alice", time.Hour), set)
}

// rawPayload is the payload JSON of the standard claims with extra raw
// members spliced in, for duplicate and odd-typed members encoding/json
// will not write.
func rawPayload(clock *jwtauthtest.Clock, drop []string, extra string) []byte {
	c := jwtauthtest.ClaimsAt(clock, "alice", time.Hour)
	for _, d := range drop {
		delete(c, d)
	}
	b, _ := json.Marshal(c)
	if extra == "" {
		return b
	}
	return append(append(b[:len(b)-1:len(b)-1], ","+extra...), '}')
}

// envoyVectors are testdata/vectors/envoy-jwt-authn.json of the repository.
type envoyVectors struct {
	Issuer, Audience string
	JWKSRSA          json.RawMessage `json:"jwks_rsa"`
	JWKSES256        json.RawMessage `json:"jwks_es256"`
	Tokens           []struct{ Name, Token, Expect, Code string }
}

func loadEnvoyVectors(t testing.TB) envoyVectors {
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "vectors", "envoy-jwt-authn.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v envoyVectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// hs256 is a token of hdr and payload with an HMAC-SHA256 signature keyed
// with secret, for the key-confusion rows.
func hs256(secret []byte, hdr, payload []byte) string {
	in := jwtauthtest.B64(hdr) + "." + jwtauthtest.B64(payload)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(in))
	return in + "." + jwtauthtest.B64(m.Sum(nil))
}

// rotationSource is a source on the injected clock (wall and monotonic),
// loaded once at the clock's start, that counts as started (deferred
// fetches are scheduled) with its timers on fakeTimers.
func rotationSource(t *testing.T, idp *jwtauthtest.Server, clock *jwtauthtest.Clock) (*URLSource, *fakeTimers) {
	t.Helper()
	s := NewURLSource(idp.URL, URLOptions{Now: clock.Now, Mono: clock.Mono, FetchTimeout: testFetchTimeout})
	ft := &fakeTimers{clock: clock}
	s.afterFunc = ft.afterFunc
	done := make(chan struct{})
	close(done)
	s.life, s.cancel = context.WithCancel(context.Background())
	s.done = done
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, ft
}

// newRotationVerifier is a verifier on a rotationSource of a provider
// serving keys, on a fake clock.
func newRotationVerifier(t *testing.T, keys ...jwtauthtest.Key) (*jwtauthtest.Clock, *jwtauthtest.Server, *URLSource, *fakeTimers, *Verifier) {
	t.Helper()
	clock := jwtauthtest.NewClock()
	idp := jwtauthtest.NewServer(t)
	idp.ServeKeys(t, "", keys...)
	s, timers := rotationSource(t, idp, clock)
	return clock, idp, s, timers, newTestVerifier(t, clock, s)
}
