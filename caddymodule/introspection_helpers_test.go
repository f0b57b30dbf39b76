package caddymodule

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
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

// recordingBackend is a legacy backend that answers every request with
// body (a flat profile) and keeps the last request's headers, for the
// tests that check what reaches it. Its address is host:port, as the
// upstream subdirective takes it.
func recordingBackend(t *testing.T, body string) (addr string, last func() http.Header) {
	t.Helper()
	var mu sync.Mutex
	var got http.Header
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.Header.Clone()
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(backend.Close)
	return strings.TrimPrefix(backend.URL, "http://"), func() http.Header {
		mu.Lock()
		defer mu.Unlock()
		return got.Clone()
	}
}

// discoveryTenants numbers the issuers startDiscoveryIntrospection makes.
var discoveryTenants atomic.Int64

// startDiscoveryIntrospection starts a real Caddy whose route finds its
// key set and introspection endpoint by discovery: the provider's
// document is doc, formatted with the issuer and the provider's base URL
// (%[1]s and %[2]s), and k's key set is at /keys.
func startDiscoveryIntrospection(t *testing.T, k jwtauthtest.Key, doc string) (tc *caddytest.Tester, issuer string) {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	// a path of its own: a port the kernel hands out again must not make
	// an earlier test's introspector, still listed, look like this one's
	tenant := fmt.Sprintf("/tenant-%d", discoveryTenants.Add(1))
	issuer = srv.URL + tenant
	mux.HandleFunc(tenant+"/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, doc, issuer, srv.URL)
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(jwtauthtest.JWKS(t, k)) })
	tc = startCaddyfile(t, fmt.Sprintf(itGlobal+itSite+` {
	workspace_profile {
		discovery %s
		audience %s
		storage memory
		create_missing
		introspection {
			client_id edge
			client_secret s3cr3t
		}
	}
}
`, issuer, testAudience))
	return tc, issuer
}
