package caddymodule

import (
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/workspace-edge/caddy-workspace-profile/internal/dpop"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// The process-wide registries of this package. Caddy provisions a new
// config beside the old one on every reload and cleans the old one up
// after, so whatever must be shared between the two generations (an open
// file, a pool, a fetched key set, a replay cache, a counter) cannot live
// in a handler: it lives here, in package variables, each saying why it
// must outlive a reload and what gives its entries back.

// Key sets.

// keySourcePool shares one URL source per URL across handlers and config
// reloads, so a reload neither refetches a key set nor loses it. This is
// the only Caddy the key sources meet: the core knows nothing of pools.
var keySourcePool = caddy.NewUsagePool()

// liveFiles are the file sources of the handlers provisioned now, for the
// admin view; Provision adds each as soon as it is read, Cleanup removes
// the ones its handler recorded.
var liveFiles sync.Map // *jwtauth.FileSource -> struct{}

// Introspection.

// introspectorPool shares one introspector (its HTTP client, answer
// cache, single flights, call slots and fail-fast state) per endpoint and
// client (introspectorKey) across handlers and config reloads, so that a
// reload neither loses the cached answers nor fails the calls in
// progress. Each handler applies its own claim rules over it
// (introspect.Route) and gives it back at Cleanup; the last release
// closes it and ends its calls.
var introspectorPool = caddy.NewUsagePool()

// Stores.

// boltPool shares each open bolt file between every handler and config
// generation that names it: bbolt locks its file, so opening it again in
// the new config of a reload would wait for the old one and time out.
var boltPool = caddy.NewUsagePool()

// pgPool shares each pgx pool between the handlers and config generations
// whose DSN, schema and options are the same.
var pgPool = caddy.NewUsagePool()

// memoryStores numbers the memory stores of this process, for their names:
// a name says which store it is, and nothing about the process's memory.
var memoryStores atomic.Uint64

// liveStores are the stores of the handlers provisioned now, by name, so
// that the admin endpoint can reach them. A reload's overlap holds a name
// twice, maybe with two stores (a PostgreSQL reload that changes timeouts
// keeps the name and brings a new pool): the newest one still registered
// is the one served, so a failed reload that is rolled back serves the
// old one again.
var liveStores = &storeRegistry{stores: map[string][]profile.Store{}}

// DPoP.

// replayCache is the process's one replay cache, shared by every handler
// of every config generation, so that a proof used before a reload stays
// refused after it whatever the reload changes (the new config provisions
// while the old one still serves). Its size and how long it keeps entries
// follow the handlers alive now (leases, taken at provision and returned
// when their config is unloaded): the largest replay_cache_size among them
// (a smaller size forgets nothing, the entries above it leave as their
// window ends) and their longest window (iat_window plus leeway), so that
// each route's window is its own. Entries dropped when the longest window
// shrinks raise the cache's floor to their iat: a later config with a
// longer window refuses them as too old to be checked, never accepts them.
var replayCache = struct {
	sync.Mutex
	c      *dpop.ReplayCache
	leases map[*replayLease]struct{}
}{c: dpop.NewReplayCache(dpop.DefaultReplayCacheSize), leases: map[*replayLease]struct{}{}}

// Metrics.

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

var collectors = []prometheus.Collector{metricRequests, metricKeySetFetches, metricTokenCache, metricKeysLoaded, metricKeySetAge,
	metricIntrospectionCalls, metricIntrospectionCache, metricIntrospectionSeconds, metricIntrospectionInFlight,
	metricIntrospectionFailingFast, metricKeyVerifications, metricKeyCache, metricKeyStoreReads,
	metricDPoPSharedChecks, metricDPoPSharedSeconds, pgCacheCollector{}}
