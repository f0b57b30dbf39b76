package caddymodule

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// introspectionEndpoint is a real RFC 7662 endpoint for the tests: it
// answers each token as told (unknown tokens inactive), counts its calls,
// records the client's Basic password, and can fail or hold calls.
type introspectionEndpoint struct {
	*httptest.Server
	calls   atomic.Int64
	failing atomic.Bool // answer 500
	delay   atomic.Int64
	mu      sync.Mutex
	answers map[string]string
	secrets []string  // the Basic passwords received
	forms   []string  // the client_secret and client_assertion form values received
	hold    chan bool // when set, each call waits for a value on it
}

func newIntrospectionEndpoint(t *testing.T) *introspectionEndpoint {
	e := &introspectionEndpoint{answers: map[string]string{}}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.calls.Add(1)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", 400)
			return
		}
		_, pass, _ := r.BasicAuth()
		e.mu.Lock()
		e.secrets = append(e.secrets, pass)
		for _, name := range []string{"client_secret", "client_assertion"} {
			if v := r.PostForm.Get(name); v != "" {
				e.forms = append(e.forms, v)
			}
		}
		answer, ok := e.answers[r.PostForm.Get("token")]
		hold := e.hold
		e.mu.Unlock()
		if hold != nil {
			<-hold
		}
		time.Sleep(time.Duration(e.delay.Load()))
		if e.failing.Load() {
			http.Error(w, "down", 500)
			return
		}
		if !ok {
			answer = `{"active":false}`
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(answer))
	}))
	t.Cleanup(e.Close)
	return e
}

// active makes tok an active token with these extra members.
func (e *introspectionEndpoint) active(tok, members string) {
	answer := fmt.Sprintf(`{"active":true,"iss":%q,"aud":%q,"exp":%d,"client_id":"app"%s}`,
		testIssuer, testAudience, time.Now().Add(5*time.Minute).Unix(), members)
	e.mu.Lock()
	e.answers[tok] = answer
	e.mu.Unlock()
}

func (e *introspectionEndpoint) receivedSecrets() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.secrets...)
}

// introspectionBlock is the introspection subdirective for e.
func introspectionBlock(e *introspectionEndpoint, secret string) string {
	return "introspection " + e.URL + "/introspect {\n\t\t\tclient_id edge\n\t\t\tclient_secret " + secret + "\n\t\t}"
}

// opaqueToken is a new opaque token, never a JWT or an API key.
var opaqueTokens atomic.Int64

func opaqueToken() string {
	return fmt.Sprintf("opaque-%d-%d", time.Now().UnixNano(), opaqueTokens.Add(1))
}

func wantIntrospectionCalls(t *testing.T, e *introspectionEndpoint, before, want int64) {
	t.Helper()
	if n := e.calls.Load() - before; n != want {
		t.Fatalf("introspection endpoint called %d times, want %d", n, want)
	}
}

func (e *introspectionEndpoint) receivedForms() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.forms...)
}
