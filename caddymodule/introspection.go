package caddymodule

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/workspace-edge/caddy-workspace-profile/internal/introspect"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
)

// Introspection verifies opaque access tokens with the issuer's token
// introspection endpoint (RFC 7662; signed answers, RFC 9701). A JWT never
// goes there, nor an API key. Values are checked by the introspection
// client itself (internal/introspect), whichever form the config was
// written in.
type Introspection struct {
	// The introspection endpoint: https, or plain http to a loopback host.
	// Default: the introspection_endpoint of the discovery document of the
	// one discovery issuer (a config error unless there is exactly one),
	// read by the key source's own fetch of that document and taken once
	// per config (at provision when already read, as on a reload; else on
	// the first opaque token); until it has been read, opaque tokens are
	// answered 503 IntrospectionUnavailable.
	// Placeholders are replaced at provision.
	Endpoint string `json:"endpoint,omitempty"`

	// The client_id this module authenticates to the endpoint with.
	// Required.
	ClientID string `json:"client_id,omitempty"`

	// The client secret, for auth_method client_secret_basic and
	// client_secret_post. Write it as a placeholder, {env.NAME} or
	// {file.PATH}: it is replaced at provision, so Caddy's config API
	// (GET /config/) shows only the placeholder. Never logged.
	ClientSecret string `json:"client_secret,omitempty"`

	// How the client authenticates: client_secret_basic,
	// client_secret_post, private_key_jwt or none.
	// Default: client_secret_basic.
	AuthMethod string `json:"auth_method,omitempty"`

	// private_key_jwt: the PEM file of the private key that signs the
	// client assertions (their aud is the first issuer). Placeholders are
	// replaced at provision.
	ClientKey string `json:"client_key,omitempty"`

	// private_key_jwt: the kid of the client assertions. Default: the
	// key's RFC 7638 thumbprint.
	ClientKeyID string `json:"client_key_id,omitempty"`

	// The answer's form: json (RFC 7662) or jwt (RFC 9701, signed answers
	// verified with the issuer's key set, so a key source is then
	// required). Default: json.
	Response string `json:"response,omitempty"`

	// How long an active answer is used before the endpoint is asked
	// again; never past the token's exp. Default: 30s.
	CacheTTL caddy.Duration `json:"cache_ttl,omitempty"`

	// How long an inactive answer (active not true) is used. Default: 5s.
	NegativeTTL caddy.Duration `json:"negative_ttl,omitempty"`

	// How many answers are kept, by the SHA-256 of the token (never the
	// token). Default: 10000.
	CacheSize int `json:"cache_size,omitempty"`

	// The longest one call may take, the wait for a free call slot
	// included; at most 30s. Default: 2s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// How many calls to the endpoint may run at once. Default: 16.
	MaxInFlight int `json:"max_in_flight,omitempty"`

	// A PEM file of CA certificates trusted for the endpoint besides the
	// system's. Redirects are never followed. Placeholders are replaced at
	// provision.
	TrustPool string `json:"trust_pool,omitempty"`
}

// hasKeySource reports whether any key source is configured.
func (h *Handler) hasKeySource() bool {
	return len(h.JWKSURLs)+len(h.JWKSFiles)+len(h.Discovery) > 0
}

// checkIntrospection checks the introspection option as its owner,
// introspect.Config.Check, sees it, before any placeholder is replaced (a
// Caddyfile is adapted where the secrets may not be): a placeholder
// stands for a value, and the replaced values are checked again by
// introspect.New at provision. Without an endpoint, the one discovery
// issuer stands in for the endpoint its document will name, checked when
// read.
func (h *Handler) checkIntrospection() error {
	in := h.Introspection
	if in == nil {
		return nil
	}
	endpoint := in.Endpoint
	if in.Endpoint == "" {
		if len(h.Discovery) != 1 {
			return fmt.Errorf("introspection: without an endpoint, the introspection_endpoint of discovery is used, which needs exactly one discovery issuer (there are %d)", len(h.Discovery))
		}
		endpoint = h.Discovery[0]
	}
	if strings.Contains(endpoint, "{") {
		endpoint = "https://placeholder.invalid/"
	}
	cfg := h.introspectConfig(endpoint, func(s string) string { return s })
	if h.hasKeySource() {
		cfg.Signed = noSignedVerifier{} // stands in for the key sets
	}
	return cfg.Check()
}

// noSignedVerifier stands in for the key sets when only checking.
type noSignedVerifier struct{}

func (noSignedVerifier) VerifySigned(context.Context, string, string) ([]byte, *jwtauth.Error) {
	return nil, jwtauth.ErrIntrospectionUnavailable
}

// introspectConfig is the core's config of the option: its values with
// placeholders replaced, and the route's claim rules (the token core's).
func (h *Handler) introspectConfig(endpoint string, replace func(string) string) introspect.Config {
	in := h.Introspection
	jc := h.verifierConfig(nil, h.Discovery)
	return introspect.Config{
		Endpoint:     endpoint,
		ClientID:     replace(in.ClientID),
		ClientSecret: replace(in.ClientSecret),
		AuthMethod:   in.AuthMethod,
		ClientKey:    replace(in.ClientKey),
		ClientKeyID:  in.ClientKeyID,
		Response:     in.Response,
		CacheTTL:     time.Duration(in.CacheTTL),
		NegativeTTL:  time.Duration(in.NegativeTTL),
		CacheSize:    in.CacheSize,
		Timeout:      time.Duration(in.Timeout),
		MaxInFlight:  in.MaxInFlight,
		Issuers:      jc.Issuers,
		Audiences:    jc.Audiences,
		Leeway:       jc.Leeway,
		MaxLifetime:  jc.MaxLifetime,
		Clients:      jc.Clients,
	}
}

// provisionIntrospection builds the opaque-token verifier: the shared
// introspector of its endpoint and client (introspectorPool), taken at
// once when the endpoint is configured, else from the discovery source's
// document (discovered): at once when the shared source has read it (a
// reload), else on first use, so that provision never waits on it; and
// the route's claim rules over it.
func (h *Handler) provisionIntrospection(discovered *jwtauth.URLSource) error {
	in := h.Introspection
	if in == nil {
		return nil
	}
	repl := caddy.NewReplacer()
	replace := func(s string) string { return repl.ReplaceKnown(s, "") }
	// the secrets are replaced here, never in the config Caddy keeps
	cfg := h.introspectConfig(replace(in.Endpoint), replace)
	if h.verifier != nil {
		cfg.Signed = h.verifier
	}
	l := &lazyIntrospector{src: discovered, cfg: cfg}
	if in.TrustPool != "" {
		file := replace(in.TrustPool)
		pem, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("introspection: trust_pool %s: %w", file, err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("introspection: trust_pool %s: holds no PEM certificate", file)
		}
		l.cfg.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		l.trust = sha256.Sum256(pem)
	}
	l.cfg.Observer = introspectionObserver{}
	l.cfg.Logger = h.logger.Named("introspection")
	h.introspection = l
	liveIntrospections.Store(l, struct{}{})
	if in.Endpoint == "" {
		// on a reload the shared discovery source has read its document
		// already: the endpoint is taken now, from that read, instead of
		// on the first opaque token (a refused one is logged, and the
		// first token tries again)
		if discovered != nil && discovered.IntrospectionEndpoint() != "" {
			l.build()
		}
		return nil
	}
	l.src = nil
	return l.take(l.cfg)
}

// pooledIntrospector is an introspector in introspectorPool; the last
// release closes it, ending its calls.
type pooledIntrospector struct{ *introspect.Introspector }

// Destruct implements caddy.Destructor.
func (p pooledIntrospector) Destruct() error {
	p.Close()
	return nil
}

// introspectorKey names the introspector of cfg in introspectorPool: what
// it calls and how (endpoint, client, authentication, a hash of the
// secret and of the client key, the answers' form, the TLS trust) and
// what it keeps (cache sizes and lifetimes, timeout, slots, the issuers
// and leeway of signed answers), so that a reload changing any of these
// gets an introspector of its own and one changing only the claim rules
// keeps the cache. Never the secret itself.
func introspectorKey(cfg introspect.Config, trust [sha256.Size]byte) string {
	var key [sha256.Size]byte
	if cfg.ClientKey != "" {
		if pem, err := os.ReadFile(cfg.ClientKey); err == nil {
			key = sha256.Sum256(pem)
		}
	}
	leeway := ""
	if cfg.Leeway != nil {
		leeway = cfg.Leeway.String()
	}
	secret := sha256.Sum256([]byte(cfg.ClientSecret))
	return fmt.Sprintf("%q %q %q %x %q %q %x %q %x %s %s %d %s %d %q %s", cfg.Endpoint, cfg.ClientID, cfg.AuthMethod,
		secret, cfg.ClientKey, cfg.ClientKeyID, key, cfg.Response, trust, cfg.CacheTTL, cfg.NegativeTTL, cfg.CacheSize,
		cfg.Timeout, cfg.MaxInFlight, cfg.Issuers, leeway)
}

// liveIntrospections holds every route's lazyIntrospector from provision
// to Close, so that the admin view shows the routes still waiting for the
// endpoint discovery names, and where each endpoint in use came from.
var liveIntrospections sync.Map // *lazyIntrospector → struct{}

// lazyIntrospector is the route's opaque-token verifier: its claim rules
// over the shared introspector, taken on first use when its endpoint
// comes from discovery. Close gives the introspector back.
type lazyIntrospector struct {
	route atomic.Pointer[introspect.Route]
	src   *jwtauth.URLSource // discovery: names the endpoint; nil when configured
	cfg   introspect.Config
	trust [sha256.Size]byte // hash of the trust pool's PEM, zero for none

	mu      sync.Mutex
	closed  bool
	key     string // the introspectorPool entry held, "" for none
	refused string // the discovered endpoint last refused, logged once
	warned  bool   // a document naming no endpoint was logged
}

// take takes the shared introspector of cfg and makes the route over it;
// the caller holds mu or is provisioning.
func (l *lazyIntrospector) take(cfg introspect.Config) error {
	key := introspectorKey(cfg, l.trust)
	v, loaded, err := introspectorPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		in, err := introspect.New(cfg)
		if err != nil {
			return nil, err
		}
		return pooledIntrospector{in}, nil
	})
	if err != nil {
		return err
	}
	in := v.(pooledIntrospector).Introspector
	if loaded {
		// the newest config's key sets check signed answers
		in.SetSigned(cfg.Signed)
	}
	route, err := in.Route(cfg)
	if err != nil {
		_, _ = introspectorPool.Delete(key)
		return err
	}
	l.key = key
	l.route.Store(route)
	return nil
}

// Verify implements authn.Verifier.
func (l *lazyIntrospector) Verify(ctx context.Context, tok string) (jwtauth.Claims, *jwtauth.Error) {
	r := l.route.Load()
	if r == nil {
		if r = l.build(); r == nil {
			return nil, jwtauth.ErrIntrospectionUnavailable
		}
	}
	return r.Verify(ctx, tok)
}

// build takes the introspector once discovery names a usable endpoint.
func (l *lazyIntrospector) build() *introspect.Route {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r := l.route.Load(); r != nil || l.closed || l.src == nil {
		return r
	}
	endpoint := l.src.IntrospectionEndpoint()
	if endpoint == "" {
		if _, read := l.src.SinceLastGood(); read && !l.warned {
			// the document was read and names no endpoint: every opaque
			// token is a 503 until a config names one
			l.warned = true
			l.cfg.Logger.Error("introspection: the discovery document names no introspection_endpoint; name the endpoint in the config")
		}
		return nil
	}
	cfg := l.cfg
	cfg.Endpoint = endpoint
	if err := l.take(cfg); err != nil {
		if l.refused != endpoint {
			l.refused = endpoint
			l.cfg.Logger.Error("introspection: the endpoint discovery names is refused", zap.Error(err))
		}
		return nil
	}
	return l.route.Load()
}

// Close gives the shared introspector back; the last holder's release
// closes it. Later calls are unavailable.
func (l *lazyIntrospector) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	liveIntrospections.Delete(l)
	if l.key == "" {
		return nil
	}
	_, err := introspectorPool.Delete(l.key)
	l.key = ""
	return err
}
