package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"weak"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/workspace-edge/caddy-workspace-profile/internal/dpop"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
)

// Modes of the dpop option.
const (
	DPoPOff      = "off"
	DPoPAllowed  = "allowed"
	DPoPRequired = "required"
)

// DPoP configures DPoP (RFC 9449) on the route: tokens bound to a client
// key by their cnf.jkt claim, sent as `Authorization: DPoP <token>` with a
// `DPoP` proof header signed by that key. A bound token is never accepted
// without its proof, whatever the mode; in upstream mode the backend gets
// the token as `Authorization: Bearer` and never the proof. Nonces
// (use_dpop_nonce) are not implemented.
type DPoP struct {
	// off: the DPoP scheme is not accepted (another scheme, as before
	// DPoP) and bound tokens are refused, since their proof cannot be
	// checked. allowed: bearer tokens and DPoP-bound tokens with their
	// proofs. required: DPoP-bound tokens with their proofs only.
	// Default: allowed.
	Mode string `json:"mode,omitempty"`

	// JWS algorithms accepted for proofs. Default: the default of
	// algorithms (every asymmetric algorithm; never HMAC or none).
	Algorithms []string `json:"algorithms,omitempty"`

	// How old a proof's iat may be, before the leeway is added (iat may
	// also be 5s ahead, plus the leeway). Proofs are remembered for the
	// whole window, so that each is accepted once. Default: 60s.
	IATWindow caddy.Duration `json:"iat_window,omitempty"`

	// How many used proofs are remembered to refuse replays. When it is
	// full of proofs still in their window, the oldest proof of the client
	// key holding the most is forgotten and that key's proofs no newer than
	// it are refused from then on, so a replay is never accepted and a
	// flood shrinks only the flooder's window. Default: 100000 (about
	// 10 MB when few keys hold them, up to about 50 MB when each entry is
	// another key's).
	ReplayCacheSize int `json:"replay_cache_size,omitempty"`

	// The scheme and host (and port) clients address, e.g.
	// https://api.example.com, when TLS ends before Caddy or a proxy
	// changes the Host. Default: the request's own (https when Caddy
	// terminated TLS, and its Host header).
	Origin string `json:"origin,omitempty"`

	verifier  *dpop.Verifier // nil when off
	origin    string         // Origin normalized, "" for the request's own
	algs      string         // `algs="..."`: the accepted proof algorithms
	challenge string         // `DPoP realm="workspace", algs="..."`
}

// replayCaches shares replay caches between handlers and config
// generations with the same size, so that a proof used just before a
// reload is still refused after it (the new config provisions while the
// old one still holds the cache), even when the reload changes iat_window
// or leeway: each proof is checked against its own handler's window, and a
// shorter window dropping an entry early raises the floor to its iat, which
// refuses more, never a replay. It holds them weakly: a cache
// lives as long as a handler uses it, without a Cleanup to count users,
// and the map keeps only entries whose cache is alive.
var replayCaches = struct {
	sync.Mutex
	m map[string]weak.Pointer[dpop.ReplayCache]
}{m: map[string]weak.Pointer[dpop.ReplayCache]{}}

func sharedReplayCache(size int) *dpop.ReplayCache {
	key := strconv.Itoa(size)
	replayCaches.Lock()
	defer replayCaches.Unlock()
	if c := replayCaches.m[key].Value(); c != nil {
		return c
	}
	for k, p := range replayCaches.m {
		if p.Value() == nil {
			delete(replayCaches.m, k)
		}
	}
	c := dpop.NewReplayCache(size)
	replayCaches.m[key] = weak.Make(c)
	return c
}

// provisionDPoP builds the dpop option's verifier; Provision has set its
// defaults and checked it.
func (h *Handler) provisionDPoP(_ caddy.Context) error {
	d := h.DPoP
	if d.Origin != "" {
		d.origin, _ = normalizeOrigin(d.Origin)
	}
	if d.Mode == DPoPOff {
		return nil
	}
	leeway := DefaultLeeway
	if h.Leeway != nil {
		leeway = time.Duration(*h.Leeway)
	}
	window := time.Duration(d.IATWindow)
	if window == 0 {
		window = dpop.DefaultWindow
	}
	size := d.ReplayCacheSize
	if size == 0 {
		size = dpop.DefaultReplayCacheSize
	}
	replay := sharedReplayCache(size)
	v, err := dpop.New(dpop.Config{Algorithms: d.Algorithms, Window: window, Leeway: leeway, Replay: replay})
	if err != nil {
		return fmt.Errorf("dpop: %w", err)
	}
	d.verifier = v
	d.algs = `algs="` + strings.Join(v.Algorithms(), " ") + `"`
	d.challenge = `DPoP realm="workspace", ` + d.algs
	return nil
}

// normalizeOrigin checks a configured origin: http or https, a host, an
// optional port, nothing else.
func normalizeOrigin(o string) (string, error) {
	n, ok := dpop.NormalizeHTU(o)
	if !ok || strings.ContainsAny(o, "?#") || !strings.HasSuffix(n, "/") || strings.Count(n, "/") != 3 {
		return "", fmt.Errorf("%q is not an origin such as https://api.example.com", o)
	}
	return strings.TrimSuffix(n, "/"), nil
}

// unmarshalDPoP parses `dpop [off|allowed|required] [{ ... }]`.
func (h *Handler) unmarshalDPoP(d *caddyfile.Dispenser, args []string) error {
	if h.DPoP != nil {
		return d.Errf("workspace_profile: dpop: configured twice")
	}
	cfg := &DPoP{}
	switch len(args) {
	case 0:
	case 1:
		cfg.Mode = args[0]
	default:
		return d.Errf("workspace_profile: dpop: wrong number of arguments (%d)", len(args))
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		sub := d.RemainingArgs()
		one := func() error {
			if len(sub) != 1 {
				return d.Errf("workspace_profile: dpop: %s: wrong number of arguments (%d)", opt, len(sub))
			}
			return nil
		}
		switch opt {
		case "mode":
			if err := one(); err != nil {
				return err
			}
			cfg.Mode = sub[0]
		case "required":
			if len(sub) != 0 {
				return d.Errf("workspace_profile: dpop: required takes no arguments")
			}
			cfg.Mode = DPoPRequired
		case "algorithms":
			if len(sub) == 0 {
				return d.Errf("workspace_profile: dpop: algorithms: wrong number of arguments (0)")
			}
			cfg.Algorithms = append(cfg.Algorithms, sub...)
		case "iat_window":
			if err := one(); err != nil {
				return err
			}
			dur, ok := durationArg(sub[0], false)
			if !ok {
				return d.Errf("workspace_profile: dpop: iat_window: %q is not a positive duration", sub[0])
			}
			cfg.IATWindow = dur
		case "replay_cache_size":
			if err := one(); err != nil {
				return err
			}
			n, ok := countArg(sub[0], strconv.IntSize)
			if !ok {
				return d.Errf("workspace_profile: dpop: replay_cache_size: %q is not a positive number of entries", sub[0])
			}
			cfg.ReplayCacheSize = int(n)
		case "origin":
			if err := one(); err != nil {
				return err
			}
			cfg.Origin = sub[0]
		default:
			return d.Errf("workspace_profile: dpop: unrecognized option %q", opt)
		}
		if err := cfg.check(); err != nil {
			return d.Err("workspace_profile: " + err.Error())
		}
	}
	h.DPoP = cfg
	return nil
}

// Problem details of DPoP refusals: sentences for the client.
const (
	detailDPoPRequired      = "This route accepts only DPoP-bound tokens, sent with the DPoP scheme and a DPoP proof."
	detailNoDPoPToken       = "No DPoP-bound token was sent."
	detailBoundAsBearer     = "The token is bound to a DPoP key: send it with the DPoP scheme and a DPoP proof."
	detailBoundNoDPoP       = "The token is bound to a DPoP key, and this route does not accept DPoP."
	detailUnboundAsDPoP     = "The token is not bound to a DPoP key (no cnf.jkt claim): send it with the Bearer scheme."
	detailCnfMalformed      = "The token has a malformed cnf claim."
	detailCnfOther          = "The token is bound to a key by a confirmation method other than DPoP, which this route cannot check."
	detailDPoPKeyMismatch   = "The token is bound to another key than the one that signed the DPoP proof."
	codeInvalidDPoPProof    = "InvalidDPoPProof"
	dpopErrorInvalidProof   = "invalid_dpop_proof"
	dpopErrorInvalidToken   = "invalid_token"
	dpopErrorInvalidRequest = "invalid_request"
)

// on reports whether DPoP tokens are accepted at all.
func (d *DPoP) on() bool { return d != nil && d.verifier != nil }

func (d *DPoP) required() bool { return d.on() && d.Mode == DPoPRequired }

// extract finds the token: with DPoP off, exactly as before DPoP
// (Authorization: DPoP is another scheme, so no token).
func (d *DPoP) extract(r *http.Request, allowQuery bool) (jwtauth.Credential, *jwtauth.Error) {
	return jwtauth.ExtractCredential(r, allowQuery, d.on())
}

// missing is the refusal of a request without a token: when DPoP is
// allowed, its challenge offers both schemes (RFC 9449 §7.2); when it is
// required, DPoP only; when it is off, Bearer only, as before.
func (d *DPoP) missing(aerr *jwtauth.Error) *refusal {
	switch {
	case !d.on() || aerr.Code != jwtauth.CodeMissingToken:
		return refuse(aerr)
	case d.required():
		return withChallenge(aerr.Code, detailNoDPoPToken, d.challenge)
	}
	return withChallenge(aerr.Code, aerr.Desc, bearerChallenge("", "")+", "+d.challenge)
}

// asDPoP is a refusal of a token answered with a DPoP challenge: the
// client used (or must use) the DPoP scheme, so that is the scheme its
// error is told in (RFC 9449 §7.1). A refusal without a challenge (503
// KeysUnavailable) keeps none.
func (d *DPoP) asDPoP(aerr *jwtauth.Error) *refusal {
	errCode := ""
	switch aerr.Code {
	case jwtauth.CodeInvalidToken, jwtauth.CodeTokenExpired, jwtauth.CodeTokenNotYetValid, jwtauth.CodeInvalidIssuer, jwtauth.CodeInvalidAudience:
		errCode = dpopErrorInvalidToken
	case codeInvalidDPoPProof:
		errCode = dpopErrorInvalidProof
	case jwtauth.CodeInvalidRequest:
		errCode = dpopErrorInvalidRequest
	default:
		return refuse(aerr)
	}
	return withChallenge(aerr.Code, aerr.Desc, d.dpopChallenge(errCode, aerr.Desc))
}

// backendRefusal is the challenge of a backend's 401 in upstream mode: in
// the scheme the client used (RFC 9449 §7.1), so a DPoP client is told in
// a DPoP challenge. The request passed authenticate, so its Authorization
// holds one credential of a scheme this handler accepts.
func (d *DPoP) backendRefusal(r *http.Request, desc string) string {
	if auth := r.Header.Get("Authorization"); d.on() && len(auth) > 5 && strings.EqualFold(auth[:5], "DPoP ") {
		return d.dpopChallenge(dpopErrorInvalidToken, desc)
	}
	return bearerChallenge("invalid_token", desc)
}

// dpopChallenge is the DPoP challenge with an error: realm, error and its
// description, then algs (RFC 9449 §7.1).
func (d *DPoP) dpopChallenge(errCode, desc string) string {
	return `DPoP realm="workspace", error="` + errCode + `", error_description="` + desc + `", ` + d.algs
}

// checkDPoP applies the token's binding (cnf.jkt, RFC 9449 §6) and, for a
// token sent with the DPoP scheme, its proof. A bound token is refused
// without a valid proof by its key whatever the mode and however it was
// sent; the proof is checked on every request (the token cache holds the
// token's verification only) and spent only once everything else passed.
func (h *Handler) checkDPoP(r *http.Request, c jwtauth.Claims, cred jwtauth.Credential) *refusal {
	d := h.DPoP
	jkt, bound, aerr := confirmationKey(c)
	viaDPoP := cred.Scheme == jwtauth.SchemeDPoP
	switch {
	case aerr != nil && viaDPoP:
		return d.asDPoP(aerr)
	case aerr != nil:
		return refuse(aerr)
	case !viaDPoP && !bound:
		return nil // a bearer token, as before DPoP
	case !viaDPoP && !d.on():
		return refuse(jwtauth.InvalidToken(detailBoundNoDPoP))
	case !viaDPoP:
		return d.asDPoP(jwtauth.InvalidToken(detailBoundAsBearer))
	case !bound:
		return d.asDPoP(jwtauth.InvalidToken(detailUnboundAsDPoP))
	}
	method, uri := d.requestTarget(r)
	p, perr := d.verifier.Check(dpop.Request{Proofs: r.Header.Values("DPoP"), Method: method, URI: uri, AccessToken: cred.Token, Thumbprint: jkt})
	switch {
	case perr != nil && perr.KeyMismatch:
		return d.asDPoP(jwtauth.InvalidToken(detailDPoPKeyMismatch))
	case perr != nil:
		return d.asDPoP(&jwtauth.Error{Code: codeInvalidDPoPProof, Desc: perr.Desc})
	}
	if perr := d.verifier.Commit(p); perr != nil {
		return d.asDPoP(&jwtauth.Error{Code: codeInvalidDPoPProof, Desc: perr.Desc})
	}
	return nil
}

// confirmationKey reads cnf (RFC 7800): bound is true when it names a
// jkt, the thumbprint of the key the token is bound to. A cnf that is not
// an object, a jkt that is not a non-empty string, and a cnf of another
// method only (x5t#S256 of mutual TLS, ...), which this edge cannot check,
// are refused.
func confirmationKey(c jwtauth.Claims) (jkt string, bound bool, aerr *jwtauth.Error) {
	raw, ok := c["cnf"]
	if !ok {
		return "", false, nil
	}
	var cnf map[string]json.RawMessage
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &cnf) != nil {
		return "", false, jwtauth.InvalidToken(detailCnfMalformed)
	}
	rawJKT, ok := cnf["jkt"]
	if !ok {
		return "", false, jwtauth.InvalidToken(detailCnfOther)
	}
	var s string
	if len(rawJKT) == 0 || rawJKT[0] != '"' || json.Unmarshal(rawJKT, &s) != nil || s == "" {
		return "", false, jwtauth.InvalidToken(detailCnfMalformed)
	}
	return s, true, nil
}

// requestTarget is the method and URI the client addressed, which htm and
// htu must name: Caddy's original request (before any rewrite, this
// route's included), on the configured origin or else the request's own
// scheme and Host.
func (d *DPoP) requestTarget(r *http.Request) (method, uri string) {
	method, u := r.Method, r.URL
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && orig.URL != nil {
		method, u = orig.Method, orig.URL
	}
	origin := d.origin
	if origin == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		origin = scheme + "://" + r.Host
	}
	return method, origin + u.EscapedPath()
}
