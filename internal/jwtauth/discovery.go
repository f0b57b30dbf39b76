package jwtauth

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// Discovery mode of a URLSource: the key set URL read from the issuer's
// OpenID Connect discovery document.

// discover reads jwks_uri from the issuer's OpenID Connect discovery
// document, and checks that the document speaks for that issuer and that
// jwks_uri is https (or loopback http). It is read again on every fetch, so
// a provider that moves its key set is followed.
func (s *URLSource) discover(ctx context.Context) error {
	body, _, err := s.get(ctx, s.url, "application/json")
	if err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	var doc struct {
		Issuer        string `json:"issuer"`
		JWKSURI       string `json:"jwks_uri"`
		Introspection string `json:"introspection_endpoint"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("discovery document is not JSON: %w", err)
	}
	if doc.Issuer != s.issuer {
		return fmt.Errorf("discovery document names issuer %q, not %q", doc.Issuer, s.issuer)
	}
	u, err := url.Parse(doc.JWKSURI)
	if err != nil || u.Host == "" {
		return fmt.Errorf("discovery document has no usable jwks_uri")
	}
	if err := CheckKeySetURL(u); err != nil {
		return fmt.Errorf("discovery jwks_uri: %w", err)
	}
	s.jwksURI = doc.JWKSURI
	// kept for an introspection client that takes its endpoint from
	// discovery, so that the document is fetched once for both
	s.introspection.Store(&doc.Introspection)
	return nil
}

// IntrospectionEndpoint is the introspection_endpoint of the discovery
// document as last read, "" when none was read yet or it names none. The
// caller checks it as any endpoint it is given.
func (s *URLSource) IntrospectionEndpoint() string {
	if p := s.introspection.Load(); p != nil {
		return *p
	}
	return ""
}

// DiscoveryURL is where an issuer publishes its OpenID configuration.
func DiscoveryURL(issuer string) string {
	return strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
}
