package idptest

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// What introspection asks of the storage: the record of a token op
// issued, and the public keys of the clients that authenticate by
// private_key_jwt. op itself decrypts the opaque token (or verifies the
// JWT), verifies the client's assertion and writes the answer.

// tokenRecord is what the provider remembers of an access token it issued.
type tokenRecord struct {
	subject         string
	client          Client
	scopes          []string
	issued, expires time.Time
	claims          map[string]any
}

// KeyLookup is one look-up op made of a client's public key while
// verifying a client assertion: the assertion's kid and its issuer (the
// client ID). The key was found when the client has a key of that ID.
type KeyLookup struct {
	KeyID, ClientID string
	Found           bool
}

// errInactive makes op answer {"active":false}: op turns any error of
// SetIntrospectionFromToken into an inactive answer.
var errInactive = errors.New("idptest: not an active token of this provider")

// SetIntrospectionFromToken fills the answer op gives about tokenID, which
// op read from the token (decrypted or verified) together with subject,
// for the authenticated client introspector: the registered claims of an
// RFC 7662 answer and the token's own claims (a service-account marker, a
// user's profile claims), as ZITADEL answers. An unknown or expired token,
// or one whose subject does not match the record, is inactive.
func (s *storage) SetIntrospectionFromToken(ctx context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, _ string) error {
	s.mu.Lock()
	rec, ok := s.tokens[tokenID]
	s.mu.Unlock()
	if !ok || rec.subject != subject || !time.Now().Before(rec.expires) {
		return errInactive
	}
	resp.Subject = rec.subject
	resp.ClientID = rec.client.ID
	resp.Audience = slices.Clone(rec.client.Audience)
	if len(resp.Audience) == 0 {
		resp.Audience = []string{rec.client.ID}
	}
	resp.Issuer = op.IssuerFromContext(ctx)
	resp.Scope = slices.Clone(rec.scopes)
	resp.TokenType = oidc.BearerToken
	resp.JWTID = tokenID
	resp.IssuedAt = oidc.FromTime(rec.issued)
	resp.NotBefore = oidc.FromTime(rec.issued)
	resp.Expiration = oidc.FromTime(rec.expires)
	resp.Claims = maps.Clone(rec.claims)
	return nil
}

// GetKeyByIDAndClientID gives op the public key with which clientID signs
// its assertions, when keyID names it; op checks the signature, the
// audience (its issuer), the expiry and iss = sub. Each look-up is
// recorded.
func (s *storage) GetKeyByIDAndClientID(_ context.Context, keyID, clientID string) (*jose.JSONWebKey, error) {
	c, ok := s.clients[clientID]
	found := ok && c.PublicKey != nil && c.KeyID == keyID
	s.mu.Lock()
	s.lookups = append(s.lookups, KeyLookup{KeyID: keyID, ClientID: clientID, Found: found})
	s.mu.Unlock()
	if !found {
		return nil, errors.New("idptest: no such key of this client")
	}
	return &jose.JSONWebKey{Key: c.PublicKey, KeyID: c.KeyID, Use: "sig"}, nil
}

func (s *storage) keyLookups() []KeyLookup {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lookups)
}
