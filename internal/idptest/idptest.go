// Package idptest runs a real OpenID provider in the test process:
// zitadel/oidc's op package, the provider ZITADEL is built on, on a free
// loopback port over real HTTP. Its discovery document, JWKS, token
// endpoint, client authentication, access-token claims and signatures are
// zitadel's code; this package only gives op the storage a deployment
// gives it (clients and keys, in memory, see storage.go) and starts,
// stops and restarts its HTTP server.
//
// Clients get JWT access tokens through the client-credentials grant
// (RFC 6749 section 4.4), signed with the one algorithm the provider was
// started with. The provider can rotate its key (a new key published in
// the JWKS and used for signing at the same moment), and can be stopped
// and restarted on the same address with the same keys.
//
// An Opaque client gets opaque access tokens instead (op's bearer type, as
// a ZITADEL application whose token type is Bearer), for itself by the
// client-credentials grant or for a user (UserToken); the provider's
// introspection endpoint (RFC 7662, op's) answers them to a client that
// authenticates with its secret (HTTP Basic) or with a client assertion
// signed by its key (private_key_jwt, RFC 7523, as ZITADEL's API
// applications with a key). StartTLS serves all of it over https with a
// certificate of a private CA.
//
// It is a test harness: only tests import it, so zitadel/oidc is never
// linked into Caddy.
package idptest

import (
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Algorithms are the JWS algorithms zitadel's op signs with (through
// go-jose v4): every asymmetric one but ML-DSA, which needs Go 1.27.
// go-jose names Ed25519 keys only EdDSA, never RFC 9864's Ed25519.
var Algorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

// Client is a confidential client of the provider.
type Client struct {
	ID, Secret string
	// Subject is its tokens' sub; default the client ID (as for a
	// service user in ZITADEL).
	Subject string
	// Audience is its tokens' aud; op puts the client ID there when
	// it is empty.
	Audience []string
	// Claims are added to its access tokens as they are.
	Claims map[string]any
	// Lifetime of its access tokens; default 5 minutes.
	Lifetime time.Duration
	// Opaque: its access tokens are opaque, op's encryption of the
	// token's ID and subject, known only by introspection.
	Opaque bool
	// PublicKey, named KeyID, verifies the client assertions with which
	// it authenticates (private_key_jwt); a client with a key needs no
	// Secret, and one without a Secret is never let in by a secret.
	PublicKey crypto.PublicKey
	KeyID     string
}

// User is a person signed in at the provider: the subject of the tokens
// issued to a client on their behalf, and claims of their own (a name,
// an email) that introspection answers with.
type User struct {
	Subject string
	Claims  map[string]any
}

func (c Client) subject() string {
	if c.Subject != "" {
		return c.Subject
	}
	return c.ID
}

func (c Client) lifetime() time.Duration {
	if c.Lifetime > 0 {
		return c.Lifetime
	}
	return 5 * time.Minute
}

// Provider is a running (or stopped) zitadel OpenID provider.
type Provider struct {
	// Issuer is http://127.0.0.1:<port>, the issuer of its tokens and the
	// base of its discovery document.
	Issuer string
	// JWKSURI, TokenEndpoint and IntrospectionEndpoint are read from its
	// discovery document.
	JWKSURI, TokenEndpoint, IntrospectionEndpoint string
	// KeyFetches counts the requests its JWKS endpoint has answered,
	// Discoveries those of its discovery document, Introspections those
	// of its introspection endpoint.
	KeyFetches, Discoveries, Introspections atomic.Int64
	// CACert is, for StartTLS, the PEM of the private CA that issued the
	// provider's certificate; nil over http.
	CACert []byte

	storage *storage
	op      *op.Provider
	handler http.Handler
	addr    string
	client  *http.Client
	tls     *tls.Config // nil over http

	amu        sync.Mutex
	assertions []string // the client assertions the introspection endpoint received

	mu  sync.Mutex
	srv *http.Server // nil while stopped
}

// Start starts a provider that signs with alg and knows clients; it is
// stopped when the test ends.
func Start(t testing.TB, alg jose.SignatureAlgorithm, clients ...Client) *Provider {
	t.Helper()
	p, err := start(alg, clients, false)
	if err != nil {
		t.Fatalf("idptest: %v", err)
	}
	t.Cleanup(p.Stop)
	return p
}

// StartTLS is Start over https: the provider's certificate, for
// 127.0.0.1, is issued by a private CA made for it (CACert), which no
// system pool holds.
func StartTLS(t testing.TB, alg jose.SignatureAlgorithm, clients ...Client) *Provider {
	t.Helper()
	p, err := start(alg, clients, true)
	if err != nil {
		t.Fatalf("idptest: %v", err)
	}
	t.Cleanup(p.Stop)
	return p
}

func start(alg jose.SignatureAlgorithm, clients []Client, overTLS bool) (*Provider, error) {
	s, err := newStorage(alg, clients)
	if err != nil {
		return nil, err
	}
	p := &Provider{storage: s}
	transport := &http.Transport{}
	scheme := "http://"
	if overTLS {
		var roots *x509.CertPool
		if p.tls, p.CACert, roots, err = privateCA(); err != nil {
			return nil, err
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		scheme = "https://"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p.Issuer, p.addr = scheme+ln.Addr().String(), ln.Addr().String()
	p.client = &http.Client{Timeout: 10 * time.Second, Transport: transport}
	// op's private_key_jwt at the token endpoint too (at introspection it
	// is always on), so that discovery names it
	cfg := op.Config{AuthMethodPrivateKeyJWT: true}
	if _, err := rand.Read(cfg.CryptoKey[:]); err != nil {
		_ = ln.Close()
		return nil, err
	}
	// http on loopback needs WithAllowInsecure; the module accepts it
	// for loopback hosts only, as for any provider.
	// ZITADEL's path of the introspection endpoint
	introspectPath := op.NewEndpoint("oauth/v2/introspect")
	// Opaque tokens in op's default format (v3.52): a compact JWE
	// (A256GCMKW) only op can read, which the module sends to
	// introspection like any opaque token.
	o, err := op.NewProvider(&cfg, s, op.StaticIssuer(p.Issuer), op.WithAllowInsecure(),
		op.WithCustomIntrospectionEndpoint(introspectPath))
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	p.op = o
	keysPath := op.DefaultEndpoints.JwksURI.Relative()
	p.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case keysPath:
			p.KeyFetches.Add(1)
		case oidc.DiscoveryEndpoint:
			p.Discoveries.Add(1)
		case introspectPath.Relative():
			p.Introspections.Add(1)
			p.recordAssertion(r)
		}
		o.ServeHTTP(w, r)
	})
	p.serve(ln)
	if err := p.discover(); err != nil {
		p.Stop()
		return nil, err
	}
	p.Discoveries.Store(0) // count only the others' requests
	return p, nil
}

func (p *Provider) serve(ln net.Listener) {
	if p.tls != nil {
		ln = tls.NewListener(ln, p.tls)
	}
	srv := &http.Server{Handler: p.handler, ReadHeaderTimeout: 10 * time.Second}
	p.mu.Lock()
	p.srv = srv
	p.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// discover reads the endpoints from the provider's discovery document, as
// a client would.
func (p *Provider) discover() error {
	resp, err := p.client.Get(p.Issuer + oidc.DiscoveryEndpoint)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var d oidc.DiscoveryConfiguration
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		return fmt.Errorf("discovery document: %w", err)
	}
	if d.Issuer != p.Issuer || d.JwksURI == "" || d.TokenEndpoint == "" || d.IntrospectionEndpoint == "" {
		return fmt.Errorf("discovery document names issuer %q, jwks_uri %q, token_endpoint %q, introspection_endpoint %q",
			d.Issuer, d.JwksURI, d.TokenEndpoint, d.IntrospectionEndpoint)
	}
	p.JWKSURI, p.TokenEndpoint, p.IntrospectionEndpoint = d.JwksURI, d.TokenEndpoint, d.IntrospectionEndpoint
	return nil
}

// Token asks the token endpoint for an access token with the client
// credentials grant, the secret sent by HTTP Basic authentication.
func (p *Provider) Token(clientID, secret string) (string, error) {
	form := url.Values{"grant_type": {string(oidc.GrantTypeClientCredentials)}}
	req, err := http.NewRequest(http.MethodPost, p.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	resp, err := p.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token endpoint: %d %s", resp.StatusCode, body)
	}
	var tr oidc.AccessTokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return "", fmt.Errorf("token response: %w", err)
	}
	if tr.AccessToken == "" || !strings.EqualFold(tr.TokenType, oidc.BearerToken) {
		return "", fmt.Errorf("token response without a bearer access token: %s", body)
	}
	return tr.AccessToken, nil
}

// MustToken is Token for the test's goroutine.
func (p *Provider) MustToken(t testing.TB, c Client) string {
	t.Helper()
	tok, err := p.Token(c.ID, c.Secret)
	if err != nil {
		t.Fatalf("idptest: %v", err)
	}
	return tok
}

// SigningKeyID is the kid new tokens are signed with.
func (p *Provider) SigningKeyID() string { return p.storage.signingKeyID() }

// Rotate publishes a new key in the JWKS and signs every token issued
// from then on with it, at one moment, as a provider that rotates does;
// the old keys stay published. The key was made ahead (at the previous
// rotation or at start), as providers prepare theirs, so the moment is
// not delayed by a key generation. It returns the new kid and the moment
// it was published.
func (p *Provider) Rotate() (kid string, published time.Time, err error) { return p.storage.rotate() }

// Stop closes the provider's listener and connections: from now on its
// address refuses connections. The keys and clients are kept for Restart.
func (p *Provider) Stop() {
	p.mu.Lock()
	srv := p.srv
	p.srv = nil
	p.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
	p.client.CloseIdleConnections()
}

// Restart serves again on the same address, with the same keys and
// clients. The port was ours a moment ago; should another process have
// taken it meanwhile, Restart keeps trying for 5 s.
func (p *Provider) Restart() error {
	p.mu.Lock()
	running := p.srv != nil
	p.mu.Unlock()
	if running {
		return errors.New("idptest: restart of a running provider")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err := net.Listen("tcp", p.addr)
		if err == nil {
			p.serve(ln)
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
