package oidcprovidertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// minNode is the oldest Node.js the harness accepts: jose 6 and koa 3,
// oidc-provider's dependencies, need Node 20; oidc-provider 9 itself
// warns below Node 22 but runs (the tests run it on Node 20).
var minNode = [2]int{20, 19}

// installTimeout bounds npm ci (a first install downloads about 40
// packages from the npm registry).
const installTimeout = 5 * time.Minute

// NodeMissing is the failure message when node or npm is not installed.
const NodeMissing = "Node.js 20.19 or later and npm must be on PATH " +
	"(e.g. apt-get install nodejs npm, or NodeSource's nodejs): oidc-provider is a Node.js program"

var installed struct {
	once   sync.Once
	dir    string // node_modules' parent, where provider.mjs is copied
	script string // the copy of provider.mjs there
	err    error
}

// install makes the pinned oidc-provider ready, once per test process:
// see the package comment.
func install() (dir, script string, err error) {
	installed.once.Do(func() {
		installed.dir, installed.script, installed.err = doInstall()
	})
	return installed.dir, installed.script, installed.err
}

// sourceDir is testdata/oidc-provider in this module's source tree.
func sourceDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot find the harness's source file")
	}
	dir := filepath.Join(filepath.Dir(file), "..", "..", "testdata", "oidc-provider")
	if _, err := os.Stat(filepath.Join(dir, "package-lock.json")); err != nil {
		return "", fmt.Errorf("the pinned packages are not where the harness expects them: %w", err)
	}
	return dir, nil
}

func doInstall() (string, string, error) {
	if err := checkNode(); err != nil {
		return "", "", err
	}
	src, err := sourceDir()
	if err != nil {
		return "", "", err
	}
	files := map[string][]byte{}
	for _, name := range []string{"package.json", "package-lock.json", "provider.mjs"} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			return "", "", err
		}
		files[name] = b
	}
	// The install is keyed by what npm ci reads; provider.mjs changes
	// more often and is copied beside it under a name of its own.
	h := sha256.New()
	h.Write(files["package-lock.json"])
	h.Write(files["package.json"])
	key := hex.EncodeToString(h.Sum(nil))[:32]
	dir := filepath.Join(os.TempDir(), "caddy-workspace-profile-oidc-provider-"+key)
	if !complete(dir) {
		if err := npmCI(dir, files); err != nil {
			return "", "", err
		}
	}
	sum := sha256.Sum256(files["provider.mjs"])
	script := filepath.Join(dir, "provider-"+hex.EncodeToString(sum[:])[:16]+".mjs")
	if err := writeAtomic(script, files["provider.mjs"]); err != nil {
		return "", "", err
	}
	return dir, script, nil
}

// marker is written last into a finished install, before its rename.
const marker = ".installed"

// complete: dir holds a finished install whose files are still there (a
// temporary-directory cleaner may have removed some).
func complete(dir string) bool {
	for _, name := range []string{marker, "node_modules/oidc-provider/package.json", "node_modules/jose/package.json", "node_modules/koa/package.json"} {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(name))); err != nil {
			return false
		}
	}
	return true
}

// npmCI installs into a fresh directory beside dir and renames it to dir,
// so that dir is either absent or complete: two test processes installing
// at once both succeed, and the second rename's loser removes its copy.
func npmCI(dir string, files map[string][]byte) error {
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // a no-op after the rename
	for _, name := range []string{"package.json", "package-lock.json"} {
		if err := os.WriteFile(filepath.Join(tmp, name), files[name], 0o644); err != nil {
			return err
		}
	}
	// npm's cache and user config in a directory of their own, never the
	// home directory; removed after the install.
	npmHome, err := os.MkdirTemp("", "oidcprovidertest-npm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(npmHome)
	cache := filepath.Join(npmHome, "cache")
	userconfig := filepath.Join(npmHome, "npmrc")
	if err := os.WriteFile(userconfig, nil, 0o644); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci",
		"--no-audit", "--no-fund", "--ignore-scripts", "--no-update-notifier",
		"--cache", cache, "--userconfig", userconfig)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(),
		"npm_config_cache="+cache,
		"npm_config_userconfig="+userconfig,
		"npm_config_update_notifier=false",
		"npm_config_fund=false",
		"npm_config_audit=false",
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("npm ci of testdata/oidc-provider in %s: %v\n%s", tmp, err, out.Bytes())
	}
	if err := os.WriteFile(filepath.Join(tmp, marker), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return err
	}
	if complete(dir) {
		return nil // another test process finished first
	}
	// An incomplete install left there is moved aside first (checked
	// again just before, so that another process's finished one stays).
	if _, err := os.Stat(dir); err == nil && !complete(dir) {
		stale := fmt.Sprintf("%s.stale-%d", dir, time.Now().UnixNano())
		if os.Rename(dir, stale) == nil {
			defer os.RemoveAll(stale)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if complete(dir) {
			return nil // another test process finished first
		}
		return fmt.Errorf("moving the install into place: %w", err)
	}
	return nil
}

// writeAtomic writes b to path through a temporary file and a rename, so
// that a concurrent reader sees the whole file or none.
func writeAtomic(path string, b []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// checkNode finds node and npm on PATH, and node's version.
func checkNode() error {
	for _, name := range []string{"node", "npm"} {
		if _, err := exec.LookPath(name); err != nil {
			return fmt.Errorf("%s: %s not found: %v", NodeMissing, name, err)
		}
	}
	out, err := exec.Command("node", "--version").Output()
	if err != nil {
		return fmt.Errorf("%s: node --version: %v", NodeMissing, err)
	}
	v := strings.TrimSpace(string(out))
	major, minor, ok := parseNodeVersion(v)
	if !ok {
		return fmt.Errorf("%s: cannot read node --version %q", NodeMissing, v)
	}
	if major < minNode[0] || (major == minNode[0] && minor < minNode[1]) {
		return fmt.Errorf("%s: this node is %s", NodeMissing, v)
	}
	return nil
}

// parseNodeVersion reads "v20.20.2".
func parseNodeVersion(v string) (major, minor int, ok bool) {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	return major, minor, err1 == nil && err2 == nil
}
