package caddymodule

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
)

// The keyring's cache lookups and store reads, created once like the
// others (registries.go). No label carries a key, hash, id or owner.
var (
	metricKeyCache = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "workspace_profile", Name: "api_key_cache_total",
		Help: "API-key cache lookups by result (hit, negative_hit, miss).",
	}, []string{"result"})

	metricKeyStoreReads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "workspace_profile", Name: "api_key_store_reads_total",
		Help: "API-key store reads by result (found, not_found, failed; busy: no read was made).",
	}, []string{"result"})
)

// keyringObserver counts what a keyring tells; the outcomes are counted
// by keyVerifier, which knows the route's decision.
type keyringObserver struct{}

func (keyringObserver) Verified(apikey.Outcome) {}

func (keyringObserver) CacheLookup(l apikey.Lookup) { metricKeyCache.WithLabelValues(l.String()).Inc() }

func (keyringObserver) StoreRead(r apikey.Read, _ time.Duration) {
	metricKeyStoreReads.WithLabelValues(r.String()).Inc()
}

// Interface guards
var _ apikey.Observer = keyringObserver{}
