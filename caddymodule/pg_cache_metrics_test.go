package caddymodule

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// pgMetrics is one scrape of Caddy's /metrics: the values of the series
// of one PostgreSQL store, by metric name (_sum and _count included).
type pgMetrics struct {
	body   []byte
	values map[string]float64
}

// scrapePgMetrics reads the admin endpoint's /metrics and keeps the
// series labelled with the store of schema.
func scrapePgMetrics(t *testing.T, client *http.Client, schema string) pgMetrics {
	t.Helper()
	r := do(t, client, "GET", itAdmin+"/metrics", nil, "")
	if r.status != 200 {
		t.Fatalf("metrics: %d", r.status)
	}
	m := pgMetrics{body: r.body, values: map[string]float64{}}
	label := `{store="postgres:` + schema + `@`
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, label)
		if !ok || !strings.HasPrefix(name, "caddy_workspace_profile_pg_") {
			continue
		}
		_, value, _ := strings.Cut(rest, "} ")
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		m.values[strings.TrimPrefix(name, "caddy_workspace_profile_")] = v
	}
	return m
}

// get is the value of metric (without the caddy_workspace_profile_
// prefix); a metric the scrape lacks ends the test.
func (m pgMetrics) get(t *testing.T, metric string) float64 {
	t.Helper()
	v, ok := m.values[metric]
	if !ok {
		t.Fatalf("metrics lack %s for the store:\n%s", metric, m.body)
	}
	return v
}

// TestPgCacheMetricsOnRealCaddy: a real Caddy on PostgreSQL with cache 50
// and poll 200ms reports its store's cache and listening connection by
// store name (never the DSN): the listener connects, polls run, two GETs
// of one profile hit the cache, and a change written straight into the
// database (no notification) is caught by the poll, dropped from the
// cache and served within the poll's bound.
func TestPgCacheMetricsOnRealCaddy(t *testing.T) {
	dsn, schema := pgSchema(t, "wp_cachemetrics")
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	tc := startCaddy(t, itConfig{jwksFiles: []string{writeFile(t, "k.json", jwtauthtest.JWKS(t, k))},
		storage: fmt.Sprintf("storage postgres {env.PROFILE_TEST_PG_DSN} schema %s cache 50 poll 200ms", schema)})
	tok := k.Mint(t, jwtauthtest.Claims("cache-metrics-user"), nil)
	if r := do(t, tc.Client, "PUT", itBase+profilePath, jsonPut(tok, ""), `{"FirstName":"Before"}`); r.status != 200 {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}

	// the listener connects and the poll runs in the background
	deadline := time.Now().Add(10 * time.Second)
	m := scrapePgMetrics(t, tc.Client, schema)
	for m.get(t, "pg_listener_connected") != 1 || m.get(t, "pg_polls_total") < 2 || m.get(t, "pg_cache_vouched") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("listener connected %v, polls %v, vouched %v after 10s",
				m.get(t, "pg_listener_connected"), m.get(t, "pg_polls_total"), m.get(t, "pg_cache_vouched"))
		}
		time.Sleep(50 * time.Millisecond)
		m = scrapePgMetrics(t, tc.Client, schema)
	}
	if got := m.get(t, "pg_cache_capacity"); got != 50 {
		t.Errorf("capacity %v, want the configured 50", got)
	}
	if got := m.get(t, "pg_listener_connects_total"); got < 1 {
		t.Errorf("listener connects %v", got)
	}
	for _, name := range []string{"pg_notification_lag_seconds_sum", "pg_notification_lag_seconds_count", "pg_notifications_dropped_total",
		"pg_poll_failures_total", "pg_poll_caught_total", "pg_cache_misses_total", "pg_cache_evictions_total", "pg_cache_invalidations_total"} {
		m.get(t, name)
	}

	before := m
	for range 2 {
		if r := do(t, tc.Client, "GET", itBase+profilePath, bearer(tok), ""); r.status != 200 {
			t.Fatalf("GET: %d %s", r.status, r.body)
		}
	}
	after := scrapePgMetrics(t, tc.Client, schema)
	if hits := after.get(t, "pg_cache_hits_total") - before.get(t, "pg_cache_hits_total"); hits < 1 {
		t.Errorf("two GETs of one profile: hits moved by %v", hits)
	}
	if size := after.get(t, "pg_cache_entries"); size < 1 || size > 50 {
		t.Errorf("cache entries %v after reading one profile", size)
	}

	// a change no node announced: only the poll can bring it
	pgExec(t, dsn, "UPDATE "+pgx.Identifier{schema}.Sanitize()+".profiles SET first_name = 'Behind', version = version + 1 WHERE user_id = $1", "cache-metrics-user")
	written := time.Now()
	for {
		r := do(t, tc.Client, "GET", itBase+profilePath, bearer(tok), "")
		if r.status == 200 && *r.envelope(t).Data.FirstName == "Behind" {
			break
		}
		if time.Since(written) > 200*time.Millisecond+time.Second {
			t.Fatalf("the change written in the database not served %v later (poll 200ms): %d %s", time.Since(written), r.status, r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("a change with no notification served %v after it was written (poll 200ms)", time.Since(written).Round(time.Millisecond))
	caught := scrapePgMetrics(t, tc.Client, schema)
	if c := caught.get(t, "pg_poll_caught_total") - after.get(t, "pg_poll_caught_total"); c < 1 {
		t.Errorf("the poll caught %v stale entries, want at least the one changed", c)
	}
	if bytes.Contains(caught.body, []byte("postgres://")) || bytes.Contains(caught.body, []byte(dsn)) {
		t.Fatal("a DSN is in the metrics")
	}
	if problems, err := testutil.CollectAndLint(pgCacheCollector{}); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
}

// TestPgCacheMetricsAddPoolsOfOneName: two pools of one store name (as a
// reload changing an option holds for a moment) give one series per
// metric, their figures added: the capacities sum, and the listener
// counts as connected once both are.
func TestPgCacheMetricsAddPoolsOfOneName(t *testing.T) {
	dsn, schema := pgSchema(t, "wp_cachesum")
	ctx, cancel := newTestContext()
	t.Cleanup(cancel)
	var name string
	for _, size := range []int{10, 20} {
		p := PostgresStorage{DSN: dsn, Schema: schema, Cache: &size}
		if err := p.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Cleanup() })
		name = p.StoreName()
		// a read opens the store and starts its listener and poll
		if _, err := p.ProfileStore().Get(context.Background(), "nobody"); !errors.Is(err, profile.ErrNotFound) {
			t.Fatalf("cache %d: %v", size, err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(pgCacheCollector{})
	values := func() map[string][]float64 {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][]float64{}
		for _, f := range families {
			for _, m := range f.GetMetric() {
				if len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != name {
					continue
				}
				v := m.GetGauge().GetValue() + m.GetCounter().GetValue() + float64(m.GetSummary().GetSampleCount())
				got[f.GetName()] = append(got[f.GetName()], v)
			}
		}
		return got
	}
	deadline := time.Now().Add(10 * time.Second)
	got := values()
	for len(got["caddy_workspace_profile_pg_listener_connected"]) != 1 || got["caddy_workspace_profile_pg_listener_connected"][0] != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("listener of both pools not connected after 10s: %v", got)
		}
		time.Sleep(20 * time.Millisecond)
		got = values()
	}
	for metric, vs := range got {
		if len(vs) != 1 {
			t.Errorf("%s: %d series for one store name", metric, len(vs))
		}
	}
	if c := got["caddy_workspace_profile_pg_cache_capacity"]; len(c) != 1 || c[0] != 30 {
		t.Errorf("capacity %v, want 10 + 20", c)
	}
	if c := got["caddy_workspace_profile_pg_listener_connects_total"]; len(c) != 1 || c[0] < 2 {
		t.Errorf("listener connects %v, want one per pool at least", c)
	}
}
