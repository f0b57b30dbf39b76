package caddymodule

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
)

// The module's metrics, on Caddy's registry under caddy_workspace_profile_.
// The collectors are created once and registered with each new registry a
// config reload brings (as mholt/caddy-ratelimit does), so their counts
// survive reloads. No label ever carries a token, subject or email.
var (
	metricRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "workspace_profile", Name: "requests_total",
		Help: "Requests on the profile route by outcome.",
	}, []string{"outcome"})

	metricKeySetFetches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "workspace_profile", Name: "keyset_fetches_total",
		Help: "Key set fetches by result (ok, error).",
	}, []string{"result"})

	metricTokenCache = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "workspace_profile", Name: "token_cache_total",
		Help: "Verified-token cache lookups by result (hit, miss).",
	}, []string{"result"})

	metricKeysLoaded = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "caddy", Subsystem: "workspace_profile", Name: "keys_loaded",
		Help: "Signing keys in force across the remote key sets.",
	}, func() float64 {
		n := 0
		rangeURLSources(func(s *jwtauth.URLSource) { n += s.KeysInForce() })
		return float64(n)
	})

	metricKeySetAge = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "caddy", Subsystem: "workspace_profile", Name: "keyset_age_seconds",
		Help: "Seconds since the last good fetch of the oldest remote key set (0 when none is loaded).",
	}, func() float64 {
		var oldest float64
		rangeURLSources(func(s *jwtauth.URLSource) {
			if age, ok := s.SinceLastGood(); ok {
				oldest = max(oldest, age.Seconds())
			}
		})
		return oldest
	})
)

var collectors = []prometheus.Collector{metricRequests, metricKeySetFetches, metricTokenCache, metricKeysLoaded, metricKeySetAge}

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
