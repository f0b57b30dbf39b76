package introspect

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
)

// TestEndpointFailures: an endpoint down, slow past timeout,
// answering 500, 429, a redirect, HTML or 10 MB, or every call slot busy:
// IntrospectionUnavailable, never a refusal of the token; nothing cached
// (the next call, to an endpoint that works again, is made and accepted);
// and neither the token nor the secret in any log line.
func TestEndpointFailures(t *testing.T) {
	tests := []struct {
		name  string
		mod   func(*Config)
		setup func(t *testing.T, e *env) (cleanup func())
	}{
		{name: "status_500", setup: func(t *testing.T, e *env) func() {
			e.srv.Set(http.StatusInternalServerError, []byte(`{"error":"server_error"}`))
			return nil
		}},
		{name: "status_429", setup: func(t *testing.T, e *env) func() {
			e.srv.Set(http.StatusTooManyRequests, []byte(`{"error":"slow_down"}`))
			return nil
		}},
		{name: "status_401_client_refused", setup: func(t *testing.T, e *env) func() {
			e.srv.Set(http.StatusUnauthorized, []byte(`{"error":"invalid_client"}`))
			return nil
		}},
		{name: "redirect_not_followed", setup: func(t *testing.T, e *env) func() {
			e.srv.Serve(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/elsewhere" {
					_, _ = w.Write(e.answer(nil))
					return
				}
				http.Redirect(w, r, "/elsewhere", http.StatusFound)
			})
			return nil
		}},
		{name: "html", setup: func(t *testing.T, e *env) func() {
			e.srv.Serve(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				_, _ = w.Write([]byte("<html><body>Bad gateway</body></html>"))
			})
			return nil
		}},
		{name: "json_not_an_object", setup: func(t *testing.T, e *env) func() {
			e.serve([]byte(`[true]`))
			return nil
		}},
		{name: "ten_megabytes", setup: func(t *testing.T, e *env) func() {
			big := append(append([]byte(`{"active":true,"x":"`), bytes.Repeat([]byte("a"), 10<<20)...), `"}`...)
			e.serve(big)
			return nil
		}},
		{name: "slow_past_timeout", mod: func(c *Config) { c.Timeout = 100 * time.Millisecond }, setup: func(t *testing.T, e *env) func() {
			g := newGate()
			e.serveGated(g, e.answer(nil))
			return g.release
		}},
		{name: "down", setup: func(t *testing.T, e *env) func() {
			e.srv.CloseClientConnections()
			e.srv.Listener.Close()
			return nil
		}},
		{name: "every_slot_busy", mod: func(c *Config) { c.MaxInFlight = 1; c.Timeout = 200 * time.Millisecond }, setup: func(t *testing.T, e *env) func() {
			g := newGate()
			var first sync.Once
			e.srv.Serve(func(w http.ResponseWriter, r *http.Request) {
				first.Do(func() { <-g.open }) // the slot holder's call
				_, _ = w.Write(e.answer(nil))
			})
			var wg sync.WaitGroup
			wg.Go(func() { _, _ = e.in.Verify(context.Background(), "slot-holder") })
			e.waitCalls(t, 1)
			return func() { g.release(); wg.Wait() }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.mod)
			cleanup := tt.setup(t, e)
			_, aerr := e.verify(testToken)
			wantCode(t, aerr, jwtauth.CodeIntrospectionUnavailable)
			if cleanup != nil {
				cleanup()
			}
			if tt.name != "down" {
				calls := e.calls()
				e.serve(e.answer(nil))
				_, aerr = e.verify(testToken)
				wantCode(t, aerr, "")
				if e.calls() != calls+1 {
					t.Fatal("the failure was cached")
				}
			}
			if n := e.in.Status().CachedAnswers; tt.name == "down" && n != 0 {
				t.Fatalf("%d answers cached", n)
			}
			if tt.name != "every_slot_busy" && e.in.Status().LastError == "" {
				t.Fatal("no last error in the status")
			}
			e.noSecretsLogged(t, testToken, testSecret)
		})
	}
}

// TestFailFast: after three failures in a row, calls fail at once for 1 s,
// and each failure after an interval doubles it, up to 30 s; one success
// ends it, so the next failure does not fail fast.
func TestFailFast(t *testing.T) {
	e := newEnv(t, nil)
	e.srv.Set(http.StatusServiceUnavailable, nil)
	n := 0
	verify := func() *jwtauth.Error {
		n++
		_, aerr := e.verify(fmt.Sprintf("token-%d", n))
		return aerr
	}
	for range 3 {
		wantCode(t, verify(), jwtauth.CodeIntrospectionUnavailable)
	}
	if e.calls() != 3 {
		t.Fatalf("%d calls", e.calls())
	}
	for _, want := range []time.Duration{1, 2, 4, 8, 16, 30, 30} {
		want *= time.Second
		until := e.in.Status().FailingFastUntil
		if until == nil || until.Sub(e.clock.Now()) != want {
			t.Fatalf("failing fast until %v, want now+%s", until, want)
		}
		calls := e.calls()
		e.clock.Advance(want - time.Millisecond)
		wantCode(t, verify(), jwtauth.CodeIntrospectionUnavailable)
		if e.calls() != calls {
			t.Fatalf("called while failing fast (interval %s)", want)
		}
		e.clock.Advance(time.Millisecond)
		wantCode(t, verify(), jwtauth.CodeIntrospectionUnavailable)
		if e.calls() != calls+1 {
			t.Fatalf("not called once the interval %s passed", want)
		}
	}
	if e.obs.count(ResultFailFast) != 7 {
		t.Fatalf("%d fail-fast answers observed", e.obs.count(ResultFailFast))
	}
	e.clock.Advance(30 * time.Second)
	e.serve(e.answer(nil))
	wantCode(t, verify(), "")
	if e.in.Status().FailingFastUntil != nil {
		t.Fatal("still failing fast after a success")
	}
	e.srv.Set(http.StatusInternalServerError, nil)
	wantCode(t, verify(), jwtauth.CodeIntrospectionUnavailable)
	calls := e.calls()
	wantCode(t, verify(), jwtauth.CodeIntrospectionUnavailable)
	if e.calls() != calls+1 {
		t.Fatal("one failure after a success failed fast")
	}
}
