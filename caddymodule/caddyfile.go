package caddymodule

import (
	"fmt"
	"math"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterDirective("workspace_profile", parseCaddyfile)
	// Before handle, so that the route is intercepted even when the site
	// also has handle /api/*, handle_path, route or reverse_proxy blocks;
	// after the auth and rewrite directives, which may guard or reshape it.
	httpcaddyfile.RegisterDirectiveOrder("workspace_profile", httpcaddyfile.Before, "handle")
}

// parseCaddyfile is registered as a plain directive rather than a handler
// directive: the route's path is an argument, and a handler directive would
// take a leading "/..." argument for a path matcher.
func parseCaddyfile(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	var handler Handler
	if err := handler.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return h.NewRoute(nil, &handler), nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	workspace_profile [<path>] {
//	    jwks_url      <url>...
//	    jwks_file     <path>...
//	    discovery     <issuer>...
//	    min_refresh   <duration>
//	    max_refresh   <duration>
//	    max_stale     <duration>
//	    token_cache   <entries>
//	    issuer        <iss>...
//	    audience      <aud>...
//	    algorithms    <alg>...
//	    token_type    <typ>...
//	    clients       <client_id>...
//	    leeway        <duration>
//	    max_token_lifetime <duration>
//	    subject_claim <claim>
//	    query_token   on|off
//	    dpop          [off|allowed|required] [{ required; mode off|allowed|required; algorithms <alg>...; iat_window <d>; replay_cache_size <n>; origin <url> }]
//	    introspection [<endpoint>] { client_id <id>; client_secret <secret>; auth_method <m>; client_key <pem>; client_key_id <kid>; response json|jwt; cache_ttl <d>; negative_ttl <d>; cache_size <n>; timeout <d>; max_in_flight <n>; trust_pool <pem> }
//	    api_keys      [{ store <backend> [<args>...]; header <name>; prefix <text> }]
//	    service_account <claim> <value>...
//	    create_missing
//	    max_body      <size>
//	    keep_client_identity_headers
//	    storage       memory | bolt [<file>] [timeout <d>] | postgres <dsn> [<option> <value>]...
//	    upstream      <to>... { <reverse_proxy subdirectives> }
//	    max_upstream_body <size>
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		h.Path = d.Val()
	}
	if d.NextArg() {
		return d.Errf("workspace_profile: unexpected argument %q (only the path may follow the directive)", d.Val())
	}
	if err := h.checkValues(); err != nil {
		return d.Err("workspace_profile: " + err.Error())
	}
	for d.NextBlock(0) {
		if err := h.unmarshalOption(d); err != nil {
			return err
		}
		// the owners' checks, after each subdirective so that an error
		// points at its line
		if err := h.checkValues(); err != nil {
			return d.Err("workspace_profile: " + err.Error())
		}
	}
	if err := h.checkRequired(); err != nil {
		return d.Err("workspace_profile: " + err.Error())
	}
	return nil
}

// unmarshalOption reads the subdirective at the dispenser's cursor: how it
// is written (its arguments, each value's syntax); the values themselves
// are checked by their owners (checkValues).
func (h *Handler) unmarshalOption(d *caddyfile.Dispenser) error {
	opt := d.Val()
	if opt == "upstream" {
		return h.unmarshalUpstream(d)
	}
	args := d.RemainingArgs()
	needArgs := func(min, max int) error {
		if len(args) < min || (max >= 0 && len(args) > max) {
			return d.Errf("workspace_profile: %s: wrong number of arguments (%d)", opt, len(args))
		}
		return nil
	}
	lists := map[string]*[]string{"jwks_url": &h.JWKSURLs, "jwks_file": &h.JWKSFiles, "issuer": &h.Issuers,
		"audience": &h.Audiences, "discovery": &h.Discovery, "token_type": &h.TokenTypes, "clients": &h.Clients}
	durations := map[string]*caddy.Duration{"min_refresh": &h.MinRefresh, "max_refresh": &h.MaxRefresh, "max_stale": &h.MaxStale}
	if dst, ok := durations[opt]; ok {
		if err := needArgs(1, 1); err != nil {
			return err
		}
		dur, ok := durationArg(args[0], false)
		if !ok {
			return d.Errf("workspace_profile: %s: %q is not a positive duration", opt, args[0])
		}
		*dst = dur
		return nil
	}
	if dst, ok := lists[opt]; ok {
		if err := needArgs(1, -1); err != nil {
			return err
		}
		*dst = append(*dst, args...)
		return nil
	}
	switch opt {
	case "algorithms":
		if err := needArgs(1, -1); err != nil {
			return err
		}
		h.Algorithms = append(h.Algorithms, args...)
	case "leeway":
		if err := needArgs(1, 1); err != nil {
			return err
		}
		dur, ok := durationArg(args[0], true)
		if !ok {
			return d.Errf("workspace_profile: leeway: %q is not a non-negative duration", args[0])
		}
		h.Leeway = &dur
	case "max_token_lifetime":
		if err := needArgs(1, 1); err != nil {
			return err
		}
		dur, ok := durationArg(args[0], true)
		if !ok {
			return d.Errf("workspace_profile: max_token_lifetime: %q is not a non-negative duration", args[0])
		}
		h.MaxTokenLifetime = dur
	case "subject_claim":
		if err := needArgs(1, 1); err != nil {
			return err
		}
		h.SubjectClaim = args[0]
	case "query_token":
		if err := needArgs(1, 1); err != nil {
			return err
		}
		var on bool
		switch args[0] {
		case "on":
			on = true
		case "off":
		default:
			return d.Errf("workspace_profile: query_token: %q is neither on nor off", args[0])
		}
		h.QueryToken = &on
	case "service_account":
		if err := needArgs(2, -1); err != nil {
			return err
		}
		h.ServiceAccount = &ServiceAccount{Claim: args[0], Values: args[1:]}
	case "dpop":
		if err := h.unmarshalDPoP(d, args); err != nil {
			return err
		}
	case "introspection":
		if err := h.unmarshalIntrospection(d, args); err != nil {
			return err
		}
	case "api_keys":
		if err := h.unmarshalAPIKeys(d, args); err != nil {
			return err
		}
	case "keep_client_identity_headers":
		if err := needArgs(0, 0); err != nil {
			return err
		}
		h.KeepClientIdentityHeaders = true
	case "create_missing":
		if err := needArgs(0, 0); err != nil {
			return err
		}
		h.CreateMissing = true
	case "max_body":
		if err := needArgs(1, 1); err != nil {
			return err
		}
		n, ok := sizeArg(args[0])
		if !ok {
			return d.Errf("workspace_profile: max_body: %q is not a size between 1B and 1GiB", args[0])
		}
		h.MaxBody = n
	case "storage":
		if h.StorageRaw != nil {
			return d.Errf("workspace_profile: storage: a backend is already configured")
		}
		if err := needArgs(1, -1); err != nil {
			return err
		}
		name := args[0]
		mod, err := unmarshalStorage(d, name, args[1:])
		if err != nil {
			return err
		}
		h.StorageRaw = caddyconfig.JSONModuleObject(mod, "backend", name, nil)
	case "token_cache":
		if err := needArgs(1, 1); err != nil {
			return err
		}
		n, err := strconv.Atoi(args[0])
		if err != nil {
			return d.Errf("workspace_profile: token_cache: %q is not a number of entries (0 disables)", args[0])
		}
		h.TokenCache = &n
	case "max_upstream_body":
		if err := needArgs(1, 1); err != nil {
			return err
		}
		n, ok := sizeArg(args[0])
		if !ok {
			return d.Errf("workspace_profile: max_upstream_body: %q is not a size between 1B and 1GiB", args[0])
		}
		h.MaxUpstreamBody = n
	default:
		return d.Errf("workspace_profile: unrecognized subdirective %q", opt)
	}
	return nil
}

// unmarshalUpstream hands `upstream <to>... { ... }` to reverse_proxy's own
// parser, as forward_auth does, so every reverse_proxy subdirective works.
func (h *Handler) unmarshalUpstream(d *caddyfile.Dispenser) error {
	if h.UpstreamRaw != nil {
		return d.Errf("workspace_profile: upstream: configured twice")
	}
	tokens := d.NextSegment()
	for _, tok := range tokens {
		// response routes would bypass the normalization this handler
		// exists for
		if tok.Text == "handle_response" || tok.Text == "replace_status" {
			return d.Errf("workspace_profile: upstream: %s is not supported: workspace_profile normalizes the response", tok.Text)
		}
	}
	// reverse_proxy's parser consumes the directive name ("upstream") itself
	rp := new(reverseproxy.Handler)
	if err := rp.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)); err != nil {
		return d.Errf("workspace_profile: upstream: %v", err)
	}
	h.UpstreamRaw = caddyconfig.JSONModuleObject(rp, "handler", "reverse_proxy", nil)
	return nil
}

// unmarshalStorage builds the storage guest module named by `storage
// <name> <args...>`: the backend parses its own arguments.
func unmarshalStorage(d *caddyfile.Dispenser, name string, args []string) (caddy.Module, error) {
	modID := "http.workspace_profile.storage." + name
	info, err := caddy.GetModule(modID)
	if err != nil {
		return nil, d.Errf("workspace_profile: storage: unknown backend %q", name)
	}
	mod := info.New()
	// the tokens keep the line, so that the backend's own errors (which
	// name it) point at it
	tokens := []caddyfile.Token{{Text: name, File: d.File(), Line: d.Line()}}
	for _, a := range args {
		tokens = append(tokens, caddyfile.Token{Text: a, File: d.File(), Line: d.Line()})
	}
	if u, ok := mod.(caddyfile.Unmarshaler); ok {
		if err := u.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)); err != nil {
			return nil, fmt.Errorf("workspace_profile: %w", err)
		}
		return mod, nil
	}
	if len(args) > 0 {
		return nil, d.Errf("workspace_profile: storage %s: takes no arguments, got %q", name, args[0])
	}
	return mod, nil
}

// How the Caddyfile writes values. A number, size or duration whose zero
// means the default in JSON (where 0 and absent are one) is written
// non-zero: the default is had by leaving the option out, and a written 0
// would read as "none" or "no limit" while meaning the default. Whether a
// value is in range (not negative, not over a cap) is for the option's
// owner to say (option_checks.go), as for JSON.

// durationArg reads a duration; zeroOK: 0 is a value of its own.
func durationArg(arg string, zeroOK bool) (caddy.Duration, bool) {
	dur, err := caddy.ParseDuration(arg)
	if err != nil || (dur == 0 && !zeroOK) {
		return 0, false
	}
	return caddy.Duration(dur), true
}

// sizeArg reads a size in bytes (64KiB, 1MB, 1048576), never 0.
func sizeArg(arg string) (int64, bool) {
	n, err := humanize.ParseBytes(arg)
	if err != nil || n == 0 || n > math.MaxInt64 {
		return 0, false
	}
	return int64(n), true
}

// countArg reads a whole number that fits in bits bits, never 0.
func countArg(arg string, bits int) (int64, bool) {
	n, err := strconv.ParseInt(arg, 10, bits)
	if err != nil || n == 0 {
		return 0, false
	}
	return n, true
}
