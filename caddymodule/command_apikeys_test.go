package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
	"github.com/workspace-edge/caddy-workspace-profile/profile/boltstore"
)

// writeJSONConfig writes a JSON config of the given HTTP routes' handlers
// and returns its path.
func writeJSONConfig(t *testing.T, handlers ...string) string {
	t.Helper()
	cfg := `{"admin":{"disabled":true},"apps":{"http":{"servers":{"s":{"listen":[":0"],"routes":[{"handle":[` +
		strings.Join(handlers, ",") + `]}]}}}}}`
	return writeFile(t, "caddy.json", []byte(cfg))
}

func TestKeysCommandFindsTheConfigsStores(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("KEYS_TEST_DSN", "postgres://u:secret@db.invalid/x")
	cfg := []byte(`{"apps":{"http":{"servers":{"a":{"routes":[
		{"handle":[{"handler":"workspace_profile","storage":{"backend":"bolt","path":"` + dir + `/p.db"},"api_keys":{}}]},
		{"handle":[{"handler":"subroute","routes":[{"handle":[
			{"handler":"workspace_profile","storage":{"backend":"bolt","path":"` + dir + `/p.db"},"api_keys":{"prefix":"acme_"}},
			{"handler":"workspace_profile","upstream":{"handler":"reverse_proxy"},"api_keys":{"store":{"backend":"postgres","dsn":"{env.KEYS_TEST_DSN}","schema":"keys"}}},
			{"handler":"workspace_profile","storage":{"backend":"memory"},"api_keys":{"header":"X-Key"}},
			{"handler":"workspace_profile","storage":{"backend":"bolt","path":"` + dir + `/other.db"}},
			{"handler":"workspace_profile","api_keys":{}}
		]}]}]}
	]}}}}}`)
	specs, err := findKeyStoreSpecs(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	var pg keyStoreSpec
	for _, s := range specs {
		got[s.Name] = s.Prefix
		if s.Backend == "postgres" {
			pg = s
		}
	}
	defaultBolt := "bolt:" + resolveBoltPath(filepath.Join(caddy.AppDataDir(), DefaultBoltFile))
	if len(specs) != 4 || got[defaultBolt] != "wsk_" || got["bolt:"+resolveBoltPath(dir+"/p.db")] != "wsk_" || got["memory"] != "wsk_" ||
		!strings.HasPrefix(pg.Name, "postgres:keys@") || pg.DSN != "postgres://u:secret@db.invalid/x" || strings.Contains(pg.Name, "secret") {
		t.Fatalf("stores %v", got)
	}
	for _, c := range []struct{ cfg, msg string }{
		{`{"handler":"workspace_profile","upstream":{},"api_keys":{}}`, "upstream mode has api_keys without a store"},
		{`{"handler":"workspace_profile","api_keys":{"store":{"backend":"redis"}}}`, `unknown backend "redis"`},
		{`{"handler":"workspace_profile","api_keys":{"store":{"backend":"postgres"}}}`, "without a dsn"},
		{`{"handler":"workspace_profile","api_keys":true}`, "not an object"},
	} {
		if _, err := findKeyStoreSpecs([]byte(`[` + c.cfg + `]`)); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, want %q", c.cfg, err, c.msg)
		}
	}
}

// runKeys runs the command in this process and returns what it printed.
func runKeys(args []string, flags map[string]string) (string, error) {
	c := keysCommand{flags: flags}
	if len(args) > 0 {
		c.action, c.args = args[0], args[1:]
	}
	var out bytes.Buffer
	err := c.run(context.Background(), &out)
	return out.String(), err
}

func TestKeysCommandRefusals(t *testing.T) {
	dir := t.TempDir()
	bolt := func(name string) string {
		return `{"handler":"workspace_profile","storage":{"backend":"bolt","path":"` + filepath.Join(dir, name) + `"},"api_keys":{}}`
	}
	missing := writeJSONConfig(t, bolt("missing.db"))
	locked := filepath.Join(dir, "locked.db")
	held, err := boltstore.Open(locked, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	lockedCfg := writeJSONConfig(t, bolt("locked.db"))
	two := writeJSONConfig(t, bolt("a.db"), bolt("b.db"))
	memory := writeJSONConfig(t, `{"handler":"workspace_profile","storage":{"backend":"memory"},"api_keys":{}}`)
	none := writeJSONConfig(t, `{"handler":"workspace_profile","storage":{"backend":"memory"}}`)
	for _, c := range []struct {
		name  string
		args  []string
		flags map[string]string
		msg   string
	}{
		{"no action", nil, map[string]string{"config": missing}, "create, list or revoke"},
		{"unknown action", []string{"delete"}, map[string]string{"config": missing}, "create, list or revoke"},
		{"no config", []string{"list"}, map[string]string{}, "--config is required"},
		{"a flag of another action", []string{"list"}, map[string]string{"config": missing, "kind": "user"}, "--kind does not apply to list"},
		{"revoke without id", []string{"revoke"}, map[string]string{"config": missing}, "one argument"},
		{"list with an argument", []string{"list", "x"}, map[string]string{"config": missing}, "takes no argument"},
		{"list with an empty subject", []string{"list"}, map[string]string{"config": missing, "subject": ""}, "--subject:"},
		{"list with a subject padded by a space", []string{"list"}, map[string]string{"config": missing, "subject": " u1"}, "--subject:"},
		{"revoke given the key", []string{"revoke", "wsk_aaaaaaaaaaaaaaaa_" + strings.Repeat("A", 43)}, map[string]string{"config": missing},
			"that is a key, not a key id: revoke it by its id, aaaaaaaaaaaaaaaa"},
		{"create without kind", []string{"create"}, map[string]string{"config": missing, "subject": "u1"}, "kind is required"},
		{"create with a past expiry", []string{"create"}, map[string]string{"config": missing, "subject": "u1", "kind": "user",
			"expires": "2001-01-01T00:00:00Z"}, "expires must lie in the future"},
		{"config without api_keys", []string{"list"}, map[string]string{"config": none}, "no workspace_profile handler of the config has api_keys"},
		{"two stores", []string{"list"}, map[string]string{"config": two}, "several key stores; name one with --store: bolt:"},
		{"a store not in the config", []string{"list"}, map[string]string{"config": two, "store": "bolt:/nowhere"}, "no key store \"bolt:/nowhere\""},
		{"memory", []string{"list"}, map[string]string{"config": memory}, "lives inside a running Caddy"},
		{"no bolt file", []string{"list"}, map[string]string{"config": missing}, "no bolt file at"},
		{"a bolt file held by Caddy", []string{"list"}, map[string]string{"config": lockedCfg}, "held by another process"},
	} {
		out, err := runKeys(c.args, c.flags)
		if err == nil || !strings.Contains(err.Error(), c.msg) || out != "" {
			t.Errorf("%s: %v (printed %q); want %q", c.name, err, out, c.msg)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a bolt file was created by a refused run: %v", err)
	}
}

// TestKeysCommandOnBolt: create, list and revoke on a bolt file with
// Caddy stopped, as an operator runs them. Until the bolt store keeps API
// keys (its APIKeys method), the command says so instead.
func TestKeysCommandOnBolt(t *testing.T) {
	db := filepath.Join(t.TempDir(), "keys.db")
	s, err := boltstore.Open(db, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	cfg := writeJSONConfig(t, `{"handler":"workspace_profile","storage":{"backend":"bolt","path":"`+db+`"},"api_keys":{"prefix":"acme_"}}`)
	flags := map[string]string{"config": cfg, "subject": "u1", "kind": "user", "name": "cli"}
	out, err := runKeys([]string{"create"}, flags)
	if _, keeps := any(s).(keyStoreOwner); !keeps {
		if err == nil || !strings.Contains(err.Error(), "the bolt store of this build keeps no API keys") {
			t.Fatalf("a bolt store without API keys: %v %q", err, out)
		}
		return
	}
	var created createdKey
	if err != nil || json.Unmarshal([]byte(out), &created) != nil || !strings.HasPrefix(created.Key, "acme_") || created.Subject != "u1" {
		t.Fatalf("create: %v %q", err, out)
	}
	out, err = runKeys([]string{"list"}, map[string]string{"config": cfg, "subject": "u1"})
	if err != nil || !strings.Contains(out, created.ID) || strings.Contains(out, created.Key) {
		t.Fatalf("list: %v %q", err, out)
	}
	for range 2 {
		if out, err = runKeys([]string{"revoke", created.ID}, map[string]string{"config": cfg}); err != nil || !strings.Contains(out, `"revoked"`) {
			t.Fatalf("revoke: %v %q", err, out)
		}
	}
	if _, err = runKeys([]string{"revoke", "zzzzzzzzzzzzzzzz"}, map[string]string{"config": cfg}); err == nil || !strings.Contains(err.Error(), "no API key with that id") {
		t.Fatalf("revoke of an unknown id: %v", err)
	}
	s, err = boltstore.Open(db, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	keys := any(s).(keyStoreOwner).APIKeys()
	if _, err := apikey.NewKeyring(keys, apikey.Options{}).Verify(context.Background(), created.Key); !errors.Is(err, apikey.ErrInvalid) {
		t.Fatalf("the revoked key: %v", err)
	}
}

// TestKeysCommandInTheBuiltBinary: the command is registered in the caddy
// binary, fails with exit status 1 and its reason on stderr, prints
// nothing on stdout then, and reads a Caddyfile through its adapter.
func TestKeysCommandInTheBuiltBinary(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "caddy")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/caddy").CombinedOutput(); err != nil {
		t.Fatalf("go build ../cmd/caddy: %v\n%s", err, out)
	}
	caddyfile := writeFile(t, "Caddyfile", []byte("{\n\tadmin off\n}\nhttp://localhost:1 {\n\tworkspace_profile {\n\t\tjwks_file x.json\n\t\tissuer https://i.example\n\t\taudience a\n\t\tstorage memory\n\t}\n}\n"))
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"list", "--config", writeJSONConfig(t, `{"handler":"workspace_profile","storage":{"backend":"memory"},"api_keys":{}}`)}, "lives inside a running Caddy"},
		{[]string{"list", "--config", caddyfile, "--adapter", "caddyfile"}, "no workspace_profile handler of the config has api_keys"},
		{[]string{"revoke", "--config", caddyfile}, "one argument"},
	} {
		cmd := exec.Command(bin, append([]string{"workspace-profile-keys"}, c.args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || stdout.Len() != 0 || !strings.Contains(stderr.String(), c.msg) {
			t.Errorf("%v: %v, stdout %q, stderr %q; want status 1 and %q", c.args, err, stdout.String(), stderr.String(), c.msg)
		}
	}
}
