package caddymodule

import (
	"encoding/json"
	"testing"

	"github.com/caddyserver/caddy/v2"
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
	out := adaptExample(t, "Caddyfile.production")

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
