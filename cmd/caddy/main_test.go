package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/workspace-edge/caddy-workspace-profile/internal/pgtest"
)

// These tests build this command and run the binary as an operator would:
// a real process, real ports, the bolt file in Caddy's data directory.

var repoRoot = filepath.Join("..", "..")

// caddyBin is this command, built once for all the tests of the package.
var caddyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "caddy-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	caddyBin = filepath.Join(dir, "caddy")
	if out, err := exec.Command("go", "build", "-o", caddyBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	pgtest.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

func buildCaddy(*testing.T) string { return caddyBin }

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type process struct {
	cmd *exec.Cmd
	out *bytes.Buffer
}

// start runs `caddy run` on config with XDG_DATA_HOME=dataHome and waits
// until the admin endpoint answers.
func start(t testing.TB, bin, config, dataHome string, adminPort int) *process {
	t.Helper()
	return startIn(t, bin, config, repoRoot, dataHome, adminPort)
}

// startIn is start with the process's working directory dir.
func startIn(t testing.TB, bin, config, dir, dataHome string, adminPort int) *process {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", cfg, "--adapter", "caddyfile")
	cmd.Dir = dir // the config names testdata/ relative to it
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dataHome, "XDG_CONFIG_HOME="+dataHome)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd, &out}
	t.Cleanup(func() { p.stop(t) })
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/config/", adminPort))
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

func (p *process) stop(t testing.TB) {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
		t.Errorf("caddy did not stop on SIGTERM:\n%s", p.out.String())
	}
}

func request(t *testing.T, method, url, token, body string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func devToken(t *testing.T, name string) string {
	b, err := os.ReadFile(filepath.Join(repoRoot, "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestBinary(t *testing.T) {
	bin := buildCaddy(t)

	t.Run("list-modules", func(t *testing.T) {
		out, err := exec.Command(bin, "list-modules").CombinedOutput()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"admin.api.workspace_profile", "http.handlers.workspace_profile", "http.workspace_profile.storage.bolt",
			"http.workspace_profile.storage.memory", "http.workspace_profile.storage.postgres"} {
			if !bytes.Contains(out, []byte(m+"\n")) {
				t.Errorf("%s not listed", m)
			}
		}
	})

	t.Run("adapt Caddyfile.example", func(t *testing.T) {
		// --validate provisions the config, which opens its bolt file: run
		// it in a directory of its own (with the repository's testdata), so
		// that it never touches, nor waits for, the files of an example a
		// user is running from the README.
		dir := t.TempDir()
		abs, err := filepath.Abs(repoRoot)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(abs, "testdata"), filepath.Join(dir, "testdata")); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "adapt", "--config", filepath.Join(abs, "Caddyfile.example"), "--validate")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if _, err := os.Stat(filepath.Join(dir, ".data", "workspace_profile.db")); err != nil {
			t.Fatalf("the example's bolt file is not where the README says: %v", err)
		}
	})

	t.Run("profile survives a restart", func(t *testing.T) {
		dataHome := t.TempDir()
		httpPort, adminPort := freePort(t), freePort(t)
		config := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	http_port %d
}
http://127.0.0.1:%d {
	workspace_profile {
		jwks_file testdata/dev-jwks.json
		issuer https://dev-idp.workspace.invalid
		audience workspace-api
		storage bolt
		create_missing
	}
}
`, adminPort, httpPort, httpPort)
		url := fmt.Sprintf("http://127.0.0.1:%d/api/workspace/account/profile", httpPort)
		tok := devToken(t, "dev-token.txt")

		p := start(t, bin, config, dataHome, adminPort)
		status, hdr, body := request(t, "PUT", url, tok, `{"FirstName":"Persisted","UserName":"alice-restart"}`)
		if status != 200 {
			t.Fatalf("PUT: %d %s", status, body)
		}
		etag := hdr.Get("ETag")
		p.stop(t)

		// the default file is in Caddy's data directory
		if _, err := os.Stat(filepath.Join(dataHome, "caddy", "workspace_profile.db")); err != nil {
			t.Fatalf("bolt file not in the data directory: %v", err)
		}

		start(t, bin, config, dataHome, adminPort)
		status, hdr, body = request(t, "GET", url, tok, "")
		if status != 200 || !strings.Contains(body, `"FirstName":"Persisted"`) || !strings.Contains(body, `"UserName":"alice-restart"`) || hdr.Get("ETag") != etag {
			t.Fatalf("after restart: %d %s (ETag %q, was %q)", status, body, hdr.Get("ETag"), etag)
		}
		// the name index survived too
		status, _, body = request(t, "PUT", url, devToken(t, "dev-token-bob.txt"), `{"UserName":"ALICE-RESTART"}`)
		if status != 400 || !strings.Contains(body, "UserNameTaken") {
			t.Fatalf("user-name index after restart: %d %s", status, body)
		}
	})
}

// TestDevTokens: the README's walk-through tokens verify against the
// development key set for decades and say what they are.
func TestDevTokens(t *testing.T) {
	for _, name := range []string{"dev-token.txt", "dev-token-bob.txt", "dev-token-service-account.txt"} {
		parts := strings.Split(devToken(t, name), ".")
		if len(parts) != 3 {
			t.Fatalf("%s is not a compact JWS", name)
		}
		raw, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			Exp  int64
			Note string
		}
		_ = json.Unmarshal(raw, &c)
		if time.Unix(c.Exp, 0).Year() < 2099 || !strings.Contains(c.Note, "never valid in production") {
			t.Fatalf("%s: exp %d, note %q", name, c.Exp, c.Note)
		}
	}
}
