package caddymodule

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/jackc/pgx/v5"
	// the standard modules, as in cmd/caddy: log filters, reverse_proxy...
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

const (
	testIssuer   = "https://idp.test.invalid"
	testAudience = "workspace-api"
)

// testKey is a signing key made at test time with crypto/rand.
type testKey struct {
	alg  jwa.SignatureAlgorithm
	kid  string
	priv crypto.Signer
	pub  jwk.Key // public JWK with kid and alg set
}

func newTestKey(t testing.TB, alg jwa.SignatureAlgorithm, kid string) testKey {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case jwa.RS256(), jwa.RS384(), jwa.RS512(), jwa.PS256(), jwa.PS384(), jwa.PS512():
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case jwa.ES256():
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jwa.ES384():
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jwa.EdDSA():
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("no key type for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	pub, err := jwk.Import(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	_ = pub.Set(jwk.KeyIDKey, kid)
	_ = pub.Set(jwk.AlgorithmKey, alg)
	return testKey{alg: alg, kid: kid, priv: priv, pub: pub}
}

// jwksOf is the JWKS document of the keys' public halves.
func jwksOf(t testing.TB, keys ...testKey) []byte {
	set := jwk.NewSet()
	for _, k := range keys {
		_ = set.AddKey(k.pub)
	}
	buf, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return buf
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(t testing.TB, v any) []byte {
	buf, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return buf
}

// claimsFor are valid claims for sub, expiring in an hour.
func claimsFor(sub string) map[string]any {
	return map[string]any{"iss": testIssuer, "aud": testAudience, "sub": sub,
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
}

// mint signs claims with k, with a header of alg, kid and typ plus extra.
func (k testKey) mint(t testing.TB, claims map[string]any, extra map[string]any) string {
	t.Helper()
	hdr := map[string]any{"alg": k.alg.String(), "kid": k.kid, "typ": "JWT"}
	for name, v := range extra {
		if v == nil {
			delete(hdr, name)
		} else {
			hdr[name] = v
		}
	}
	return k.signRaw(t, mustJSON(t, hdr), mustJSON(t, claims))
}

// signRaw signs exactly the given header and payload bytes, so tests can
// build tokens jwx would never produce.
func (k testKey) signRaw(t testing.TB, hdr, payload []byte) string {
	t.Helper()
	input := b64(hdr) + "." + b64(payload)
	signer, err := jws.SignerFor(k.alg)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signer.Sign(k.priv, []byte(input))
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64(sig)
}

// hs256WithPublicKey is the classic key-confusion forgery: an HS256 token
// whose HMAC secret is the victim's RSA public key.
func hs256WithPublicKey(t testing.TB, pub jwk.Key, claims map[string]any) string {
	raw := mustJSON(t, pub)
	input := b64(mustJSON(t, map[string]any{"alg": "HS256", "typ": "JWT"})) + "." + b64(mustJSON(t, claims))
	mac := hmac.New(sha256.New, raw)
	mac.Write([]byte(input))
	return input + "." + b64(mac.Sum(nil))
}

// testServer is a real HTTP server whose answer each test scripts: an
// identity provider, a legacy backend. It counts and records every request.
type testServer struct {
	*httptest.Server
	fetches atomic.Int64
	mu      sync.Mutex
	answer  http.HandlerFunc
	seen    []seenRequest
}

type seenRequest struct {
	Method, RawQuery string
	Header           http.Header
	Body             []byte
	RequestURI       string      // the request target as sent
	Trailer          http.Header // the request's trailers, read after its body
}

func newTestServer(t testing.TB) *testServer {
	s := &testServer{answer: http.NotFound}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.seen = append(s.seen, seenRequest{r.Method, r.URL.RawQuery, r.Header.Clone(), body, r.RequestURI, r.Trailer.Clone()})
		answer := s.answer
		s.mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// serve sets how the server answers from now on.
func (s *testServer) serve(f http.HandlerFunc) {
	s.mu.Lock()
	s.answer = f
	s.mu.Unlock()
}

// set answers every request with status and a JSON body.
func (s *testServer) set(status int, body []byte) {
	s.serve(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	})
}

// serveKeys answers with the key set of keys, and Cache-Control if given.
func (s *testServer) serveKeys(t testing.TB, cacheControl string, keys ...testKey) {
	doc := jwksOf(t, keys...)
	s.serve(func(w http.ResponseWriter, r *http.Request) {
		if cacheControl != "" {
			w.Header().Set("Cache-Control", cacheControl)
		}
		_, _ = w.Write(doc)
	})
}

// requests returns what the server received so far.
func (s *testServer) requests() []seenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seenRequest(nil), s.seen...)
}

// newJWKSServer is an identity provider serving body as its key set.
func newJWKSServer(t testing.TB, body []byte) *testServer {
	s := newTestServer(t)
	s.set(http.StatusOK, body)
	return s
}

func writeFile(t testing.TB, name string, data []byte) string {
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// countingStore is the real store with a count of the calls that reached
// it, to prove that refused requests never touch storage.
type countingStore struct {
	profile.Store
	calls atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, id string) (profile.Profile, error) {
	c.calls.Add(1)
	return c.Store.Get(ctx, id)
}

func (c *countingStore) Update(ctx context.Context, id string, fn profile.UpdateFunc) (profile.Profile, error) {
	c.calls.Add(1)
	return c.Store.Update(ctx, id, fn)
}

// provisionHandler provisions h in a fresh Caddy context that is cancelled
// (and so cleaned up) when the test ends.
func provisionHandler(t testing.TB, h *Handler) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("provision: %v", err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
}

// newFileHandler is a handler on the memory store with keys from a file;
// the store is wrapped to count the calls that reach it.
func newFileHandler(t testing.TB, jwks []byte, mod func(*Handler)) (*Handler, *countingStore) {
	h := &Handler{
		JWKSFiles:  []string{writeFile(t, "jwks.json", jwks)},
		Issuers:    []string{testIssuer},
		Audiences:  []string{testAudience},
		StorageRaw: json.RawMessage(`{"backend":"memory"}`),
	}
	if mod != nil {
		mod(h)
	}
	provisionHandler(t, h)
	cs := &countingStore{Store: h.service.Store}
	h.service.Store = cs
	return h, cs
}

func newTestContext() (caddy.Context, context.CancelFunc) {
	return caddy.NewContext(caddy.Context{Context: context.Background()})
}

func caddyReplacerKey() any        { return caddy.ReplacerCtxKey }
func newReplacer() *caddy.Replacer { return caddy.NewReplacer() }

func jwkExport(k testKey, dst *any) error { return jwk.Export(k.pub, dst) }

// dropSchema removes a test's PostgreSQL schema.
func dropSchema(dsn, schema string) {
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		return
	}
	defer conn.Close(context.Background())
	_, _ = conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
}
