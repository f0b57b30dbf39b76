package introspect

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/authn"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// BenchmarkAuthenticateCacheHit: the route's whole authentication
// decision (authn.Authenticate: the credential's shape, its verifier, the
// subject rule) of a request whose token's verdict is cached, once with a
// JWT (ES256, the JWT core's token cache) and once with an opaque token
// (this package's answer cache), the claims the same. The introspection
// hit should cost at most 1.2 times the JWT hit.
//
//	go test ./internal/introspect -run '^$' -bench BenchmarkAuthenticateCacheHit -benchmem -count 6
func BenchmarkAuthenticateCacheHit(b *testing.B) {
	now := time.Now()
	claims := map[string]any{"iss": jwtauthtest.Issuer, "aud": jwtauthtest.Audience, "sub": "alice",
		"client_id": "app-1", "scope": "profile", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}

	b.Run("jwt", func(b *testing.B) {
		k := jwtauthtest.NewKey(b, jwa.ES256(), "k")
		file := filepath.Join(b.TempDir(), "jwks.json")
		if err := os.WriteFile(file, jwtauthtest.JWKS(b, k), 0o600); err != nil {
			b.Fatal(err)
		}
		src, err := jwtauth.LoadFile(file, nil)
		if err != nil {
			b.Fatal(err)
		}
		v, err := jwtauth.New(jwtauth.Config{Sources: []jwtauth.Source{src}, Issuers: []string{jwtauthtest.Issuer},
			Audiences: []string{jwtauthtest.Audience}, CacheSize: 100})
		if err != nil {
			b.Fatal(err)
		}
		benchAuthenticate(b, authn.New(authn.Config{JWT: v}), k.Mint(b, claims, nil), authn.MethodJWT)
	})

	b.Run("introspection", func(b *testing.B) {
		e := newEnv(b, func(c *Config) { c.Now = time.Now })
		answer := map[string]any{"active": true}
		for name, v := range claims {
			answer[name] = v
		}
		e.serve(mustJSON(b, answer))
		benchAuthenticate(b, authn.New(authn.Config{Introspection: e.in}), testToken, authn.MethodIntrospection)
		if e.calls() != 1 {
			b.Fatalf("%d calls, want the one that filled the cache", e.calls())
		}
	})
}

// benchAuthenticate authenticates a request bearing tok once (filling the
// cache), then measures the cache hits.
func benchAuthenticate(b *testing.B, a *authn.Authenticator, tok string, method authn.Method) {
	b.Helper()
	r := httptest.NewRequest("GET", "/api/workspace/account/profile", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	p, ref := a.Authenticate(r)
	if ref != nil || p.Subject != "alice" || p.Method != method {
		b.Fatalf("%+v %+v", p, ref)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ref := a.Authenticate(r); ref != nil {
			b.Fatal(ref)
		}
	}
}
