package caddymodule

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of an API-key verification, the values of
// api_key_verifications_total's outcome label. No label ever carries a
// key, its hash, its id or its owner.
const (
	keyValidUser      = "valid_user"
	keyServiceRefused = "service_refused"
	keyInvalid        = "invalid"
	keyUnavailable    = "unavailable"
)

// metricKeyVerifications counts the API keys the route verified, by
// outcome; created once like the others (registries.go).
var metricKeyVerifications = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: "caddy", Subsystem: "workspace_profile", Name: "api_key_verifications_total",
	Help: "API keys verified on the profile route by outcome (valid_user, service_refused, invalid, unavailable).",
}, []string{"outcome"})

func countKeyVerification(outcome string) { metricKeyVerifications.WithLabelValues(outcome).Inc() }
