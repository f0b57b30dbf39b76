package caddymodule

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/workspace-edge/caddy-workspace-profile/internal/idptest"
)

// Opaque tokens from zitadel's op (internal/idptest): its clients of the
// bearer token type get opaque tokens, which only its introspection
// endpoint (op's, at ZITADEL's path /oauth/v2/introspect) can read. The
// module introspects them through a real Caddy, authenticating as an API
// application with a key (private_key_jwt: op verifies the module's
// client assertion with the key our storage gives it for the assertion's
// kid) or with a secret (Basic).

// zitadelKeyID is the kid of the edge's key, numeric as ZITADEL's key IDs.
const zitadelKeyID = "170104948032274689"

// The clients of these tests, whose tokens are opaque.
var (
	// zWeb is the application users sign in to: its tokens carry the
	// user's subject and claims.
	zWeb = idptest.Client{ID: "workspace-web", Secret: "web-secret", Audience: []string{testAudience}, Opaque: true}
	// zBatch is a service account: client-credentials tokens marked
	// UserType 2.
	zBatch = idptest.Client{ID: "batch-opaque", Secret: "batch-secret", Audience: []string{testAudience}, Opaque: true,
		Claims: map[string]any{"UserType": 2}}
	// ada signs in to zWeb.
	ada = idptest.User{Subject: "user-ada-1815", Claims: map[string]any{
		"email": "ada@example.com", "given_name": "Ada", "family_name": "Lovelace", "preferred_username": "ada"}}
)

// zitadelEdgeKey is an RSA key (ZITADEL's application keys are RSA 2048)
// in a PKCS #1 PEM file in the test's directory, and the edge client that
// authenticates with it.
func zitadelEdgeKey(t *testing.T) (idptest.Client, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "edge-key.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return idptest.Client{ID: "workspace-edge", PublicKey: &key.PublicKey, KeyID: zitadelKeyID}, file
}

// zitadelIntrospectionSite is the route over opaque tokens only: source is
// its issuer or discovery line, mode "" for the memory store or a backend
// address, block the introspection subdirective.
func zitadelIntrospectionSite(source, backend, block string) string {
	mode := "storage memory\n\t\tcreate_missing"
	if backend != "" {
		mode = "upstream " + backend
	}
	return itGlobal + itSite + ` {
	workspace_profile {
		` + source + `
		audience ` + testAudience + `
		` + mode + `
		` + block + `
	}
}
`
}

// keyJWTBlock is introspection by private_key_jwt with the key in file;
// endpoint "" takes it from discovery.
func keyJWTBlock(endpoint, clientID, file, kid string) string {
	return fmt.Sprintf("introspection %s {\n\t\t\tclient_id %s\n\t\t\tauth_method private_key_jwt\n\t\t\tclient_key %s\n\t\t\tclient_key_id %s\n\t\t}",
		endpoint, clientID, file, kid)
}

// wantUnavailable checks the exact answer to a token the route could not
// get checked.
func wantUnavailable(t *testing.T, what string, r itResponse) {
	t.Helper()
	wantProblem(t, what, r, http.StatusServiceUnavailable, "IntrospectionUnavailable",
		"The token could not be checked with its issuer. Try again shortly.", "")
}

// wantAssertionsForZitadel checks every client assertion op received: the
// kid, alg RS256, iss = sub = the edge's client ID, aud = the issuer, a
// lifetime of at most a minute and a jti of its own; and that op looked
// the kid up for the edge, found it, and nothing else.
func wantAssertionsForZitadel(t *testing.T, p *idptest.Provider, edge idptest.Client) {
	t.Helper()
	assertions := p.Assertions()
	if len(assertions) == 0 {
		t.Fatal("op received no client assertion")
	}
	jtis := map[string]bool{}
	for _, a := range assertions {
		hdr, claims := jwtPart(t, a, 0), jwtPart(t, a, 1)
		if hdr["kid"] != zitadelKeyID || hdr["alg"] != "RS256" {
			t.Fatalf("assertion header %v, want kid %s, alg RS256", hdr, zitadelKeyID)
		}
		aud := fmt.Sprint(claims["aud"])
		if claims["iss"] != edge.ID || claims["sub"] != edge.ID || (aud != p.Issuer && aud != "["+p.Issuer+"]") {
			t.Fatalf("assertion claims iss %v, sub %v, aud %v; want %s, %s, %s", claims["iss"], claims["sub"], aud, edge.ID, edge.ID, p.Issuer)
		}
		exp, _ := claims["exp"].(float64)
		iat, _ := claims["iat"].(float64)
		if iat == 0 || exp <= iat || exp-iat > 60 {
			t.Fatalf("assertion iat %v, exp %v: want a lifetime of at most 60 s", iat, exp)
		}
		jti, _ := claims["jti"].(string)
		if jti == "" || jtis[jti] {
			t.Fatalf("assertion jti %q empty or used before", jti)
		}
		jtis[jti] = true
	}
	lookups := p.KeyLookups()
	if len(lookups) != len(assertions) {
		t.Fatalf("op looked up %d keys for %d assertions", len(lookups), len(assertions))
	}
	for _, l := range lookups {
		if l != (idptest.KeyLookup{KeyID: zitadelKeyID, ClientID: edge.ID, Found: true}) {
			t.Fatalf("op looked up %+v, want kid %s of %s, found", l, zitadelKeyID, edge.ID)
		}
	}
}

// getOpaque GETs the route with tok, waiting while it answers 503 (the
// discovery document not read yet).
func getOpaque(t *testing.T, tc *caddytest.Tester, tok string) itResponse {
	t.Helper()
	var r itResponse
	eventually(t, 10*time.Second, "the introspection endpoint discovered", func() bool {
		r = do(t, tc.Client, http.MethodGet, itBase+zitadelRoute, bearer(tok), "")
		return r.status != http.StatusServiceUnavailable
	})
	return r
}

// TestZitadelOpaqueTokensPrivateKeyJWT: through a real Caddy that found
// zitadel's introspection endpoint by discovery and authenticates to it
// with a client assertion (private_key_jwt), an opaque token op issued
// for a user reads and writes the user's profile (created from the
// answer's claims), a service account's opaque token is the 403 and a
// token op does not know the 401; op verified every assertion with the
// key our storage gave it for the assertion's kid, and each had aud = the
// issuer.
func TestZitadelOpaqueTokensPrivateKeyJWT(t *testing.T) {
	edge, keyFile := zitadelEdgeKey(t)
	p := idptest.Start(t, jose.RS256, edge, zWeb, zBatch)
	tc := startCaddyfile(t, zitadelIntrospectionSite("discovery "+p.Issuer, "",
		keyJWTBlock("", edge.ID, keyFile, zitadelKeyID)))

	tok := p.MustUserToken(t, zWeb, ada)
	// op's default opaque token is a compact JWE only op can read: the
	// route must introspect it, not refuse it by its shape
	if strings.Count(tok, ".") != 4 {
		t.Fatalf("op issued %d-part token to a client of the bearer token type, want a compact JWE", strings.Count(tok, ".")+1)
	}
	r := getOpaque(t, tc, tok)
	if r.status != http.StatusOK {
		t.Fatalf("GET: %d %s", r.status, r.body)
	}
	env := r.envelope(t)
	if d := env.Data; d == nil || d.UserID != ada.Subject || d.Email == nil || *d.Email != "ada@example.com" {
		t.Fatalf("GET %s, want the profile of %s made from the answer's claims", r.body, ada.Subject)
	}
	r = do(t, tc.Client, http.MethodPut, itBase+zitadelRoute, map[string]string{
		"Authorization": "Bearer " + tok, "Content-Type": "application/json", "If-Match": r.header.Get("ETag"),
	}, `{"FirstName":"Augusta"}`)
	if env = r.envelope(t); r.status != http.StatusOK || env.Data == nil || env.Data.UserID != ada.Subject ||
		env.Data.FirstName == nil || *env.Data.FirstName != "Augusta" {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}

	svc := p.MustToken(t, zBatch)
	if strings.Count(svc, ".") != 4 {
		t.Fatalf("op issued a %d-part token to a service account of the bearer token type, want a compact JWE", strings.Count(svc, ".")+1)
	}
	wantProblem(t, "service account", do(t, tc.Client, http.MethodGet, itBase+zitadelRoute, bearer(svc), ""),
		http.StatusForbidden, "ServiceAccountForbidden", "Service accounts cannot access this endpoint via API keys.", "")

	// a token op never issued: op answers it inactive
	const inactive = "The token is not active."
	wantProblem(t, "unknown token", do(t, tc.Client, http.MethodGet, itBase+zitadelRoute, bearer("not-a-token-of-zitadel"), ""),
		http.StatusUnauthorized, "InvalidToken", inactive,
		`Bearer realm="workspace", error="invalid_token", error_description="`+inactive+`"`)

	if n := p.Introspections.Load(); n < 3 {
		t.Fatalf("op's introspection endpoint answered %d calls, want 3 or more", n)
	}
	wantAssertionsForZitadel(t, p, edge)
}

// TestZitadelOpaqueTokensUpstreamMode: in upstream mode the legacy
// backend gets the caller's opaque token and the identity header for the
// user op's introspection named, and never the edge's client assertion.
func TestZitadelOpaqueTokensUpstreamMode(t *testing.T) {
	edge, keyFile := zitadelEdgeKey(t)
	p := idptest.Start(t, jose.RS256, edge, zWeb)
	addr, last := recordingBackend(t, `{"userId":"user-ada-1815","userName":"ada","email":"ada@example.com","firstName":"Ada","lastName":"Lovelace","userType":0}`)
	tc := startCaddyfile(t, zitadelIntrospectionSite("issuer "+p.Issuer, addr,
		keyJWTBlock(p.IntrospectionEndpoint, edge.ID, keyFile, zitadelKeyID)))

	tok := p.MustUserToken(t, zWeb, ada)
	if r := do(t, tc.Client, http.MethodGet, itBase+zitadelRoute, bearer(tok), ""); r.status != http.StatusOK {
		t.Fatalf("GET: %d %s", r.status, r.body)
	}
	got := last()
	if a := got.Get("Authorization"); a != "Bearer "+tok {
		t.Fatalf("the backend got Authorization %q", a)
	}
	if u := got.Get("X-Workspace-User-Id"); u != ada.Subject {
		t.Fatalf("the backend got X-Workspace-User-Id %q, want %q", u, ada.Subject)
	}
	wantAssertionsForZitadel(t, p, edge)
	for name, values := range got {
		for _, v := range values {
			for _, a := range p.Assertions() {
				if strings.Contains(v, a) || strings.Contains(v, strings.Split(a, ".")[2]) {
					t.Fatalf("the backend got the client assertion in %s", name)
				}
			}
			if strings.Contains(strings.ToLower(name+v), "assertion") {
				t.Fatalf("the backend got header %s: %q", name, v)
			}
		}
	}
}

// TestZitadelIntrospectionRefusesWrongClientKey: when op refuses the
// edge's client assertion (signed by another key under the registered
// kid, or naming a kid the client does not have), op answers 401 to the
// edge and the route answers 503 IntrospectionUnavailable, never a 401:
// nothing was learnt of the caller's token.
func TestZitadelIntrospectionRefusesWrongClientKey(t *testing.T) {
	edge, _ := zitadelEdgeKey(t)
	_, otherKeyFile := zitadelEdgeKey(t)
	p := idptest.Start(t, jose.RS256, edge, zWeb)
	tok := p.MustUserToken(t, zWeb, ada)
	for _, c := range []struct {
		name, kid string
		found     bool
	}{
		{"another key under the kid", zitadelKeyID, true},
		{"a kid the client does not have", "170104948032274690", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			before, lookups := p.Introspections.Load(), len(p.KeyLookups())
			tc := startCaddyfile(t, zitadelIntrospectionSite("issuer "+p.Issuer, "",
				keyJWTBlock(p.IntrospectionEndpoint, edge.ID, otherKeyFile, c.kid)))
			wantUnavailable(t, c.name, do(t, tc.Client, http.MethodGet, itBase+zitadelRoute, bearer(tok), ""))
			if p.Introspections.Load() == before {
				t.Fatal("op's introspection endpoint was not called")
			}
			got := p.KeyLookups()[lookups:]
			if len(got) == 0 || got[0] != (idptest.KeyLookup{KeyID: c.kid, ClientID: edge.ID, Found: c.found}) {
				t.Fatalf("op looked up %+v, want kid %s of %s (found %v)", got, c.kid, edge.ID, c.found)
			}
		})
	}
}

// TestZitadelOpaqueTokensClientSecretBasic: the edge as an API
// application with Basic authentication: the user's opaque token reads
// the profile; a wrong secret, which op refuses, is the 503.
func TestZitadelOpaqueTokensClientSecretBasic(t *testing.T) {
	edge := idptest.Client{ID: "workspace-edge-basic", Secret: "e:d/g+e%1 x"}
	p := idptest.Start(t, jose.ES256, edge, zWeb)
	tok := p.MustUserToken(t, zWeb, ada)
	block := func(secret string) string {
		return fmt.Sprintf("introspection %s {\n\t\t\tclient_id %s\n\t\t\tclient_secret \"%s\"\n\t\t}", p.IntrospectionEndpoint, edge.ID, secret)
	}
	tc := startCaddyfile(t, zitadelIntrospectionSite("issuer "+p.Issuer, "", block(edge.Secret)))
	r := do(t, tc.Client, http.MethodGet, itBase+zitadelRoute, bearer(tok), "")
	if env := r.envelope(t); r.status != http.StatusOK || env.Data == nil || env.Data.UserID != ada.Subject {
		t.Fatalf("GET: %d %s", r.status, r.body)
	}
	before := p.Introspections.Load()
	tc = startCaddyfile(t, zitadelIntrospectionSite("issuer "+p.Issuer, "", block("wrong-secret")))
	wantUnavailable(t, "wrong secret", do(t, tc.Client, http.MethodGet, itBase+zitadelRoute, bearer(tok), ""))
	if p.Introspections.Load() == before {
		t.Fatal("op's introspection endpoint was not called")
	}
}

// TestZitadelIntrospectionTrustPool: zitadel's op over https with a
// certificate of a private CA, which no system pool holds. With the CA as
// trust_pool the user's opaque token reads the profile; without it the
// TLS handshake fails, op is never asked, and the route answers 503
// IntrospectionUnavailable, never a 401.
func TestZitadelIntrospectionTrustPool(t *testing.T) {
	edge := idptest.Client{ID: "workspace-edge-tls", Secret: "tls-secret"}
	p := idptest.StartTLS(t, jose.ES256, edge, zWeb)
	if !strings.HasPrefix(p.IntrospectionEndpoint, "https://127.0.0.1:") {
		t.Fatalf("introspection endpoint %s, want https on loopback", p.IntrospectionEndpoint)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, p.CACert, 0o600); err != nil {
		t.Fatal(err)
	}
	tok := p.MustUserToken(t, zWeb, ada)
	block := func(extra string) string {
		return fmt.Sprintf("introspection %s {\n\t\t\tclient_id %s\n\t\t\tclient_secret %s\n\t\t\t%s\n\t\t}",
			p.IntrospectionEndpoint, edge.ID, edge.Secret, extra)
	}

	tc := startCaddyfile(t, zitadelIntrospectionSite("issuer "+p.Issuer, "", block("trust_pool "+ca)))
	r := do(t, tc.Client, http.MethodGet, itBase+zitadelRoute, bearer(tok), "")
	if env := r.envelope(t); r.status != http.StatusOK || env.Data == nil || env.Data.UserID != ada.Subject {
		t.Fatalf("with trust_pool: %d %s", r.status, r.body)
	}
	if p.Introspections.Load() == 0 {
		t.Fatal("op's introspection endpoint was not called")
	}

	before := p.Introspections.Load()
	tc = startCaddyfile(t, zitadelIntrospectionSite("issuer "+p.Issuer, "", block("")))
	wantUnavailable(t, "without trust_pool", do(t, tc.Client, http.MethodGet, itBase+zitadelRoute, bearer(tok), ""))
	if n := p.Introspections.Load() - before; n != 0 {
		t.Fatalf("op answered %d introspection calls over a TLS connection the module must not trust", n)
	}
}
