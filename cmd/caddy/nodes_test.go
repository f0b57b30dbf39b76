package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/workspace-edge/caddy-workspace-profile/internal/pgtest"
)

// signer mints tokens with a key made for this test run.
type signer struct {
	key  jwk.Key
	jwks string // path of the public key set
}

func newSigner(t testing.TB) *signer {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := jwk.Import(priv)
	_ = key.Set(jwk.KeyIDKey, "nodes")
	_ = key.Set(jwk.AlgorithmKey, jwa.ES256())
	pub, _ := jwk.PublicKeyOf(key)
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	buf, _ := json.Marshal(set)
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, buf, 0o600); err != nil {
		t.Fatal(err)
	}
	return &signer{key: key, jwks: path}
}

func (s *signer) token(t testing.TB, sub string) string {
	payload, _ := json.Marshal(map[string]any{"iss": "https://nodes.test.invalid", "aud": "workspace-api", "sub": sub,
		"exp": time.Now().Add(time.Hour).Unix()})
	tok, err := jws.Sign(payload, jws.WithKey(jwa.ES256(), s.key))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

type node struct {
	url   string // the profile route
	admin string // http://127.0.0.1:<admin port>, where /metrics is
	proc  *process
}

// startNode runs one Caddy process on storage (a Caddyfile storage line).
func startNode(t testing.TB, s *signer, storage string) node {
	httpPort, adminPort := freePort(t), freePort(t)
	config := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	http_port %d
}
http://127.0.0.1:%d {
	workspace_profile {
		jwks_file %s
		issuer https://nodes.test.invalid
		audience workspace-api
		%s
		create_missing
	}
}
`, adminPort, httpPort, httpPort, s.jwks, storage)
	// after the node stops (cleanups run last first), its keep-alive
	// connections leave the shared client: a later node may get the same
	// port, and a request on a connection of the old process fails
	t.Cleanup(client.CloseIdleConnections)
	p := start(t, caddyBin, config, t.TempDir(), adminPort)
	return node{url: fmt.Sprintf("http://127.0.0.1:%d/api/workspace/account/profile", httpPort),
		admin: fmt.Sprintf("http://127.0.0.1:%d", adminPort), proc: p}
}

// startNodes runs count Caddy processes on storage, started at the same
// moment (so that they migrate one schema at once, as a fleet would).
func startNodes(t testing.TB, s *signer, count int, storage string) []node {
	nodes := make([]node, count)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Add(1)
		go func() { defer wg.Done(); nodes[i] = startNode(t, s, storage) }()
	}
	wg.Wait()
	return nodes
}

// pgDSN is pgtest.DSN: PROFILE_TEST_PG_DSN, or else a throwaway server this
// test binary starts (exported as PROFILE_TEST_PG_DSN, which the nodes'
// {env.PROFILE_TEST_PG_DSN} placeholder reads); skipped with neither.
func pgDSN(t testing.TB) string { return pgtest.DSN(t) }

// pgSchema is a schema of this test's own, dropped after it.
func pgSchema(t testing.TB, dsn string) string {
	schema := fmt.Sprintf("wp_nodes_%d_%d", os.Getpid(), time.Now().UnixNano()%1e12)
	t.Cleanup(func() {
		if conn, err := pgx.Connect(context.Background(), dsn); err == nil {
			_, _ = conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
			conn.Close(context.Background())
		}
	})
	return schema
}

var client = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func put(t testing.TB, url, tok, body string) (int, string) {
	status, _, b := send(t, "PUT", url, tok, body)
	return status, b
}

// send makes a request with the bearer token tok, a JSON body when there
// is one, and the header pairs hdr (name, value, ...); a request that
// fails is an error of t, answered status 0. It may run in any goroutine.
func send(t testing.TB, method, url, tok, body string, hdr ...string) (int, http.Header, string) {
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Error(err)
		return 0, nil, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestTwoNodesOneDatabase: two Caddy processes built from this command share
// one PostgreSQL database. They start (and migrate) at the same moment; 200
// concurrent PUTs spread over both lose no update and let exactly one of
// many users win a contested user name.
func TestTwoNodesOneDatabase(t *testing.T) {
	dsn := pgDSN(t)
	schema := pgSchema(t, dsn)
	s := newSigner(t)
	nodes := startNodes(t, s, 2, fmt.Sprintf("storage postgres {env.PROFILE_TEST_PG_DSN} schema %s", schema))

	// 200 PUTs at once through both nodes: 100 users claim one user name
	// (exactly one may win) while 100 updates of different fields hit one
	// profile (every one must be counted in its version)
	tok := s.token(t, "shared-writer")
	if st, body := put(t, nodes[0].url, tok, `{"UserName":"writer"}`); st != 200 {
		t.Fatalf("%d %s", st, body)
	}
	const claimants = 100
	statuses := make([]int, claimants)
	fields := []string{"Email", "FirstName", "LastName"}
	written := map[string]map[string]bool{}
	for _, f := range fields {
		written[f] = map[string]bool{}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	ok := 0
	for i := range claimants {
		wg.Add(2)
		go func() {
			defer wg.Done()
			statuses[i], _ = put(t, nodes[i%2].url, s.token(t, fmt.Sprintf("claimant-%d", i)), `{"UserName":"Contested"}`)
		}()
		go func() {
			defer wg.Done()
			f := fields[i%3]
			v := fmt.Sprintf("v%d", i)
			if f == "Email" {
				v += "@example.com"
			}
			if st, _ := put(t, nodes[(i+1)%2].url, tok, fmt.Sprintf(`{%q:%q}`, f, v)); st == 200 {
				mu.Lock()
				ok++
				written[f][v] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	wins := 0
	for _, st := range statuses {
		switch st {
		case 200:
			wins++
		case 400:
		default:
			t.Errorf("claim answered %d", st)
		}
	}
	if wins != 1 {
		t.Fatalf("%d winners of one user name across two nodes, want 1", wins)
	}
	if ok != 100 {
		t.Fatalf("%d of 100 field updates succeeded", ok)
	}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var version int64
	var email, first, last string
	if err := conn.QueryRow(context.Background(), "SELECT version, email, first_name, last_name FROM "+pgx.Identifier{schema}.Sanitize()+".profiles WHERE user_id = 'shared-writer'").
		Scan(&version, &email, &first, &last); err != nil {
		t.Fatal(err)
	}
	// created by the first PUT (version 1), then one version per update
	if version != 1+100 || !written["Email"][email] || !written["FirstName"][first] || !written["LastName"][last] {
		t.Fatalf("version %d (want 101), final %q %q %q", version, email, first, last)
	}
	// the DSN is in no line either node wrote (stopped first: their output
	// is complete, and no longer being written while it is read)
	for i, n := range nodes {
		n.proc.stop(t)
		if out := n.proc.out.String(); strings.Contains(out, dsn) || !strings.Contains(out, "opened PostgreSQL profile store") {
			t.Fatalf("node %d log: DSN present or store not opened:\n%s", i, out)
		}
	}
}
