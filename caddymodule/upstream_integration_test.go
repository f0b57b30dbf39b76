package caddymodule

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// replay answers with a raw HTTP response from testdata/legacy.
func replay(t *testing.T, raw []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
		if err != nil {
			t.Error(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(body)
	}
}

func upstreamCaddyfile(key jwtauthtest.Key, t *testing.T, to, extra string) string {
	return fmt.Sprintf(itGlobal+itSite+` {
	workspace_profile {
		jwks_file %s
		issuer %s
		audience %s
		max_upstream_body 64KiB
		upstream %s {
			transport http {
				response_header_timeout 400ms
			}
		}
		%s
	}
}
`, writeFile(t, "jwks.json", jwtauthtest.JWKS(t, key)), testIssuer, testAudience, to, extra)
}

func startUpstreamCaddy(t *testing.T, key jwtauthtest.Key, to string) *caddytest.Tester {
	tc := startCaddyfile(t, upstreamCaddyfile(key, t, to, ""))
	return tc
}

// TestUpstreamFixtures: every legacy response shape, replayed by a real
// backend behind a real Caddy, reaches the client exactly as its golden
// normalization says.
func TestUpstreamFixtures(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	backend := jwtauthtest.NewServer(t)
	tc := startUpstreamCaddy(t, k, strings.TrimPrefix(backend.URL, "http://"))
	tok := k.Mint(t, jwtauthtest.Claims("u-1"), nil)

	files, _ := filepath.Glob(filepath.Join("..", "testdata", "legacy", "*.http"))
	if len(files) < 20 {
		t.Fatalf("%d fixtures", len(files))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".http")
		t.Run(name, func(t *testing.T) {
			raw, _ := os.ReadFile(f)
			goldenRaw, err := os.ReadFile(filepath.Join("..", "testdata", "legacy", name+".golden.json"))
			if err != nil {
				t.Fatal(err)
			}
			var want profile.Normalized
			if err := json.Unmarshal(goldenRaw, &want); err != nil {
				t.Fatal(err)
			}
			backend.Serve(replay(t, raw))
			r := do(t, tc.Client, "GET", itBase+profilePath, bearer(tok), "")
			if r.status != want.Status {
				t.Fatalf("status %d, want %d: %s", r.status, want.Status, r.body)
			}
			if r.header.Get("Cache-Control") != "no-store" {
				t.Fatalf("Cache-Control %q", r.header.Get("Cache-Control"))
			}
			switch {
			case want.Problem != nil:
				var got profile.Problem
				_ = json.Unmarshal(r.body, &got)
				if got.Instance != profilePath || got.TraceID == "" {
					t.Fatalf("problem without instance or traceId: %s", r.body)
				}
				got.Instance, got.TraceID = "", ""
				if got != *want.Problem || r.header.Get("Content-Type") != "application/problem+json" {
					t.Fatalf("problem %+v, want %+v", got, *want.Problem)
				}
			case want.Envelope != nil:
				wantBody, _ := json.Marshal(want.Envelope)
				if !bytes.Equal(r.body, wantBody) || r.header.Get("Content-Type") != "application/json; charset=utf-8" {
					t.Fatalf("body\n got %s\nwant %s", r.body, wantBody)
				}
			default:
				if len(r.body) != 0 {
					t.Fatalf("304 with a body: %s", r.body)
				}
			}
		})
	}
}

// TestUpstreamRequestSeen checks the exact request the backend receives.
func TestUpstreamRequestSeen(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.ES256(), "k")
	backend := jwtauthtest.NewServer(t)
	tc := startUpstreamCaddy(t, k, strings.TrimPrefix(backend.URL, "http://"))
	c := jwtauthtest.Claims("u-42")
	c["UserType"] = 1
	tok := k.Mint(t, c, nil)
	backend.Serve(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Set-Cookie", "legacy=1; Path=/")
		w.Header().Set("ETag", `"legacy-7"`)
		w.Header().Set("Cache-Control", "public, max-age=600")
		w.Header().Set("X-Legacy-Node", "b2")
		_, _ = io.WriteString(w, `{"userId":"u-42","userName":"alice"}`)
	})

	r := do(t, tc.Client, "GET", itBase+profilePath+"?x=1&access_token="+tok+"&y=a%20b&x=2", map[string]string{
		"X-Workspace-User-Id": "forged", "x-workspace-role": "admin", "Accept-Encoding": "gzip",
	}, "")
	if r.status != 200 || r.header.Get("Set-Cookie") != "legacy=1; Path=/" || r.header.Get("ETag") != `"legacy-7"` ||
		r.header.Get("X-Legacy-Node") != "b2" || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("client got %d %v %s", r.status, r.header, r.body)
	}
	seen := backend.Requests()
	if len(seen) != 1 {
		t.Fatalf("%d requests reached the backend", len(seen))
	}
	got := seen[0]
	if got.RawQuery != "x=1&y=a%20b&x=2" || got.Header.Get("Authorization") != "Bearer "+tok ||
		got.Header.Get("X-Workspace-User-Id") != "u-42" || got.Header.Get("X-Workspace-User-Type") != "1" ||
		got.Header.Get("X-Workspace-Role") != "" || got.Header.Get("Accept-Encoding") != "identity" {
		t.Fatalf("backend saw query %q headers %v", got.RawQuery, got.Header)
	}

	// a PUT: validated at the edge, canonical body, warnings kept
	r = do(t, tc.Client, "PUT", itBase+profilePath, jsonPut(tok, ""), `{"firstname":"  Al ","nick":"x","Email":null,"LASTNAME":""}`)
	env := r.envelope(t)
	if r.status != 200 || itemCodes(env.Warnings) != "UnknownField@nick" {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	seen = backend.Requests()
	put := seen[len(seen)-1]
	// a refusal by the backend keeps the edge's warnings too
	backend.Serve(replay(t, []byte("HTTP/1.1 409 Conflict\r\nContent-Type: application/problem+json\r\n\r\n{\"title\":\"Conflict\",\"detail\":\"Locked.\"}")))
	r = do(t, tc.Client, "PUT", itBase+profilePath, jsonPut(tok, ""), `{"FirstName":"B","nick":"x"}`)
	if env = r.envelope(t); r.status != 409 || itemCodes(env.Errors) != "UpstreamError" || itemCodes(env.Warnings) != "UnknownField@nick" {
		t.Fatalf("backend refusal: %d %s", r.status, r.body)
	}
	if put.Method != "PUT" || string(put.Body) != `{"FirstName":"Al","LastName":""}` || put.Header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("backend saw %s %q %v", put.Method, put.Body, put.Header)
	}
}

// TestUpstreamRefusedNeverReachBackend: what the edge refuses, the backend
// never sees.
func TestUpstreamRefusedNeverReachBackend(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	backend := jwtauthtest.NewServer(t)
	backend.Serve(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	tc := startUpstreamCaddy(t, k, strings.TrimPrefix(backend.URL, "http://"))
	svc := jwtauthtest.Claims("robot")
	svc["UserType"] = 2
	good := k.Mint(t, jwtauthtest.Claims("u"), nil)
	cases := []struct {
		name   string
		method string
		hdr    map[string]string
		body   string
		status int
	}{
		{"no token", "GET", nil, "", 401},
		{"forged token", "GET", bearer(jwtauthtest.NewKey(t, jwa.RS256(), "k").Mint(t, jwtauthtest.Claims("u"), nil)), "", 401},
		{"service account", "GET", bearer(k.Mint(t, svc, nil)), "", 403},
		{"invalid PUT body", "PUT", jsonPut(good, ""), `{"UserName":"x"}`, 400},
		{"PUT not JSON", "PUT", map[string]string{"Authorization": "Bearer " + good, "Content-Type": "text/plain"}, "hi", 415},
		{"DELETE", "DELETE", bearer(good), "", 405},
	}
	for _, c := range cases {
		if r := do(t, tc.Client, c.method, itBase+profilePath, c.hdr, c.body); r.status != c.status {
			t.Errorf("%s: %d, want %d: %s", c.name, r.status, c.status, r.body)
		}
	}
	if n := len(backend.Requests()); n != 0 {
		t.Fatalf("%d refused requests reached the backend", n)
	}
	if r := do(t, tc.Client, "GET", itBase+profilePath, bearer(good), ""); r.status != 200 || len(backend.Requests()) != 1 {
		t.Fatalf("a good request did not reach the backend: %d", r.status)
	}
}

// TestUpstreamTripFailures: unreachable, slow, huge and truncated backends.
func TestUpstreamTripFailures(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	tok := k.Mint(t, jwtauthtest.Claims("u"), nil)

	t.Run("unreachable", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		addr := strings.TrimPrefix(dead.URL, "http://")
		dead.Close()
		tc := startUpstreamCaddy(t, k, addr)
		r := do(t, tc.Client, "GET", itBase+profilePath, bearer(tok), "")
		if r.status != 502 || itemCodes(r.envelope(t).Errors) != "UpstreamUnavailable" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})

	backend := jwtauthtest.NewServer(t)
	tc := startUpstreamCaddy(t, k, strings.TrimPrefix(backend.URL, "http://"))
	cases := []struct {
		name   string
		answer http.HandlerFunc
		status int
		code   string
	}{
		{"slow: the transport's response_header_timeout", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
			w.WriteHeader(200)
		}, 504, "UpstreamTimeout"},
		{"huge: over max_upstream_body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"userId":"` + strings.Repeat("x", 200<<10) + `"}`))
		}, 502, "UpstreamResponseTooLarge"},
		{"truncated: the connection drops mid-body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(200)
			_, _ = w.Write([]byte(`{"userId":`))
			w.(http.Flusher).Flush()
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		}, 502, "UpstreamInvalidResponse"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			backend.Serve(c.answer)
			start := time.Now()
			r := do(t, tc.Client, "GET", itBase+profilePath, bearer(tok), "")
			if r.status != c.status || itemCodes(r.envelope(t).Errors) != c.code {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("took %v", time.Since(start))
			}
		})
	}

	t.Run("a PUT is sent once", func(t *testing.T) {
		before := len(backend.Requests())
		backend.Serve(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
		r := do(t, tc.Client, "PUT", itBase+profilePath, jsonPut(tok, ""), `{"FirstName":"A"}`)
		if r.status != 502 || len(backend.Requests()) != before+1 {
			t.Fatalf("%d, %d backend requests", r.status, len(backend.Requests())-before)
		}
	})
}

// TestUpstreamClientHangsUp: a client that gives up during the trip is an
// access-log 499, and neither this module nor reverse_proxy logs an error.
func TestUpstreamClientHangsUp(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	backend := jwtauthtest.NewServer(t)
	released := make(chan struct{})
	backend.Serve(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // hold the answer until the edge gives up on it
		close(released)
	})
	logDir := t.TempDir()
	cfg := strings.Replace(upstreamCaddyfile(k, t, strings.TrimPrefix(backend.URL, "http://"), ""), "\tskip_install_trust\n",
		fmt.Sprintf("\tskip_install_trust\n\tlog {\n\t\toutput file %s\n\t\tlevel DEBUG\n\t}\n", filepath.Join(logDir, "caddy.log")), 1)
	cfg = strings.Replace(cfg, itSite+" {\n", fmt.Sprintf(itSite+" {\n\tlog {\n\t\toutput file %s\n\t}\n", filepath.Join(logDir, "access.log")), 1)
	cfg = strings.Replace(cfg, "response_header_timeout 400ms", "response_header_timeout 10s", 1)
	tc := newTester(t)
	tc.InitServer(cfg, "caddyfile")

	client := &http.Client{Timeout: 300 * time.Millisecond}
	req, _ := http.NewRequest("GET", itBase+profilePath, nil)
	req.Header.Set("Authorization", "Bearer "+k.Mint(t, jwtauthtest.Claims("u"), nil))
	if _, err := client.Do(req); err == nil {
		t.Fatal("the request was answered; it should have timed out on the client side")
	}
	select {
	case <-released:
	case <-time.After(5 * time.Second):
		t.Fatal("the backend request was not cancelled when the client left")
	}
	var access, all []byte
	waitFor(t, func() bool {
		access, _ = os.ReadFile(filepath.Join(logDir, "access.log"))
		return bytes.Contains(access, []byte(`"status":499`))
	})
	all, _ = os.ReadFile(filepath.Join(logDir, "caddy.log"))
	for _, line := range bytes.Split(all, []byte("\n")) {
		if bytes.Contains(line, []byte(`"level":"error"`)) || bytes.Contains(line, []byte("upstream trip failed")) {
			t.Fatalf("logged as a failure, for a client that hung up: %s", line)
		}
	}
}

// TestUpstreamDefaultTimeouts: an upstream without timeouts of its own
// gets the defaults; configured ones are kept.
func TestUpstreamDefaultTimeouts(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	jwks := writeFile(t, "jwks.json", jwtauthtest.JWKS(t, k))
	// reverse_proxy provisions only inside a running config
	newTester(t).InitServer(itGlobal+itSite+" {\n\trespond 204\n}\n", "caddyfile")
	for name, c := range map[string]struct {
		raw              string
		header, readWant time.Duration
	}{
		"no transport":     {`{"handler":"reverse_proxy","upstreams":[{"dial":"127.0.0.1:1"}]}`, DefaultUpstreamResponseHeaderTimeout, DefaultUpstreamReadTimeout},
		"transport, none":  {`{"handler":"reverse_proxy","transport":{"protocol":"http","dial_timeout":"1s"},"upstreams":[{"dial":"127.0.0.1:1"}]}`, DefaultUpstreamResponseHeaderTimeout, DefaultUpstreamReadTimeout},
		"user's own kept":  {`{"handler":"reverse_proxy","transport":{"protocol":"http","response_header_timeout":"2s","read_timeout":"3s"},"upstreams":[{"dial":"127.0.0.1:1"}]}`, 2 * time.Second, 3 * time.Second},
		"one of them kept": {`{"handler":"reverse_proxy","transport":{"protocol":"http","read_timeout":3000000000},"upstreams":[{"dial":"127.0.0.1:1"}]}`, DefaultUpstreamResponseHeaderTimeout, 3 * time.Second},
	} {
		h := &Handler{JWKSFiles: []string{jwks}, Issuers: []string{testIssuer},
			Audiences: []string{testAudience}, UpstreamRaw: json.RawMessage(c.raw)}
		if err := h.Provision(caddy.ActiveContext()); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Cleanup(func() { _ = h.Cleanup() })
		tr, ok := h.upstream.Transport.(*reverseproxy.HTTPTransport)
		if !ok {
			t.Fatalf("%s: transport %T", name, h.upstream.Transport)
		}
		if time.Duration(tr.ResponseHeaderTimeout) != c.header || time.Duration(tr.ReadTimeout) != c.readWant {
			t.Errorf("%s: response_header_timeout %v read_timeout %v", name, time.Duration(tr.ResponseHeaderTimeout), time.Duration(tr.ReadTimeout))
		}
	}
}
