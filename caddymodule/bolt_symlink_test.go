package caddymodule

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// TestBoltSymlinkIsOneStore: two sites in one Caddy config name one bolt
// file, one through a symlinked directory and one through a symlink to
// the file (which does not exist yet): they share one open file (one
// pool entry, one store on the admin endpoint), where opening it twice
// would wait for bbolt's lock and fail the config load.
func TestBoltSymlinkIsOneStore(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(dir, "linkdir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(real, "p.db"), filepath.Join(dir, "linkfile.db")); err != nil {
		t.Fatal(err)
	}
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	tc := startSites(t, k, "storage bolt "+filepath.Join(dir, "linkdir", "p.db")+" timeout 1s", "storage bolt "+filepath.Join(dir, "linkfile.db")+" timeout 1s")
	tok := k.Mint(t, jwtauthtest.Claims("sym-1"), nil)
	if r := do(t, tc.Client, "PUT", itBase+profilePath, jsonPut(tok, ""), `{"UserName":"shared"}`); r.status != 200 {
		t.Fatalf("PUT on the first site: %d %s", r.status, r.body)
	}
	if r := do(t, tc.Client, "GET", "http://"+itAddr+profilePath, bearer(tok), ""); r.status != 200 || *r.envelope(t).Data.UserName != "shared" {
		t.Fatalf("GET on the second site: %d %s", r.status, r.body)
	}
	status, raw := adminDo(t, "GET", "", nil)
	if status != 200 {
		t.Fatalf("export without ?store=: %d %s", status, raw)
	}
	wantName := "bolt:" + filepath.Join(real, "p.db")
	if resolved, err := filepath.EvalSymlinks(real); err == nil { // t.TempDir may itself be under a symlink
		wantName = "bolt:" + filepath.Join(resolved, "p.db")
	}
	if status, raw := adminDo(t, "GET", "?store="+wantName, nil); status != 200 {
		t.Fatalf("store %s: %d %s", wantName, status, raw)
	}
}

// TestAdminStoreNamesShowNoAddresses: the names the admin endpoint lists
// for memory stores are stable counters, not heap addresses.
func TestAdminStoreNamesShowNoAddresses(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	startSites(t, k, "storage memory", "storage memory")
	status, raw := adminDo(t, "GET", "", nil)
	if status != 400 || strings.Contains(string(raw), "0x") || len(regexp.MustCompile(`memory:\d+\\"`).FindAll(raw, -1)) != 2 {
		t.Fatalf("%d %s", status, raw)
	}
}
