// Package caddymodule is the Caddy glue of the workspace profile route: the
// http.handlers.workspace_profile handler, its Caddyfile directive, token
// checks and the storage guest modules. The rules themselves live in the
// profile package; this package adapts them to HTTP and to Caddy.
package caddymodule

import (
	"encoding/json"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"

	"github.com/workspace-edge/caddy-workspace-profile/internal/authn"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Version is this module's version, shown by the admin endpoint
// (/workspace-profile/keys) and in a debug line at Provision: a build from a
// checkout shows "(devel)" in `caddy build-info`, so the module says it.
const Version = "0.2.0-dev"

// Defaults of the handler's options.
const (
	DefaultPath         = "/api/workspace/account/profile"
	DefaultLeeway       = jwtauth.DefaultLeeway
	DefaultSubjectClaim = jwtauth.DefaultSubject
	DefaultMaxBody      = 64 << 10
	DefaultMaxUpstream  = 1 << 20
	DefaultTokenCache   = 10000
	DefaultServiceClaim = authn.UserTypeClaim
	DefaultServiceValue = "2"
)

// DefaultAlgorithms are the signature algorithms accepted when none are
// configured: every asymmetric JWS algorithm, never HMAC or none.
var DefaultAlgorithms = jwtauth.DefaultAlgorithms

// Handler owns one API route, the workspace account profile. It
// authenticates the caller with a JWT checked against the configured key
// sets, refuses service accounts, and serves GET and PUT of the caller's
// own profile from its storage backend (or forwards it to a legacy
// backend). Requests for any other path, and OPTIONS on its path, pass to
// the next handler, less what only the edge may say: client X-Workspace-*
// headers (on other paths, unless keep_client_identity_headers; on OPTIONS
// on its path, always), request trailers, path-override headers naming the
// route, and on OPTIONS the token parameter.
//
// After a valid token it sets these placeholders:
//
//	{http.auth.user.id}       the subject (so the access log shows user_id)
//	{http.auth.user.method}   how the caller authenticated: jwt, introspection
//	                          or api_key, so a log or a backend can tell
//	                          credentials apart
//	{http.auth.user.key_id}   the API key's id (never the key); empty for
//	                          other methods
//	{http.auth.user.<claim>}  any top-level claim of the token, as a string
type Handler struct {
	// The route's path, a clean absolute path. Every spelling of it that a
	// common backend routes to it is the route: letter case, dot segments,
	// repeated or trailing slashes, `;` parameters and percent-encoded
	// letters; a spelling through an encoded slash, a backslash or a
	// control character is refused with 400 (route.go).
	// Default: /api/workspace/account/profile.
	Path string `json:"path,omitempty"`

	// URLs of JSON Web Key Sets (JWKS) to verify tokens with: https, or
	// plain http to a loopback host. Fetched in the background; while none
	// has ever loaded, the route answers 503 KeysUnavailable. Placeholders
	// such as {env.JWKS_URL} are replaced at provision.
	JWKSURLs []string `json:"jwks_urls,omitempty"`

	// OpenID Connect issuers whose key sets are found through discovery:
	// jwks_uri is read from <issuer>/.well-known/openid-configuration,
	// whose issuer must match. Each is also an accepted issuer.
	Discovery []string `json:"discovery,omitempty"`

	// Remote key sets: the shortest time between two scheduled fetches of
	// one set: a set's Cache-Control max-age is kept within [min_refresh,
	// max_refresh], and a failed fetch is retried after it. Fetches for a
	// token naming an unknown kid are not bound by it but by their own
	// budget: none sooner than 4s after any fetch, from a bucket of 12
	// refilled one per 50s (12 per 10 minutes sustained; see docs/authentication.md).
	// Default: 30s.
	MinRefresh caddy.Duration `json:"min_refresh,omitempty"`

	// Remote key sets: the longest time a set is kept without a fetch.
	// Default: 15m.
	MaxRefresh caddy.Duration `json:"max_refresh,omitempty"`

	// Remote key sets: how long the last good set keeps serving while
	// fetches fail; after that the route answers 503 KeysUnavailable.
	// Default: 24h.
	MaxStale caddy.Duration `json:"max_stale,omitempty"`

	// How many verified tokens to remember, so that a token pays for its
	// signature check once per lifetime rather than on every request. An
	// entry never outlives the token's exp (plus leeway) nor the key that
	// verified it. 0 disables the cache. Default: 10000.
	TokenCache *int `json:"token_cache,omitempty"`

	// Local files holding a JWKS, a single JWK, or PEM public keys. Read at
	// provision; a file that cannot be read or holds no usable key fails
	// the config load. Placeholders are replaced at provision.
	JWKSFiles []string `json:"jwks_files,omitempty"`

	// Accepted values of the token's iss claim. Required, unless discovery
	// names the issuer (each discovery issuer is accepted too).
	Issuers []string `json:"issuers,omitempty"`

	// Accepted values of the token's aud claim (one must match). Required.
	Audiences []string `json:"audiences,omitempty"`

	// Accepted JWS algorithms. Default: RS256 RS384 RS512 PS256 PS384 PS512
	// ES256 ES384 ES512 EdDSA Ed25519 (RFC 9864's fully-specified name). HMAC
	// algorithms, none and Ed448 are refused.
	Algorithms []string `json:"algorithms,omitempty"`

	// Accepted values of the token's JOSE header typ, such as at+jwt for
	// RFC 9068 access tokens; compared ignoring case and with or without
	// "application/" (at+jwt, AT+JWT and application/at+jwt are one). A
	// token without typ is then refused with 401 InvalidToken. Set it when
	// the provider issues RFC 9068 tokens, so that an OpenID ID token is
	// never taken for an access token. Default: typ is not checked.
	TokenTypes []string `json:"token_types,omitempty"`

	// Accepted clients: the token's client_id claim (RFC 9068), else its
	// azp claim (OpenID Connect), must be one of them, compared exactly. A
	// token naming neither, or naming different clients in the two, is
	// then refused with 401 InvalidToken. Default: the client is not
	// checked.
	Clients []string `json:"clients,omitempty"`

	// Clock skew allowed on exp, nbf and iat. Default: 30s.
	Leeway *caddy.Duration `json:"leeway,omitempty"`

	// The longest a token may still live: a token whose exp lies further
	// ahead (beyond the leeway) is refused with 401 InvalidToken, so that a
	// leaked long-lived token is no use at this edge. Default: 0, no limit.
	MaxTokenLifetime caddy.Duration `json:"max_token_lifetime,omitempty"`

	// Opaque tokens: verify them with the issuer's introspection endpoint
	// (introspection.go). Without it, an opaque token is refused with 401
	// InvalidToken and sent nowhere. Default: off.
	Introspection *Introspection `json:"introspection,omitempty"`

	// API keys: the route takes them, verified against a key store of its
	// own (apikeys.go, docs/api-keys.md); `{}` takes every default.
	// Without it, an API key is refused with 401 InvalidToken and sent
	// nowhere. Default: off.
	APIKeys *APIKeys `json:"api_keys,omitempty"`

	// The claim that names the profile (its key). Default: sub.
	SubjectClaim string `json:"subject_claim,omitempty"`

	// Whether the access_token query parameter is accepted for clients
	// that cannot set headers. Default: true.
	QueryToken *bool `json:"query_token,omitempty"`

	// DPoP (RFC 9449): whether tokens bound to a client key (cnf.jkt)
	// are accepted with their proofs, or required. Default: allowed
	// (dpop.go).
	DPoP *DPoP `json:"dpop,omitempty"`

	// Which tokens are service accounts, refused with 403. Default: claim
	// UserType with value 2.
	ServiceAccount *ServiceAccount `json:"service_account,omitempty"`

	// Storage mode: create the profile of an unknown subject from its
	// claims (preferred_username, email, given_name, family_name,
	// UserType) instead of answering 404 ProfileNotFound. Default: off.
	CreateMissing bool `json:"create_missing,omitempty"`

	// Largest PUT body accepted, in bytes; larger bodies get 413. At most
	// 1073741824 (1 GiB). Default: 65536 (64 KiB).
	MaxBody int64 `json:"max_body,omitempty"`

	// The storage backend, a module of namespace
	// http.workspace_profile.storage named by its "backend" key: memory,
	// bolt or postgres. Default, when upstream is not set either: bolt in
	// Caddy's data directory.
	StorageRaw json.RawMessage `json:"storage,omitempty" caddy:"namespace=http.workspace_profile.storage inline_key=backend"`

	// Upstream mode: the legacy backend, as a reverse_proxy handler
	// ({"handler": "reverse_proxy", "upstreams": [...], ...}). Load
	// balancing, health checks, transports and timeouts are
	// reverse_proxy's. Mutually exclusive with storage.
	UpstreamRaw json.RawMessage `json:"upstream,omitempty" caddy:"namespace=http.handlers inline_key=handler"`

	// Keep X-Workspace-* request headers that clients send on the site's
	// other paths. By default the handler deletes them from every request
	// it sees, on any path of the site, so that the module is the only
	// source of identity headers; turn this on only for a site whose other
	// routes really take such a header from clients. On the route itself
	// (any spelling of it, any method, OPTIONS included) they are always
	// deleted, whatever this says, and on GET and PUT in upstream mode
	// replaced by the module's own. Default: false.
	KeepClientIdentityHeaders bool `json:"keep_client_identity_headers,omitempty"`

	// Upstream mode: the largest backend response read, in bytes; a larger
	// one is 502 UpstreamResponseTooLarge. At most 1073741824 (1 GiB).
	// Default: 1048576 (1 MiB).
	MaxUpstreamBody int64 `json:"max_upstream_body,omitempty"`

	path     string
	service  profile.Service
	upstream *reverseproxy.Handler
	verifier *jwtauth.Verifier
	authn    *authn.Authenticator
	// introspection verifies opaque tokens; nil when not configured
	introspection *lazyIntrospector
	logger        *zap.Logger
	// What Provision took that others share, recorded as it is taken so
	// that Cleanup gives back exactly that, after a partial Provision too.
	sourceKeys  []string              // keySourcePool entries this handler holds
	fileSources []*jwtauth.FileSource // its liveFiles entries
	storeName   string                // the liveStores entry this handler holds
	liveStore   profile.Store         // and the store it registered there
	// storeErrors rate-limits the log lines of store failures
	storeErrors *errorLog
	// keyStore is the API-key store this handler holds (liveKeyStores),
	// keys its verifier over the store's keyring; nil without api_keys
	keyStore *keyStore
	keys     *keyVerifier
}

// ServiceAccount says which claim value marks a service account.
type ServiceAccount struct {
	// The claim to look at. Default: UserType.
	Claim string `json:"claim,omitempty"`
	// The values that mark a service account, compared with the claim's
	// string form (a number 2 and a string "2" both match "2"). Default: 2.
	Values []string `json:"values,omitempty"`
}

// StorageBackend is implemented by the guest modules of namespace
// http.workspace_profile.storage.
type StorageBackend interface {
	ProfileStore() profile.Store
	// StoreName names the store on the admin endpoint (never a secret).
	StoreName() string
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.workspace_profile",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
