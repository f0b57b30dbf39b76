package caddymodule

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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

// threats.md parts D (the JSON write endpoint) and E (privacy and log
// hygiene), one subtest per row, through a real Caddy in this process.
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

// deCountStore is the memory store with a count of the calls that reached
// it; down makes every call fail as an unreachable database does.
type deCountStore struct {
	profile.Store
	gets, updates atomic.Int64
	down          atomic.Bool
}

var errDEDown = fmt.Errorf("%w: dial tcp 10.9.9.9:5432: connect: connection refused", profile.ErrUnavailable)

func (s *deCountStore) Get(ctx context.Context, id string) (profile.Profile, error) {
	s.gets.Add(1)
	if s.down.Load() {
		return profile.Profile{}, errDEDown
	}
	return s.Store.Get(ctx, id)
}

func (s *deCountStore) Update(ctx context.Context, id string, fn profile.UpdateFunc) (profile.Profile, error) {
	s.updates.Add(1)
	if s.down.Load() {
		return profile.Profile{}, errDEDown
	}
	return s.Store.Update(ctx, id, fn)
}

func (s *deCountStore) calls() int64 { return s.gets.Load() + s.updates.Load() }

// deCountStorage is the storage guest module of the store above, for the
// test binary only; the last one provisioned is deLastStore.
type deCountStorage struct {
	store *deCountStore
}

var deLastStore atomic.Pointer[deCountStore]

func init() { caddy.RegisterModule(deCountStorage{}) }

func (deCountStorage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.workspace_profile.storage.test_counting", New: func() caddy.Module { return new(deCountStorage) }}
}

func (s *deCountStorage) Provision(caddy.Context) error {
	s.store = &deCountStore{Store: memstore.New()}
	deLastStore.Store(s.store)
	return nil
}

func (s *deCountStorage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error { d.Next(); return nil }
func (s *deCountStorage) ProfileStore() profile.Store                     { return s.store }
func (s *deCountStorage) StoreName() string                               { return "test_counting" }

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

type deSite struct {
	key                  jwtauthtest.Key
	store                *deCountStore
	backend              *jwtauthtest.Server
	accessLog, moduleLog string
	a, b, c              string // base URLs of the sites
	aAddr                string // 127.0.0.1:<port> of site A, for raw sockets
	client               *http.Client
}

func startDE(t *testing.T) *deSite {
	t.Helper()
	dir := t.TempDir()
	s := &deSite{key: jwtauthtest.NewKey(t, jwa.RS256(), "de"), backend: jwtauthtest.NewServer(t),
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
	tc := newTester(t)
	tc.InitServer(cfg, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	s.store = deLastStore.Load()
	if s.store == nil {
		t.Fatal("the counting store was not provisioned")
	}
	return s
}

func (s *deSite) token(t testing.TB, sub string) string {
	c := jwtauthtest.Claims(sub)
	c["email"] = sub + "@mail.example"
	return s.key.Mint(t, c, nil)
}

// do sends one request; body nil sends none.
func (s *deSite) do(t testing.TB, method, url string, hdr map[string]string, body []byte) itResponse {
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
func (s *deSite) put(t testing.TB, tok, body string, extra ...string) itResponse {
	t.Helper()
	return s.do(t, "PUT", s.a+profilePath, jsonPut(tok, "", extra...), []byte(body))
}

func (s *deSite) get(t testing.TB, tok string) itResponse {
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

func (s *deSite) noStoreCall(t testing.TB, before int64, what string) {
	t.Helper()
	if n := s.store.calls() - before; n != 0 {
		t.Errorf("%s: %d store call(s)", what, n)
	}
}

// noSecrets fails when any line of the access log or the module's log
// holds one of secrets; a token counts with its payload and signature
// segments. The access log must have lines (else nothing was checked).
func (s *deSite) noSecrets(t testing.TB, secrets ...string) {
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

// TestThreatsPartD: one subtest per row of threats.md part D.
func TestThreatsPartD(t *testing.T) {
	s := startDE(t)
	tok := s.token(t, "d-user")
	// the profile exists with known values before the rows try to break it
	if r := s.put(t, tok, `{"UserName":"dUser","FirstName":"Before","LastName":"Last","Email":"d@x.io"}`); r.status != 200 {
		t.Fatalf("setup: %d %s", r.status, r.body)
	}
	unchanged := func(t *testing.T) {
		t.Helper()
		d := envOf(t, s.get(t, tok)).Data
		if d == nil || d.FirstName == nil || *d.FirstName != "Before" || *d.Email != "d@x.io" || *d.LastName != "Last" {
			t.Errorf("the profile changed: %+v", d)
		}
	}
	refusedRow := func(t *testing.T, name string, hdr map[string]string, body []byte, status int, codes string) {
		t.Helper()
		before := s.store.calls()
		r := s.do(t, "PUT", s.a+profilePath, hdr, body)
		wantRefused(t, r, status, codes)
		s.noStoreCall(t, before, name)
	}
	jsonHdr := jsonPut(tok, "")

	t.Run("D01", func(t *testing.T) {
		big := `{"FirstName":"` + strings.Repeat("a", 17<<10) + `"}`
		refusedRow(t, "declared", jsonHdr, []byte(big), 413, "PayloadTooLarge")
		// chunked: Go sends a body of unknown length chunked
		before := s.store.calls()
		req, _ := http.NewRequest("PUT", s.a+profilePath, io.MultiReader(strings.NewReader(big)))
		for k, v := range jsonHdr {
			req.Header.Set(k, v)
		}
		resp, err := s.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Errorf("chunked: %d %s", resp.StatusCode, b)
		}
		s.noStoreCall(t, before, "chunked")
		// a declared length over the cap is answered before any byte of the
		// body is sent: the body is not read
		got, took := rawExchange(t, s.aAddr, []string{"PUT " + profilePath + " HTTP/1.1\r\nHost: " + itHost + "\r\nAuthorization: Bearer " + tok +
			"\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n"}, 3*time.Second)
		if !strings.HasPrefix(got, "HTTP/1.1 413 ") || took > 2500*time.Millisecond {
			t.Errorf("1 MiB announced, none sent: %.60q after %v", got, took)
		}
		unchanged(t)
		s.noSecrets(t, tok)
	})

	t.Run("D02", func(t *testing.T) {
		body := []byte(`{"FirstName":"Coded"}`)
		for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
			"application/json; charset=iso-8859-1", "application/jsonx", "text/json"} {
			hdr := bearer(tok)
			if ct != "" {
				hdr["Content-Type"] = ct
			}
			refusedRow(t, "Content-Type "+ct, hdr, body, 415, "UnsupportedMediaType")
		}
		for name, b := range map[string][]byte{"gzip": gzipped(body), "br": body, "deflate": body, "gzip, identity": body, "GZIP": body, "x-gzip": body} {
			before := s.store.calls()
			r := s.do(t, "PUT", s.a+profilePath, jsonPut(tok, "", "Content-Encoding", name), b)
			wantRefused(t, r, 415, "UnsupportedMediaType")
			if !strings.Contains(r.header.Get("Accept-Encoding"), "identity") {
				t.Errorf("%s: 415 without Accept-Encoding: %v", name, r.header)
			}
			s.noStoreCall(t, before, "Content-Encoding "+name)
		}
		// plain JSON labelled gzip, and a gzip bomb, over the raw socket
		// (nothing client-side touches them)
		before := s.store.calls()
		bomb := gzipped(bytes.Repeat([]byte(" "), 8<<20))
		got, _ := rawExchange(t, s.aAddr, []string{"PUT " + profilePath + " HTTP/1.1\r\nHost: " + itHost + "\r\nAuthorization: Bearer " + tok +
			"\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: " + strconv.Itoa(len(bomb)) + "\r\nConnection: close\r\n\r\n" + string(bomb)}, 3*time.Second)
		if !strings.HasPrefix(got, "HTTP/1.1 415 ") {
			t.Errorf("gzip bomb: %.80q", got)
		}
		s.noStoreCall(t, before, "gzip bomb")
		unchanged(t)
		// the accepted forms
		for _, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON; Charset=\"UTF-8\""} {
			if r := s.do(t, "PUT", s.a+profilePath, jsonPut(tok, "", "Content-Type", ct, "Content-Encoding", "identity"), []byte(`{"FirstName":"Before"}`)); r.status != 200 {
				t.Errorf("%s: %d %s", ct, r.status, r.body)
			}
		}
		// upstream mode: refused before the backend, and a GET's coding label
		// never reaches it
		fetches := s.backend.Fetches.Load()
		r := s.do(t, "PUT", s.b+profilePath, jsonPut(tok, "", "Content-Encoding", "gzip"), body)
		wantRefused(t, r, 415, "UnsupportedMediaType")
		noneReached(t, "upstream gzip PUT", s.backend, fetches)
		if r := s.do(t, "GET", s.b+profilePath, map[string]string{"Authorization": "Bearer " + tok, "Content-Encoding": "gzip"}, nil); r.status != 200 {
			t.Errorf("upstream GET: %d %s", r.status, r.body)
		}
		seen := s.backend.Requests()
		if len(seen) == 0 || seen[len(seen)-1].Header.Get("Content-Encoding") != "" {
			t.Errorf("the backend got the client's Content-Encoding: %v", seen)
		}
		s.noSecrets(t, tok)
	})

	t.Run("D03", func(t *testing.T) {
		for name, body := range map[string]string{"truncated": `{"FirstName":"x"`, "trailing garbage": `{"FirstName":"x"} x`,
			"two objects": `{"FirstName":"x"}{"FirstName":"y"}`, "array": `[{"FirstName":"x"}]`, "empty": ``, "blank": "  \n",
			"BOM": "\ufeff{\"FirstName\":\"x\"}", "string": `"x"`, "null": `null`} {
			refusedRow(t, name, jsonHdr, []byte(body), 400, "InvalidJson")
		}
		unchanged(t)
		s.noSecrets(t, tok)
	})

	t.Run("D04", func(t *testing.T) {
		refusedRow(t, "duplicate", jsonHdr, []byte(`{"Email":"a@x.io","Email":"b@x.io"}`), 400, "DuplicateProperty@Email")
		refusedRow(t, "duplicate null", jsonHdr, []byte(`{"FirstName":null,"FirstName":"b"}`), 400, "DuplicateProperty@FirstName")
		unchanged(t)
		s.noSecrets(t, tok)
	})

	t.Run("D05", func(t *testing.T) {
		refusedRow(t, "case variants", jsonHdr, []byte(`{"Email":"a@x.io","email":"b@x.io","EMAIL":"c@x.io"}`), 400, "DuplicateProperty@Email")
		refusedRow(t, "long s", jsonHdr, []byte(`{"UserName":"abc","U\u017ferName":"def"}`), 400, "DuplicateProperty@UserName")
		unchanged(t)
		s.noSecrets(t, tok)
	})

	t.Run("D06", func(t *testing.T) {
		// the contract: unknown members are ignored with a warning
		r := s.put(t, tok, `{"IsAdmin":true,"Id":"other","Roles":["admin"],"UserType":1,"FirstName":"Before"}`)
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		env := envOf(t, r)
		if got := itemCodes(env.Warnings); got != "UnknownField@IsAdmin,UnknownField@Id,UnknownField@Roles,UnknownField@UserType,NoChanges" {
			t.Errorf("warnings %s", got)
		}
		if env.Data.UserType != 0 || env.Data.UserID != "d-user" {
			t.Errorf("a mass-assigned member was bound: %+v", env.Data)
		}
		s.noSecrets(t, tok)
	})

	t.Run("D07", func(t *testing.T) {
		for name, body := range map[string]string{
			"invalid UTF-8":            "{\"FirstName\":\"\xff\xfe\"}",
			"overlong UTF-8":           "{\"FirstName\":\"\xc0\xaf\"}",
			"lone high surrogate":      `{"FirstName":"\ud800"}`,
			"lone low surrogate":       `{"LastName":"\udc00"}`,
			"high then not low":        `{"FirstName":"\ud800\u0041"}`,
			"surrogate in a name":      `{"F\ud800":"x"}`,
			"surrogate in user name":   `{"UserName":"ab\udbff"}`,
			"invalid UTF-8 in a name":  "{\"F\xff\":\"x\"}",
			"surrogate in email":       `{"Email":"a\ud800@x.io"}`,
			"surrogate after a backsl": `{"FirstName":"\\\ud800"}`,
		} {
			refusedRow(t, name, jsonHdr, []byte(body), 400, "InvalidJson")
		}
		for name, body := range map[string]string{
			"NUL": `{"FirstName":"a\u0000b"}`, "C0": `{"LastName":"a\u0001b"}`, "escape": `{"FirstName":"\u001b[31m"}`,
			"newline": `{"LastName":"a\nb"}`, "DEL": `{"FirstName":"a\u007fb"}`, "C1": `{"FirstName":"a\u0085b"}`,
		} {
			refusedRow(t, name, jsonHdr, []byte(body), 400, "InvalidCharacters")
		}
		refusedRow(t, "NUL in user name", jsonHdr, []byte(`{"UserName":"abc\u0000"}`), 400, "InvalidCharacters@UserName")
		refusedRow(t, "NUL in email", jsonHdr, []byte(`{"Email":"a\u0000@x.io"}`), 400, "InvalidEmail@Email")
		unchanged(t)
		// a proper pair is a character like any other
		if r := s.put(t, tok, `{"LastName":"\ud83d\ude00"}`); r.status != 200 || *envOf(t, r).Data.LastName != "\U0001F600" {
			t.Errorf("surrogate pair: %d %s", r.status, r.body)
		}
		s.put(t, tok, `{"LastName":"Last"}`)
		s.noSecrets(t, tok)
	})

	t.Run("D08", func(t *testing.T) {
		for name, tc := range map[string]struct {
			body   string
			status int
		}{
			"20000-deep array":     {`{"X":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, 413},
			"5000-deep in a field": {`{"FirstName":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`, 400},
			"7000-deep array":      {`{"X":` + strings.Repeat("[", 7000) + strings.Repeat("]", 7000) + `}`, 200},
			"1 MB string":          {`{"FirstName":"` + strings.Repeat("x", 1<<20) + `"}`, 413},
			"12000-deep in cap":    {`{"X":` + strings.Repeat("[", 12000) + `}`, 400},
		} {
			before := s.store.calls()
			start := time.Now()
			r := s.do(t, "PUT", s.a+profilePath, jsonHdr, []byte(tc.body))
			if took := time.Since(start); took > time.Second {
				t.Errorf("%s: %v", name, took)
			}
			if tc.status == 200 { // an unknown member, however deep, is ignored
				if r.status != 200 || itemCodes(envOf(t, r).Warnings) != "UnknownField@X,NoChanges" {
					t.Errorf("%s: %d %s", name, r.status, r.body)
				}
				continue
			}
			if r.status != tc.status {
				t.Errorf("%s: %d, want %d: %.200s", name, r.status, tc.status, r.body)
			}
			s.noStoreCall(t, before, name)
		}
		unchanged(t)
		s.noSecrets(t, tok)
	})

	t.Run("D09", func(t *testing.T) {
		refusedRow(t, "number", jsonHdr, []byte(`{"Email":123}`), 400, "InvalidType@Email")
		refusedRow(t, "object", jsonHdr, []byte(`{"FirstName":{"a":1}}`), 400, "InvalidType@FirstName")
		refusedRow(t, "array", jsonHdr, []byte(`{"LastName":["a"]}`), 400, "InvalidType@LastName")
		refusedRow(t, "bool", jsonHdr, []byte(`{"UserName":true}`), 400, "InvalidType@UserName")
		r := s.put(t, tok, `{"Email":1,"FirstName":false}`) // every problem at once
		if got := itemCodes(envOf(t, r).Errors); got != "InvalidType@Email,InvalidType@FirstName" {
			t.Errorf("both: %s", got)
		}
		unchanged(t)
		s.noSecrets(t, tok)
	})

	t.Run("D10", func(t *testing.T) {
		// the contract: PUT merges; null and absent leave a field unchanged,
		// "" clears an optional one, and UserName cannot be cleared
		for _, body := range []string{`{}`, `{"FirstName":null}`, `{"Email":null,"LastName":null,"UserName":null}`} {
			r := s.put(t, tok, body)
			if r.status != 200 || itemCodes(envOf(t, r).Warnings) != "NoChanges" {
				t.Errorf("%s: %d %s", body, r.status, r.body)
			}
		}
		unchanged(t)
		refusedRow(t, "clear user name", jsonHdr, []byte(`{"UserName":""}`), 400, "Required@UserName")
		if r := s.put(t, tok, `{"LastName":""}`); r.status != 200 || envOf(t, r).Data.LastName != nil {
			t.Errorf("clear LastName: %d %s", r.status, r.body)
		}
		s.put(t, tok, `{"LastName":"Last"}`)
		unchanged(t)
		s.noSecrets(t, tok)
	})

	t.Run("D11", func(t *testing.T) {
		long := func(n int) string { return strings.Repeat("a", n) }
		for name, tc := range map[string]struct{ body, codes string }{
			"email syntax":              {`{"Email":"not-an-address"}`, "InvalidEmail@Email"},
			"email display name":        {`{"Email":"Eve <eve@x.io>"}`, "InvalidEmail@Email"},
			"email two":                 {`{"Email":"a@x.io,b@x.io"}`, "InvalidEmail@Email"},
			"email 255 bytes":           {`{"Email":"` + long(65) + "@" + long(185) + `.com"}`, "TooLong@Email"},
			"email 200 chars 300 bytes": {`{"Email":"` + strings.Repeat("ü", 100) + "@" + long(95) + `.com"}`, "TooLong@Email"},
			"user name charset":         {`{"UserName":"a b c"}`, "InvalidCharacters@UserName"},
			"user name non-ASCII":       {`{"UserName":"jürgen"}`, "InvalidCharacters@UserName"},
			"user name short":           {`{"UserName":"ab"}`, "TooShort@UserName"},
			"user name long":            {`{"UserName":"` + long(65) + `"}`, "TooLong@UserName"},
			"first name long":           {`{"FirstName":"` + long(101) + `"}`, "TooLong@FirstName"},
			"last name long":            {`{"LastName":"` + strings.Repeat("é", 101) + `"}`, "TooLong@LastName"},
		} {
			refusedRow(t, name, jsonHdr, []byte(tc.body), 400, tc.codes)
		}
		unchanged(t)
		// at the limits, and trimmed
		email := long(64) + "@" + long(185) + ".com" // 254 bytes
		r := s.put(t, tok, `{"Email":"`+email+`","FirstName":"  Trimmed  ","LastName":"`+strings.Repeat("é", 100)+`"}`)
		if r.status != 200 || *envOf(t, r).Data.FirstName != "Trimmed" || *envOf(t, r).Data.Email != email {
			t.Errorf("at the limits: %d %.300s", r.status, r.body)
		}
		s.put(t, tok, `{"Email":"d@x.io","FirstName":"Before","LastName":"Last"}`)
		unchanged(t)
		s.noSecrets(t, tok)
	})

	t.Run("D12", func(t *testing.T) {
		victim := s.token(t, "d-victim")
		if r := s.put(t, victim, `{"UserName":"victim","FirstName":"Victim"}`); r.status != 200 {
			t.Fatalf("victim: %d %s", r.status, r.body)
		}
		r := s.do(t, "PUT", s.a+profilePath+"?userId=d-victim&UserId=d-victim&sub=d-victim", jsonHdr,
			[]byte(`{"UserId":"d-victim","Sub":"d-victim","FirstName":"Before"}`))
		if r.status != 200 || envOf(t, r).Data.UserID != "d-user" {
			t.Errorf("%d %s", r.status, r.body)
		}
		// the name is checked by the store (one Update call), which writes nothing
		wantRefused(t, s.put(t, tok, `{"UserName":"VICTIM"}`), 400, "UserNameTaken@UserName")
		v, err := s.store.Store.Get(context.Background(), "d-victim")
		if err != nil || v.FirstName != "Victim" || v.UserName != "victim" || v.Version != 1 {
			t.Errorf("the victim's record: %+v %v", v, err)
		}
		unchanged(t)
		s.noSecrets(t, tok, victim)
	})

	t.Run("D13", func(t *testing.T) {
		for _, n := range []int{2, 10, 100} {
			u := s.token(t, fmt.Sprintf("d13-%d", n))
			first := s.put(t, u, `{"FirstName":"v0"}`)
			tag := first.header.Get("ETag")
			statuses := make([]int, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					statuses[i] = s.put(t, u, fmt.Sprintf(`{"FirstName":"w%d"}`, i), "If-Match", tag).status
				}()
			}
			wg.Wait()
			winner, wins := -1, 0
			for i, st := range statuses {
				switch st {
				case 200:
					winner, wins = i, wins+1
				case 412:
				default:
					t.Errorf("n=%d: #%d answered %d", n, i, st)
				}
			}
			if wins != 1 {
				t.Fatalf("n=%d: %d winners, want exactly 1 (%v)", n, wins, statuses)
			}
			if d := envOf(t, s.get(t, u)).Data; *d.FirstName != fmt.Sprintf("w%d", winner) {
				t.Errorf("n=%d: final %q, winner w%d", n, *d.FirstName, winner)
			}
		}
		s.noSecrets(t, tok)
	})

	t.Run("D14", func(t *testing.T) {
		// the contract: no precondition is required; PUT answers carry the ETag
		u := s.token(t, "d14")
		r := s.put(t, u, `{"FirstName":"x"}`, "If-Match", "*") // absent profile
		wantRefused(t, r, 412, "PreconditionFailed")
		if _, err := s.store.Store.Get(context.Background(), "d14"); !errors.Is(err, profile.ErrNotFound) {
			t.Errorf("If-Match * created the profile: %v", err)
		}
		r = s.put(t, u, `{"FirstName":"x"}`)
		if r.status != 200 || r.header.Get("ETag") == "" {
			t.Fatalf("unconditional: %d %v", r.status, r.header)
		}
		tag := r.header.Get("ETag")
		if g := s.get(t, u); g.header.Get("ETag") != tag {
			t.Errorf("PUT ETag %s, GET ETag %s", tag, g.header.Get("ETag"))
		}
		wantRefused(t, s.put(t, u, `{"FirstName":"y"}`, "If-Match", "W/"+tag), 412, "PreconditionFailed")
		wantRefused(t, s.put(t, u, `{"FirstName":"y"}`, "If-Match", `"1-other"`), 412, "PreconditionFailed")
		if r := s.put(t, u, `{"FirstName":"y"}`, "If-Match", `"nope", `+tag); r.status != 200 {
			t.Errorf("list with the tag: %d", r.status)
		}
		if r := s.put(t, u, `{"FirstName":"z"}`, "If-Match", "*"); r.status != 200 {
			t.Errorf("If-Match * on an existing profile: %d", r.status)
		}
		s.noSecrets(t, tok, u)
	})

	t.Run("D15", func(t *testing.T) {
		// the contract: creation answers 200
		u := s.token(t, "d15")
		body := `{"UserName":"dFifteen","FirstName":"Same"}`
		first := s.put(t, u, body)
		if first.status != 200 || first.header.Get("ETag") == "" {
			t.Fatalf("first: %d %s", first.status, first.body)
		}
		for i := range 10 {
			r := s.put(t, u, body)
			if r.status != 200 || r.header.Get("ETag") != first.header.Get("ETag") || itemCodes(envOf(t, r).Warnings) != "NoChanges" {
				t.Fatalf("replay %d: %d %s %s", i, r.status, r.header.Get("ETag"), r.body)
			}
		}
		s.noSecrets(t, u)
	})

	t.Run("D16", func(t *testing.T) {
		const n = 100
		u := s.token(t, "d16")
		s.put(t, u, `{"FirstName":"init","LastName":"init","Email":"init@x.io"}`)
		fields := []string{"FirstName", "LastName", "Email"}
		value := func(i int) string {
			if fields[i%3] == "Email" {
				return fmt.Sprintf("e%d@x.io", i)
			}
			return fmt.Sprintf("v%d", i)
		}
		statuses := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				statuses[i] = s.put(t, u, fmt.Sprintf(`{%q:%q}`, fields[i%3], value(i))).status
			}()
		}
		wg.Wait()
		for i, st := range statuses {
			if st != 200 {
				t.Errorf("#%d: %d", i, st)
			}
		}
		// each field holds one of the values written to it: none was lost to
		// a write of another field
		d := envOf(t, s.get(t, u)).Data
		for f, got := range map[string]string{"FirstName": *d.FirstName, "LastName": *d.LastName, "Email": *d.Email} {
			ok := false
			for i := range n {
				ok = ok || (fields[i%3] == f && value(i) == got)
			}
			if !ok {
				t.Errorf("%s = %q: not one of the values written to it", f, got)
			}
		}
		// whole bodies: the final record is exactly one of them
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if r := s.put(t, u, fmt.Sprintf(`{"FirstName":"b%d","LastName":"b%d","Email":"b%d@x.io"}`, i, i, i)); r.status != 200 {
					t.Errorf("body %d: %d", i, r.status)
				}
			}()
		}
		wg.Wait()
		d = envOf(t, s.get(t, u)).Data
		if *d.FirstName != *d.LastName || *d.Email != *d.FirstName+"@x.io" {
			t.Errorf("fields of different bodies mixed: %s %s %s", *d.FirstName, *d.LastName, *d.Email)
		}
		s.noSecrets(t, u)
	})

	// D17 (SIGKILL under load) is cmd/caddy TestCrashKill9UnderPuts, on the
	// built binary and a bolt file; D18 (a second bolt.Open of one file) is
	// profile/boltstore TestLockedFileTimesOut and TestBoltSymlinkIsOneStore
	// and TestReloadSwitchingStorageUnderLoad here: this site runs a counting
	// memory store, so they are not rows of this table (CI refuses skips).

	t.Run("D19", func(t *testing.T) {
		s.store.down.Store(true)
		defer s.store.down.Store(false)
		for _, r := range []itResponse{s.get(t, tok), s.put(t, tok, `{"FirstName":"During"}`)} {
			wantRefused(t, r, 503, "StorageUnavailable")
			if r.header.Get("Retry-After") == "" || bytes.Contains(r.body, []byte("10.9.9.9")) || bytes.Contains(r.body, []byte("refused")) {
				t.Errorf("503: %v %s", r.header, r.body)
			}
		}
		s.store.down.Store(false)
		unchanged(t)
		s.noSecrets(t, tok)
	})

	t.Run("D20", func(t *testing.T) {
		marker := "UPSTREAM-SECRET-TEXT"
		ask := func(t *testing.T, base string) itResponse {
			t.Helper()
			return s.do(t, "GET", base+profilePath, bearer(tok), nil)
		}
		if r := ask(t, s.c); r.status != 502 || itemCodes(envOf(t, r).Errors) != "UpstreamUnavailable" {
			t.Errorf("refused: %d %s", r.status, r.body)
		}
		for name, tc := range map[string]struct {
			serve  http.HandlerFunc
			status int
			code   string
		}{
			"html 200": {func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				_, _ = io.WriteString(w, "<html>"+marker+"</html>")
			}, 502, ""},
			"json labelled text": {func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				_, _ = io.WriteString(w, marker)
			}, 502, ""},
			"500 text": {func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(500)
				_, _ = io.WriteString(w, "stack trace "+marker)
			}, 502, ""},
			"204": {func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }, 200, ""},
			"too large": {func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"userId":"`+strings.Repeat("x", 2<<20)+`"}`)
			}, 502, "UpstreamResponseTooLarge"},
			"no headers before the timeout": {func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-time.After(3 * time.Second):
				}
			}, 504, "UpstreamTimeout"},
			"redirect": {func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "/elsewhere", http.StatusFound)
			}, 0, ""},
		} {
			s.backend.Serve(tc.serve)
			before := s.backend.Fetches.Load()
			r := ask(t, s.b)
			if bytes.Contains(r.body, []byte(marker)) {
				t.Errorf("%s: the backend's text reached the client: %s", name, r.body)
			}
			if n := s.backend.Fetches.Load() - before; n != 1 {
				t.Errorf("%s: %d backend requests (a redirect is not followed, nothing re-sent)", name, n)
			}
			if tc.status == 0 { // not followed (one request above); never a success
				if r.status == 200 {
					t.Errorf("%s: %d %s", name, r.status, r.body)
				}
				continue
			}
			if r.status != tc.status || (tc.code != "" && itemCodes(envOf(t, r).Errors) != tc.code) {
				t.Errorf("%s: %d %s", name, r.status, r.body)
			}
		}
		s.backend.Set(200, []byte(`{"userId":"u-1","userName":"alice"}`))
		s.noSecrets(t, tok, marker)
	})

	t.Run("D21", func(t *testing.T) {
		before := s.store.calls()
		// headers one byte at a time: closed at read_header (2 s here)
		head := "PUT " + profilePath + " HTTP/1.1\r\nHost: " + itHost + "\r\nAuthorization: Bearer " + tok + "\r\n"
		var pieces []string
		for i := range 40 {
			pieces = append(pieces, head[i:i+1])
		}
		got, took := rawExchange(t, s.aAddr, pieces, 400*time.Millisecond)
		if took > 5*time.Second || strings.Contains(got, " 200 ") {
			t.Errorf("slow headers: %.60q after %v", got, took)
		}
		// a body trickled a byte at a time: cut at read_body (2 s here)
		body := `{"FirstName":"Trickled"}`
		pieces = []string{head + "Content-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"}
		for i := range body {
			pieces = append(pieces, body[i:i+1])
		}
		got, took = rawExchange(t, s.aAddr, pieces, 400*time.Millisecond)
		if took > 5*time.Second || strings.Contains(got, " 200 ") {
			t.Errorf("slow body: %.80q after %v", got, took)
		}
		s.noStoreCall(t, before, "slow headers and trickled body")
		unchanged(t)
		s.noSecrets(t, tok)
	})

	t.Run("D22", func(t *testing.T) {
		for _, m := range []string{"POST", "PATCH", "DELETE", "TRACE"} {
			before := s.store.calls()
			r := s.do(t, m, s.a+profilePath, jsonHdr, []byte(`{"FirstName":"x"}`))
			if r.status != 405 || r.header.Get("Allow") != "GET, PUT" {
				t.Errorf("%s: %d Allow %q", m, r.status, r.header.Get("Allow"))
			}
			s.noStoreCall(t, before, m)
		}
		// the contract: auth failures are problem details (checkAnswer holds
		// their status; every other answer of this test was an envelope)
		r := s.do(t, "PUT", s.a+profilePath, map[string]string{"Content-Type": "application/json"}, []byte(`{}`))
		if r.status != 401 || r.header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("no token: %d %v", r.status, r.header)
		}
		// Vary: Authorization and no-store on profile answers, refusals and
		// 304s alike: the answer depends on who asks
		g := s.get(t, tok)
		for want, a := range map[int]itResponse{200: g, 401: r,
			405: s.do(t, "DELETE", s.a+profilePath, bearer(tok), nil),
			304: s.do(t, "GET", s.a+profilePath, map[string]string{"Authorization": "Bearer " + tok, "If-None-Match": g.header.Get("ETag")}, nil)} {
			if a.status != want || a.header.Get("Vary") != "Authorization" || a.header.Get("Cache-Control") != "no-store" {
				t.Errorf("want %d: %d Vary %q Cache-Control %q, want Authorization and no-store", want, a.status, a.header.Values("Vary"), a.header.Get("Cache-Control"))
			}
		}
		s.noSecrets(t, tok)
	})
}

// TestThreatsPartE: one subtest per row of threats.md part E.
func TestThreatsPartE(t *testing.T) {
	s := startDE(t)
	tok := s.token(t, "e-user")
	if r := s.put(t, tok, `{"UserName":"eUser","FirstName":"PrivateFirstName","Email":"private.person@mail.example"}`); r.status != 200 {
		t.Fatalf("setup: %d %s", r.status, r.body)
	}
	pii := []string{"PrivateFirstName", "private.person@mail.example"}

	t.Run("E01", func(t *testing.T) {
		for _, base := range []string{s.a, s.b} {
			if r := s.do(t, "GET", base+profilePath, bearer(tok), nil); r.status != 200 {
				t.Errorf("%s: %d", base, r.status)
			}
		}
		access, _ := os.ReadFile(s.accessLog)
		if !bytes.Contains(access, []byte(`"Authorization":["REDACTED"]`)) {
			t.Errorf("the access log does not show Authorization redacted:\n%.2000s", access)
		}
		if !bytes.Contains(access, []byte(`"user_id":"e-user"`)) {
			t.Errorf("the access log lacks the request's user_id: the scan below would check nothing")
		}
		module, _ := os.ReadFile(s.moduleLog)
		if !bytes.Contains(module, []byte(`"level":"debug"`)) {
			t.Errorf("the module's log has no debug line: is it at DEBUG?")
		}
		example, _ := os.ReadFile(filepath.Join("..", "Caddyfile.example"))
		if bytes.Contains(example, []byte("log_credentials")) {
			t.Error("Caddyfile.example sets log_credentials")
		}
		s.noSecrets(t, append([]string{tok}, pii...)...)
	})

	t.Run("E02", func(t *testing.T) {
		for _, base := range []string{s.a, s.b} {
			if r := s.do(t, "GET", base+profilePath+"?access_token="+tok+"&x=1", nil, nil); r.status != 200 {
				t.Errorf("%s: %d %s", base, r.status, r.body)
			}
		}
		access, _ := os.ReadFile(s.accessLog)
		if !bytes.Contains(access, []byte(`x=1`)) {
			t.Errorf("the query's other parameters are not logged: the filter ran on nothing?\n%.2000s", access)
		}
		s.noSecrets(t, append([]string{tok}, pii...)...)
	})

	t.Run("E03", func(t *testing.T) {
		for _, target := range []string{
			"//x:y" + profilePath + "?access_token=" + tok,
			profilePath + "?a=1;access_token=" + tok,
			profilePath + "?access_token=" + tok + "&access_token=" + tok,
			profilePath + "?access%5Ftoken=" + tok,
			profilePath + "?ACCESS_TOKEN=" + tok,
			profilePath + "?Access%5FToken=" + tok + "#frag",
			"/elsewhere?access_token=" + tok,
			"/api/other?token=" + tok,
		} {
			r := rawRoundTrip(t, rawGet(target))
			if strings.Contains(r.body, tok) {
				t.Errorf("%.40s: the answer echoes the token", target)
			}
		}
		s.noSecrets(t, append([]string{tok}, pii...)...)
	})

	t.Run("E04", func(t *testing.T) {
		// failures that log: the store down (error), the backend down (warn),
		// bad tokens (debug), each carrying the token and profile data
		s.store.down.Store(true)
		s.put(t, tok, `{"FirstName":"PrivateFirstName"}`)
		s.get(t, tok)
		s.store.down.Store(false)
		s.do(t, "GET", s.c+profilePath, bearer(tok), nil)
		s.do(t, "GET", s.a+profilePath, bearer(tok[:len(tok)-4]+"AAAA"), nil)
		s.do(t, "GET", s.a+profilePath+"?access_token="+tok, bearer(tok), nil)
		s.backend.Set(500, []byte(`{"detail":"BackendPrivateBody"}`))
		s.do(t, "PUT", s.b+profilePath, jsonPut(tok, ""), []byte(`{"FirstName":"PrivateFirstName"}`))
		s.backend.Set(200, []byte(`{"userId":"u-1","userName":"alice"}`))
		module, _ := os.ReadFile(s.moduleLog)
		if !bytes.Contains(module, []byte("profile store failed")) {
			t.Errorf("the module's log has no store failure: the scan checked nothing of it")
		}
		s.noSecrets(t, append([]string{tok, "BackendPrivateBody"}, pii...)...)
	})

	t.Run("E05", func(t *testing.T) {
		before := len(s.backend.Requests())
		for _, q := range []string{"?access_token=" + tok + "&x=1", "?x=1&access_token=" + tok} {
			if r := s.do(t, "GET", s.b+profilePath+q, nil, nil); r.status != 200 {
				t.Errorf("%s: %d", q, r.status)
			}
		}
		seen := s.backend.Requests()[before:]
		if len(seen) != 2 {
			t.Fatalf("%d requests forwarded", len(seen))
		}
		for _, r := range seen {
			if strings.Contains(r.RequestURI, tok) || strings.Contains(r.RawQuery, "access_token") || r.RawQuery != "x=1" ||
				r.Header.Get("Authorization") != "Bearer "+tok {
				t.Errorf("forwarded %q, Authorization %q", r.RequestURI, r.Header.Get("Authorization"))
			}
		}
		s.noSecrets(t, tok)
	})

	t.Run("E06", func(t *testing.T) {
		bad := tok[:len(tok)-6] + "AAAAAA"
		for _, target := range []string{profilePath + "?echo=ECHO-MARKER&access_token=" + bad, profilePath + "?echo=ECHO-MARKER"} {
			hdr := map[string]string{}
			if !strings.Contains(target, "access_token") {
				hdr = bearer(bad)
			}
			r := s.do(t, "GET", s.a+target, hdr, nil)
			wa := r.header.Get("WWW-Authenticate")
			if r.status != 401 || !strings.HasPrefix(wa, `Bearer realm="workspace"`) {
				t.Errorf("%s: %d %q", target, r.status, wa)
			}
			for _, leak := range []string{"ECHO-MARKER", bad, strings.Split(bad, ".")[2], strings.Split(bad, ".")[1]} {
				if strings.Contains(wa, leak) || bytes.Contains(r.body, []byte(leak)) {
					t.Errorf("%s: the answer echoes %.12s", target, leak)
				}
			}
			var p struct{ Instance string }
			_ = json.Unmarshal(r.body, &p)
			if p.Instance != profilePath {
				t.Errorf("instance %q", p.Instance)
			}
		}
		// 403 for a service account: no challenge, nothing echoed
		svc := jwtauthtest.Claims("e-svc")
		svc["UserType"] = 2
		r := s.do(t, "GET", s.a+profilePath+"?echo=ECHO-MARKER", bearer(s.key.Mint(t, svc, nil)), nil)
		if r.status != 403 || r.header.Get("WWW-Authenticate") != "" || bytes.Contains(r.body, []byte("ECHO-MARKER")) {
			t.Errorf("403: %d %v %s", r.status, r.header, r.body)
		}
		s.noSecrets(t, tok, bad)
	})

	t.Run("E07", func(t *testing.T) {
		for _, base := range []string{s.a, s.b} {
			r := s.do(t, "GET", base+profilePath+"?access_token="+tok, nil, nil)
			if r.status != 200 || !strings.Contains(r.header.Get("Cache-Control"), "no-store") {
				t.Errorf("%s: %d Cache-Control %q", base, r.status, r.header.Get("Cache-Control"))
			}
			if bad := s.do(t, "GET", base+profilePath+"?access_token=x.y.z", nil, nil); !strings.Contains(bad.header.Get("Cache-Control"), "no-store") &&
				bad.header.Get("Cache-Control") != "" {
				t.Errorf("%s refusal: Cache-Control %q", base, bad.header.Get("Cache-Control"))
			}
		}
		s.noSecrets(t, tok)
	})

	t.Run("E08", func(t *testing.T) {
		// the contract: query tokens on by default, query_token off refuses them
		if r := s.do(t, "GET", s.a+profilePath+"?access_token="+tok, nil, nil); r.status != 200 {
			t.Errorf("default on: %d %s", r.status, r.body)
		}
		r := s.do(t, "GET", s.c+profilePath+"?access_token="+tok, nil, nil)
		if r.status != 401 && r.status != 400 {
			t.Errorf("query_token off: %d %s", r.status, r.body)
		}
		if r.status == 401 && r.problemCode(t) != "MissingToken" {
			t.Errorf("query_token off: %s", r.body)
		}
		s.noSecrets(t, tok)
	})

	t.Run("E09", func(t *testing.T) {
		s.do(t, "GET", s.a+profilePath+"?access_token="+tok, nil, nil)
		m := s.do(t, "GET", itAdmin+"/metrics", nil, nil)
		if m.status != 200 || !bytes.Contains(m.body, []byte("caddy_workspace_profile_requests_total")) {
			t.Fatalf("metrics: %d", m.status)
		}
		for _, leak := range []string{tok, strings.Split(tok, ".")[2], "e-user", "eUser", "mail.example", "PrivateFirstName"} {
			if bytes.Contains(m.body, []byte(leak)) {
				t.Errorf("the metrics hold %q", leak)
			}
		}
		s.noSecrets(t, tok)
	})
}
