package caddymodule

import (
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// unmarshalAPIKeys parses `api_keys [{ store <backend> [<args>...];
// header <name>; prefix <text> }]`; a bare `api_keys` takes every
// default.
func (h *Handler) unmarshalAPIKeys(d *caddyfile.Dispenser, args []string) error {
	if h.APIKeys != nil {
		return d.Errf("workspace_profile: api_keys: configured twice")
	}
	if len(args) != 0 {
		return d.Errf("workspace_profile: api_keys: takes no arguments, only a block")
	}
	k := &APIKeys{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		sub := d.RemainingArgs()
		switch opt {
		case "store":
			if k.StoreRaw != nil {
				return d.Errf("workspace_profile: api_keys: store: configured twice")
			}
			if len(sub) == 0 {
				return d.Errf("workspace_profile: api_keys: store: wrong number of arguments (0)")
			}
			mod, err := unmarshalStorage(d, sub[0], sub[1:])
			if err != nil {
				return err
			}
			k.StoreRaw = caddyconfig.JSONModuleObject(mod, "backend", sub[0], nil)
		case "header", "prefix":
			if len(sub) != 1 {
				return d.Errf("workspace_profile: api_keys: %s: wrong number of arguments (%d)", opt, len(sub))
			}
			if sub[0] == "" {
				return d.Errf("workspace_profile: api_keys: %s: empty (leave it out for the default)", opt)
			}
			if opt == "header" {
				k.Header = sub[0]
			} else {
				k.Prefix = sub[0]
			}
		default:
			return d.Errf("workspace_profile: api_keys: unrecognized option %q", opt)
		}
		if err := k.check(); err != nil {
			return d.Err("workspace_profile: " + err.Error())
		}
	}
	h.APIKeys = k
	return nil
}
