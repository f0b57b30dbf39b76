package caddymodule

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"weak"

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

// sharedReplayCache is the replay cache of the given size that handlers
// of this process share (replayCaches says why), made when none is alive.
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
