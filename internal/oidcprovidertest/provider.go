// Package oidcprovidertest runs panva's oidc-provider (Node.js, pinned in
// testdata/oidc-provider) as a child process of the tests: a real OAuth 2.0
// authorization server that issues opaque access tokens and answers RFC
// 7662 introspection, written by nobody on this team. It is a test
// harness: only tests import it.
//
// Start installs the pinned packages once per test process (npm ci
// --ignore-scripts from the committed package.json and package-lock.json)
// into a directory under os.TempDir() named by their SHA-256, made whole
// in a temporary directory and renamed into place, so later runs reuse it
// and concurrent runs do not collide; npm's cache and user config live in
// a temporary directory, never the home directory. The first install is
// the only network use (the npm registry). It then writes the test's
// Config as JSON to a temporary file and starts `node provider.mjs`,
// which listens on 127.0.0.1 on a free port and prints one ready line
// with its issuer. Without node or npm the test fails (CI refuses skips).
//
// What oidc-provider 9.13.3 answers, which the Go side relies on (checked
// by this package's tests):
//
//   - Client-credentials tokens: the introspection answer has no sub (the
//     token has no account); client_id is the client; aud is the resource
//     indicator as a string (or the resource's Audience); token_type is
//     "Bearer", or "DPoP" for a DPoP-bound token, which also has
//     cnf.jkt; iss is the issuer; exp and iat are numbers; scope only when
//     one was granted; no jti (for an opaque token the jti is the token
//     itself and is left out). Extra claims (Client.Claims) are top-level
//     members.
//   - A JWT-format access token carries sub = the client ID, but cannot be
//     introspected: 400 unsupported_token_type.
//   - An inactive token (revoked, expired, unknown) is {"active":false}
//     and nothing else.
//   - A client authenticates at introspection and revocation as at the
//     token endpoint (there is no introspection_endpoint_auth_method in
//     oidc-provider 9), and a client_secret_basic or client_secret_post
//     client may use either of the two: the secret is taken from the
//     Authorization header or the body, whichever came. A bad secret is
//     401 invalid_client. Any authenticated confidential client may
//     introspect any token (the default allowedPolicy).
//   - Signed answers (RFC 9701): with jwtIntrospection on, every client's
//     introspection_signed_response_alg defaults to RS256, so any client
//     asking with Accept: application/token-introspection+jwt gets a JWS
//     (Content-Type application/token-introspection+jwt; charset=utf-8)
//     with typ token-introspection+jwt, iss, iat, aud = the asking
//     client, and the answer under token_introspection. A client whose
//     introspection_signed_response_alg is HS256 (allowed only through
//     Config.EnabledJWA) gets answers keyed with its client secret.
package oidcprovidertest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// StartTimeout bounds the wait for the provider's ready line, per
// attempt. Node with oidc-provider 9 sometimes stalls at start on these
// machines (reproduced with node alone, outside Go: a few starts in a
// hundred print nothing after generating the signing key), so a start that
// prints no ready line in time is killed and made again, up to
// startAttempts times, each stall logged.
const StartTimeout = 15 * time.Second

const startAttempts = 3

// Auth methods of a client at the token, introspection and revocation
// endpoints.
const (
	ClientSecretBasic = "client_secret_basic"
	ClientSecretPost  = "client_secret_post"
)

// Client is a confidential client allowed the client-credentials grant.
type Client struct {
	ID, Secret string
	// AuthMethod is ClientSecretBasic (the default) or ClientSecretPost.
	AuthMethod string
	// IntrospectionSignedResponseAlg is the alg of the client's signed
	// introspection answers (RFC 9701); oidc-provider's default is RS256,
	// the one key the provider has.
	IntrospectionSignedResponseAlg string
	// Claims are added to the client's access tokens (oidc-provider's
	// extraTokenClaims): top-level in a JWT and in the introspection
	// answer of an opaque token, e.g. {"UserType": 2} for a service
	// account.
	Claims map[string]any
	// Metadata is more oidc-provider client metadata, over the above.
	Metadata map[string]any
}

// Resource is a resource server (RFC 8707 resource indicator).
type Resource struct {
	Indicator string
	// Scope is the space-separated scopes it has; default "profile".
	Scope string
	// JWT makes its access tokens JWTs (RS256, typ at+jwt); default
	// opaque.
	JWT bool
	// Audience is the tokens' aud; default the indicator.
	Audience string
	// TTL of its access tokens; default oidc-provider's (10 minutes).
	TTL time.Duration
}

// Config is what one provider serves.
type Config struct {
	Clients   []Client
	Resources []Resource
	// Features are oidc-provider feature settings merged over
	// provider.mjs's, e.g. {"jwtIntrospection": {"enabled": false}}.
	Features map[string]map[string]any
	// EnabledJWA replaces lists of oidc-provider's enabledJWA, e.g.
	// {"introspectionSigningAlgValues": {"RS256", "HS256"}} so that a
	// client may have its answers signed with HS256 (keyed with its
	// secret, which oidc-provider does not allow by default).
	EnabledJWA map[string][]string
}

// Provider is a running oidc-provider.
type Provider struct {
	issuer  string
	clients map[string]Client
	hc      *http.Client
	stderr  *syncBuffer
}

// Start starts a provider serving cfg, stopped when t ends. t fails when
// it cannot start (node or npm missing, the install failing, no ready
// line within StartTimeout); the message carries the provider's stderr.
func Start(t testing.TB, cfg Config) *Provider {
	t.Helper()
	for attempt := 1; ; attempt++ {
		p, stalled := start(t, cfg, attempt == startAttempts)
		if !stalled {
			return p
		}
		t.Logf("oidcprovidertest: start %d of %d stalled (no ready line within %v); starting it again", attempt, startAttempts, StartTimeout)
	}
}

// start makes one attempt; stalled reports a provider that printed no
// ready line in time and was stopped, when last is false (on the last
// attempt a stall fails t).
func start(t testing.TB, cfg Config, last bool) (_ *Provider, stalled bool) {
	t.Helper()
	dir, script, err := install()
	if err != nil {
		t.Fatalf("oidcprovidertest: %v", err)
	}
	cfgPath := filepath.Join(t.TempDir(), "oidc-provider.json")
	b, err := json.MarshalIndent(cfg.providerJSON(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "node", script, cfgPath, "--exit-with-stdin")
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	p := &Provider{clients: map[string]Client{}, stderr: &syncBuffer{}}
	cmd.Stderr = p.stderr
	// Standard input stays open while this process lives: provider.mjs
	// exits when it closes, should the test process die uncleanly.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("oidcprovidertest: starting node: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		_ = stdin.Close()
		if t.Failed() && p.stderr.Len() > 0 {
			t.Logf("oidc-provider stderr:\n%s", p.stderr.String())
		}
	})

	type ready struct {
		Issuer string `json:"issuer"`
		Ready  bool   `json:"ready"`
	}
	lines := make(chan ready, 1)
	readErr := make(chan error, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, err := r.ReadBytes('\n')
		if err != nil {
			readErr <- fmt.Errorf("reading its ready line: %v (read %q)", err, line)
			return
		}
		var msg ready
		if err := json.Unmarshal(line, &msg); err != nil || !msg.Ready || msg.Issuer == "" {
			readErr <- fmt.Errorf("unexpected ready line %q", line)
			return
		}
		lines <- msg
		_, _ = io.Copy(io.Discard, r)
	}()
	timer := time.NewTimer(StartTimeout)
	defer timer.Stop()
	select {
	case msg := <-lines:
		p.issuer = msg.Issuer
	case err := <-readErr:
		t.Fatalf("oidcprovidertest: oidc-provider did not start: %v\nstderr:\n%s", err, p.stderr.String())
	case <-timer.C:
		if !last {
			cancel()
			_ = cmd.Wait()
			return nil, true
		}
		t.Fatalf("oidcprovidertest: oidc-provider (node, pid %d, still running) printed no ready line within %v\nstderr:\n%s",
			cmd.Process.Pid, StartTimeout, p.stderr.String())
	}

	for _, c := range cfg.Clients {
		p.clients[c.ID] = c
	}
	p.hc = &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return p, false
}

// providerJSON is the file provider.mjs reads.
func (cfg Config) providerJSON() map[string]any {
	clients := []map[string]any{}
	extra := map[string]any{}
	for _, c := range cfg.Clients {
		m := map[string]any{
			"client_id":                  c.ID,
			"client_secret":              c.Secret,
			"grant_types":                []string{"client_credentials"},
			"response_types":             []string{},
			"redirect_uris":              []string{},
			"token_endpoint_auth_method": c.authMethod(),
		}
		if c.IntrospectionSignedResponseAlg != "" {
			m["introspection_signed_response_alg"] = c.IntrospectionSignedResponseAlg
		}
		for k, v := range c.Metadata {
			m[k] = v
		}
		clients = append(clients, m)
		if len(c.Claims) > 0 {
			extra[c.ID] = c.Claims
		}
	}
	resources := map[string]any{}
	for _, r := range cfg.Resources {
		m := map[string]any{"scope": r.Scope, "accessTokenFormat": "opaque"}
		if r.Scope == "" {
			m["scope"] = "profile"
		}
		if r.JWT {
			m["accessTokenFormat"] = "jwt"
		}
		if r.Audience != "" {
			m["audience"] = r.Audience
		}
		if r.TTL > 0 {
			m["accessTokenTTL"] = int(r.TTL / time.Second)
		}
		resources[r.Indicator] = m
	}
	out := map[string]any{"clients": clients, "resources": resources, "extraTokenClaims": extra}
	if len(cfg.Features) > 0 {
		out["features"] = cfg.Features
	}
	if len(cfg.EnabledJWA) > 0 {
		out["enabledJWA"] = cfg.EnabledJWA
	}
	return out
}

func (c Client) authMethod() string {
	if c.AuthMethod == "" {
		return ClientSecretBasic
	}
	return c.AuthMethod
}

// Issuer is the provider's issuer, http://127.0.0.1:PORT.
func (p *Provider) Issuer() string { return p.issuer }

// TokenEndpoint is where tokens are asked for (a DPoP proof's htu).
func (p *Provider) TokenEndpoint() string { return p.issuer + "/token" }

// IntrospectionEndpoint is the RFC 7662 endpoint.
func (p *Provider) IntrospectionEndpoint() string { return p.issuer + "/token/introspection" }

// RevocationEndpoint is the RFC 7009 endpoint.
func (p *Provider) RevocationEndpoint() string { return p.issuer + "/token/revocation" }

// JWKSURI is the provider's key set (it signs JWT access tokens and
// signed introspection answers with one RS256 key made at start).
func (p *Provider) JWKSURI() string { return p.issuer + "/jwks" }

// Stderr is what the provider has written to stderr so far.
func (p *Provider) Stderr() string { return p.stderr.String() }

// syncBuffer is a bytes.Buffer safe for the process's writer and the
// test's readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}
