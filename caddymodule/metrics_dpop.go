package caddymodule

import (
	"github.com/prometheus/client_golang/prometheus"
)

// The checks of DPoP proofs against the record the nodes share, created
// once like the others (registries.go). No label carries a key, jti or
// thumbprint.
var (
	metricDPoPSharedChecks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "workspace_profile", Name: "dpop_shared_replay_checks_total",
		Help: "DPoP proofs checked against the record of used proofs the nodes share, by result (fresh, replayed, failed).",
	}, []string{"result"})

	metricDPoPSharedSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "workspace_profile", Name: "dpop_shared_replay_check_seconds",
		Help:    "How long the checks of DPoP proofs against the shared record took, answered or failed.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	})
)

// Results of a shared check, the label values of metricDPoPSharedChecks.
const (
	dpopSharedFresh    = "fresh"
	dpopSharedReplayed = "replayed"
	dpopSharedFailed   = "failed"
)
