package caddymodule

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
	"github.com/workspace-edge/caddy-workspace-profile/internal/oidcprovidertest"
)

// RFC 9701 signed introspection answers from oidc-provider, through a real
// Caddy. oidc-provider signs every client's answers with RS256 while its
// jwtIntrospection feature is on (harness default), when asked with
// Accept: application/token-introspection+jwt.

const mediaSignedIntrospection = "application/token-introspection+jwt"

// introspectionCall is one call that went through an introspectionRecorder.
type introspectionCall struct {
	accept      string // the module's Accept header
	status      int
	contentType string // the provider's answer's
	body        []byte
}

// introspectionRecorder is a reverse proxy in front of the provider's
// introspection endpoint that keeps every call's Accept header and the
// answer as it came, to show which form of answer the module asked for
// and got.
type introspectionRecorder struct {
	url   string // where the module is to send its calls
	mu    sync.Mutex
	calls []introspectionCall
}

func newIntrospectionRecorder(t *testing.T, p *oidcprovidertest.Provider) *introspectionRecorder {
	t.Helper()
	target, err := url.Parse(p.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	rec := &introspectionRecorder{}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) },
		ModifyResponse: func(resp *http.Response) error {
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			resp.Body = io.NopCloser(bytes.NewReader(body))
			rec.mu.Lock()
			rec.calls = append(rec.calls, introspectionCall{accept: resp.Request.Header.Get("Accept"),
				status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: body})
			rec.mu.Unlock()
			return nil
		},
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	rec.url = srv.URL + strings.TrimPrefix(p.IntrospectionEndpoint(), p.Issuer())
	return rec
}

func (rec *introspectionRecorder) recorded() []introspectionCall {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]introspectionCall(nil), rec.calls...)
}

// signedAnswer decodes a signed answer's header and payload (no signature
// check: the module does that; this shows what it was given).
func signedAnswer(t *testing.T, jws []byte) (header, payload map[string]any) {
	t.Helper()
	parts := strings.Split(string(jws), ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %.80s", jws)
	}
	out := [2]map[string]any{}
	for i := range out {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(b, &out[i]) != nil {
			t.Fatalf("JWS part %d: %v %.80s", i, err, b)
		}
	}
	return out[0], out[1]
}

// waitForKeys waits until the route's key source holds keys, before any
// opaque token is sent: a signed answer read with no keys yet would be a
// failed call, and failed calls make the module fail fast for a while.
func waitForKeys(t *testing.T, tc *caddytest.Tester) {
	t.Helper()
	eventually(t, 10*time.Second, "the key set is fetched", func() bool {
		r := do(t, tc.Client, http.MethodGet, itAdmin+"/workspace-profile/keys", nil, "")
		var view struct {
			Sources []struct {
				Keys []json.RawMessage `json:"keys"`
			} `json:"sources"`
		}
		if r.status != http.StatusOK || json.Unmarshal(r.body, &view) != nil {
			t.Fatalf("admin view of the key sets: %d %s", r.status, r.body)
		}
		return len(view.Sources) > 0 && len(view.Sources[0].Keys) > 0
	})
}

// introspectionLastError is the admin view's last_error of the route's
// one introspection client.
func introspectionLastError(t *testing.T, tc *caddytest.Tester) string {
	t.Helper()
	r := do(t, tc.Client, http.MethodGet, itAdmin+"/workspace-profile/keys", nil, "")
	var view struct {
		Introspection []struct {
			LastError string `json:"last_error"`
		} `json:"introspection"`
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &view) != nil || len(view.Introspection) != 1 {
		t.Fatalf("admin view of the introspection clients: %d %s", r.status, r.body)
	}
	return view.Introspection[0].LastError
}

// TestOIDCProviderSignedIntrospection: with `response jwt`, the module
// asks oidc-provider for signed answers (RFC 9701) and gets them (a proxy
// in front of the endpoint records Accept and the answer's Content-Type,
// typ, iss and aud); verified with the provider's key set found by
// discovery, they read and write their owner's profile, make a service
// account's token the 403 and a revoked token the 401 after cache_ttl.
// The same route with `response json` asks for and gets plain JSON.
func TestOIDCProviderSignedIntrospection(t *testing.T) {
	p := startOIDCProvider(t)
	for _, mode := range []struct{ response, accept, contentType string }{
		{"jwt", mediaSignedIntrospection, mediaSignedIntrospection + "; charset=utf-8"},
		{"json", "application/json", "application/json; charset=utf-8"},
	} {
		t.Run("response "+mode.response, func(t *testing.T) {
			rec := newIntrospectionRecorder(t, p)
			tc := startCaddyfile(t, oidcRoute{keys: "discovery " + p.Issuer(), endpoint: rec.url,
				edge: oidcEdgeBasic, response: mode.response}.site(p))
			waitForKeys(t, tc)
			url := itBase + profilePath

			tok := p.MustClientCredentialsToken(t, oidcApp.ID, oidcApp.Secret, oidcOpaqueAPI)
			r := do(t, tc.Client, "GET", url, bearer(tok), "")
			if r.status != 200 || !strings.Contains(string(r.body), `"UserId":"app-user-1"`) {
				t.Fatalf("GET: %d %s", r.status, r.body)
			}
			r = do(t, tc.Client, "PUT", url, map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/json"},
				`{"FirstName":"Sigrid"}`)
			if r.status != 200 || !strings.Contains(string(r.body), `"FirstName":"Sigrid"`) {
				t.Fatalf("PUT: %d %s", r.status, r.body)
			}
			svc := p.MustClientCredentialsToken(t, oidcService.ID, oidcService.Secret, oidcOpaqueAPI)
			if r = do(t, tc.Client, "GET", url, bearer(svc), ""); r.status != 403 || r.problemCode(t) != codeServiceAccountForbidden {
				t.Fatalf("service account: %d %s", r.status, r.body)
			}

			// Two calls (the app's token, answered once and cached, and the
			// service account's), each asked for and answered in the
			// route's form.
			calls := rec.recorded()
			if len(calls) != 2 {
				t.Fatalf("%d introspection calls, want 2", len(calls))
			}
			for i, c := range calls {
				if c.status != 200 || c.accept != mode.accept || c.contentType != mode.contentType {
					t.Fatalf("call %d: Accept %q, answered %d %q", i, c.accept, c.status, c.contentType)
				}
				if mode.response == "json" {
					if !json.Valid(c.body) {
						t.Fatalf("call %d: not JSON: %.80s", i, c.body)
					}
					continue
				}
				h, claims := signedAnswer(t, c.body)
				ti, _ := claims["token_introspection"].(map[string]any)
				if h["typ"] != "token-introspection+jwt" || h["alg"] != "RS256" || claims["iss"] != p.Issuer() ||
					claims["aud"] != oidcEdgeBasic.ID || ti["active"] != true || ti["aud"] != oidcOpaqueAPI {
					t.Fatalf("call %d: signed answer %v %v", i, h, claims)
				}
			}

			// Inactive answers come signed too.
			r = revokeAndAwait401(t, p, tc, url, tok)
			calls = rec.recorded()
			if last := calls[len(calls)-1]; mode.response == "jwt" {
				_, claims := signedAnswer(t, last.body)
				if ti, _ := claims["token_introspection"].(map[string]any); len(ti) != 1 || ti["active"] != false {
					t.Fatalf("the revoked token's answer %v", claims)
				}
			}
		})
	}
}

// TestOIDCProviderSignedIntrospectionRefused: signed answers the module
// must not believe, each an answer oidc-provider really gave for an
// active token, are a failed call: 503 IntrospectionUnavailable with
// Retry-After, never a 401 (nothing trustworthy was learnt of the token),
// and the admin view names the reason. A signature by a key that is not
// in the route's key set (the same kid, another key); an answer signed
// with HS256 keyed with the client's own secret (a client holding the
// secret could forge it; the route accepts no HMAC); and a plain JSON
// answer when a signed one was asked for (a provider without
// jwtIntrospection ignores the Accept header).
func TestOIDCProviderSignedIntrospectionRefused(t *testing.T) {
	edgeHMAC := oidcprovidertest.Client{ID: "edge-hmac", Secret: "edge-hmac-secret-of-at-least-32-bytes",
		IntrospectionSignedResponseAlg: "HS256"}
	p := oidcprovidertest.Start(t, oidcprovidertest.Config{
		Clients:    []oidcprovidertest.Client{oidcEdgeBasic, edgeHMAC, oidcApp},
		Resources:  []oidcprovidertest.Resource{{Indicator: oidcOpaqueAPI}},
		EnabledJWA: map[string][]string{"introspectionSigningAlgValues": {"RS256", "HS256"}},
	})
	unsigned := oidcprovidertest.Start(t, oidcprovidertest.Config{
		Clients:   []oidcprovidertest.Client{oidcEdgeBasic, oidcApp},
		Resources: []oidcprovidertest.Resource{{Indicator: oidcOpaqueAPI}},
		Features:  map[string]map[string]any{"jwtIntrospection": {"enabled": false}},
	})
	// Another RS256 key under the provider's own kid.
	stranger := jwtauthtest.NewKey(t, jwa.RS256(), "test-rs256")
	strangerKeys := writeFile(t, "stranger.json", jwtauthtest.JWKS(t, stranger))

	for _, c := range []struct {
		name        string
		p           *oidcprovidertest.Provider
		keys        string
		edge        oidcprovidertest.Client
		contentType string // of the provider's answer
		lastError   string
	}{
		{"signed by a key not in the route's key set", p, "issuer " + p.Issuer() + "\n\t\tjwks_file " + strangerKeys,
			oidcEdgeBasic, mediaSignedIntrospection, "signed answer refused: The signed document's signature is invalid."},
		{"signed with HS256 keyed with the client secret", p, "discovery " + p.Issuer(),
			edgeHMAC, mediaSignedIntrospection, "signed answer refused: The signed document's algorithm is not accepted."},
		{"plain JSON when a signed answer was asked for", unsigned, "discovery " + unsigned.Issuer(),
			oidcEdgeBasic, "application/json", "signed answer refused: The signed document is not a compact JWS."},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := newIntrospectionRecorder(t, c.p)
			tc := startCaddyfile(t, oidcRoute{keys: c.keys, endpoint: rec.url, edge: c.edge, response: "jwt"}.site(c.p))
			waitForKeys(t, tc)
			tok := c.p.MustClientCredentialsToken(t, oidcApp.ID, oidcApp.Secret, oidcOpaqueAPI)
			r := do(t, tc.Client, "GET", itBase+profilePath, bearer(tok), "")
			if r.status != 503 || r.problemCode(t) != "IntrospectionUnavailable" || r.header.Get("Retry-After") != "5" {
				t.Fatalf("%d %v %s, want 503 IntrospectionUnavailable with Retry-After 5", r.status, r.header, r.body)
			}
			calls := rec.recorded()
			if len(calls) != 1 || calls[0].status != 200 || calls[0].accept != mediaSignedIntrospection ||
				!strings.HasPrefix(calls[0].contentType, c.contentType) {
				for _, call := range calls {
					t.Logf("call: Accept %q, answered %d %q %.200s", call.accept, call.status, call.contentType, call.body)
				}
				t.Fatalf("%d calls, want one asking for %s, answered 200 %s", len(calls), mediaSignedIntrospection, c.contentType)
			}
			// The provider did say the token is active.
			active := calls[0].body
			if c.contentType == mediaSignedIntrospection {
				_, claims := signedAnswer(t, calls[0].body)
				active, _ = json.Marshal(claims["token_introspection"])
			}
			var answer struct{ Active bool }
			if json.Unmarshal(active, &answer) != nil || !answer.Active {
				t.Fatalf("the provider's answer %s", active)
			}
			if got := introspectionLastError(t, tc); got != c.lastError {
				t.Fatalf("last_error %q, want %q", got, c.lastError)
			}
		})
	}
}
