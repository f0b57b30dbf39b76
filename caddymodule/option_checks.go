package caddymodule

import (
	"fmt"
	"net/url"
	"path"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/workspace-edge/caddy-workspace-profile/internal/dpop"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
)

// Each option is checked once, by the code that owns it: the token
// options by jwtauth.Config.Check, the key-set refresh bounds by
// jwtauth.RefreshOptions.Check, the proof options by dpop.Config.Check,
// the storage options by their storage module, and the handler's own
// options (path, body limits, backends, dpop mode and origin) here. The
// Caddyfile parser checks only how each option is written and then calls
// these, so that a Caddyfile and a JSON config accept the same values.
// The errors name the option; Caddy prefixes the module's name itself.

// maxBodyLimit is the largest max_body and max_upstream_body: a body
// limit is a memory bound, and a larger one would bound nothing.
const maxBodyLimit = 1 << 30

// validateConfig checks the options that do not need any I/O; it runs at
// provision so that a bad config never starts a goroutine or opens a file.
func (h *Handler) validateConfig() error {
	if err := h.checkRequired(); err != nil {
		return err
	}
	if err := h.checkValues(); err != nil {
		return err
	}
	if err := h.refreshOptions().Check(); err != nil {
		return err
	}
	repl := caddy.NewReplacer()
	for opt, raws := range map[string][]string{"jwks_url": h.JWKSURLs, "discovery": h.Discovery} {
		for _, raw := range raws {
			u, err := url.Parse(repl.ReplaceKnown(raw, ""))
			if err != nil || u.Host == "" {
				return fmt.Errorf("%s: %q is not an absolute URL", opt, jwtauth.RedactURL(raw))
			}
			if err := jwtauth.CheckKeySetURL(u); err != nil {
				return fmt.Errorf("%s: %w", opt, err)
			}
		}
	}
	return nil
}

// checkRequired checks the options without which the handler cannot work;
// the Caddyfile parser runs it too, once the block is read, to point at
// the directive's line.
func (h *Handler) checkRequired() error {
	// issuer and audience are the tokens' rules: api_keys alone needs
	// neither
	if h.hasKeySource() || h.Introspection != nil {
		if err := h.verifierConfig(nil, h.Discovery).Check(); err != nil {
			return err
		}
	}
	if !h.hasKeySource() && h.Introspection == nil && h.APIKeys == nil {
		return fmt.Errorf("jwks_url/jwks_file/discovery/introspection/api_keys: at least one key source, introspection or api_keys is required")
	}
	if h.APIKeys != nil && h.APIKeys.StoreRaw == nil && h.UpstreamRaw != nil {
		return fmt.Errorf("api_keys: store: required in upstream mode, where the route has no storage of its own")
	}
	if err := h.checkIntrospection(); err != nil {
		return err
	}
	if h.UpstreamRaw != nil && h.StorageRaw != nil {
		return fmt.Errorf("storage/upstream: configure exactly one backend, not both")
	}
	if h.UpstreamRaw != nil && h.CreateMissing {
		return fmt.Errorf("create_missing: applies to storage mode only, not with upstream")
	}
	return nil
}

// checkValues checks each option that is set on its own, with no I/O and
// no placeholder replaced; the Caddyfile parser runs it after each
// subdirective, so that an error points at its line.
func (h *Handler) checkValues() error {
	if err := h.verifierConfig(nil, h.Discovery).CheckValues(); err != nil {
		return err
	}
	if err := h.refreshOptions().CheckValues(); err != nil {
		return err
	}
	if err := checkBodyLimit("max_body", h.MaxBody); err != nil {
		return err
	}
	if err := checkBodyLimit("max_upstream_body", h.MaxUpstreamBody); err != nil {
		return err
	}
	if h.Path != "" && (h.Path[0] != '/' || path.Clean(h.Path) != h.Path) {
		return fmt.Errorf("path: %q must be a clean absolute path", h.Path)
	}
	if h.DPoP != nil {
		if err := h.DPoP.check(); err != nil {
			return err
		}
	}
	if h.APIKeys != nil {
		if err := h.APIKeys.check(); err != nil {
			return err
		}
	}
	return nil
}

// checkBodyLimit checks a body limit in bytes: 0 is its default, anything
// else from 1B to 1GiB.
func checkBodyLimit(opt string, n int64) error {
	if n < 0 || n > maxBodyLimit {
		return fmt.Errorf("%s: %d is not a size between 1B and 1GiB", opt, n)
	}
	return nil
}

// verifierConfig is the token core's config of the handler's options:
// with the key sources and the issuers of discovery given (the latter
// only counted when checking).
func (h *Handler) verifierConfig(sources []jwtauth.Source, discovery []string) jwtauth.Config {
	cfg := jwtauth.Config{
		Sources:     sources,
		Algorithms:  h.Algorithms,
		Issuers:     append(append([]string(nil), h.Issuers...), discovery...),
		Audiences:   h.Audiences,
		Subject:     h.SubjectClaim,
		TokenTypes:  h.TokenTypes,
		Clients:     h.Clients,
		CacheSize:   DefaultTokenCache,
		MaxLifetime: time.Duration(h.MaxTokenLifetime),
		Observer:    metricsObserver{},
		// internal/authn applies the subject rule, after the
		// service-account decision
		DeferSubject: true,
	}
	if h.Leeway != nil {
		cfg.Leeway = new(time.Duration(*h.Leeway))
	}
	if h.TokenCache != nil {
		cfg.CacheSize = *h.TokenCache
	}
	return cfg
}

// refreshOptions are the remote key sets' refresh bounds.
func (h *Handler) refreshOptions() jwtauth.RefreshOptions {
	return jwtauth.RefreshOptions{MinRefresh: time.Duration(h.MinRefresh), MaxRefresh: time.Duration(h.MaxRefresh), MaxStale: time.Duration(h.MaxStale)}
}

// check checks the dpop option's values: its mode, replay cache size and
// origin here, its algorithms and iat_window by dpop.Config.Check. An
// empty mode is the default's.
func (d *DPoP) check() error {
	switch d.Mode {
	case "", DPoPOff, DPoPAllowed, DPoPRequired:
	default:
		return fmt.Errorf("dpop: mode %q is none of off, allowed, required", d.Mode)
	}
	if err := (dpop.Config{Algorithms: d.Algorithms, Window: time.Duration(d.IATWindow)}).Check(); err != nil {
		return fmt.Errorf("dpop: %w", err)
	}
	if d.ReplayCacheSize < 0 {
		return fmt.Errorf("dpop: replay_cache_size: must not be negative")
	}
	if d.Origin != "" {
		if _, err := normalizeOrigin(d.Origin); err != nil {
			return fmt.Errorf("dpop: origin: %w", err)
		}
	}
	return nil
}
