package introspect

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

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
	// signer makes private_key_jwt's assertions, nil for other methods
	signer   *jwtauth.AssertionSigner
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
		s, err := jwtauth.LoadAssertionKey(cfg.ClientKey, cfg.ClientKeyID)
		if err != nil {
			return nil, fmt.Errorf("client_key: %w", err)
		}
		c.signer = s
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

// assertion is a fresh client assertion (RFC 7523 §3): this client as iss
// and sub, the issuer as aud, a random jti, valid for one call.
func (c *caller) assertion() (string, error) {
	return c.signer.Sign(c.clientID, c.audience, c.now(), assertionLifetime)
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
	if c.signer != nil {
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
