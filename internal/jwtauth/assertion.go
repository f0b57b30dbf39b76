package jwtauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// AssertionSigner signs the client assertions (RFC 7523 §2.2) with which
// this module authenticates to an identity provider's endpoints
// (private_key_jwt). It lives here so that jwx stays in this package.
type AssertionSigner struct {
	key jwk.Key
	alg jwa.SignatureAlgorithm
	kid string
}

// LoadAssertionKey reads a PEM private key (RSA of 2048 bits or more,
// P-256/384/521 or Ed25519) and picks the algorithm its type signs with
// (RS256, ES256/384/512, EdDSA). kid names the key in the assertions'
// header; "" is its RFC 7638 thumbprint.
func LoadAssertionKey(path, kid string) (*AssertionSigner, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := jwk.ParseKey(data, jwk.WithPEM(true))
	if err != nil {
		return nil, fmt.Errorf("%s holds no private key: %w", path, err)
	}
	var raw any
	if err := jwk.Export(k, &raw); err != nil {
		return nil, err
	}
	s := &AssertionSigner{key: k, kid: kid}
	switch p := raw.(type) {
	case *rsa.PrivateKey:
		if p.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("an RSA key must have at least %d bits", minRSABits)
		}
		s.alg = jwa.RS256()
	case *ecdsa.PrivateKey:
		switch p.Curve {
		case elliptic.P256():
			s.alg = jwa.ES256()
		case elliptic.P384():
			s.alg = jwa.ES384()
		case elliptic.P521():
			s.alg = jwa.ES512()
		default:
			return nil, errors.New("unsupported elliptic curve")
		}
	case ed25519.PrivateKey:
		s.alg = jwa.EdDSA()
	default:
		return nil, fmt.Errorf("%s holds no private RSA, EC or Ed25519 key", path)
	}
	if s.kid == "" {
		tp, err := k.Thumbprint(crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("thumbprint: %w", err)
		}
		s.kid = base64.RawURLEncoding.EncodeToString(tp)
	}
	return s, nil
}

// KeyID is the kid the assertions name.
func (s *AssertionSigner) KeyID() string { return s.kid }

// Sign makes a fresh assertion: client as iss and sub, aud as its
// audience, a random jti, issued at now and valid for ttl.
func (s *AssertionSigner) Sign(client, aud string, now time.Time, ttl time.Duration) (string, error) {
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	tok, err := jwt.NewBuilder().Issuer(client).Subject(client).Audience([]string{aud}).
		JwtID(base64.RawURLEncoding.EncodeToString(jti[:])).IssuedAt(now).Expiration(now.Add(ttl)).Build()
	if err != nil {
		return "", err
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, s.kid)
	signed, err := jwt.Sign(tok, jwt.WithKey(s.alg, s.key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", err
	}
	return string(signed), nil
}
