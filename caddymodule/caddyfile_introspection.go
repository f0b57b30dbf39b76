package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// unmarshalIntrospection parses `introspection [<endpoint>] { ... }`: how
// each option is written; the values are checked by the introspection
// client's own Config.Check (checkRequired), as for JSON.
func (h *Handler) unmarshalIntrospection(d *caddyfile.Dispenser, args []string) error {
	if h.Introspection != nil {
		return d.Errf("workspace_profile: introspection: configured twice")
	}
	cfg := &Introspection{}
	switch len(args) {
	case 0:
	case 1:
		cfg.Endpoint = args[0]
	default:
		return d.Errf("workspace_profile: introspection: wrong number of arguments (%d)", len(args))
	}
	strs := map[string]*string{"client_id": &cfg.ClientID, "client_secret": &cfg.ClientSecret,
		"auth_method": &cfg.AuthMethod, "client_key": &cfg.ClientKey, "client_key_id": &cfg.ClientKeyID,
		"response": &cfg.Response, "trust_pool": &cfg.TrustPool}
	durations := map[string]*caddy.Duration{"cache_ttl": &cfg.CacheTTL, "negative_ttl": &cfg.NegativeTTL, "timeout": &cfg.Timeout}
	counts := map[string]*int{"cache_size": &cfg.CacheSize, "max_in_flight": &cfg.MaxInFlight}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		sub := d.RemainingArgs()
		if len(sub) != 1 {
			return d.Errf("workspace_profile: introspection: %s: wrong number of arguments (%d)", opt, len(sub))
		}
		if dst, ok := strs[opt]; ok {
			*dst = sub[0]
			continue
		}
		if dst, ok := durations[opt]; ok {
			// 0 is the default's in JSON: written, it is refused here
			dur, err := caddy.ParseDuration(sub[0])
			if err != nil || dur == 0 {
				return d.Errf("workspace_profile: introspection: %s: %q is not a non-zero duration", opt, sub[0])
			}
			*dst = caddy.Duration(dur)
			continue
		}
		if dst, ok := counts[opt]; ok {
			n, err := strconv.ParseInt(sub[0], 10, strconv.IntSize)
			if err != nil || n == 0 {
				return d.Errf("workspace_profile: introspection: %s: %q is not a non-zero number", opt, sub[0])
			}
			*dst = int(n)
			continue
		}
		return d.Errf("workspace_profile: introspection: unrecognized option %q", opt)
	}
	h.Introspection = cfg
	return nil
}
