package caddymodule

import (
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// TestIntrospectionMetricsAndAdminView: through a real Caddy, calls and
// cache lookups are counted by result (a hit on an active answer apart
// from a hit on a cached refusal), the 503 under its own outcome, and
// the admin keys view shows the endpoint with its last good call and last
// error, and never the secret.
func TestIntrospectionMetricsAndAdminView(t *testing.T) {
	e := newIntrospectionEndpoint(t)
	k := jwtauthtest.NewKey(t, jwa.ES256(), "k")
	startIntrospectionCaddy(t, e, k)
	client := newTester(t).Client
	calls := func(r string) float64 { return testutil.ToFloat64(metricIntrospectionCalls.WithLabelValues(r)) }
	cache := func(r string) float64 { return testutil.ToFloat64(metricIntrospectionCache.WithLabelValues(r)) }
	unavailable := func() float64 {
		return testutil.ToFloat64(metricRequests.WithLabelValues(outcomeIntrospectionUnavailable))
	}
	active, inactive, failed, na := calls("active"), calls("inactive"), calls("failed"), unavailable()
	positive, negative, miss := cache("hit_positive"), cache("hit_negative"), cache("miss")
	// each lookup kind after the request that must produce it, alone
	step := func(name, tok string, status int, wantPositive, wantNegative, wantMiss float64) {
		t.Helper()
		if r := do(t, client, "GET", itBase+profilePath, bearer(tok), ""); r.status != status {
			t.Fatalf("%s: %d %s, want %d", name, r.status, r.body, status)
		}
		got := [3]float64{cache("hit_positive") - positive, cache("hit_negative") - negative, cache("miss") - miss}
		if got != [3]float64{wantPositive, wantNegative, wantMiss} {
			t.Fatalf("after %s: hit_positive, hit_negative, miss moved by %v, want %v", name, got,
				[3]float64{wantPositive, wantNegative, wantMiss})
		}
	}

	tok, inactiveTok := opaqueToken(), opaqueToken()
	e.active(tok, `,"sub":"intro-metrics"`)
	step("an active token", tok, 200, 0, 0, 1)                  // miss, call: active
	step("the active token again", tok, 200, 1, 0, 1)           // hit on the active answer
	step("an inactive token", inactiveTok, 401, 1, 0, 2)        // miss, call: inactive
	step("the inactive token again", inactiveTok, 401, 1, 1, 2) // hit on the cached refusal
	e.failing.Store(true)
	step("a token while the endpoint fails", opaqueToken(), 503, 1, 1, 3) // miss, call: failed
	for name, moved := range map[string]float64{
		"active": calls("active") - active, "inactive": calls("inactive") - inactive, "failed": calls("failed") - failed,
		"introspection_unavailable": unavailable() - na,
	} {
		if moved != 1 {
			t.Errorf("%s moved by %v, want 1", name, moved)
		}
	}

	resp, err := client.Get(itAdmin + "/workspace-profile/keys")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "s3cr3t") {
		t.Fatalf("the admin view shows the secret: %s", body)
	}
	var view struct {
		Introspection []struct {
			Endpoint  string  `json:"endpoint"`
			ClientID  string  `json:"client_id"`
			LastGood  *string `json:"last_good_call"`
			LastError string  `json:"last_error"`
			State     string  `json:"state"`
			Source    string  `json:"endpoint_source"`
		} `json:"introspection"`
	}
	if err := json.Unmarshal(body, &view); err != nil || len(view.Introspection) != 1 {
		t.Fatalf("%v %s", err, body)
	}
	v := view.Introspection[0]
	if v.Endpoint != e.URL+"/introspect" || v.ClientID != "edge" || v.LastGood == nil || !strings.Contains(v.LastError, "500") ||
		v.State != "in_use" || v.Source != "config" {
		t.Fatalf("admin view %+v", v)
	}
}
