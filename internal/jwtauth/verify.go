package jwtauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jsonscan"
)

// Defaults of Config.
const (
	DefaultLeeway  = 30 * time.Second
	DefaultSubject = "sub"
)

// DefaultAlgorithms are the signature algorithms accepted when none are
// configured: every asymmetric JWS algorithm jwx verifies, including
// RFC 9864's fully-specified Ed25519 beside the older EdDSA; never HMAC or
// none.
var DefaultAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"}

// Config is what a Verifier checks tokens against.
type Config struct {
	// Sources of the signing keys; at least one.
	Sources []Source
	// Algorithms accepted; each must pass SupportedAlgorithm. Empty:
	// DefaultAlgorithms.
	Algorithms []string
	// Issuers accepted as iss, and audiences of which aud must name one;
	// at least one of each.
	Issuers   []string
	Audiences []string
	// Leeway is the clock skew allowed on exp, nbf and iat; nil is
	// DefaultLeeway (0 is a valid leeway).
	Leeway *time.Duration
	// Subject is the claim that names the caller; empty is DefaultSubject.
	Subject string
	// CacheSize is how many verified tokens are remembered; 0 disables.
	CacheSize int
	// Now is the verifier's clock; nil is time.Now.
	Now func() time.Time
	// Observer is told of cache lookups; nil is nobody.
	Observer Observer
	// TokenTypes, when set, are the accepted values of the JOSE header
	// typ (RFC 9068 §4: at+jwt), compared as media types: ignoring case
	// and with "application/" implied where no "/" is written
	// (RFC 7515 §4.1.9). A token without typ is then refused. Empty: typ
	// is not checked.
	TokenTypes []string
	// Clients, when set, are the accepted clients: the token's client_id
	// (RFC 9068 §2.2), else its azp (OpenID Connect), compared exactly. A
	// token naming neither, or two different clients in them, is then
	// refused. Empty: the client is not checked.
	Clients []string
	// MaxLifetime, when positive, is the longest a token may still live:
	// one whose exp lies further ahead than MaxLifetime (plus the leeway)
	// is refused, as Kong's maximum_expiration and Envoy's max_lifetime
	// refuse it, so that a leaked long-lived token is no use here. Zero:
	// no limit.
	MaxLifetime time.Duration
	// DeferSubject leaves the subject rule (CheckSubject) to the caller,
	// for a caller with decisions to make before it: internal/authn tells
	// a service account it is one even when it names no subject. The
	// token cache then holds tokens whatever their subject, and the
	// caller refuses such a token on every hit as on its first use.
	DeferSubject bool
}

// Verifier checks tokens against the keys of its sources and the claim
// rules of its Config. It is safe for concurrent use.
type Verifier struct {
	sources    []Source
	algorithms map[string]jwa.SignatureAlgorithm
	rules      ClaimRules
	leeway     time.Duration
	subject    string
	now        func() time.Time
	cache      *tokenCache // nil when disabled
	observer   Observer
	tokenTypes []string // normalized by mediaType; nil: no check
	// deferSubject: the caller applies CheckSubject (Config.DeferSubject)
	deferSubject bool
}

// New checks cfg (Check, and that it has key sources) and builds its
// verifier.
func New(cfg Config) (*Verifier, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if len(cfg.Sources) == 0 {
		return nil, errors.New("at least one key source is required")
	}
	for _, s := range cfg.Sources {
		if s == nil {
			return nil, errors.New("a key source is nil")
		}
	}
	v := &Verifier{
		sources:    cfg.Sources,
		algorithms: map[string]jwa.SignatureAlgorithm{},
		leeway:     DefaultLeeway,
		subject:    cfg.Subject,
		now:        cfg.Now,
		observer:   cfg.Observer,
	}
	if cfg.Leeway != nil {
		v.leeway = *cfg.Leeway
	}
	if v.subject == "" {
		v.subject = DefaultSubject
	}
	if v.now == nil {
		v.now = time.Now
	}
	algs := cfg.Algorithms
	if len(algs) == 0 {
		algs = DefaultAlgorithms
	}
	for _, a := range algs {
		v.algorithms[a], _ = jwa.LookupSignatureAlgorithm(a)
	}
	for _, tt := range cfg.TokenTypes {
		v.tokenTypes = append(v.tokenTypes, mediaType(tt))
	}
	v.rules = ClaimRules{Issuers: cfg.Issuers, Audiences: cfg.Audiences, Leeway: v.leeway,
		MaxLifetime: cfg.MaxLifetime, Clients: cfg.Clients}
	v.deferSubject = cfg.DeferSubject
	if cfg.CacheSize > 0 {
		v.cache = newTokenCache(cfg.CacheSize)
	}
	return v, nil
}

// SubjectClaim is the name of the claim that names the caller.
func (v *Verifier) SubjectClaim() string { return v.subject }

// RawText is the string form of one claim value, as Text gives it.
func RawText(raw json.RawMessage) string {
	if s, ok := jsonscan.String(raw); ok {
		return s
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return string(raw)
	}
	return buf.String()
}
