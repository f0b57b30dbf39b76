package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/lestrrat-go/jwx/v3/jwa"
)

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDiscoveryIssuerPlaceholder: discovery {env.X} accepts the issuer the
// placeholder names, not the placeholder's text.
func TestDiscoveryIssuerPlaceholder(t *testing.T) {
	k := newTestKey(t, jwa.ES256(), "k")
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	issuer := srv.URL + "/tenant"
	mux.HandleFunc("/tenant/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q}`, issuer, srv.URL+"/keys")
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(jwksOf(t, k)) })
	t.Setenv("WSP_BOUNDARY_TEST_ISSUER", issuer)

	h := &Handler{
		Discovery:  []string{"{env.WSP_BOUNDARY_TEST_ISSUER}"},
		Audiences:  []string{testAudience},
		StorageRaw: json.RawMessage(`{"backend":"memory"}`),
	}
	provisionHandler(t, h)
	eventually(t, 5*time.Second, "discovery key set loaded", func() bool {
		for _, s := range h.verifier.sources {
			if s.current() != nil {
				return true
			}
		}
		return false
	})
	claims := claimsFor("u")
	claims["iss"] = issuer
	if _, aerr := h.verifier.verify(context.Background(), k.mint(t, claims, nil)); aerr != nil {
		t.Fatalf("token from the discovered issuer: %s %v", aerr.code, aerr)
	}
	claims["iss"] = "{env.WSP_BOUNDARY_TEST_ISSUER}"
	if _, aerr := h.verifier.verify(context.Background(), k.mint(t, claims, nil)); code(aerr) != codeInvalidIssuer {
		t.Fatalf("token naming the placeholder as issuer: %s, want InvalidIssuer", code(aerr))
	}
}

// TestRefreshOptionsConflict: max_refresh below min_refresh, or max_stale
// below max_refresh, once the defaults fill the unset ones, is a config
// error naming both options.
func TestRefreshOptionsConflict(t *testing.T) {
	base := func(min, max, stale time.Duration) *Handler {
		return &Handler{JWKSURLs: []string{"https://idp.example.com/jwks"}, Issuers: []string{"i"}, Audiences: []string{"a"},
			MinRefresh: caddy.Duration(min), MaxRefresh: caddy.Duration(max), MaxStale: caddy.Duration(stale)}
	}
	for name, tt := range map[string]struct {
		h    *Handler
		want string // "" for a valid config
	}{
		"max below min":         {base(30*time.Second, 10*time.Second, 0), "workspace_profile: max_refresh: 10s is shorter than min_refresh 30s"},
		"min above default max": {base(20*time.Minute, 0, 0), "workspace_profile: max_refresh: 15m (the default) is shorter than min_refresh 20m"},
		"stale below max":       {base(0, 2*time.Hour, time.Hour), "workspace_profile: max_stale: 1h is shorter than max_refresh 2h"},
		"stale below default":   {base(0, 0, 10*time.Minute), "workspace_profile: max_stale: 10m is shorter than max_refresh 15m (the default)"},
		"max above def. stale":  {base(0, 48*time.Hour, 0), "workspace_profile: max_stale: 24h (the default) is shorter than max_refresh 48h"},
		"odd durations":         {base(90*time.Second, 0, 0), ""},
		"defaults":              {base(0, 0, 0), ""},
		"all set":               {base(time.Minute, time.Hour, 2*time.Hour), ""},
		"equal":                 {base(15*time.Minute, 0, 15*time.Minute), ""},
		"max equals def. stale": {base(0, 24*time.Hour, 0), ""},
		"min 90s max 2m30s":     {base(90*time.Second, 150*time.Second, 0), ""},
		"seconds formatting":    {base(0, 90*time.Minute+30*time.Second, time.Hour), "workspace_profile: max_stale: 1h is shorter than max_refresh 1h30m30s"},
	} {
		t.Run(name, func(t *testing.T) {
			err := tt.h.validateConfig()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || err.Error() != tt.want):
				t.Fatalf("error %v, want %s", err, tt.want)
			}
		})
	}

	// the same through the Caddyfile: the parser fills the fields,
	// provision refuses them
	var h Handler
	input := "workspace_profile {\njwks_url https://idp.example.com/jwks\nissuer i\naudience a\nmin_refresh 20m\n}"
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := newTestContext()
	defer cancel()
	err := h.Provision(ctx)
	_ = h.Cleanup()
	if err == nil || !strings.Contains(err.Error(), "max_refresh") || !strings.Contains(err.Error(), "min_refresh 20m") {
		t.Fatalf("Caddyfile min_refresh 20m alone: %v", err)
	}
}
