package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"go.uber.org/zap"

	"github.com/workspace-edge/caddy-workspace-profile/internal/authn"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// BenchmarkUpstream measures the upstream path through a real Caddy (caddytest,
// loopback HTTP with keep-alive) against Caddy's bare reverse_proxy to the
// same httptest backend answering a 300-byte legacy profile, in one config.
// The handler's own cost is (route - verification) / bare, where the token
// verification is timed in-process on the same token in the same loop, so
// that only rewriting, buffering and normalization count.
//
//	go test ./caddymodule -run '^$' -bench BenchmarkUpstream -benchmem
func BenchmarkUpstream(b *testing.B) {
	legacy := `{"userId":"u-42","userName":"alice","email":"alice@example.com","firstName":"Alice","lastName":"Liddell",` +
		`"userType":0,"createdAt":"2019-03-01T10:00:00Z","updatedAt":"2024-11-02T08:30:00Z","locale":"en-GB","timeZone":"Europe/London",` +
		`"avatar":"/avatars/u-42.png","department":"Engineering","title":"Developer"}`
	if len(legacy) < 280 || len(legacy) > 320 {
		b.Fatalf("legacy body is %d bytes, want about 300", len(legacy))
	}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, legacy)
	}))
	defer backend.Close()
	dial := strings.TrimPrefix(backend.URL, "http://")

	k := jwtauthtest.NewKey(b, jwa.RS256(), "k")
	jwksPath := writeFile(b, "jwks.json", jwtauthtest.JWKS(b, k))
	tc := newTester(b)
	tc.InitServer(fmt.Sprintf(itGlobal+itSite+` {
	workspace_profile {
		jwks_file %s
		issuer %s
		audience %s
		token_cache 0
		upstream %s
	}
	handle /bare/* {
		reverse_proxy %s
	}
}
`, jwksPath, testIssuer, testAudience, dial, dial), "caddyfile")
	if b.Failed() {
		b.FailNow()
	}
	tok := k.Mint(b, jwtauthtest.Claims("u-42"), nil)
	src, err := jwtauth.LoadFile(jwksPath, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	v, err := jwtauth.New(jwtauth.Config{Sources: []jwtauth.Source{src}, Algorithms: []string{"RS256"},
		Issuers: []string{testIssuer}, Audiences: []string{testAudience}})
	if err != nil {
		b.Fatal(err)
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	get := func(path string, auth bool) {
		req, _ := http.NewRequest("GET", itBase+path, nil)
		if auth {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(body) == 0 {
			b.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
	verify := func() {
		if _, aerr := v.Verify(context.Background(), tok); aerr != nil {
			b.Fatal(aerr)
		}
	}
	loop := func(f func()) func(*testing.B) {
		return func(b *testing.B) {
			for b.Loop() {
				f()
			}
		}
	}
	allocs := func(f func(*testing.B)) func(*testing.B) {
		return func(b *testing.B) { b.ReportAllocs(); f(b) }
	}
	// In-process: the running config's context provisions a handler and a
	// bare reverse_proxy to the same backend; both are driven with
	// recorders, and serveUpstream is called after one verification, so
	// the difference is exactly rewriting, buffering and normalization.
	ctx := caddy.ActiveContext()
	h := &Handler{JWKSFiles: []string{jwksPath}, Issuers: []string{testIssuer}, Audiences: []string{testAudience},
		UpstreamRaw: json.RawMessage(fmt.Sprintf(`{"handler":"reverse_proxy","upstreams":[{"dial":%q}]}`, dial))}
	if err := h.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	defer h.Cleanup()
	bare := new(reverseproxy.Handler)
	_ = json.Unmarshal([]byte(fmt.Sprintf(`{"upstreams":[{"dial":%q}]}`, dial)), bare)
	if err := bare.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	defer bare.Cleanup()
	c, aerr := h.verifier.Verify(context.Background(), tok)
	if aerr != nil {
		b.Fatal(aerr)
	}
	srv := &caddyhttp.Server{}
	prepared := func() (*httptest.ResponseRecorder, *http.Request) {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("GET", profilePath+"?x=1", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		return rec, caddyhttp.PrepareRequest(r, caddy.NewReplacer(), rec, srv)
	}
	inHandler := func() {
		rec, r := prepared()
		if err := h.serveUpstream(rec, r, authn.Principal{Claims: c, Method: authn.MethodJWT, Credential: authn.Credential{Token: tok}}); err != nil || rec.Code != 200 {
			b.Fatalf("%v %d %s", err, rec.Code, rec.Body)
		}
	}
	inBare := func() {
		rec, r := prepared()
		if err := bare.ServeHTTP(rec, r, noNext); err != nil || rec.Code != 200 {
			b.Fatalf("%v %d", err, rec.Code)
		}
	}
	b.Run("in-process/handler", allocs(loop(inHandler)))
	b.Run("in-process/bare-reverse_proxy", allocs(loop(inBare)))
	b.Run("in-process/ratio", func(b *testing.B) {
		var th, tb time.Duration
		for b.Loop() {
			t0 := time.Now()
			inHandler()
			t1 := time.Now()
			inBare()
			t2 := time.Now()
			th, tb = th+t1.Sub(t0), tb+t2.Sub(t1)
		}
		b.ReportMetric(float64(th.Nanoseconds())/float64(b.N), "handler-ns/op")
		b.ReportMetric(float64(tb.Nanoseconds())/float64(b.N), "bare-ns/op")
		b.ReportMetric(float64(th)/float64(tb), "x-bare")
	})

	// End to end through the server, for reference.
	b.Run("route", loop(func() { get(profilePath, true) }))
	b.Run("bare-reverse_proxy", loop(func() { get("/bare/x", false) }))
	b.Run("verification", loop(verify))
	b.Run("ratio", func(b *testing.B) {
		var tr, tb, tv time.Duration
		for b.Loop() {
			t0 := time.Now()
			get(profilePath, true)
			t1 := time.Now()
			get("/bare/x", false)
			t2 := time.Now()
			verify()
			t3 := time.Now()
			tr, tb, tv = tr+t1.Sub(t0), tb+t2.Sub(t1), tv+t3.Sub(t2)
		}
		n := float64(b.N)
		b.ReportMetric(float64(tr.Nanoseconds())/n, "route-ns/op")
		b.ReportMetric(float64(tb.Nanoseconds())/n, "bare-ns/op")
		b.ReportMetric(float64(tv.Nanoseconds())/n, "verify-ns/op")
		b.ReportMetric(float64(tr-tv)/float64(tb), "x-bare-without-verification")
	})
}
