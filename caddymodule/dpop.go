package caddymodule

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/workspace-edge/caddy-workspace-profile/internal/dpop"
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
// the token as `Authorization: Bearer` and never the proof. When the
// route has a PostgreSQL store (its storage, else its api_keys store),
// each proof is also spent there, so that a proof used on one node is
// refused on the others; a proof that cannot be checked there is 503
// StorageUnavailable. Nonces (use_dpop_nonce) are not implemented.
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
	// also be 5s ahead, plus the leeway). Each route's window is its own:
	// the process's replay cache keeps proofs for the longest window of
	// the live configs, so that each is accepted once. Default: 60s.
	IATWindow caddy.Duration `json:"iat_window,omitempty"`

	// How many used proofs are remembered to refuse replays. The process
	// has one replay cache, shared by every route and config generation,
	// as large as the largest size of the live configs (see
	// dpop.ReplayCache for what it does when full: a replay is never
	// accepted, and a flood never makes a key with history forget its
	// proofs). Default: 100000 (about 10 MB when few keys hold them, up to
	// about 50 MB when each entry is another key's).
	ReplayCacheSize int `json:"replay_cache_size,omitempty"`

	// The scheme and host (and port) clients address, e.g.
	// https://api.example.com, when TLS ends before Caddy or a proxy
	// changes the Host; with a path prefix, e.g.
	// https://api.example.com/gw, when a gateway in front strips it (htu
	// is then the origin followed by the path Caddy sees). No userinfo,
	// query or fragment. Default: the request's own (https when Caddy
	// terminated TLS, and its Host header).
	Origin string `json:"origin,omitempty"`

	verifier  *dpop.Verifier // nil when off
	origin    string         // Origin normalized, "" for the request's own
	algs      string         // `algs="..."`: the accepted proof algorithms
	challenge string         // `DPoP realm="workspace", algs="..."`
}

// replayLease is what one handler asks of the replay cache.
type replayLease struct {
	size   int
	window time.Duration
}

// leaseReplayCache registers l until ctx is done (its config unloaded:
// Caddy cancels it, and a module's OnCancel is lost on its copy of the
// context) and returns the process's replay cache, sized and windowed for
// every live lease.
func leaseReplayCache(ctx context.Context, l *replayLease) *dpop.ReplayCache {
	replayCache.Lock()
	defer replayCache.Unlock()
	replayCache.leases[l] = struct{}{}
	resizeReplayCache()
	context.AfterFunc(ctx, func() {
		replayCache.Lock()
		defer replayCache.Unlock()
		delete(replayCache.leases, l)
		resizeReplayCache()
	})
	return replayCache.c
}

// resizeReplayCache applies the live leases to the cache; with none, it
// keeps the last ones' size and window. replayCache is locked.
func resizeReplayCache() {
	size, window := 0, time.Duration(0)
	for l := range replayCache.leases {
		size, window = max(size, l.size), max(window, l.window)
	}
	if size > 0 {
		replayCache.c.Resize(size)
		replayCache.c.SetWindow(window)
	}
}

// provisionDPoP builds the dpop option's verifier, spending proofs in the
// process's replay cache and then in shared, the record of used proofs
// the nodes share (nil: none); Provision has set its defaults and checked
// it.
func (h *Handler) provisionDPoP(ctx caddy.Context, shared dpop.SharedReplay) error {
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
	replay := leaseReplayCache(ctx, &replayLease{size: size, window: window + leeway})
	v, err := dpop.New(dpop.Config{Algorithms: d.Algorithms, Window: window, Leeway: leeway, Replay: replay, Shared: shared})
	if err != nil {
		return fmt.Errorf("dpop: %w", err)
	}
	d.verifier = v
	d.algs = `algs="` + strings.Join(v.Algorithms(), " ") + `"`
	d.challenge = `DPoP realm="workspace", ` + d.algs
	return nil
}

// normalizeOrigin checks a configured origin: http or https, a host, an
// optional port and an optional path prefix (what a gateway in front
// strips), nothing else (no userinfo, query or fragment). It is normalized
// as htu is (NormalizeHTU: dot segments resolved, ...) and without a
// trailing slash, so that origin + the request's path is the URI clients
// address: https://api.example.com/gw/ is https://api.example.com/gw.
func normalizeOrigin(o string) (string, error) {
	n, ok := dpop.NormalizeHTU(o)
	if !ok || strings.ContainsAny(o, "?#") {
		return "", fmt.Errorf("%q is not an origin such as https://api.example.com or https://api.example.com/prefix", o)
	}
	return strings.TrimRight(n, "/"), nil
}
