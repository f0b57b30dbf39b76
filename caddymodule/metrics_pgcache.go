package caddymodule

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/workspace-edge/caddy-workspace-profile/internal/pglisten"
	"github.com/workspace-edge/caddy-workspace-profile/profile/pgstore"
)

// The PostgreSQL stores' profile caches and listening connections, read
// from the stores open in the process at each scrape (pgCacheCollector),
// created once like the others (registries.go). Each series is labelled
// by the store's name, postgres:<schema>@<hash of the DSN>, never the DSN.

// pgCacheMetric is one metric of pgCacheCollector: its description, its
// type and how it reads a store's figures.
type pgCacheMetric struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value func(pgCacheFigures) float64
}

// pgCacheFigures are one store's figures, or the sum of those of the
// stores that share a name (see pgCacheCollector).
type pgCacheFigures struct {
	cache              pgstore.CacheStats
	listener           pglisten.Health
	connected, vouched bool
}

func pgCacheDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc("caddy_workspace_profile_"+name, help, []string{"store"}, nil)
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

var pgCacheMetrics = []pgCacheMetric{
	{pgCacheDesc("pg_listener_connected", "1 when the store's listening connection is up and listening, else 0."),
		prometheus.GaugeValue, func(f pgCacheFigures) float64 { return bool01(f.connected) }},
	{pgCacheDesc("pg_listener_connects_total", "Connections the store's listener made and started listening on (more than one: it reconnected)."),
		prometheus.CounterValue, func(f pgCacheFigures) float64 { return float64(f.listener.Connects) }},
	{pgCacheDesc("pg_notifications_dropped_total", "Profile notifications this node did not send (queue full or refused); the poll brings those changes to the other nodes."),
		prometheus.CounterValue, func(f pgCacheFigures) float64 { return float64(f.cache.NotificationsDropped) }},
	{pgCacheDesc("pg_polls_total", "Polls of the profiles changed since the last poll that succeeded."),
		prometheus.CounterValue, func(f pgCacheFigures) float64 { return float64(f.cache.Poll.Polls) }},
	{pgCacheDesc("pg_poll_failures_total", "Polls of the changed profiles that failed."),
		prometheus.CounterValue, func(f pgCacheFigures) float64 { return float64(f.cache.Poll.Failures) }},
	{pgCacheDesc("pg_poll_caught_total", "Stale cache entries a poll dropped: changes whose notification was lost or late."),
		prometheus.CounterValue, func(f pgCacheFigures) float64 { return float64(f.cache.Poll.Caught) }},
	{pgCacheDesc("pg_cache_vouched", "1 when the profile cache is in use (listener up or last poll recent), 0 when every read goes to the database."),
		prometheus.GaugeValue, func(f pgCacheFigures) float64 { return bool01(f.vouched) }},
	{pgCacheDesc("pg_cache_entries", "Profiles in the node's cache."),
		prometheus.GaugeValue, func(f pgCacheFigures) float64 { return float64(f.cache.Size) }},
	{pgCacheDesc("pg_cache_capacity", "The most profiles the node's cache holds (0: off)."),
		prometheus.GaugeValue, func(f pgCacheFigures) float64 { return float64(f.cache.Capacity) }},
	{pgCacheDesc("pg_cache_hits_total", "Profile reads served from the cache."),
		prometheus.CounterValue, func(f pgCacheFigures) float64 { return float64(f.cache.Hits) }},
	{pgCacheDesc("pg_cache_misses_total", "Profile reads that went to the database, those while the cache was not vouched for included."),
		prometheus.CounterValue, func(f pgCacheFigures) float64 { return float64(f.cache.Misses) }},
	{pgCacheDesc("pg_cache_evictions_total", "Cache entries dropped to make room."),
		prometheus.CounterValue, func(f pgCacheFigures) float64 { return float64(f.cache.Evictions) }},
	{pgCacheDesc("pg_cache_invalidations_total", "Cache entries dropped because a write on some node made them stale."),
		prometheus.CounterValue, func(f pgCacheFigures) float64 { return float64(f.cache.Invalidations) }},
}

// metricPgNotificationLag is a summary without quantiles: its count is
// the profile notifications received and its sum their delay from the
// sending node to this one (the two nodes' clock difference is part of
// it), so that rate(sum)/rate(count) is the mean lag.
var metricPgNotificationLag = pgCacheDesc("pg_notification_lag_seconds",
	"Delay of the profile notifications received, from the writing node's sending to this node's receiving.")

// pgCacheCollector reports pgCacheMetrics for every PostgreSQL store open
// in the process. A reload that changes a pool option holds two pools of
// one name for a moment: their figures are added, and connected and
// vouched are 1 only when they are for each. The old pool's counts leave
// the sums when it closes, which Prometheus reads as a counter reset.
type pgCacheCollector struct{}

// pgCacheStore is what pgCacheCollector reads of a store (pgstore.Lazy).
type pgCacheStore interface {
	CacheStats() pgstore.CacheStats
	ListenerHealth() pglisten.Health
}

func (pgCacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range pgCacheMetrics {
		ch <- m.desc
	}
	ch <- metricPgNotificationLag
}

func (pgCacheCollector) Collect(ch chan<- prometheus.Metric) {
	for name, f := range pgCacheFiguresByName() {
		for _, m := range pgCacheMetrics {
			ch <- prometheus.MustNewConstMetric(m.desc, m.typ, m.value(f), name)
		}
		ch <- prometheus.MustNewConstSummary(metricPgNotificationLag, f.cache.Notifications, f.cache.NotificationLagSum.Seconds(), nil, name)
	}
}

// pgCacheFiguresByName reads the figures of the open PostgreSQL stores,
// added by store name.
func pgCacheFiguresByName() map[string]pgCacheFigures {
	byName := map[string]pgCacheFigures{}
	pgPool.Range(func(_, v any) bool {
		shared, ok := v.(sharedStore)
		if !ok {
			return true
		}
		s, ok := shared.Store.Store.(pgCacheStore)
		if !ok {
			return true
		}
		c, h := s.CacheStats(), s.ListenerHealth()
		f, seen := byName[shared.name]
		if !seen {
			f.connected, f.vouched = true, true
		}
		f.connected = f.connected && h.Connected
		f.vouched = f.vouched && c.Vouched
		f.listener.Connects += h.Connects
		f.cache.Size += c.Size
		f.cache.Capacity += c.Capacity
		f.cache.Hits += c.Hits
		f.cache.Misses += c.Misses
		f.cache.Evictions += c.Evictions
		f.cache.Invalidations += c.Invalidations
		f.cache.Notifications += c.Notifications
		f.cache.NotificationLagSum += c.NotificationLagSum
		f.cache.NotificationsDropped += c.NotificationsDropped
		f.cache.Poll.Polls += c.Poll.Polls
		f.cache.Poll.Failures += c.Poll.Failures
		f.cache.Poll.Caught += c.Poll.Caught
		byName[shared.name] = f
		return true
	})
	return byName
}

// Interface guards
var (
	_ prometheus.Collector = pgCacheCollector{}
	_ pgCacheStore         = (*pgstore.Lazy)(nil)
)
