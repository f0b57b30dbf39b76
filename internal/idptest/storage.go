package idptest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// storage is the provider's op.Storage: what zitadel's op asks of the
// deployment (clients, keys, token records), kept in memory. It does no
// protocol work: parsing requests, authenticating clients against what it
// returns (secrets, and the public keys of private_key_jwt), building the
// claims, signing and encrypting tokens, introspection, discovery and the
// JWKS are op's. Only the client-credentials grant is served; the others
// answer errors.
type storage struct {
	alg     jose.SignatureAlgorithm
	clients map[string]Client

	mu      sync.Mutex
	keys    []*signingKey // published in the JWKS, oldest first
	signing *signingKey   // the one new tokens are signed with
	next    *signingKey   // made ahead, published by the next rotation
	tokens  map[string]tokenRecord
	lookups []KeyLookup
}

var errNotSupported = errors.New("idptest: only the client_credentials grant is served")

func newStorage(alg jose.SignatureAlgorithm, clients []Client) (*storage, error) {
	s := &storage{alg: alg, clients: make(map[string]Client, len(clients)), tokens: map[string]tokenRecord{}}
	for _, c := range clients {
		if c.ID == "" || (c.Secret == "" && c.PublicKey == nil) {
			return nil, fmt.Errorf("idptest: client %q needs an ID and a secret or a public key", c.ID)
		}
		if c.PublicKey != nil && c.KeyID == "" {
			return nil, fmt.Errorf("idptest: client %q has a public key without a key ID", c.ID)
		}
		s.clients[c.ID] = c
	}
	if _, _, err := s.rotate(); err != nil {
		return nil, err
	}
	return s, nil
}

// rotate publishes the key made ahead and signs with it from now on, at
// one moment, which it returns; the old keys stay published, as a provider
// keeps them until their tokens expire. Then it makes the next key, so
// that the moment of a rotation never waits for a key generation.
func (s *storage) rotate() (string, time.Time, error) {
	s.mu.Lock()
	k := s.next
	s.mu.Unlock()
	if k == nil { // the first key
		var err error
		if k, err = newSigningKey(s.alg); err != nil {
			return "", time.Time{}, err
		}
	}
	s.mu.Lock()
	s.keys = append(s.keys, k)
	s.signing = k
	published := time.Now()
	s.mu.Unlock()
	next, err := newSigningKey(s.alg)
	if err != nil {
		return "", time.Time{}, err
	}
	s.mu.Lock()
	s.next = next
	s.mu.Unlock()
	return k.id, published, nil
}

func (s *storage) signingKeyID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.signing.id
}

// signingKey is both an op.SigningKey (private) and, through publicKey, an
// op.Key for the JWKS.
type signingKey struct {
	id   string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

func newSigningKey(alg jose.SignatureAlgorithm) (*signingKey, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.ES384:
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jose.ES512:
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("idptest: no key type for %s", alg)
	}
	if err != nil {
		return nil, err
	}
	return &signingKey{id: randomID(), alg: alg, priv: priv}, nil
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return k.alg }
func (k *signingKey) Key() any                                    { return k.priv }
func (k *signingKey) ID() string                                  { return k.id }

type publicKey struct{ *signingKey }

func (k publicKey) Algorithm() jose.SignatureAlgorithm { return k.alg }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return k.priv.Public() }

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// tokenRequest is what ClientCredentialsTokenRequest (or UserToken) hands
// to op and op hands to CreateAccessToken. A user's request names the
// user; a client-credentials one has none.
type tokenRequest struct {
	client Client
	user   *User
	scopes []string
}

func (r *tokenRequest) GetSubject() string {
	if r.user != nil {
		return r.user.Subject
	}
	return r.client.subject()
}
func (r *tokenRequest) GetAudience() []string { return slices.Clone(r.client.Audience) }
func (r *tokenRequest) GetScopes() []string   { return r.scopes }

// Keys and discovery.

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.signing, nil
}

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{s.alg}, nil
}

func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]op.Key, len(s.keys))
	for i, k := range s.keys {
		keys[i] = publicKey{k}
	}
	return keys, nil
}

// The client-credentials grant.

func (s *storage) ClientCredentials(_ context.Context, clientID, clientSecret string) (op.Client, error) {
	c, ok := s.clients[clientID]
	// a client without a secret (private_key_jwt only) never passes one
	if !ok || c.Secret == "" || subtle.ConstantTimeCompare([]byte(c.Secret), []byte(clientSecret)) != 1 {
		return nil, errors.New("idptest: unknown client or wrong secret")
	}
	return opClient{c}, nil
}

func (s *storage) ClientCredentialsTokenRequest(_ context.Context, clientID string, scopes []string) (op.TokenRequest, error) {
	c, ok := s.clients[clientID]
	if !ok {
		return nil, errors.New("idptest: unknown client")
	}
	return &tokenRequest{client: c, scopes: scopes}, nil
}

// CreateAccessToken records the token op is about to make (a JWT or, for
// an opaque client, op's encryption of its ID and subject) and gives op
// its ID and expiry; introspection reads the record back.
func (s *storage) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	tr, ok := req.(*tokenRequest)
	if !ok {
		return "", time.Time{}, errNotSupported
	}
	id, now := randomID(), time.Now()
	rec := tokenRecord{subject: tr.GetSubject(), client: tr.client, scopes: tr.scopes, issued: now,
		expires: now.Add(tr.client.lifetime()), claims: tr.client.Claims}
	if tr.user != nil {
		rec.claims = tr.user.Claims
	}
	s.mu.Lock()
	s.tokens[id] = rec
	s.mu.Unlock()
	return id, rec.expires, nil
}

// GetPrivateClaimsFromScopes gives the client's own claims (a
// service-account marker, say); op merges them into the access token.
func (s *storage) GetPrivateClaimsFromScopes(_ context.Context, _, clientID string, _ []string) (map[string]any, error) {
	return maps.Clone(s.clients[clientID].Claims), nil
}

func (s *storage) GetClientByClientID(_ context.Context, clientID string) (op.Client, error) {
	c, ok := s.clients[clientID]
	if !ok {
		return nil, errors.New("idptest: unknown client")
	}
	return opClient{c}, nil
}

func (s *storage) AuthorizeClientIDSecret(ctx context.Context, clientID, clientSecret string) error {
	_, err := s.ClientCredentials(ctx, clientID, clientSecret)
	return err
}

func (s *storage) Health(context.Context) error { return nil }

// What the other grants and endpoints would need: refused.

func (s *storage) CreateAuthRequest(context.Context, *oidc.AuthRequest, string) (op.AuthRequest, error) {
	return nil, errNotSupported
}
func (s *storage) AuthRequestByID(context.Context, string) (op.AuthRequest, error) {
	return nil, errNotSupported
}
func (s *storage) AuthRequestByCode(context.Context, string) (op.AuthRequest, error) {
	return nil, errNotSupported
}
func (s *storage) SaveAuthCode(context.Context, string, string) error { return errNotSupported }
func (s *storage) DeleteAuthRequest(context.Context, string) error    { return errNotSupported }
func (s *storage) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, errNotSupported
}
func (s *storage) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, op.ErrInvalidRefreshToken
}
func (s *storage) TerminateSession(context.Context, string, string) error { return errNotSupported }
func (s *storage) RevokeToken(context.Context, string, string, string) *oidc.Error {
	return oidc.ErrServerError().WithDescription("revocation is not served")
}
func (s *storage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}
func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}
func (s *storage) SetUserinfoFromToken(context.Context, *oidc.UserInfo, string, string, string) error {
	return errNotSupported
}
func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errNotSupported
}

// opClient is a Client as op sees it: a confidential client that may only
// use the client-credentials grant and gets JWT access tokens, or opaque
// ones (op's bearer type) when the Client is Opaque.
type opClient struct{ Client }

func (c opClient) GetID() string                       { return c.ID }
func (c opClient) RedirectURIs() []string              { return nil }
func (c opClient) PostLogoutRedirectURIs() []string    { return nil }
func (c opClient) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c opClient) AuthMethod() oidc.AuthMethod {
	if c.PublicKey != nil {
		return oidc.AuthMethodPrivateKeyJWT
	}
	return oidc.AuthMethodBasic
}
func (c opClient) ResponseTypes() []oidc.ResponseType { return nil }
func (c opClient) LoginURL(string) string             { return "" }
func (c opClient) AccessTokenType() op.AccessTokenType {
	if c.Opaque {
		return op.AccessTokenTypeBearer
	}
	return op.AccessTokenTypeJWT
}
func (c opClient) IDTokenLifetime() time.Duration       { return c.lifetime() }
func (c opClient) DevMode() bool                        { return false }
func (c opClient) IsScopeAllowed(string) bool           { return false }
func (c opClient) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c opClient) ClockSkew() time.Duration             { return 0 }
func (c opClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeClientCredentials}
}
func (c opClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c opClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// Interface guards
var (
	_ op.Storage                  = (*storage)(nil)
	_ op.ClientCredentialsStorage = (*storage)(nil)
	_ op.Client                   = opClient{}
	_ op.SigningKey               = (*signingKey)(nil)
	_ op.Key                      = publicKey{}
)
