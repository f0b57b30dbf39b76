package caddymodule

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/workspace-edge/caddy-workspace-profile/internal/introspect"
)

// The introspection metrics, created once like the others (registries.go)
// and registered with each new registry. No label carries a token, a
// client secret or an endpoint's query.
var (
	metricIntrospectionCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "workspace_profile", Name: "introspection_calls_total",
		Help: "Introspection calls by result (active, inactive, failed; fail_fast and busy: no call was made).",
	}, []string{"result"})

	metricIntrospectionCache = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "workspace_profile", Name: "introspection_cache_total",
		Help: "Introspection answer cache lookups by result (hit_positive: an active answer; hit_negative: a cached refusal; miss).",
	}, []string{"result"})

	metricIntrospectionSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "workspace_profile", Name: "introspection_call_seconds",
		Help:    "How long introspection calls took, answered or failed.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2, 5, 10},
	})

	metricIntrospectionInFlight = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "caddy", Subsystem: "workspace_profile", Name: "introspection_calls_in_flight",
		Help: "Introspection calls running now, across the endpoints.",
	}, func() float64 {
		n := 0
		rangeIntrospectors(func(in *introspect.Introspector) { n += in.InFlight() })
		return float64(n)
	})

	metricIntrospectionFailingFast = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "caddy", Subsystem: "workspace_profile", Name: "introspection_failing_fast",
		Help: "Introspection endpoints whose calls fail fast now, after repeated failures.",
	}, func() float64 {
		n := 0
		rangeIntrospectors(func(in *introspect.Introspector) {
			if in.Status().FailingFastUntil != nil {
				n++
			}
		})
		return float64(n)
	})
)

// rangeIntrospectors calls f with every introspector in use in the process.
func rangeIntrospectors(f func(*introspect.Introspector)) {
	introspectorPool.Range(func(_, v any) bool {
		if p, ok := v.(pooledIntrospector); ok {
			f(p.Introspector)
		}
		return true
	})
}

// introspectionObserver counts what the introspectors tell. Stateless,
// like metricsObserver.
type introspectionObserver struct{}

func (introspectionObserver) Called(r introspect.Result, took time.Duration) {
	metricIntrospectionCalls.WithLabelValues(r.String()).Inc()
	if r != introspect.ResultFailFast && r != introspect.ResultBusy {
		metricIntrospectionSeconds.Observe(took.Seconds())
	}
}

// CacheLookup counts under one of three fixed labels (CacheResult's
// names), never anything of the token.
func (introspectionObserver) CacheLookup(r introspect.CacheResult) {
	metricIntrospectionCache.WithLabelValues(r.String()).Inc()
}

// Interface guards
var _ introspect.Observer = introspectionObserver{}
