package oidcprovidertest

// The provider's endpoints as a client calls them: tokens by the
// client-credentials grant, introspection and revocation.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Option changes a request to the provider.
type Option func(*request)

type request struct {
	header http.Header
	form   url.Values
	auth   string
}

// WithDPoP sends proof as the DPoP header (dpoptest.Prover makes one for
// POST and TokenEndpoint()): the token is then DPoP-bound, cnf.jkt.
func WithDPoP(proof string) Option {
	return func(r *request) { r.header.Set("DPoP", proof) }
}

// WithAccept sets the Accept header, e.g.
// "application/token-introspection+jwt" for a signed answer.
func WithAccept(mediaType string) Option {
	return func(r *request) { r.header.Set("Accept", mediaType) }
}

// WithParam adds a form parameter (scope, token_type_hint, ...).
func WithParam(name, value string) Option {
	return func(r *request) { r.form.Add(name, value) }
}

// WithAuthMethod authenticates the client with method instead of the one
// it is registered with.
func WithAuthMethod(method string) Option {
	return func(r *request) { r.auth = method }
}

// Response is an HTTP answer of the provider, as it came.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// TokenResponse is the token endpoint's JSON answer.
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Scope       string `json:"scope"`
}

// ClientCredentialsToken gets an access token for resource with the
// client-credentials grant and returns it as the token endpoint gave it.
func (p *Provider) ClientCredentialsToken(clientID, secret, resource string, opts ...Option) (string, error) {
	tr, err := p.Token(clientID, secret, resource, opts...)
	if err != nil {
		return "", err
	}
	return tr.AccessToken, nil
}

// MustClientCredentialsToken is ClientCredentialsToken failing t on error.
func (p *Provider) MustClientCredentialsToken(t testing.TB, clientID, secret, resource string, opts ...Option) string {
	t.Helper()
	tok, err := p.ClientCredentialsToken(clientID, secret, resource, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Token is ClientCredentialsToken's whole answer (token_type, expires_in,
// scope).
func (p *Provider) Token(clientID, secret, resource string, opts ...Option) (TokenResponse, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	if resource != "" {
		form.Set("resource", resource)
	}
	res, err := p.post(p.TokenEndpoint(), clientID, secret, form, opts)
	if err != nil {
		return TokenResponse{}, err
	}
	if res.Status != http.StatusOK {
		return TokenResponse{}, fmt.Errorf("token endpoint: %d %s", res.Status, res.Body)
	}
	var tr TokenResponse
	if err := json.Unmarshal(res.Body, &tr); err != nil || tr.AccessToken == "" {
		return TokenResponse{}, fmt.Errorf("token endpoint: no access_token in %s", res.Body)
	}
	return tr, nil
}

// Introspect asks the introspection endpoint about token, authenticated
// as the client, and returns the answer as it came (any status).
func (p *Provider) Introspect(token, clientID, secret string, opts ...Option) (Response, error) {
	return p.post(p.IntrospectionEndpoint(), clientID, secret, url.Values{"token": {token}}, opts)
}

// Revoke revokes token at the revocation endpoint, authenticated as the
// client; an error unless the answer is 200.
func (p *Provider) Revoke(token, clientID, secret string, opts ...Option) error {
	res, err := p.post(p.RevocationEndpoint(), clientID, secret, url.Values{"token": {token}}, opts)
	if err != nil {
		return err
	}
	if res.Status != http.StatusOK {
		return fmt.Errorf("revocation endpoint: %d %s", res.Status, res.Body)
	}
	return nil
}

// post sends form with the client's authentication: its registered
// method unless an option says another (basic for a client not in the
// Config).
func (p *Provider) post(endpoint, clientID, secret string, form url.Values, opts []Option) (Response, error) {
	r := request{header: http.Header{}, form: form, auth: p.clients[clientID].authMethod()}
	for _, o := range opts {
		o(&r)
	}
	if r.auth == ClientSecretPost {
		form.Set("client_id", clientID)
		form.Set("client_secret", secret)
	}
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return Response{}, err
	}
	req.Header = r.header
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r.auth == ClientSecretBasic {
		// RFC 6749 section 2.3.1: both form-encoded before Basic.
		cred := url.QueryEscape(clientID) + ":" + url.QueryEscape(secret)
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(cred)))
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Response{}, err
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}
