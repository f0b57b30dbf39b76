package caddymodule

import (
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// TestMetricsAfterKnownRequests: outcome counters move by exactly what a
// known sequence of requests should make them move.
func TestMetricsAfterKnownRequests(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	h, _ := newFileHandler(t, jwtauthtest.JWKS(t, k), nil)
	reg := prometheus.NewRegistry()
	if err := registerMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if err := registerMetrics(reg); err != nil { // a reload registers again
		t.Fatalf("second registration: %v", err)
	}
	count := func(o string) float64 { return testutil.ToFloat64(metricRequests.WithLabelValues(o)) }
	outcomes := []string{outcomeOK, outcomeMissingToken, outcomeNotFound, outcomeValidationError, outcomeMethodNotAllowed, outcomeServiceAccount, outcomeExpired}
	before := map[string]float64{}
	for _, o := range outcomes {
		before[o] = count(o)
	}
	tok := k.Mint(t, jwtauthtest.Claims("m"), nil)
	svc := jwtauthtest.Claims("robot")
	svc["UserType"] = 2
	expired := jwtauthtest.Claims("m")
	expired["exp"] = time.Now().Add(-time.Hour).Unix()
	serve(t, h, "GET", profilePath, nil, "")                              // missing_token
	serve(t, h, "GET", profilePath, bearer(tok), "")                      // not_found (no create_missing)
	serve(t, h, "PUT", profilePath, jsonPut(tok, ""), `{"UserName":"x"}`) // validation_error
	serve(t, h, "DELETE", profilePath, bearer(tok), "")                   // method_not_allowed
	serve(t, h, "GET", profilePath, bearer(k.Mint(t, svc, nil)), "")      // service_account
	serve(t, h, "GET", profilePath, bearer(k.Mint(t, expired, nil)), "")  // expired
	h.service.CreateMissing = true
	serve(t, h, "GET", profilePath, bearer(tok), "") // ok
	serve(t, h, "GET", profilePath, bearer(tok), "") // ok
	want := map[string]float64{outcomeOK: 2, outcomeMissingToken: 1, outcomeNotFound: 1, outcomeValidationError: 1,
		outcomeMethodNotAllowed: 1, outcomeServiceAccount: 1, outcomeExpired: 1}
	for o, n := range want {
		if got := count(o) - before[o]; got != n {
			t.Errorf("%s moved by %v, want %v", o, got, n)
		}
	}
	// the exposition names nothing personal
	out, err := testutil.CollectAndLint(metricRequests)
	if err != nil || len(out) > 0 {
		t.Fatalf("lint: %v %v", out, err)
	}
	if n, _ := testutil.GatherAndCount(reg, "caddy_workspace_profile_requests_total"); n == 0 {
		t.Fatal("requests_total not on the registry")
	}
}
