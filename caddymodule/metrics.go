package caddymodule

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
		rangeURLSources(func(s *urlSource) {
			if ks := s.current(); ks != nil {
				n += len(ks.keys)
			}
		})
		return float64(n)
	})

	metricKeySetAge = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "caddy", Subsystem: "workspace_profile", Name: "keyset_age_seconds",
		Help: "Seconds since the last good fetch of the oldest remote key set (0 when none is loaded).",
	}, func() float64 {
		var oldest float64
		rangeURLSources(func(s *urlSource) {
			if last := s.lastGood.Load(); last != 0 {
				oldest = max(oldest, s.now().Sub(time.Unix(0, last)).Seconds())
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

func rangeURLSources(f func(*urlSource)) {
	keySourcePool.Range(func(_, v any) bool {
		if s, ok := v.(*urlSource); ok {
			f(s)
		}
		return true
	})
}

// Request outcomes, the values of the outcome label.
const (
	outcomeOK               = "ok"
	outcomeNotModified      = "not_modified"
	outcomeValidationError  = "validation_error"
	outcomeNotFound         = "not_found"
	outcomePrecondition     = "precondition_failed"
	outcomeMethodNotAllowed = "method_not_allowed"
	outcomeStorageError     = "storage_error"
	outcomeUpstreamError    = "upstream_error"
	outcomeClientClosed     = "client_closed"
	outcomeUserNameTaken    = "user_name_taken"
	outcomePayloadTooLarge  = "payload_too_large"
	outcomeUnsupportedMedia = "unsupported_media_type"
	outcomeServiceAccount   = "service_account"
	outcomeKeysUnavailable  = "keys_unavailable"
	outcomeMissingToken     = "missing_token"
	outcomeInvalidToken     = "invalid_token"
	outcomeExpired          = "expired"
	outcomeNotYetValid      = "not_yet_valid"
	outcomeInvalidIssuer    = "invalid_issuer"
	outcomeInvalidAudience  = "invalid_audience"
	outcomeInvalidRequest   = "invalid_request"
	outcomeUpstreamRejected = "upstream_rejected"
)

// authOutcome is the outcome label of an authentication refusal.
func authOutcome(e *authError) string {
	switch e.code {
	case codeMissingToken:
		return outcomeMissingToken
	case codeTokenExpired:
		return outcomeExpired
	case codeTokenNotYetValid:
		return outcomeNotYetValid
	case codeInvalidIssuer:
		return outcomeInvalidIssuer
	case codeInvalidAudience:
		return outcomeInvalidAudience
	case codeInvalidRequest:
		return outcomeInvalidRequest
	case codeServiceAccountForbidden:
		return outcomeServiceAccount
	case codeKeysUnavailable:
		return outcomeKeysUnavailable
	}
	return outcomeInvalidToken
}

func countOutcome(outcome string) { metricRequests.WithLabelValues(outcome).Inc() }
