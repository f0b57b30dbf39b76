package introspect

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"go.uber.org/zap"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// issuerVerifier is the JWT core over the key set of keys, as the glue
// would pass the issuer's key sources.
func issuerVerifier(t *testing.T, keys ...jwtauthtest.Key) *jwtauth.Verifier {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, jwtauthtest.JWKS(t, keys...), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := jwtauth.LoadFile(path, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	v, err := jwtauth.New(jwtauth.Config{Sources: []jwtauth.Source{src}, Issuers: []string{jwtauthtest.Issuer},
		Audiences: []string{jwtauthtest.Audience}})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestSignedAnswers: with response jwt the endpoint is asked for a signed
// answer, and one is used only when it is a token-introspection+jwt
// signed by the issuer's key, from a configured issuer, to this client,
// just issued. Anything else is a failed call (the answer cannot be
// trusted either way): IntrospectionUnavailable, nothing cached.
func TestSignedAnswers(t *testing.T) {
	key := jwtauthtest.NewKey(t, jwa.ES256(), "idp-1")
	forger := jwtauthtest.NewKey(t, jwa.ES256(), "idp-1") // same kid, other key
	v := issuerVerifier(t, key)
	type doc = map[string]any
	tests := []struct {
		name   string
		signer jwtauthtest.Key
		hdr    map[string]any
		claims func(e *env) doc
		code   string
	}{
		{name: "good", code: ""},
		{name: "inactive", claims: func(e *env) doc {
			return doc{"iss": jwtauthtest.Issuer, "aud": testClient, "iat": e.clock.Now().Unix(), "token_introspection": doc{"active": false}}
		}, code: "InvalidToken"},
		{name: "token_rule_broken", claims: func(e *env) doc {
			d := signedDoc(e)
			d["token_introspection"].(doc)["aud"] = "other-api"
			return d
		}, code: "InvalidAudience"},
		{name: "wrong_aud", claims: func(e *env) doc { d := signedDoc(e); d["aud"] = "other-client"; return d }, code: "IntrospectionUnavailable"},
		{name: "no_aud", claims: func(e *env) doc { d := signedDoc(e); delete(d, "aud"); return d }, code: "IntrospectionUnavailable"},
		{name: "foreign_iss", claims: func(e *env) doc { d := signedDoc(e); d["iss"] = "https://evil.test"; return d }, code: "IntrospectionUnavailable"},
		{name: "stale_iat", claims: func(e *env) doc {
			d := signedDoc(e)
			d["iat"] = e.clock.Now().Add(-5 * time.Minute).Unix()
			return d
		}, code: "IntrospectionUnavailable"},
		{name: "no_token_introspection", claims: func(e *env) doc { d := signedDoc(e); delete(d, "token_introspection"); return d }, code: "IntrospectionUnavailable"},
		{name: "wrong_typ", hdr: map[string]any{"typ": "JWT"}, code: "IntrospectionUnavailable"},
		{name: "no_typ", hdr: map[string]any{"typ": nil}, code: "IntrospectionUnavailable"},
		{name: "typ_in_full", hdr: map[string]any{"typ": "application/token-introspection+jwt"}, code: ""},
		{name: "wrong_signature", signer: forger, code: "IntrospectionUnavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Response, c.Signed = ResponseJWT, v })
			claims := signedDoc(e)
			if tt.claims != nil {
				claims = tt.claims(e)
			}
			signer := key
			if tt.signer.Priv != nil {
				signer = tt.signer
			}
			hdr := map[string]any{"typ": "token-introspection+jwt"}
			for k, val := range tt.hdr {
				hdr[k] = val
			}
			e.srv.Set(200, []byte(signer.Mint(t, claims, hdr)))
			c, aerr := e.verify(testToken)
			wantCode(t, aerr, tt.code)
			if aerr == nil {
				if s, _ := c.Str("sub"); s != "alice" {
					t.Fatalf("claims %v", c)
				}
			}
			if r := e.srv.Requests()[0]; r.Header.Get("Accept") != "application/token-introspection+jwt" {
				t.Fatalf("Accept %q", r.Header.Get("Accept"))
			}
			if tt.code == jwtauth.CodeIntrospectionUnavailable && e.in.Status().CachedAnswers != 0 {
				t.Fatal("an untrusted answer was cached")
			}
		})
	}
}

// signedDoc is a signed answer's claims: the envelope of RFC 9701 around
// an active answer for alice.
func signedDoc(e *env) map[string]any {
	return map[string]any{"iss": jwtauthtest.Issuer, "aud": testClient, "iat": e.clock.Now().Unix(),
		"token_introspection": map[string]any{"active": true, "sub": "alice", "aud": jwtauthtest.Audience,
			"iss": jwtauthtest.Issuer, "exp": e.clock.Now().Add(time.Hour).Unix()}}
}
