package caddyworkspaceprofile

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestLayoutDependencies keeps the packages apart as the README's Layout
// says: the domain, the token core, the authentication decision and the
// store drain build without Caddy, and the core
// without Prometheus and without the domain, the JSON scanner with the
// standard library alone, so that each can be read and
// tested without a web server (and a jwx or Caddy upgrade touches one
// package). It reads `go list -deps`, which follows every import, direct
// or not.
func TestLayoutDependencies(t *testing.T) {
	const module = "github.com/workspace-edge/caddy-workspace-profile/"
	for pattern, forbidden := range map[string][]string{
		"./profile/...": {"github.com/caddyserver/"},
		// the store's listening connection is pgx alone
		"./internal/pglisten/...": {"github.com/caddyserver/", "github.com/prometheus/", "go.uber.org/zap",
			module + "profile", module + "caddymodule"},
		// API keys are a domain of their own: no Caddy, no metrics, no web
		"./apikey/...": {"github.com/caddyserver/", "github.com/prometheus/",
			module + "caddymodule", module + "internal/authn"},
		"./internal/drain/...": {"github.com/caddyserver/"},
		"./internal/jwtauth/...": {"github.com/caddyserver/", "github.com/prometheus/",
			module + "profile", module + "caddymodule"},
		"./internal/dpop/...": {"github.com/caddyserver/", "github.com/prometheus/",
			module + "profile", module + "caddymodule"},
		// opaque tokens are verified without Caddy, metrics or the domain
		"./internal/introspect/...": {"github.com/caddyserver/", "github.com/prometheus/",
			module + "profile", module + "caddymodule"},
		// the authentication decision reads the domain's texts and its
		// rule for a usable subject, and nothing of Caddy
		"./internal/authn/...": {"github.com/caddyserver/", "github.com/prometheus/",
			module + "caddymodule"},
	} {
		out, err := exec.Command("go", "list", "-deps", pattern).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pattern, err, out)
		}
		deps := strings.Fields(string(out))
		if len(deps) == 0 {
			t.Fatalf("go list -deps %s listed nothing", pattern)
		}
		for _, dep := range deps {
			for _, f := range forbidden {
				if strings.HasPrefix(dep, f) {
					t.Errorf("%s depends on %s", pattern, dep)
				}
			}
		}
	}
}

// TestLayoutStandardLibraryOnly: the JSON scanner, which the domain, the
// token core and the DPoP checker all read JSON through, knows nothing of
// Caddy, jwx or zap, nor of this module's other packages, so that sharing
// it drags no dependency from one of them into another.
func TestLayoutStandardLibraryOnly(t *testing.T) {
	for _, pkg := range []string{"./internal/jsonscan"} {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		deps := strings.Fields(string(out))
		if len(deps) != 1 { // the package itself
			t.Errorf("%s depends on more than the standard library: %v", pkg, deps)
		}
	}
}

// TestFilesStayShort keeps each Go file that is not a test to one concern
// a reader can hold: past 400 lines a file is split where its concerns
// part (tests are exempt: a table of cases may be long).
func TestFilesStayShort(t *testing.T) {
	out, err := exec.Command("git", "ls-files", "*.go").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	files := strings.Fields(string(out))
	if len(files) == 0 {
		t.Fatal("git ls-files listed no Go file")
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(b), "\n"); n > 400 {
			t.Errorf("%s has %d lines: split it where its concerns part", name, n)
		}
	}
}
