package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// adminIntrospection is an entry of the admin keys view's introspection
// list, as an operator reads it.
type adminIntrospection struct {
	State              string  `json:"state"`
	Endpoint           *string `json:"endpoint"`
	EndpointSource     string  `json:"endpoint_source"`
	Discovery          string  `json:"discovery"`
	DiscoveredEndpoint string  `json:"discovered_endpoint"`
	PendingReason      string  `json:"pending_reason"`
	ClientID           string  `json:"client_id"`
	AuthMethod         string  `json:"auth_method"`
	LastGood           *string `json:"last_good_call"`
}

// adminIntrospections is the admin keys view's entries for one discovery
// document (all of them for "").
func adminIntrospections(t *testing.T, client *http.Client, discovery string) []adminIntrospection {
	t.Helper()
	r := do(t, client, "GET", itAdmin+"/workspace-profile/keys", nil, "")
	var view struct {
		Introspection []adminIntrospection `json:"introspection"`
	}
	if r.status != 200 {
		t.Fatalf("admin view: %d %s", r.status, r.body)
	}
	if err := json.Unmarshal([]byte(r.body), &view); err != nil {
		t.Fatalf("%v %s", err, r.body)
	}
	var out []adminIntrospection
	for _, v := range view.Introspection {
		if discovery == "" || v.Discovery == discovery {
			out = append(out, v)
		}
	}
	return out
}

// TestAdminShowsDiscoveredIntrospectionEndpoint: a route whose endpoint
// comes from discovery is on the admin view before the first opaque
// token, pending, with no endpoint in use and the one its document names;
// after the first token it is in use, the endpoint shown, its source
// still discovery, and no pending entry is left.
func TestAdminShowsDiscoveredIntrospectionEndpoint(t *testing.T) {
	e := newIntrospectionEndpoint(t)
	k := jwtauthtest.NewKey(t, jwa.ES256(), "k")
	tc, issuer := startDiscoveryIntrospection(t, k,
		`{"issuer":%[1]q,"jwks_uri":"%[2]s/keys","introspection_endpoint":"`+e.URL+`/introspect"}`)
	discovery := jwtauth.DiscoveryURL(issuer)
	endpoint := e.URL + "/introspect"

	var got []adminIntrospection
	deadline := time.Now().Add(15 * time.Second)
	for got = adminIntrospections(t, tc.Client, discovery); len(got) != 1 || got[0].DiscoveredEndpoint == ""; got = adminIntrospections(t, tc.Client, discovery) {
		if time.Now().After(deadline) {
			t.Fatalf("the discovery document not read within 15s: %+v", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	p := got[0]
	if p.State != "pending" || p.Endpoint == nil || *p.Endpoint != "" || p.EndpointSource != "discovery" ||
		p.DiscoveredEndpoint != endpoint || p.PendingReason != "taken on the first opaque token" ||
		p.ClientID != "edge" || p.AuthMethod != "client_secret_basic" || p.LastGood != nil {
		t.Fatalf("before the first opaque token: %+v", p)
	}
	if e.calls.Load() != 0 {
		t.Fatalf("the admin view called the endpoint (%d calls)", e.calls.Load())
	}

	tok := opaqueToken()
	e.mu.Lock()
	e.answers[tok] = fmt.Sprintf(`{"active":true,"iss":%q,"aud":%q,"sub":"intro-admin-discovered"}`, issuer, testAudience)
	e.mu.Unlock()
	if r := do(t, tc.Client, "GET", itBase+profilePath, bearer(tok), ""); r.status != 200 {
		t.Fatalf("opaque token: %d %s", r.status, r.body)
	}
	got = adminIntrospections(t, tc.Client, discovery)
	if len(got) != 1 {
		t.Fatalf("after the first opaque token, %d entries: %+v", len(got), got)
	}
	u := got[0]
	if u.State != "in_use" || u.Endpoint == nil || *u.Endpoint != endpoint || u.EndpointSource != "discovery" ||
		u.DiscoveredEndpoint != "" || u.PendingReason != "" || u.LastGood == nil {
		t.Fatalf("after the first opaque token: %+v", u)
	}
}

// TestAdminShowsDiscoveryWithoutIntrospectionEndpoint: a discovery
// document that names no introspection_endpoint leaves the route pending
// on the admin view, saying so, once the document is read.
func TestAdminShowsDiscoveryWithoutIntrospectionEndpoint(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.ES256(), "k")
	tc, issuer := startDiscoveryIntrospection(t, k, `{"issuer":%[1]q,"jwks_uri":"%[2]s/keys"}`)
	discovery := jwtauth.DiscoveryURL(issuer)
	var got []adminIntrospection
	eventually(t, 15*time.Second, "the discovery document is read", func() bool {
		got = adminIntrospections(t, tc.Client, discovery)
		return len(got) == 1 && got[0].PendingReason != "the discovery document was not read yet"
	})
	if p := got[0]; p.State != "pending" || *p.Endpoint != "" || p.DiscoveredEndpoint != "" ||
		p.PendingReason != "the discovery document names no introspection_endpoint" {
		t.Fatalf("%+v", p)
	}
}

// TestDiscoveredIntrospectionEndpointKeptUntilReload: the endpoint a
// discovery document names is taken once per config. When the document
// later names another, the running config keeps calling the first (a
// token only the new endpoint knows is refused); a reload takes the new
// one at provision, from the key source's latest read, so the admin view
// shows it in use at once, and the old introspector is closed.
func TestDiscoveredIntrospectionEndpointKeptUntilReload(t *testing.T) {
	first, second := newIntrospectionEndpoint(t), newIntrospectionEndpoint(t)
	k := jwtauthtest.NewKey(t, jwa.ES256(), "k")
	var named atomic.Pointer[string]
	named.Store(new(first.URL + "/introspect"))
	var reads atomic.Int64
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	issuer := srv.URL + "/tenant"
	mux.HandleFunc("/tenant/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":"%s/keys","introspection_endpoint":%q}`, issuer, srv.URL, *named.Load())
		reads.Add(1)
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(jwtauthtest.JWKS(t, k)) })
	config := func(maxBody string) string {
		return fmt.Sprintf(itGlobal+itSite+` {
	workspace_profile {
		discovery %s
		audience %s
		max_body %s
		min_refresh 100ms
		max_refresh 200ms
		storage memory
		create_missing
		introspection {
			client_id edge
			client_secret s3cr3t
		}
	}
}
`, issuer, testAudience, maxBody)
	}
	tc := startCaddyfile(t, config("64KiB"))
	discovery := jwtauth.DiscoveryURL(issuer)
	answer := fmt.Sprintf(`{"active":true,"iss":%q,"aud":%q,"sub":"intro-moved"}`, issuer, testAudience)
	known := func(e *introspectionEndpoint) string {
		tok := opaqueToken()
		e.mu.Lock()
		e.answers[tok] = answer
		e.mu.Unlock()
		return tok
	}
	get := func(tok string) int { return do(t, tc.Client, "GET", itBase+profilePath, bearer(tok), "").status }

	tok1 := known(first)
	eventually(t, 5*time.Second, "the first endpoint answers", func() bool { return get(tok1) == 200 })

	named.Store(new(second.URL + "/introspect"))
	after := reads.Load()
	eventually(t, 5*time.Second, "the document is read again", func() bool { return reads.Load() >= after+2 })
	tok2 := known(second)
	if s := get(tok2); s != 401 || second.calls.Load() != 0 {
		t.Fatalf("before the reload a token of the second endpoint got %d, the second endpoint %d calls", s, second.calls.Load())
	}
	if v := adminIntrospections(t, tc.Client, discovery); len(v) != 1 || *v[0].Endpoint != first.URL+"/introspect" {
		t.Fatalf("before the reload: %+v", v)
	}

	// a changed config: Caddy skips loading an identical one
	if err := loadCaddyfile(config("128KiB")); err != nil {
		t.Fatal(err)
	}
	v := adminIntrospections(t, tc.Client, discovery)
	if len(v) != 1 || v[0].State != "in_use" || *v[0].Endpoint != second.URL+"/introspect" || v[0].EndpointSource != "discovery" {
		t.Fatalf("right after the reload: %+v", v)
	}
	if n, _ := introspectorsInPool(); n != 1 {
		t.Fatalf("%d introspectors after the reload, want the new one only", n)
	}
	if s := get(tok2); s != 200 {
		t.Fatalf("after the reload a token of the second endpoint got %d", s)
	}
}
