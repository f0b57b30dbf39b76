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
// cache lookups are counted by result, the 503 under its own outcome, and
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
	active, inactive, failed, hit, miss, na := calls("active"), calls("inactive"), calls("failed"), cache("hit"), cache("miss"), unavailable()

	tok := opaqueToken()
	e.active(tok, `,"sub":"intro-metrics"`)
	do(t, client, "GET", itBase+profilePath, bearer(tok), "")           // miss, active
	do(t, client, "GET", itBase+profilePath, bearer(tok), "")           // hit
	do(t, client, "GET", itBase+profilePath, bearer(opaqueToken()), "") // miss, inactive
	e.failing.Store(true)
	do(t, client, "GET", itBase+profilePath, bearer(opaqueToken()), "") // miss, failed: 503
	for name, moved := range map[string]float64{
		"active": calls("active") - active, "inactive": calls("inactive") - inactive, "failed": calls("failed") - failed,
		"hit": cache("hit") - hit, "miss": cache("miss") - miss - 2, "introspection_unavailable": unavailable() - na,
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
		} `json:"introspection"`
	}
	if err := json.Unmarshal(body, &view); err != nil || len(view.Introspection) != 1 {
		t.Fatalf("%v %s", err, body)
	}
	v := view.Introspection[0]
	if v.Endpoint != e.URL+"/introspect" || v.ClientID != "edge" || v.LastGood == nil || !strings.Contains(v.LastError, "500") {
		t.Fatalf("admin view %+v", v)
	}
}
