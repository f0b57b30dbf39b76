package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// Provision sets defaults, loads the key sources and the storage backend.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.logger.Debug("provisioning workspace_profile", zap.String("version", Version))
	h.storeErrors = new(errorLog)
	repl := caddy.NewReplacer()
	h.path = h.Path
	if h.path == "" {
		h.path = DefaultPath
	}
	if h.MaxBody == 0 {
		h.MaxBody = DefaultMaxBody
	}
	if h.MaxUpstreamBody == 0 {
		h.MaxUpstreamBody = DefaultMaxUpstream
	}
	if h.ServiceAccount == nil {
		h.ServiceAccount = &ServiceAccount{}
	}
	if h.ServiceAccount.Claim == "" {
		h.ServiceAccount.Claim = DefaultServiceClaim
	}
	if len(h.ServiceAccount.Values) == 0 {
		h.ServiceAccount.Values = []string{DefaultServiceValue}
	}
	if h.DPoP == nil {
		h.DPoP = &DPoP{}
	}
	if h.DPoP.Mode == "" {
		h.DPoP.Mode = DPoPAllowed
	}
	if err := h.validateConfig(); err != nil {
		return err
	}

	// each discovery issuer, placeholders replaced, is an accepted issuer
	// and names the shared source of its keys
	discovery := make([]string, len(h.Discovery))
	for i, iss := range h.Discovery {
		discovery[i] = repl.ReplaceKnown(iss, "")
	}
	var sources []jwtauth.Source
	for _, f := range h.JWKSFiles {
		file := repl.ReplaceKnown(f, "")
		src, err := jwtauth.LoadFile(file, h.logger)
		if err != nil {
			return fmt.Errorf("jwks_file %s: %w", file, err)
		}
		h.fileSources = append(h.fileSources, src)
		liveFiles.Store(src, struct{}{})
		sources = append(sources, src)
	}
	// Remote sets are shared by URL across handlers and reloads; Cleanup
	// releases them, and the last release stops their goroutine.
	opts := h.refreshOptions()
	for _, u := range h.JWKSURLs {
		key := repl.ReplaceKnown(u, "")
		s, err := loadURLSource(key, "", opts, h.logger)
		if err != nil {
			return fmt.Errorf("jwks_url: %w", err)
		}
		h.sourceKeys = append(h.sourceKeys, key)
		sources = append(sources, s)
	}
	var discovered *jwtauth.URLSource // the last discovery source
	for _, iss := range discovery {
		key := jwtauth.DiscoveryURL(iss)
		s, err := loadURLSource(key, iss, opts, h.logger)
		if err != nil {
			return fmt.Errorf("discovery: %w", err)
		}
		h.sourceKeys = append(h.sourceKeys, key)
		sources = append(sources, s)
		discovered = s
	}
	// a route with introspection only has no JWT verifier: JWTs are
	// refused, never introspected
	if len(sources) > 0 {
		v, err := jwtauth.New(h.verifierConfig(sources, discovery))
		if err != nil {
			return fmt.Errorf("%w", err)
		}
		h.verifier = v
	}
	if err := h.provisionIntrospection(discovered); err != nil {
		return err
	}
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	backend, err := h.provisionBackend(ctx)
	if err != nil {
		return err
	}
	keyBackend, err := h.provisionAPIKeys(ctx, backend)
	if err != nil {
		return err
	}
	// once the stores are open: a DPoP proof is spent in the record the
	// nodes share, the profile store's when it has one, else the key
	// store's (in upstream mode too)
	if err := h.provisionDPoP(ctx, h.sharedProofsOf(backend, keyBackend)); err != nil {
		return err
	}
	h.authn = h.authenticator()
	return nil
}

// provisionBackend loads the upstream (answering a nil storage backend)
// or the storage backend.
func (h *Handler) provisionBackend(ctx caddy.Context) (StorageBackend, error) {
	if h.UpstreamRaw != nil {
		raw, err := withDefaultTimeouts(h.UpstreamRaw)
		if err != nil {
			return nil, fmt.Errorf("upstream: %w", err)
		}
		h.UpstreamRaw = raw
		mod, err := ctx.LoadModule(h, "UpstreamRaw")
		if err != nil {
			return nil, fmt.Errorf("upstream: %w", err)
		}
		rp, ok := mod.(*reverseproxy.Handler)
		if !ok {
			return nil, fmt.Errorf("upstream: handler must be reverse_proxy, not %T", mod)
		}
		h.upstream = rp
		return nil, nil
	}
	if h.StorageRaw == nil {
		h.StorageRaw = json.RawMessage(`{"backend":"bolt"}`)
	}
	mod, err := ctx.LoadModule(h, "StorageRaw")
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	backend, ok := mod.(StorageBackend)
	if !ok {
		return nil, fmt.Errorf("storage: module %T is not a storage backend", mod)
	}
	h.service = profile.Service{Store: backend.ProfileStore(), CreateMissing: h.CreateMissing}
	h.storeName = backend.StoreName()
	h.liveStore = h.service.Store
	liveStores.add(h.storeName, h.liveStore)
	return backend, nil
}

// Cleanup releases the shared key sources and registrations this handler
// took, from its own records, so that it undoes a partial Provision too
// (Caddy calls it after a failed one); the storage and upstream guest
// modules are cleaned up by Caddy, which loaded them.
func (h *Handler) Cleanup() error {
	var errs []error
	if err := h.releaseAPIKeys(); err != nil {
		errs = append(errs, err)
	}
	if h.introspection != nil {
		if err := h.introspection.Close(); err != nil {
			errs = append(errs, err)
		}
		h.introspection = nil
	}
	for _, key := range h.sourceKeys {
		if _, err := keySourcePool.Delete(key); err != nil {
			errs = append(errs, err)
		}
	}
	h.sourceKeys = nil
	if h.storeName != "" {
		liveStores.remove(h.storeName, h.liveStore)
		h.storeName = ""
	}
	for _, f := range h.fileSources {
		liveFiles.Delete(f)
	}
	h.fileSources = nil
	return errors.Join(errs...)
}
