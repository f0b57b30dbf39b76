package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/workspace-edge/caddy-workspace-profile/internal/pgtest"
)

// schemaExists says whether schema is in the database at dsn.
func schemaExists(t *testing.T, dsn, schema string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

func pgNodeConfig(s *signer, httpPort, adminPort int, storage string) string {
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	http_port %d
}
http://127.0.0.1:%d {
	handle /health {
		respond "ok" 200
	}
	workspace_profile {
		jwks_file %s
		issuer https://nodes.test.invalid
		audience workspace-api
		%s
		create_missing
	}
}
`, adminPort, httpPort, httpPort, s.jwks, storage)
}

// TestPgAdaptValidateLeavesNoSchema: `caddy adapt --validate` and `caddy
// validate` of a PostgreSQL config, the database up, load the config
// without connecting: no schema is created, nothing migrated.
func TestPgAdaptValidateLeavesNoSchema(t *testing.T) {
	dsn := pgtest.DSN(t)
	schema := pgtest.Schema("wp_validate")
	s := newSigner(t)
	cfg := filepath.Join(t.TempDir(), "Caddyfile")
	config := pgNodeConfig(s, freePort(t), freePort(t), fmt.Sprintf("storage postgres {env.%s} schema %s", pgtest.EnvDSN, schema))
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	dataHome := t.TempDir()
	for _, args := range [][]string{{"adapt", "--config", cfg, "--validate"}, {"validate", "--config", cfg, "--adapter", "caddyfile"}} {
		cmd := exec.Command(caddyBin, args...)
		cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dataHome, "XDG_CONFIG_HOME="+dataHome)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("caddy %s: %v\n%s", args[0], err, out)
		}
		if strings.Contains(string(out), dsn) {
			t.Fatalf("caddy %s printed the DSN:\n%s", args[0], out)
		}
		t.Logf("caddy %s: %v", args[0], time.Since(start).Round(time.Millisecond))
	}
	time.Sleep(1500 * time.Millisecond) // longer than the first attempt's delay
	if schemaExists(t, dsn, schema) {
		t.Cleanup(func() { _, _ = dropSchemaAt(dsn, schema) })
		t.Fatalf("validating the config created schema %s", schema)
	}
}

func dropSchemaAt(dsn, schema string) (bool, error) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return false, err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	return err == nil, err
}

// TestPgNodeStartsWhileDatabaseDown: the built binary, started with its
// database down, runs: the site's other route answers, the profile route
// answers 503 StorageUnavailable with Retry-After, and once the database
// is up the route serves within seconds, without a reload; the log says
// why meanwhile, without the DSN.
func TestPgNodeStartsWhileDatabaseDown(t *testing.T) {
	srv := pgtest.NewServer(t)
	srv.Stop(t)
	schema := pgtest.Schema("wp_nodedown")
	s := newSigner(t)
	httpPort, adminPort := freePort(t), freePort(t)
	dsn := srv.DSN + "&connect_timeout=1"
	p := start(t, caddyBin, pgNodeConfig(s, httpPort, adminPort, fmt.Sprintf("storage postgres %q schema %s timeout 1s", dsn, schema)), t.TempDir(), adminPort)
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	url := base + "/api/workspace/account/profile"
	tok := s.token(t, "node-down")

	if resp, err := client.Get(base + "/health"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("another route with the database down: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	status, hdr, body := request(t, "GET", url, tok, "")
	if status != 503 || !strings.Contains(body, "StorageUnavailable") || hdr.Get("Retry-After") == "" {
		t.Fatalf("route with the database down: %d %q %s", status, hdr.Get("Retry-After"), body)
	}
	time.Sleep(2 * time.Second) // a background attempt or two fail
	srv.Start(t)
	up := time.Now()
	for {
		status, _, body = request(t, "PUT", url, tok, `{"FirstName":"Up"}`)
		if status == 200 {
			break
		}
		if status != 503 || time.Since(up) > 10*time.Second {
			t.Fatalf("%v after the database came up: %d %s", time.Since(up), status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the built binary served %v after the database came up", time.Since(up).Round(time.Millisecond))
	p.stop(t)
	out := p.out.String()
	if !strings.Contains(out, "not open yet") || !strings.Contains(out, "opened PostgreSQL profile store") || strings.Contains(out, srv.DSN) {
		t.Fatalf("log: the outage or the opening missing, or the DSN present:\n%s", out)
	}
}
