package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAPIKeyCommandAdminOff (threat row G10, see docs/threat-model.md):
// with `admin off`, `caddy workspace-profile-keys` opens the PostgreSQL
// store the config names: a key it creates is served by a running node
// (admin off too), and once revoked through it, refused by that node
// within 5 s (the store's notification).
func TestAPIKeyCommandAdminOff(t *testing.T) {
	dsn := pgDSN(t)
	schema := pgSchema(t, dsn)
	s := newSigner(t)
	httpPort := freePort(t)
	config := fmt.Sprintf(`{
	admin off
	http_port %d
}
http://127.0.0.1:%d {
	workspace_profile {
		jwks_file %s
		issuer https://nodes.test.invalid
		audience workspace-api
		storage postgres {env.PROFILE_TEST_PG_DSN} schema %s
		create_missing
		api_keys
	}
}
`, httpPort, httpPort, s.jwks, schema)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(caddyBin, append([]string{"workspace-profile-keys"}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("workspace-profile-keys %s: %v\n%s", args[0], err, stderr.String())
		}
		return stdout.Bytes()
	}

	// the node runs first: its schema is made, its listener listens
	url := fmt.Sprintf("http://127.0.0.1:%d/api/workspace/account/profile", httpPort)
	node := runNoAdmin(t, cfg, dir, url)

	var made madeKey
	out := keys("create", "--config", cfg, "--adapter", "caddyfile", "--subject", "s", "--kind", "user")
	if err := json.Unmarshal(out, &made); err != nil || !strings.HasPrefix(made.Key, "wsk_"+made.ID+"_") || made.Subject != "s" || made.Kind != "user" {
		t.Fatalf("create printed %q: %v", out, err)
	}
	if st, body := withKey(t, url, made.Key); st != 200 || !strings.Contains(body, `"UserId":"s"`) {
		t.Fatalf("the running node with the key made by the command: %d %s", st, body)
	}
	if list := keys("list", "--config", cfg, "--adapter", "caddyfile"); !bytes.Contains(list, []byte(made.ID)) || bytes.Contains(list, []byte(made.Key[len("wsk_")+16+1:])) {
		t.Fatalf("list: the key's id missing or its secret shown")
	}
	keys("revoke", "--config", cfg, "--adapter", "caddyfile", made.ID)
	refused := untilStatus(t, url, made.Key, 401, 5*time.Second)
	t.Logf("revoked by the command: refused by the running node after %v", refused.Round(time.Millisecond))
	node.stop(t)
	if strings.Contains(node.out.String(), made.Key[len("wsk_")+16+1:]) {
		t.Fatal("the node logged a key")
	}
}

// runNoAdmin runs `caddy run` on cfg (admin off) in dir and waits until
// url answers.
func runNoAdmin(t *testing.T, cfg, dir, url string) *process {
	t.Helper()
	cmd := exec.Command(caddyBin, "run", "--config", cfg, "--adapter", "caddyfile")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd, &out}
	t.Cleanup(func() { p.stop(t) })
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy did not start:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
