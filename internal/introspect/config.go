package introspect

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
)

// How the client authenticates to the endpoint (RFC 7591's names).
const (
	ClientSecretBasic = "client_secret_basic"
	ClientSecretPost  = "client_secret_post"
	PrivateKeyJWT     = "private_key_jwt"
	None              = "none"
)

// The answer's form: plain JSON (RFC 7662) or a signed JWT (RFC 9701).
const (
	ResponseJSON = "json"
	ResponseJWT  = "jwt"
)

// Defaults of Config: an answer is fresh long enough to spare the
// endpoint most calls and short enough that a revoked token stops soon.
const (
	DefaultCacheTTL    = 30 * time.Second
	DefaultNegativeTTL = 5 * time.Second
	DefaultCacheSize   = 10000
	DefaultTimeout     = 2 * time.Second
	DefaultMaxInFlight = 16
)

// maxTimeout bounds timeout: a request waits at most this long for the
// endpoint, however the config reads.
const maxTimeout = 30 * time.Second

// SignedVerifier checks a signed answer's signature with the issuer's key
// set; *jwtauth.Verifier is one.
type SignedVerifier interface {
	VerifySigned(ctx context.Context, tok, typ string) ([]byte, *jwtauth.Error)
}

// Config is what an Introspector calls and checks answers against. Its
// zero durations and sizes take the defaults above.
type Config struct {
	// Endpoint is the introspection endpoint: https, or plain http to a
	// loopback host only.
	Endpoint string
	// ClientID and ClientSecret authenticate this client to the endpoint
	// by AuthMethod ("" is ClientSecretBasic).
	ClientID     string
	ClientSecret string
	AuthMethod   string
	// ClientKey is the PEM file of the private key that signs client
	// assertions (PrivateKeyJWT), read by New; ClientKeyID the assertions'
	// kid, "" for the key's RFC 7638 thumbprint.
	ClientKey   string
	ClientKeyID string
	// Response is ResponseJSON ("") or ResponseJWT; with ResponseJWT,
	// Signed checks the answers' signatures.
	Response string
	Signed   SignedVerifier
	// CacheTTL is how long an active answer is used (never past its exp),
	// NegativeTTL an inactive one; CacheSize bounds the answers kept.
	CacheTTL    time.Duration
	NegativeTTL time.Duration
	CacheSize   int
	// Timeout bounds one call, the wait for a free call slot included;
	// MaxInFlight is how many calls may run at once.
	Timeout     time.Duration
	MaxInFlight int
	// TLS is the client's TLS config (the trust pool); nil is the system's.
	TLS *tls.Config

	// The claim rules, as the JWT core reads them: accepted issuers (the
	// first is also the audience of client assertions) and audiences, at
	// least one of each; the leeway (nil: jwtauth.DefaultLeeway); the
	// longest remaining lifetime (0: none); the accepted clients (empty:
	// any).
	Issuers     []string
	Audiences   []string
	Leeway      *time.Duration
	MaxLifetime time.Duration
	Clients     []string

	// Now is the clock; nil is time.Now. Observer is told of calls and
	// cache lookups; Logger gets failures; nil is nobody.
	Now      func() time.Time
	Observer Observer
	Logger   *zap.Logger
}

// Check reports the first option New would refuse, the key file aside
// (New reads it). Its errors name each option as the Caddy module spells
// it, which is how the people who write the config know them.
func (cfg Config) Check() error {
	if cfg.Endpoint == "" {
		return errors.New("introspection: an endpoint is required")
	}
	u, err := url.Parse(cfg.Endpoint)
	if err != nil {
		return fmt.Errorf("introspection: endpoint %s does not parse", jwtauth.RedactURL(cfg.Endpoint))
	}
	switch {
	case u.Host == "":
		return fmt.Errorf("introspection: endpoint %s has no host", jwtauth.RedactURL(cfg.Endpoint))
	case u.User != nil:
		return errors.New("introspection: the endpoint must not carry credentials; use client_id and client_secret")
	case u.Fragment != "":
		return errors.New("introspection: the endpoint must not have a fragment")
	}
	if err := jwtauth.CheckKeySetURL(u); err != nil {
		return fmt.Errorf("introspection: endpoint: %w", err)
	}
	if cfg.ClientID == "" {
		return errors.New("client_id: required")
	}
	if err := cfg.checkAuth(); err != nil {
		return err
	}
	switch cfg.Response {
	case "", ResponseJSON:
	case ResponseJWT:
		if cfg.Signed == nil {
			return errors.New("response jwt: the answers are verified with the issuer's key set, and there is none")
		}
	default:
		return fmt.Errorf("response: %q is not json or jwt", cfg.Response)
	}
	switch {
	case cfg.CacheTTL < 0:
		return errors.New("cache_ttl: must not be negative")
	case cfg.NegativeTTL < 0:
		return errors.New("negative_ttl: must not be negative")
	case cfg.CacheSize < 0:
		return errors.New("cache_size: must not be negative")
	case cfg.Timeout < 0 || cfg.Timeout > maxTimeout:
		return fmt.Errorf("timeout: must lie between 0 and %s", maxTimeout)
	case cfg.MaxInFlight < 0:
		return errors.New("max_in_flight: must not be negative")
	}
	return cfg.rulesConfig().Check()
}

// checkAuth: each method has exactly the credentials it sends, so that a
// secret configured for one method is never sent by another.
func (cfg Config) checkAuth() error {
	secret, key := cfg.ClientSecret != "", cfg.ClientKey != ""
	switch cfg.AuthMethod {
	case "", ClientSecretBasic, ClientSecretPost:
		if !secret {
			return errors.New("client_secret: required by auth_method " + cfg.authMethod())
		}
		if key || cfg.ClientKeyID != "" {
			return errors.New("client_key: only for auth_method private_key_jwt")
		}
	case PrivateKeyJWT:
		if !key {
			return errors.New("client_key: required by auth_method private_key_jwt")
		}
		if secret {
			return errors.New("client_secret: not sent with auth_method private_key_jwt")
		}
	case None:
		if secret || key || cfg.ClientKeyID != "" {
			return errors.New("auth_method none sends no client_secret or client_key")
		}
	default:
		return fmt.Errorf("auth_method: %q is not client_secret_basic, client_secret_post, private_key_jwt or none", cfg.AuthMethod)
	}
	return nil
}

func (cfg Config) authMethod() string {
	if cfg.AuthMethod == "" {
		return ClientSecretBasic
	}
	return cfg.AuthMethod
}

// rulesConfig is the claim rules as the JWT core's Config, whose Check
// owns their validation (issuer, audience, clients, leeway,
// max_token_lifetime).
func (cfg Config) rulesConfig() jwtauth.Config {
	return jwtauth.Config{Issuers: cfg.Issuers, Audiences: cfg.Audiences, Leeway: cfg.Leeway,
		MaxLifetime: cfg.MaxLifetime, Clients: cfg.Clients}
}

// withDefaults fills the zero fields.
func (cfg Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.CacheTTL, DefaultCacheTTL)
	def(&cfg.NegativeTTL, DefaultNegativeTTL)
	def(&cfg.Timeout, DefaultTimeout)
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	cfg.AuthMethod = cfg.authMethod()
	return cfg
}
