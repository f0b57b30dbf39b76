package caddymodule

import (
	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
)

// pooledSource is a URL source in keySourcePool; the last release closes it.
type pooledSource struct{ *jwtauth.URLSource }

// Destruct implements caddy.Destructor.
func (p pooledSource) Destruct() error { return p.Close() }

// loadURLSource takes the shared source for url, starting it if it is new.
// The caller must release it with keySourcePool.Delete(url). For
// discovery, issuer is set and url is its discovery document. A source
// already running takes opts and logger: the newest config's options win
// (see jwtauth.URLSource.Reconfigure).
func loadURLSource(url, issuer string, opts jwtauth.RefreshOptions, logger *zap.Logger) (*jwtauth.URLSource, error) {
	v, loaded, err := keySourcePool.LoadOrNew(url, func() (caddy.Destructor, error) {
		s := jwtauth.NewURLSource(url, jwtauth.URLOptions{Issuer: issuer, Refresh: opts, Logger: logger, Observer: metricsObserver{}})
		s.Start()
		return pooledSource{s}, nil
	})
	if err != nil {
		return nil, err
	}
	s := v.(pooledSource).URLSource
	if loaded {
		s.Reconfigure(opts, logger)
	}
	return s, nil
}

// rangeURLSources calls f with every URL source in use in the process.
func rangeURLSources(f func(*jwtauth.URLSource)) {
	keySourcePool.Range(func(_, v any) bool {
		if s, ok := v.(pooledSource); ok {
			f(s.URLSource)
		}
		return true
	})
}
