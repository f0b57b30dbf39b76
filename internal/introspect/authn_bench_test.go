package introspect

import (
	"net/http"
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
// (this package's answer cache), the claims the same. ratio interleaves
// the two in batches of 64 on every iteration, so that both see the same
// machine, and reports introspection/jwt: an introspection hit should
// cost at most 1.2 times a JWT hit.
//
//	go test ./internal/introspect -run '^$' -bench BenchmarkAuthenticateCacheHit -benchmem -count 6
func BenchmarkAuthenticateCacheHit(b *testing.B) {
	b.Run("jwt", func(b *testing.B) {
		benchAuthenticate(b, jwtAuthenticator(b))
	})
	b.Run("introspection", func(b *testing.B) {
		benchAuthenticate(b, opaqueAuthenticator(b))
	})
	b.Run("ratio", func(b *testing.B) {
		jwt, opaque := jwtAuthenticator(b), opaqueAuthenticator(b)
		const batch = 64
		var tJWT, tOpaque time.Duration
		for b.Loop() {
			start := time.Now()
			for range batch {
				jwt.authenticate(b)
			}
			mid := time.Now()
			for range batch {
				opaque.authenticate(b)
			}
			tJWT, tOpaque = tJWT+mid.Sub(start), tOpaque+time.Since(mid)
		}
		b.ReportMetric(float64(tJWT.Nanoseconds())/float64(b.N*batch), "jwt-ns/hit")
		b.ReportMetric(float64(tOpaque.Nanoseconds())/float64(b.N*batch), "introspection-ns/hit")
		b.ReportMetric(float64(tOpaque)/float64(tJWT), "introspection/jwt")
	})
}

// cachedAuth is an authenticator and a request whose token it has
// verified once, so that its verdict is cached.
type cachedAuth struct {
	a *authn.Authenticator
	r *http.Request
}

func (c cachedAuth) authenticate(b *testing.B) {
	if _, ref := c.a.Authenticate(c.r); ref != nil {
		b.Fatal(ref)
	}
}

// benchClaims are the claims of both tokens: an OIDC access token's.
func benchClaims() map[string]any {
	now := time.Now()
	return map[string]any{"iss": jwtauthtest.Issuer, "aud": jwtauthtest.Audience, "sub": "alice",
		"client_id": "app-1", "scope": "profile", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}

func jwtAuthenticator(b *testing.B) cachedAuth {
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
	return primed(b, authn.New(authn.Config{JWT: v}), k.Mint(b, benchClaims(), nil), authn.MethodJWT)
}

func opaqueAuthenticator(b *testing.B) cachedAuth {
	e := newEnv(b, func(c *Config) { c.Now = time.Now })
	answer := benchClaims()
	answer["active"] = true
	e.serve(mustJSON(b, answer))
	c := primed(b, authn.New(authn.Config{Introspection: e.in}), testToken, authn.MethodIntrospection)
	b.Cleanup(func() {
		if e.calls() != 1 {
			b.Errorf("%d introspection calls, want the one that filled the cache", e.calls())
		}
	})
	return c
}

// primed authenticates a request bearing tok once, filling the cache.
func primed(b *testing.B, a *authn.Authenticator, tok string, method authn.Method) cachedAuth {
	b.Helper()
	r := httptest.NewRequest("GET", "/api/workspace/account/profile", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	p, ref := a.Authenticate(r)
	if ref != nil || p.Subject != "alice" || p.Method != method {
		b.Fatalf("%+v %+v", p, ref)
	}
	return cachedAuth{a: a, r: r}
}

func benchAuthenticate(b *testing.B, c cachedAuth) {
	b.ReportAllocs()
	for b.Loop() {
		c.authenticate(b)
	}
}
