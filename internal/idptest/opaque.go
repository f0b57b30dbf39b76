package idptest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/zitadel/oidc/v3/pkg/op"
)

// UserToken is an access token op issues to client c for user u, as at
// the end of a sign-in (the sign-in itself, a browser flow, is not run):
// op's own CreateAccessToken makes it, opaque for an Opaque client (op's
// encryption of the token's ID and the user's subject) and a JWT
// otherwise. Introspection answers it with the user's subject and claims
// and the client's audience.
func (p *Provider) UserToken(c Client, u User) (string, error) {
	known, ok := p.storage.clients[c.ID]
	if !ok {
		return "", errors.New("idptest: unknown client " + c.ID)
	}
	if u.Subject == "" {
		return "", errors.New("idptest: a user needs a subject")
	}
	ctx := op.ContextWithIssuer(context.Background(), p.Issuer)
	client := opClient{known}
	tok, _, _, err := op.CreateAccessToken(ctx, &tokenRequest{client: known, user: &u}, client.AccessTokenType(), p.op, client, "")
	return tok, err
}

// MustUserToken is UserToken for the test's goroutine.
func (p *Provider) MustUserToken(t testing.TB, c Client, u User) string {
	t.Helper()
	tok, err := p.UserToken(c, u)
	if err != nil {
		t.Fatalf("idptest: %v", err)
	}
	return tok
}

// KeyLookups are the look-ups of client keys op made while verifying
// client assertions, oldest first.
func (p *Provider) KeyLookups() []KeyLookup { return p.storage.keyLookups() }

// Assertions are the client assertions the introspection endpoint
// received, oldest first, whether op accepted them or not.
func (p *Provider) Assertions() []string {
	p.amu.Lock()
	defer p.amu.Unlock()
	return slices.Clone(p.assertions)
}

// recordAssertion keeps the client_assertion of an introspection request
// and leaves its body for op to read.
func (p *Provider) recordAssertion(r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	_ = r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return
	}
	form, err := url.ParseQuery(string(body))
	if a := form.Get("client_assertion"); err == nil && a != "" {
		p.amu.Lock()
		p.assertions = append(p.assertions, a)
		p.amu.Unlock()
	}
}
