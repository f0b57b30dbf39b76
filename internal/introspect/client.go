package introspect

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
)

// One call to the endpoint: the HTTP client, the client's authentication,
// the request and the answer's bytes.

// maxAnswerBytes caps an answer: an introspection answer is a few hundred
// bytes, so an endpoint sending more is broken and is read no further.
const maxAnswerBytes = 64 << 10

// assertionLifetime is how long a client assertion is valid: it is made
// for one call.
const assertionLifetime = 60 * time.Second

// clientAssertionType is RFC 7523 §2.2's client_assertion_type.
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Media types of the answers (RFC 9701 §5 for the signed one).
const (
	mediaJSON   = "application/json"
	mediaJWT    = "application/token-introspection+jwt"
	signedTyp   = "token-introspection+jwt"
	formContent = "application/x-www-form-urlencoded"
)

// caller is what one call needs, built once by New.
type caller struct {
	endpoint string
	client   *http.Client
	accept   string
	// basic is the Authorization header of client_secret_basic, "" for
	// the other methods; form is the body's client part ("&client_id=..."
	// and, for client_secret_post, "&client_secret=...").
	basic string
	form  string
	// the private_key_jwt signer: the key, its alg and the kid
	key      jwk.Key
	alg      jwa.SignatureAlgorithm
	kid      string
	clientID string
	audience string
	now      func() time.Time
}

func newCaller(cfg Config) (*caller, error) {
	c := &caller{endpoint: cfg.Endpoint, clientID: cfg.ClientID, now: cfg.Now, accept: mediaJSON}
	if cfg.Response == ResponseJWT {
		c.accept = mediaJWT
	}
	c.client = newClient(cfg.Timeout, cfg.TLS, cfg.MaxInFlight)
	id := "&client_id=" + url.QueryEscape(cfg.ClientID)
	switch cfg.AuthMethod {
	case ClientSecretBasic:
		// RFC 6749 §2.3.1: each form-encoded before they are joined, so a
		// ':' in the id or a '%' in the secret survives; nothing in the body
		c.basic = "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(cfg.ClientID)+":"+url.QueryEscape(cfg.ClientSecret)))
	case ClientSecretPost:
		c.form = id + "&client_secret=" + url.QueryEscape(cfg.ClientSecret)
	case PrivateKeyJWT:
		c.form = id + "&client_assertion_type=" + url.QueryEscape(clientAssertionType)
		c.audience = cfg.Issuers[0]
		if err := c.loadKey(cfg.ClientKey, cfg.ClientKeyID); err != nil {
			return nil, err
		}
	case None:
		c.form = id
	}
	return c, nil
}

// newClient never follows a redirect (a 3xx is a failed call: the
// endpoint is configured, not discovered by following it), and bounds
// each call by timeout.
func newClient(timeout time.Duration, tlsConfig *tls.Config, conns int) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute,
			TLSClientConfig: tlsConfig, ForceAttemptHTTP2: true, ResponseHeaderTimeout: timeout},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// loadKey reads the private key of client assertions and picks the
// algorithm its type signs with.
func (c *caller) loadKey(path, kid string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("client_key: %w", err)
	}
	k, err := jwk.ParseKey(data, jwk.WithPEM(true))
	if err != nil {
		return fmt.Errorf("client_key: %s holds no private key jwx reads: %w", path, err)
	}
	var raw any
	if err := jwk.Export(k, &raw); err != nil {
		return fmt.Errorf("client_key: %w", err)
	}
	switch p := raw.(type) {
	case *rsa.PrivateKey:
		if p.N.BitLen() < 2048 {
			return errors.New("client_key: an RSA key must have at least 2048 bits")
		}
		c.alg = jwa.RS256()
	case *ecdsa.PrivateKey:
		switch p.Curve {
		case elliptic.P256():
			c.alg = jwa.ES256()
		case elliptic.P384():
			c.alg = jwa.ES384()
		case elliptic.P521():
			c.alg = jwa.ES512()
		default:
			return errors.New("client_key: unsupported elliptic curve")
		}
	case ed25519.PrivateKey:
		c.alg = jwa.EdDSA()
	default:
		return fmt.Errorf("client_key: %s holds no private RSA, EC or Ed25519 key", path)
	}
	if kid == "" {
		tp, err := k.Thumbprint(crypto.SHA256)
		if err != nil {
			return fmt.Errorf("client_key: thumbprint: %w", err)
		}
		kid = base64.RawURLEncoding.EncodeToString(tp)
	}
	c.key, c.kid = k, kid
	return nil
}

// assertion is a fresh client assertion (RFC 7523 §3): this client as iss
// and sub, the issuer as aud, a random jti, valid for one call.
func (c *caller) assertion() (string, error) {
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	now := c.now()
	tok, err := jwt.NewBuilder().Issuer(c.clientID).Subject(c.clientID).Audience([]string{c.audience}).
		JwtID(base64.RawURLEncoding.EncodeToString(jti[:])).IssuedAt(now).Expiration(now.Add(assertionLifetime)).Build()
	if err != nil {
		return "", err
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, c.kid)
	signed, err := jwt.Sign(tok, jwt.WithKey(c.alg, c.key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", err
	}
	return string(signed), nil
}

// errStatus is an answer of a status other than 200; its text names the
// status only.
type errStatus int

func (e errStatus) Error() string { return fmt.Sprintf("the endpoint answered status %d", int(e)) }

// call asks the endpoint about tok and returns the answer's body. Its
// errors never hold the token, the secret or the assertion; URLs in them
// are redacted.
func (c *caller) call(ctx context.Context, tok string) ([]byte, error) {
	var body strings.Builder
	body.Grow(len(tok) + len(c.form) + 64)
	body.WriteString("token=")
	body.WriteString(url.QueryEscape(tok))
	body.WriteString("&token_type_hint=access_token")
	body.WriteString(c.form)
	if c.key != nil {
		a, err := c.assertion()
		if err != nil {
			return nil, fmt.Errorf("signing the client assertion: %w", err)
		}
		body.WriteString("&client_assertion=")
		body.WriteString(a)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, strings.NewReader(body.String()))
	if err != nil {
		return nil, errors.New("building the request failed")
	}
	req.Header.Set("Content-Type", formContent)
	req.Header.Set("Accept", c.accept)
	if c.basic != "" {
		req.Header.Set("Authorization", c.basic)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = jwtauth.RedactURL(ue.URL)
		}
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errStatus(resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	if len(data) > maxAnswerBytes {
		return nil, fmt.Errorf("the answer is larger than %d bytes", maxAnswerBytes)
	}
	return data, nil
}
