package caddymodule

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
	"github.com/workspace-edge/caddy-workspace-profile/profile/memstore"
)

// The logged sites: a real Caddy in this process for the rows of the
// write endpoint and of privacy and log hygiene (catalogue parts D and E,
// see docs/threat-model.md).
//
// The Caddy of these tests runs three sites: A, storage mode on a store
// the test observes (test_counting below: the memory store with a count of
// its calls); B, upstream mode in front of a scripted backend; C, upstream
// mode in front of a port nobody listens on, with query_token off. Sites A
// and B log through Caddyfile.example's own access-log block (read from
// the file, only its output changed); the default logger (the module's
// own lines, Caddy's error and debug lines) writes to a file at DEBUG.
// Every row ends by scanning every line of both files for the token, its
// payload and its signature segment.

// failableStore is the memory store with a count of the calls that reached
// it; down makes every call fail as an unreachable database does.
type failableStore struct {
	profile.Store
	gets, updates atomic.Int64
	down          atomic.Bool
}

var errFailableStoreDown = fmt.Errorf("%w: dial tcp 10.9.9.9:5432: connect: connection refused", profile.ErrUnavailable)

func (s *failableStore) Get(ctx context.Context, id string) (profile.Profile, error) {
	s.gets.Add(1)
	if s.down.Load() {
		return profile.Profile{}, errFailableStoreDown
	}
	return s.Store.Get(ctx, id)
}

func (s *failableStore) Update(ctx context.Context, id string, fn profile.UpdateFunc) (profile.Profile, error) {
	s.updates.Add(1)
	if s.down.Load() {
		return profile.Profile{}, errFailableStoreDown
	}
	return s.Store.Update(ctx, id, fn)
}

func (s *failableStore) calls() int64 { return s.gets.Load() + s.updates.Load() }

// failableStorage is the storage guest module of the store above, for the
// test binary only; the last one provisioned is lastFailableStore.
type failableStorage struct {
	store *failableStore
}

var lastFailableStore atomic.Pointer[failableStore]

func init() { caddy.RegisterModule(failableStorage{}) }

func (failableStorage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.workspace_profile.storage.test_counting", New: func() caddy.Module { return new(failableStorage) }}
}

func (s *failableStorage) Provision(caddy.Context) error {
	s.store = &failableStore{Store: memstore.New()}
	lastFailableStore.Store(s.store)
	return nil
}

func (s *failableStorage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error { d.Next(); return nil }
func (s *failableStorage) ProfileStore() profile.Store                     { return s.store }
func (s *failableStorage) StoreName() string                               { return "test_counting" }

// exampleLogBlock is the site's log block of Caddyfile.example, its
// output turned into the file at path.
func exampleLogBlock(t testing.TB, path string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	var block []string
	depth := 0
	for line := range strings.SplitSeq(string(raw), "\n") {
		trimmed := strings.TrimSpace(line)
		if depth == 0 && trimmed != "log {" {
			continue
		}
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		depth += strings.Count(trimmed, "{") - strings.Count(trimmed, "}")
		block = append(block, line)
		if depth == 0 {
			break
		}
	}
	out := strings.Join(block, "\n")
	if depth != 0 || !strings.Contains(out, "output stdout") || !strings.Contains(out, "delete access_token") {
		t.Fatalf("Caddyfile.example's log block not found as expected:\n%s", out)
	}
	return strings.Replace(out, "output stdout", "output file "+path, 1)
}

type loggedSites struct {
	key                  jwtauthtest.Key
	store                *failableStore
	backend              *jwtauthtest.Server
	accessLog, moduleLog string
	a, b, c              string // base URLs of the sites
	aAddr                string // 127.0.0.1:<port> of site A, for raw sockets
	client               *http.Client
}

func startLoggedSites(t *testing.T) *loggedSites {
	t.Helper()
	dir := t.TempDir()
	s := &loggedSites{key: jwtauthtest.NewKey(t, jwa.RS256(), "de"), backend: jwtauthtest.NewServer(t),
		accessLog: filepath.Join(dir, "access.log"), moduleLog: filepath.Join(dir, "module.log"),
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 128, DisableCompression: true}}}
	t.Cleanup(s.client.CloseIdleConnections)
	s.backend.Set(200, []byte(`{"userId":"u-1","userName":"alice"}`))
	ports := freePorts(3)
	dead := freePorts(1)[0]
	jwks := writeFile(t, "jwks.json", jwtauthtest.JWKS(t, s.key))
	s.a, s.aAddr = itSite, itAddr
	s.b = "http://localhost:" + strconv.Itoa(ports[1])
	s.c = "http://localhost:" + strconv.Itoa(ports[2])
	logBlock := exampleLogBlock(t, s.accessLog)
	auth := fmt.Sprintf("jwks_file %s\n\t\tissuer %s\n\t\taudience %s", jwks, testIssuer, testAudience)
	cfg := fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	https_port %d
	skip_install_trust
	servers {
		timeouts {
			read_header 2s
			read_body 2s
		}
	}
	log default {
		output file %s
		level DEBUG
	}
}
%s {
	%s
	workspace_profile {
		%s
		storage test_counting
		create_missing
		max_body 16KiB
	}
	handle /api/* {
		respond "legacy api" 299
	}
}
%s {
	%s
	workspace_profile {
		%s
		upstream %s {
			transport http {
				response_header_timeout 1s
			}
		}
	}
}
%s {
	workspace_profile {
		%s
		query_token off
		upstream 127.0.0.1:%d
	}
}
`, itAdminPort, itPort, ports[0], s.moduleLog, s.a, logBlock, auth, s.b, logBlock, auth, strings.TrimPrefix(s.backend.URL, "http://"),
		s.c, auth, dead)
	startCaddyfile(t, cfg)
	s.store = lastFailableStore.Load()
	if s.store == nil {
		t.Fatal("the counting store was not provisioned")
	}
	return s
}

func (s *loggedSites) token(t testing.TB, sub string) string {
	c := jwtauthtest.Claims(sub)
	c["email"] = sub + "@mail.example"
	return s.key.Mint(t, c, nil)
}

// do sends one request; body nil sends none.
func (s *loggedSites) do(t testing.TB, method, url string, hdr map[string]string, body []byte) itResponse {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err)
		return itResponse{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := itResponse{resp.StatusCode, resp.Header, b}
	checkAnswer(t, r)
	return r
}

// put is a PUT of body as JSON by tok on site A.
func (s *loggedSites) put(t testing.TB, tok, body string, extra ...string) itResponse {
	t.Helper()
	return s.do(t, "PUT", s.a+profilePath, jsonPut(tok, "", extra...), []byte(body))
}

func (s *loggedSites) get(t testing.TB, tok string) itResponse {
	t.Helper()
	return s.do(t, "GET", s.a+profilePath, bearer(tok), nil)
}

// checkAnswer holds every answer of the route to the contract's shape
// (D22): an envelope whose Success is status < 400 and whose Errors is
// empty exactly when it succeeded, with the envelope headers; or problem
// details whose status is the HTTP status.
func checkAnswer(t testing.TB, r itResponse) {
	t.Helper()
	switch r.header.Get("Content-Type") {
	case "application/json; charset=utf-8":
		var env struct {
			Errors, Warnings []json.RawMessage
			Success          *bool
		}
		if err := json.Unmarshal(r.body, &env); err != nil || env.Success == nil || env.Errors == nil || env.Warnings == nil {
			t.Errorf("%d: not an envelope: %s", r.status, r.body)
			return
		}
		if *env.Success != (r.status < 400) || (len(env.Errors) == 0) != *env.Success {
			t.Errorf("%d: Success %v with %d errors", r.status, *env.Success, len(env.Errors))
		}
		if r.header.Get("Cache-Control") != "no-store" || r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%d: envelope headers %v", r.status, r.header)
		}
	case "application/problem+json":
		var p struct{ Status int }
		if err := json.Unmarshal(r.body, &p); err != nil || p.Status != r.status {
			t.Errorf("%d: problem %s", r.status, r.body)
		}
	}
}

func (s *loggedSites) noStoreCall(t testing.TB, before int64, what string) {
	t.Helper()
	if n := s.store.calls() - before; n != 0 {
		t.Errorf("%s: %d store call(s)", what, n)
	}
}

// noSecrets fails when any line of the access log or the module's log
// holds one of secrets; a token counts with its payload and signature
// segments. The access log must have lines (else nothing was checked).
func (s *loggedSites) noSecrets(t testing.TB, secrets ...string) {
	t.Helper()
	var all []string
	for _, sec := range secrets {
		all = append(all, sec)
		if parts := strings.Split(sec, "."); len(parts) == 3 {
			all = append(all, parts[1], parts[2])
		}
	}
	// zap writes each line before the request's answer is sent, but the
	// access log line is written after: give it a moment
	time.Sleep(50 * time.Millisecond)
	access, _ := os.ReadFile(s.accessLog)
	if !bytes.Contains(access, []byte(`"uri"`)) {
		t.Errorf("the access log %s is empty: nothing was checked", s.accessLog)
	}
	module, _ := os.ReadFile(s.moduleLog)
	for name, data := range map[string][]byte{"access log": access, "module log": module} {
		for n, line := range bytes.Split(data, []byte("\n")) {
			for _, sec := range all {
				if sec != "" && bytes.Contains(line, []byte(sec)) {
					t.Errorf("%s line %d holds %.12s...: %.300s", name, n+1, sec, line)
				}
			}
		}
	}
}

func envOf(t testing.TB, r itResponse) envelopeBody {
	t.Helper()
	var e envelopeBody
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("%d: %s", r.status, r.body)
	}
	return e
}

func wantRefused(t testing.TB, r itResponse, status int, codes string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d: %s", r.status, status, r.body)
		return
	}
	if codes != "" {
		if got := itemCodes(envOf(t, r).Errors); !strings.Contains(got, codes) {
			t.Errorf("errors %s, want %s", got, codes)
		}
	}
}

// rawExchange writes req to addr in pieces (each after pause) and reads
// until the server closes the connection or 8 s pass: it returns what was
// read and how long the whole took.
func rawExchange(t testing.TB, addr string, pieces []string, pause time.Duration) (string, time.Duration) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	_ = conn.SetDeadline(start.Add(8 * time.Second))
	var got bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(&got, conn)
	}()
	for _, p := range pieces {
		if _, err := io.WriteString(conn, p); err != nil {
			break
		}
		select {
		case <-done:
		case <-time.After(pause):
			continue
		}
		break
	}
	<-done
	return got.String(), time.Since(start)
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// profileUnderAttack is the logged sites with one profile of known values
// (d-user's, on site A) that the write endpoint's rows try to break.
type profileUnderAttack struct {
	s       *loggedSites
	tok     string            // d-user's token
	jsonHdr map[string]string // a JSON PUT by d-user
}

func newProfileUnderAttack(t *testing.T) *profileUnderAttack {
	s := startLoggedSites(t)
	tok := s.token(t, "d-user")
	// the profile exists with known values before the rows try to break it
	if r := s.put(t, tok, `{"UserName":"dUser","FirstName":"Before","LastName":"Last","Email":"d@x.io"}`); r.status != 200 {
		t.Fatalf("setup: %d %s", r.status, r.body)
	}
	return &profileUnderAttack{s: s, tok: tok, jsonHdr: jsonPut(tok, "")}
}

// unchanged fails when the profile no longer holds its known values.
func (f *profileUnderAttack) unchanged(t *testing.T) {
	t.Helper()
	d := envOf(t, f.s.get(t, f.tok)).Data
	if d == nil || d.FirstName == nil || *d.FirstName != "Before" || *d.Email != "d@x.io" || *d.LastName != "Last" {
		t.Errorf("the profile changed: %+v", d)
	}
}

// refusedRow PUTs body with hdr on site A and wants it refused with status
// and codes, without a store call.
func (f *profileUnderAttack) refusedRow(t *testing.T, name string, hdr map[string]string, body []byte, status int, codes string) {
	t.Helper()
	before := f.s.store.calls()
	r := f.s.do(t, "PUT", f.s.a+profilePath, hdr, body)
	wantRefused(t, r, status, codes)
	f.s.noStoreCall(t, before, name)
}
