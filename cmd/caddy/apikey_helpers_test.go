package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// keyNode is a Caddy process whose route takes API keys, with its admin
// endpoint (where keys are made and revoked).
type keyNode struct {
	url   string // the profile route
	admin string // http://127.0.0.1:<admin port>
	proc  *process
}

// keyNodeConfig is the Caddyfile of a node on storage (a Caddyfile
// storage line) with a bare api_keys: the keys live in that store.
func keyNodeConfig(s *signer, storage string, adminPort, httpPort int) string {
	return fmt.Sprintf(`{
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
		api_keys
	}
}
`, adminPort, httpPort, httpPort, s.jwks, storage)
}

// startKeyNode runs one Caddy process on storage with api_keys.
func startKeyNode(t testing.TB, s *signer, storage string) keyNode {
	t.Helper()
	httpPort, adminPort := freePort(t), freePort(t)
	p := start(t, caddyBin, keyNodeConfig(s, storage, adminPort, httpPort), t.TempDir(), adminPort)
	return keyNode{url: fmt.Sprintf("http://127.0.0.1:%d/api/workspace/account/profile", httpPort),
		admin: fmt.Sprintf("http://127.0.0.1:%d", adminPort), proc: p}
}

// madeKey is the admin endpoint's answer to a create.
type madeKey struct {
	ID      string `json:"id"`
	Key     string `json:"key"`
	Subject string `json:"subject"`
	Kind    string `json:"kind"`
}

// createKey makes a key of subject and kind on n's admin endpoint.
func createKey(t testing.TB, n keyNode, subject, kind string) madeKey {
	t.Helper()
	resp, err := client.Post(n.admin+"/workspace-profile/api-keys", "application/json",
		strings.NewReader(fmt.Sprintf(`{"subject":%q,"kind":%q,"name":"nodes test"}`, subject, kind)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var k madeKey
	if err := json.NewDecoder(resp.Body).Decode(&k); resp.StatusCode != 201 || err != nil || k.Key == "" || k.ID == "" {
		t.Fatalf("create: %d %v", resp.StatusCode, err)
	}
	return k
}

// revokeKeyOn revokes the key of id on n's admin endpoint.
func revokeKeyOn(t testing.TB, n keyNode, id string) {
	t.Helper()
	req, _ := http.NewRequest("DELETE", n.admin+"/workspace-profile/api-keys/"+id, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("revoke %s: %d", id, resp.StatusCode)
	}
}

// withKey is a GET of the profile with key in the key header: the status
// and the body.
func withKey(t testing.TB, url, key string) (int, string) {
	t.Helper()
	return getWith(t, url, "X-Api-Key", key)
}

// getWith sends a GET to url with the header pairs hdr (name, value, ...)
// and returns its status and body.
func getWith(t testing.TB, url string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// untilStatus asks url with key every 100ms (20ms when fast) until it
// answers want, and returns how long that took; it fails the test after
// limit.
func untilStatus(t testing.TB, url, key string, want int, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	every := 100 * time.Millisecond
	if limit <= time.Second {
		every = 20 * time.Millisecond
	}
	for {
		st, body := withKey(t, url, key)
		if st == want {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s still answers %d %s after %v, want %d", url, st, body, limit, want)
		}
		time.Sleep(every)
	}
}

// wantServiceRefused checks the exact 403 of a service account's key.
func wantServiceRefused(t testing.TB, url, key string) {
	t.Helper()
	st, body := withKey(t, url, key)
	var p struct {
		Status int
		Code   string
		Detail string
	}
	_ = json.Unmarshal([]byte(body), &p)
	if st != 403 || p.Status != 403 || p.Code != "ServiceAccountForbidden" || p.Detail != profile.ServiceAccountDetail {
		t.Fatalf("service key on %s: %d %s", url, st, body)
	}
}

// killListeners ends the listening connections of the nodes on schema
// (the channels they LISTEN to are named after it) and returns how many
// it ended. A listener that has been silent for 30s has pinged since its
// LISTEN and no longer shows it: call this within that time of the
// nodes' start.
func killListeners(t testing.TB, dsn, schema string) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	err = conn.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = 'workspace_profile_listener' AND datname = current_database() AND query LIKE 'LISTEN %' AND strpos(query, $1) > 0`,
		`"`+schema+`.`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
