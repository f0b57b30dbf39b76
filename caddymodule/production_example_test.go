package caddymodule

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// TestProductionExampleValidates does for Caddyfile.production what
// `caddy fmt` and `caddy adapt --validate` do: the file is formatted, adapts
// without warnings, and every module provisions. Validating provisions the
// discovery key source and the PostgreSQL store without reaching either
// (the first fetch and the first connection happen in the background, after
// validation has cleaned up), so no provider or database is needed; the
// DSN only has to parse. The adapted JSON is kept under review in
// testdata/golden, like Caddyfile.example's.
func TestProductionExampleValidates(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "Caddyfile.production"))
	if err != nil {
		t.Fatal(err)
	}
	if formatted := caddyfile.Format(src); !bytes.Equal(formatted, src) {
		t.Fatal("Caddyfile.production is not formatted as caddy fmt would write it")
	}
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": "Caddyfile.production"})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) > 0 {
		t.Fatalf("adapt warnings: %v", warnings)
	}

	var pretty bytes.Buffer
	_ = json.Indent(&pretty, out, "", "\t")
	pretty.WriteByte('\n')
	golden := filepath.Join("..", "testdata", "golden", "Caddyfile.production.json")
	if *update {
		_ = os.WriteFile(golden, pretty.Bytes(), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test ./caddymodule -run ProductionExample -update)", err)
	}
	if !bytes.Equal(pretty.Bytes(), want) {
		t.Fatalf("adapted Caddyfile.production differs from %s:\n%s", golden, pretty.String())
	}

	// The DSN comes from the environment, as the example says; a host
	// that never resolves proves nothing is reached while validating.
	t.Setenv("PROFILE_PG_DSN", "postgres://caddy@db.workspace.invalid:5432/profiles?sslmode=disable")
	var cfg caddy.Config
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	// as `caddy adapt --validate`: provisioned and cleaned up, no admin
	// server started (the example's localhost:2019 is never bound)
	if err := caddy.Validate(&cfg); err != nil {
		t.Fatalf("caddy adapt --validate would fail: %v", err)
	}
}
