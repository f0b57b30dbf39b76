package introspect

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
)

// gate makes the endpoint hold every call until opened.
type gate struct {
	open chan struct{}
	once sync.Once
}

func newGate() *gate { return &gate{open: make(chan struct{})} }

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

// serveGated answers body once the gate opens (or the call is abandoned).
func (e *env) serveGated(g *gate, body []byte) {
	e.srv.Serve(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-g.open:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
}

// waitCalls waits until the endpoint has seen n calls.
func (e *env) waitCalls(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for e.calls() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls, want %d", e.calls(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestOneCallForManyCallers: 100 concurrent requests with one new
// token make exactly one call, and every one of them gets its answer.
func TestOneCallForManyCallers(t *testing.T) {
	e := newEnv(t, nil)
	g := newGate()
	e.serveGated(g, e.answer(nil))
	var wg sync.WaitGroup
	errs := make(chan *jwtauth.Error, 100)
	for range 100 {
		wg.Go(func() {
			_, aerr := e.verify(testToken)
			errs <- aerr
		})
	}
	e.waitCalls(t, 1)
	time.Sleep(20 * time.Millisecond) // let the others join the flight
	g.release()
	wg.Wait()
	close(errs)
	for aerr := range errs {
		wantCode(t, aerr, "")
	}
	if e.calls() != 1 {
		t.Fatalf("%d calls for one token", e.calls())
	}
}

// TestCallerHangingUpFailsNoOne: the caller that started the call
// leaves (its context ends) while others wait: it gets its answer at
// once, the call goes on, and the others are answered from it.
func TestCallerHangingUpFailsNoOne(t *testing.T) {
	e := newEnv(t, nil)
	g := newGate()
	e.serveGated(g, e.answer(nil))
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan *jwtauth.Error, 1)
	go func() {
		_, aerr := e.in.Verify(ctx, testToken)
		first <- aerr
	}()
	e.waitCalls(t, 1)
	var wg sync.WaitGroup
	errs := make(chan *jwtauth.Error, 10)
	for range 10 {
		wg.Go(func() {
			_, aerr := e.verify(testToken)
			errs <- aerr
		})
	}
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case aerr := <-first:
		wantCode(t, aerr, jwtauth.CodeIntrospectionUnavailable)
	case <-time.After(5 * time.Second):
		t.Fatal("the caller that left is still waiting")
	}
	g.release()
	wg.Wait()
	close(errs)
	for aerr := range errs {
		wantCode(t, aerr, "")
	}
	if e.calls() != 1 {
		t.Fatalf("%d calls", e.calls())
	}
	// and the answer was cached for the next one
	if _, aerr := e.verify(testToken); aerr != nil || e.calls() != 1 {
		t.Fatalf("%v after %d calls", aerr, e.calls())
	}
}

// TestWaitingCallerHonoursItsContext: a caller joining a flight leaves
// when its own context ends, without waiting for the call.
func TestWaitingCallerHonoursItsContext(t *testing.T) {
	e := newEnv(t, nil)
	g := newGate()
	defer g.release()
	e.serveGated(g, e.answer(nil))
	go func() { _, _ = e.verify(testToken) }()
	e.waitCalls(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, aerr := e.in.Verify(ctx, testToken)
	wantCode(t, aerr, jwtauth.CodeIntrospectionUnavailable)
	if time.Since(start) > time.Second {
		t.Fatal("waited for the call past its own context")
	}
}

// TestCloseEndsCalls: Close ends a call in progress, its callers are
// answered, and later calls make none.
func TestCloseEndsCalls(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Timeout = 10 * time.Second })
	g := newGate()
	defer g.release()
	e.serveGated(g, e.answer(nil))
	done := make(chan *jwtauth.Error, 1)
	go func() {
		_, aerr := e.verify(testToken)
		done <- aerr
	}()
	e.waitCalls(t, 1)
	e.in.Close()
	select {
	case aerr := <-done:
		wantCode(t, aerr, jwtauth.CodeIntrospectionUnavailable)
	case <-time.After(5 * time.Second):
		t.Fatal("Close left a caller waiting")
	}
	_, aerr := e.verify("another")
	wantCode(t, aerr, jwtauth.CodeIntrospectionUnavailable)
	if e.calls() != 1 {
		t.Fatalf("%d calls after Close", e.calls())
	}
}
