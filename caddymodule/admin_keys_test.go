package caddymodule

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// TestAdminKeysListsEachFileOnceWithVersion: a jwks_file named by several
// handlers is one source on the admin view, which also names the module's
// version.
func TestAdminKeysListsEachFileOnceWithVersion(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	jwks := writeFile(t, "shared-jwks.json", jwtauthtest.JWKS(t, k))
	for range 3 {
		h := &Handler{JWKSFiles: []string{jwks}, Issuers: []string{testIssuer}, Audiences: []string{testAudience},
			StorageRaw: json.RawMessage(`{"backend":"memory"}`)}
		provisionHandler(t, h)
	}
	rec := httptest.NewRecorder()
	if err := serveKeys(rec, httptest.NewRequest("GET", "/workspace-profile/keys", nil)); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Version string
		Sources []struct{ File string }
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range out.Sources {
		if s.File == jwks {
			n++
		}
	}
	if n != 1 || out.Version != Version || !strings.Contains(Version, ".") {
		t.Fatalf("the file is listed %d times, version %q: %s", n, out.Version, rec.Body)
	}
}
