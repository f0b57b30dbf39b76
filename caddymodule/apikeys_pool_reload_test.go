package caddymodule

import (
	"strings"
	"testing"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
)

// TestAPIKeysKeptOverPoolChange: a reload that changes the PostgreSQL
// store's pool options (timeout, max_conns) opens another pool and closes
// the old one; the routes' keyring follows, so that a key cached before,
// a key first used after, a key made on the endpoint after the reload
// and a revocation all keep working, never a 503 from the closed pool.
func TestAPIKeysKeptOverPoolChange(t *testing.T) {
	storage := pgStorage(t)
	cfg := storage + "\n\t\tcreate_missing\n\t\tapi_keys"
	tc, _ := startKeyedSite(t, cfg)
	before := liveKeyStore(t)
	cachedKey, _ := issueKey(t, before, "cached-owner", apikey.KindUser, nil)
	laterKey, _ := issueKey(t, before, "later-owner", apikey.KindUser, nil)
	get := func(key string) itResponse {
		return do(t, tc.Client, "GET", itBase+profilePath, map[string]string{"X-Api-Key": key}, "")
	}
	if r := get(cachedKey); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}

	changed := strings.Replace(storage, "timeout 2s", "timeout 3s max_conns 7", 1)
	if changed == storage {
		t.Fatalf("no timeout to change in %q", storage)
	}
	startKeyedSite(t, changed+"\n\t\tcreate_missing\n\t\tapi_keys") // a reload onto another pool
	after := liveKeyStore(t)
	if after.Keyring == before.Keyring {
		t.Fatal("the reload onto another pool kept the keyring of the old one")
	}
	for name, key := range map[string]string{"cached before the reload": cachedKey, "first used after it": laterKey} {
		if r := get(key); r.status != 200 {
			t.Fatalf("a key %s: %d %s", name, r.status, r.body)
		}
	}
	made, rec := issueKey(t, after, "new-owner", apikey.KindUser, nil)
	if r := get(made); r.status != 200 {
		t.Fatalf("a key made after the reload: %d %s", r.status, r.body)
	}
	revokeKey(t, after, rec.ID)
	wantRefusal(t, get(made), "InvalidToken", apiKeyDetail, apiKeyChallenge)
}
