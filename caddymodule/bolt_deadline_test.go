package caddymodule

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// TestBoltRequestDeadline: while bbolt's single writer is held (here by a
// write whose fn blocks, as a stuck import or a remap would), a PUT on
// the route answers 503 StorageUnavailable with Retry-After within the
// store's timeout (`storage bolt <file> timeout 1s`) instead of hanging;
// the write it gave up is not applied when the writer frees up.
func TestBoltRequestDeadline(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	db := filepath.Join(t.TempDir(), "p.db")
	tc := startCaddy(t, itConfig{jwksFiles: []string{writeFile(t, "k.json", jwtauthtest.JWKS(t, k))}, storage: "storage bolt " + db + " timeout 1s"})
	tok := k.Mint(t, jwtauthtest.Claims("dl-1"), nil)
	if r := do(t, tc.Client, "PUT", itBase+profilePath, jsonPut(tok, ""), `{"UserName":"before"}`); r.status != 200 {
		t.Fatalf("first PUT: %d %s", r.status, r.body)
	}
	store, err := liveStores.pick("")
	if err != nil {
		t.Fatal(err)
	}
	held, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		_, _ = store.Update(context.Background(), "holder", func(profile.Profile, bool) (profile.Profile, bool, error) {
			close(held)
			<-release
			return profile.Profile{}, false, nil
		})
	}()
	<-held
	freed := false
	free := func() {
		if !freed {
			freed = true
			close(release)
			<-done
		}
	}
	defer free()

	client := &http.Client{Timeout: 10 * time.Second}
	start := time.Now()
	r := do(t, client, "PUT", itBase+profilePath, jsonPut(tok, ""), `{"UserName":"during"}`)
	took := time.Since(start)
	t.Logf("PUT with the writer held: %d after %v", r.status, took.Round(time.Millisecond))
	if r.status != 503 || len(r.envelope(t).Errors) != 1 || r.envelope(t).Errors[0].Code != profile.CodeStorageUnavailable || r.header.Get("Retry-After") == "" || took > 3*time.Second {
		t.Fatalf("PUT with the writer held: %d %s %v after %v", r.status, r.body, r.header, took)
	}
	// a GET reads beside the writer
	if r := do(t, client, "GET", itBase+profilePath, bearer(tok), ""); r.status != 200 {
		t.Fatalf("GET with the writer held: %d", r.status)
	}
	free()
	time.Sleep(200 * time.Millisecond)
	r = do(t, client, "GET", itBase+profilePath, bearer(tok), "")
	if r.status != 200 || *r.envelope(t).Data.UserName != "before" {
		t.Fatalf("after the writer freed: %d %s: the abandoned PUT was applied", r.status, r.body)
	}
}
