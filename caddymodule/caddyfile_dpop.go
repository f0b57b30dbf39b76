package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// unmarshalDPoP parses `dpop [off|allowed|required] [{ ... }]`.
func (h *Handler) unmarshalDPoP(d *caddyfile.Dispenser, args []string) error {
	if h.DPoP != nil {
		return d.Errf("workspace_profile: dpop: configured twice")
	}
	cfg := &DPoP{}
	switch len(args) {
	case 0:
	case 1:
		if args[0] == "" {
			return d.Errf("workspace_profile: dpop: the mode is empty (leave it out for the default)")
		}
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
			if sub[0] == "" {
				return d.Errf("workspace_profile: dpop: mode: the mode is empty (leave it out for the default)")
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
