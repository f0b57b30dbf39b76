package caddymodule

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
)

// registerMetrics adds the collectors to a config's registry.
func registerMetrics(reg *prometheus.Registry) error {
	if reg == nil {
		return nil
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// metricsObserver counts what the token core tells: key-set fetches and
// token-cache lookups. It is stateless, so a value of it costs nothing to
// pass as a jwtauth.Observer, and the counters are the package's, shared
// by every config generation.
type metricsObserver struct{}

func (metricsObserver) KeySetFetched(ok bool) {
	if ok {
		metricKeySetFetches.WithLabelValues("ok").Inc()
	} else {
		metricKeySetFetches.WithLabelValues("error").Inc()
	}
}

func (metricsObserver) TokenCacheLookup(hit bool) {
	if hit {
		metricTokenCache.WithLabelValues("hit").Inc()
	} else {
		metricTokenCache.WithLabelValues("miss").Inc()
	}
}

// Interface guards
var _ jwtauth.Observer = metricsObserver{}
