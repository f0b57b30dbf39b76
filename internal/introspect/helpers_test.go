package introspect

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

const (
	testClient = "workspace-edge"
	testSecret = "s3cr3t-value"
	testToken  = "2YotnFZFEjr1zCsicMWpAA"
)

// env is an introspector against a real HTTP endpoint whose answers the
// test scripts, on a clock that moves only when told, with every log
// line and observation kept.
type env struct {
	srv   *jwtauthtest.Server
	clock *jwtauthtest.Clock
	in    *Introspector
	obs   *countingObserver
	logs  *observer.ObservedLogs
}

func newEnv(t testing.TB, mod func(*Config)) *env {
	t.Helper()
	e := &env{srv: jwtauthtest.NewServer(t), clock: jwtauthtest.NewClock(), obs: &countingObserver{}}
	core, logs := observer.New(zap.DebugLevel)
	e.logs = logs
	cfg := Config{Endpoint: e.srv.URL + "/introspect", ClientID: testClient, ClientSecret: testSecret,
		Issuers: []string{jwtauthtest.Issuer}, Audiences: []string{jwtauthtest.Audience},
		Now: e.clock.Now, Observer: e.obs, Logger: zap.New(core)}
	if mod != nil {
		mod(&cfg)
	}
	in, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.in = in
	t.Cleanup(in.Close)
	return e
}

// answer is an active answer for alice, valid for an hour of the env's
// clock, with extra members set (a nil value removes one).
func (e *env) answer(extra map[string]any) []byte {
	a := map[string]any{"active": true, "sub": "alice", "aud": jwtauthtest.Audience, "iss": jwtauthtest.Issuer,
		"client_id": "app-1", "token_type": "Bearer", "scope": "profile",
		"iat": e.clock.Now().Unix(), "exp": e.clock.Now().Add(time.Hour).Unix()}
	for k, v := range extra {
		if v == nil {
			delete(a, k)
		} else {
			a[k] = v
		}
	}
	buf, _ := json.Marshal(a)
	return buf
}

// serve answers every call with body.
func (e *env) serve(body []byte) { e.srv.Set(http.StatusOK, body) }

func (e *env) calls() int { return int(e.srv.Fetches.Load()) }

// verify is Verify with a background context.
func (e *env) verify(tok string) (jwtauth.Claims, *jwtauth.Error) {
	return e.in.Verify(context.Background(), tok)
}

// wantCode fails unless aerr has code ("" for acceptance).
func wantCode(t testing.TB, aerr *jwtauth.Error, code string) {
	t.Helper()
	switch {
	case code == "" && aerr != nil:
		t.Fatalf("refused: %v", aerr)
	case code != "" && aerr == nil:
		t.Fatalf("accepted, want %s", code)
	case code != "" && aerr.Code != code:
		t.Fatalf("refused with %v, want %s", aerr, code)
	}
}

// noSecretsLogged fails when a log line holds any of the secrets.
func (e *env) noSecretsLogged(t testing.TB, secrets ...string) {
	t.Helper()
	for _, entry := range e.logs.All() {
		line := entry.Message
		for _, f := range entry.Context {
			line += " " + f.String
		}
		for _, s := range secrets {
			if s != "" && strings.Contains(line, s) {
				t.Fatalf("log line holds a secret: %q", line)
			}
		}
	}
}

// form is the decoded body of a recorded request.
func form(t testing.TB, r jwtauthtest.Request) url.Values {
	t.Helper()
	v, err := url.ParseQuery(string(r.Body))
	if err != nil {
		t.Fatalf("body %q: %v", r.Body, err)
	}
	return v
}

type countingObserver struct {
	mu      sync.Mutex
	results map[Result]int
	lookups map[CacheResult]int
}

func (o *countingObserver) Called(r Result, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.results == nil {
		o.results = map[Result]int{}
	}
	o.results[r]++
}

func (o *countingObserver) CacheLookup(r CacheResult) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lookups == nil {
		o.lookups = map[CacheResult]int{}
	}
	o.lookups[r]++
}

func (o *countingObserver) lookup(r CacheResult) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lookups[r]
}

func (o *countingObserver) count(r Result) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.results[r]
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	buf, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return buf
}
