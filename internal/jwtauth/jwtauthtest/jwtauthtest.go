// Package jwtauthtest makes what tests of the token core and of the glue
// need around tokens: signing keys made at test time with crypto/rand,
// tokens signed with them (well-formed or not), their JWKS, a scripted
// HTTP server that plays an identity provider (or a legacy backend) and a
// clock that only moves when told. It does not import jwtauth, so that the
// core's own tests can use it.
package jwtauthtest

import (
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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// The issuer and audience the tests' tokens name.
const (
	Issuer   = "https://idp.test.invalid"
	Audience = "workspace-api"
)

// Key is a signing key made at test time with crypto/rand.
type Key struct {
	Alg  jwa.SignatureAlgorithm
	Kid  string
	Priv crypto.Signer
	Pub  jwk.Key // public JWK with kid and alg set
}

// NewKey makes a key for alg (RSA 2048 for RS and PS, P-256/P-384/P-521,
// Ed25519 for EdDSA and for RFC 9864's Ed25519).
func NewKey(t testing.TB, alg jwa.SignatureAlgorithm, kid string) Key {
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
	case jwa.ES512():
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case jwa.EdDSA(), jwa.EdDSAEd25519():
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
	return Key{Alg: alg, Kid: kid, Priv: priv, Pub: pub}
}

// JWKS is the JWKS document of the keys' public halves.
func JWKS(t testing.TB, keys ...Key) []byte {
	set := jwk.NewSet()
	for _, k := range keys {
		_ = set.AddKey(k.Pub)
	}
	buf, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return buf
}

// B64 is unpadded base64url, as JWS parts are written.
func B64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// MustJSON marshals v or fails the test.
func MustJSON(t testing.TB, v any) []byte {
	buf, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return buf
}

// Claims are valid claims for sub (Issuer, Audience), expiring in an hour
// of the wall clock.
func Claims(sub string) map[string]any {
	return map[string]any{"iss": Issuer, "aud": Audience, "sub": sub,
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
}

// ClaimsAt are valid claims for sub relative to clock, expiring after ttl.
func ClaimsAt(clock *Clock, sub string, ttl time.Duration) map[string]any {
	c := Claims(sub)
	c["iat"] = clock.Now().Unix()
	c["exp"] = clock.Now().Add(ttl).Unix()
	return c
}

// Mint signs claims with k, with a header of alg, kid and typ plus extra
// (a nil value in extra removes that header member).
func (k Key) Mint(t testing.TB, claims map[string]any, extra map[string]any) string {
	t.Helper()
	hdr := map[string]any{"alg": k.Alg.String(), "kid": k.Kid, "typ": "JWT"}
	for name, v := range extra {
		if v == nil {
			delete(hdr, name)
		} else {
			hdr[name] = v
		}
	}
	return k.SignRaw(t, MustJSON(t, hdr), MustJSON(t, claims))
}

// SignRaw signs exactly the given header and payload bytes, so tests can
// build tokens jwx would never produce.
func (k Key) SignRaw(t testing.TB, hdr, payload []byte) string {
	t.Helper()
	input := B64(hdr) + "." + B64(payload)
	signer, err := jws.SignerFor(k.Alg)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signer.Sign(k.Priv, []byte(input))
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + B64(sig)
}

// HS256WithPublicKey is the classic key-confusion forgery: an HS256 token
// whose HMAC secret is the victim's public key.
func HS256WithPublicKey(t testing.TB, pub jwk.Key, claims map[string]any) string {
	raw := MustJSON(t, pub)
	input := B64(MustJSON(t, map[string]any{"alg": "HS256", "typ": "JWT"})) + "." + B64(MustJSON(t, claims))
	mac := hmac.New(sha256.New, raw)
	mac.Write([]byte(input))
	return input + "." + B64(mac.Sum(nil))
}

// Server is a real HTTP server whose answer each test scripts: an
// identity provider, a legacy backend. It counts and records every request.
type Server struct {
	*httptest.Server
	// Fetches counts the requests served.
	Fetches atomic.Int64
	mu      sync.Mutex
	answer  http.HandlerFunc
	seen    []Request
}

// Request is what Server saw of one request.
type Request struct {
	Method, RawQuery string
	Header           http.Header
	Body             []byte
	RequestURI       string      // the request target as sent
	Trailer          http.Header // the request's trailers, read after its body
}

// NewServer starts a server that answers 404 until told otherwise; it
// closes when the test ends.
func NewServer(t testing.TB) *Server {
	s := &Server{answer: http.NotFound}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Fetches.Add(1)
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.seen = append(s.seen, Request{r.Method, r.URL.RawQuery, r.Header.Clone(), body, r.RequestURI, r.Trailer.Clone()})
		answer := s.answer
		s.mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// NewJWKSServer is an identity provider serving body as its key set.
func NewJWKSServer(t testing.TB, body []byte) *Server {
	s := NewServer(t)
	s.Set(http.StatusOK, body)
	return s
}

// Serve sets how the server answers from now on.
func (s *Server) Serve(f http.HandlerFunc) {
	s.mu.Lock()
	s.answer = f
	s.mu.Unlock()
}

// Set answers every request with status and a JSON body.
func (s *Server) Set(status int, body []byte) {
	s.Serve(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	})
}

// ServeKeys answers with the key set of keys, and Cache-Control if given.
func (s *Server) ServeKeys(t testing.TB, cacheControl string, keys ...Key) {
	doc := JWKS(t, keys...)
	s.Serve(func(w http.ResponseWriter, r *http.Request) {
		if cacheControl != "" {
			w.Header().Set("Cache-Control", cacheControl)
		}
		_, _ = w.Write(doc)
	})
}

// Requests returns what the server received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.seen...)
}

// Clock is an injected time that moves only when told; safe for
// concurrent use. Its Now is a Config's and a URLSource's wall clock, its
// Mono a URLSource's monotonic clock. Advance moves both, as time passing
// does; JumpWall moves only the wall clock, as an NTP step or an operator
// setting the date does.
type Clock struct {
	mu   sync.Mutex
	t    time.Time
	mono time.Duration
}

// NewClock starts at the wall clock's now.
func NewClock() *Clock { return &Clock{t: time.Now()} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mono += d
	c.mu.Unlock()
}

// Mono is the monotonic reading: the time Advance has moved the clock by.
func (c *Clock) Mono() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mono
}

// JumpWall steps the wall clock by d (either way) while no time passes.
// The times Now returns after a jump carry no monotonic reading, so that
// code subtracting them sees the jump, as it would see a real one between
// times that do not share a monotonic clock.
func (c *Clock) JumpWall(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Round(0).Add(d)
	c.mu.Unlock()
}
