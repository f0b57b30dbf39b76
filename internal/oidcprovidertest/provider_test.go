package oidcprovidertest_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/dpop/dpoptest"
	"github.com/workspace-edge/caddy-workspace-profile/internal/oidcprovidertest"
)

const (
	opaqueAPI = "https://profile.test/opaque"
	jwtAPI    = "https://profile.test/jwt"
)

var (
	service = oidcprovidertest.Client{
		ID: "svc-basic", Secret: "svc-basic-secret",
		IntrospectionSignedResponseAlg: "RS256",
		Claims:                         map[string]any{"UserType": 2},
	}
	poster = oidcprovidertest.Client{
		ID: "rs-post", Secret: "rs-post-secret",
		AuthMethod: oidcprovidertest.ClientSecretPost,
	}
)

func start(t *testing.T) *oidcprovidertest.Provider {
	t.Helper()
	return oidcprovidertest.Start(t, oidcprovidertest.Config{
		Clients: []oidcprovidertest.Client{service, poster},
		Resources: []oidcprovidertest.Resource{
			{Indicator: opaqueAPI},
			{Indicator: jwtAPI, JWT: true},
		},
	})
}

// introspect returns the JSON answer, failing t unless it is a 200.
func introspect(t *testing.T, p *oidcprovidertest.Provider, token string, c oidcprovidertest.Client, opts ...oidcprovidertest.Option) map[string]any {
	t.Helper()
	res, err := p.Introspect(token, c.ID, c.Secret, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusOK {
		t.Fatalf("introspection: %d %s", res.Status, res.Body)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("introspection Content-Type %q", ct)
	}
	var m map[string]any
	if err := json.Unmarshal(res.Body, &m); err != nil {
		t.Fatalf("introspection body %s: %v", res.Body, err)
	}
	return m
}

func isJWS(s string) bool { return strings.Count(s, ".") == 2 }

// jwsPart decodes part i (0 header, 1 payload) of a compact JWS.
func jwsPart(t *testing.T, jws string, i int) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(jws, ".")[i])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestProvider checks what the Go side relies on (see the package
// comment), against one provider.
func TestProvider(t *testing.T) {
	p := start(t)
	if !strings.HasPrefix(p.Issuer(), "http://127.0.0.1:") {
		t.Fatalf("issuer %q", p.Issuer())
	}
	opaque := p.MustClientCredentialsToken(t, service.ID, service.Secret, opaqueAPI)
	if isJWS(opaque) {
		t.Fatalf("opaque resource gave a JWS: %s", opaque)
	}

	t.Run("introspection with client_secret_basic", func(t *testing.T) {
		before := time.Now().Unix()
		m := introspect(t, p, opaque, service)
		if m["active"] != true || m["aud"] != opaqueAPI || m["client_id"] != service.ID ||
			m["iss"] != p.Issuer() || m["token_type"] != "Bearer" {
			t.Fatalf("answer %v", m)
		}
		// extraTokenClaims come back top-level, as JSON numbers.
		if m["UserType"] != float64(2) {
			t.Fatalf("UserType %v in %v", m["UserType"], m)
		}
		exp, ok := m["exp"].(float64)
		if !ok || int64(exp) <= before {
			t.Fatalf("exp %v", m["exp"])
		}
		// Client credentials have no account: no sub. No scope was
		// granted, and an opaque token's jti (the token) is left out.
		for _, name := range []string{"sub", "scope", "jti", "cnf"} {
			if v, ok := m[name]; ok {
				t.Errorf("%s = %v in a client-credentials answer", name, v)
			}
		}
	})

	t.Run("introspection with client_secret_post by another client", func(t *testing.T) {
		m := introspect(t, p, opaque, poster)
		if m["active"] != true || m["client_id"] != service.ID || m["aud"] != opaqueAPI {
			t.Fatalf("answer %v", m)
		}
	})

	t.Run("a wrong secret is refused", func(t *testing.T) {
		for _, c := range []oidcprovidertest.Client{service, poster} {
			res, err := p.Introspect(opaque, c.ID, "wrong", oidcprovidertest.WithParam("token_type_hint", "access_token"))
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != http.StatusUnauthorized || !strings.Contains(string(res.Body), `"invalid_client"`) {
				t.Fatalf("%s: %d %s", c.ID, res.Status, res.Body)
			}
		}
	})

	t.Run("either secret method works for a client_secret client", func(t *testing.T) {
		// oidc-provider takes the secret from the Authorization header or
		// the body, whichever came, for a client registered with
		// client_secret_basic or client_secret_post alike.
		for _, c := range []oidcprovidertest.Client{service, poster} {
			for _, method := range []string{oidcprovidertest.ClientSecretBasic, oidcprovidertest.ClientSecretPost} {
				if m := introspect(t, p, opaque, c, oidcprovidertest.WithAuthMethod(method)); m["active"] != true {
					t.Fatalf("%s by %s: %v", c.ID, method, m)
				}
			}
		}
	})

	t.Run("scope when asked", func(t *testing.T) {
		tok := p.MustClientCredentialsToken(t, service.ID, service.Secret, opaqueAPI, oidcprovidertest.WithParam("scope", "profile"))
		if m := introspect(t, p, tok, service); m["scope"] != "profile" {
			t.Fatalf("answer %v", m)
		}
	})

	t.Run("a jwt resource gives a JWS, which is not introspected", func(t *testing.T) {
		tok := p.MustClientCredentialsToken(t, service.ID, service.Secret, jwtAPI)
		if !isJWS(tok) {
			t.Fatalf("not a JWS: %s", tok)
		}
		h, c := jwsPart(t, tok, 0), jwsPart(t, tok, 1)
		if h["typ"] != "at+jwt" || h["alg"] != "RS256" {
			t.Fatalf("header %v", h)
		}
		// Unlike the introspection answer, the JWT has sub = client ID.
		if c["aud"] != jwtAPI || c["sub"] != service.ID || c["client_id"] != service.ID || c["UserType"] != float64(2) {
			t.Fatalf("claims %v", c)
		}
		res, err := p.Introspect(tok, service.ID, service.Secret)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != http.StatusBadRequest || !strings.Contains(string(res.Body), "unsupported_token_type") {
			t.Fatalf("%d %s", res.Status, res.Body)
		}
	})

	t.Run("signed introspection answer", func(t *testing.T) {
		const mt = "application/token-introspection+jwt"
		res, err := p.Introspect(opaque, service.ID, service.Secret, oidcprovidertest.WithAccept(mt))
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), mt) {
			t.Fatalf("%d %q %s", res.Status, res.Header.Get("Content-Type"), res.Body)
		}
		jws := string(res.Body)
		if h := jwsPart(t, jws, 0); h["typ"] != "token-introspection+jwt" || h["alg"] != "RS256" {
			t.Fatalf("header %v", h)
		}
		c := jwsPart(t, jws, 1)
		ti, _ := c["token_introspection"].(map[string]any)
		if c["iss"] != p.Issuer() || c["aud"] != service.ID || ti["active"] != true || ti["aud"] != opaqueAPI || ti["UserType"] != float64(2) {
			t.Fatalf("claims %v", c)
		}
		// Every client may ask: introspection_signed_response_alg
		// defaults to RS256 while the feature is on. aud is the asker.
		res, err = p.Introspect(opaque, poster.ID, poster.Secret, oidcprovidertest.WithAccept(mt))
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != http.StatusOK || jwsPart(t, string(res.Body), 1)["aud"] != poster.ID {
			t.Fatalf("%d %s", res.Status, res.Body)
		}
	})

	t.Run("DPoP-bound token", func(t *testing.T) {
		prover := dpoptest.NewProver(t, jwa.ES256())
		proof := prover.Proof(t, http.MethodPost, p.TokenEndpoint(), "", time.Now(), nil, nil)
		tr, err := p.Token(service.ID, service.Secret, opaqueAPI, oidcprovidertest.WithDPoP(proof))
		if err != nil {
			t.Fatal(err)
		}
		if tr.TokenType != "DPoP" || isJWS(tr.AccessToken) {
			t.Fatalf("token %+v", tr)
		}
		m := introspect(t, p, tr.AccessToken, poster)
		cnf, _ := m["cnf"].(map[string]any)
		if m["active"] != true || m["token_type"] != "DPoP" || cnf["jkt"] != prover.Thumbprint {
			t.Fatalf("answer %v, want cnf.jkt %s", m, prover.Thumbprint)
		}
	})

	t.Run("revoked token is inactive", func(t *testing.T) {
		tok := p.MustClientCredentialsToken(t, service.ID, service.Secret, opaqueAPI)
		if m := introspect(t, p, tok, poster); m["active"] != true {
			t.Fatalf("before revocation: %v", m)
		}
		if err := p.Revoke(tok, service.ID, service.Secret); err != nil {
			t.Fatal(err)
		}
		m := introspect(t, p, tok, poster)
		if len(m) != 1 || m["active"] != false {
			t.Fatalf("after revocation: %v", m)
		}
	})

	t.Run("unknown token is inactive", func(t *testing.T) {
		if m := introspect(t, p, "not-a-token-the-provider-issued", service); len(m) != 1 || m["active"] != false {
			t.Fatalf("answer %v", m)
		}
	})

	t.Run("unknown resource is refused", func(t *testing.T) {
		if _, err := p.ClientCredentialsToken(service.ID, service.Secret, "https://elsewhere.test/"); err == nil || !strings.Contains(err.Error(), "invalid_target") {
			t.Fatalf("err %v", err)
		}
	})
}

// TestExpiry: a resource's TTL is the token's lifetime, and an expired
// token is inactive. oidc-provider counts in whole seconds (exp = iat +
// TTL, iat truncated), so a 1 s token may be expired a moment after it is
// issued: 3 s leaves it active for at least 2.
func TestExpiry(t *testing.T) {
	p := oidcprovidertest.Start(t, oidcprovidertest.Config{
		Clients:   []oidcprovidertest.Client{service},
		Resources: []oidcprovidertest.Resource{{Indicator: opaqueAPI, TTL: 3 * time.Second, Audience: "profile-api"}},
	})
	tr, err := p.Token(service.ID, service.Secret, opaqueAPI)
	if err != nil {
		t.Fatal(err)
	}
	if tr.ExpiresIn != 3 {
		t.Fatalf("expires_in %d", tr.ExpiresIn)
	}
	m := introspect(t, p, tr.AccessToken, service)
	if m["active"] != true || m["aud"] != "profile-api" {
		t.Fatalf("answer %v", m)
	}
	deadline := time.Now().Add(15 * time.Second)
	for m["active"] != false {
		if time.Now().After(deadline) {
			t.Fatalf("still active after its TTL: %v", m)
		}
		time.Sleep(200 * time.Millisecond)
		m = introspect(t, p, tr.AccessToken, service)
	}
}

// TestFeatures: a test turns features off through Config.Features.
func TestFeatures(t *testing.T) {
	p := oidcprovidertest.Start(t, oidcprovidertest.Config{
		Clients:   []oidcprovidertest.Client{poster},
		Resources: []oidcprovidertest.Resource{{Indicator: opaqueAPI}},
		Features: map[string]map[string]any{
			"revocation":       {"enabled": false},
			"jwtIntrospection": {"enabled": false},
		},
	})
	tok := p.MustClientCredentialsToken(t, poster.ID, poster.Secret, opaqueAPI)
	if err := p.Revoke(tok, poster.ID, poster.Secret); err == nil {
		t.Fatal("revocation answered with the feature off")
	}
	// Without jwtIntrospection, asking for a JWT still gets JSON.
	if m := introspect(t, p, tok, poster, oidcprovidertest.WithAccept("application/token-introspection+jwt")); m["active"] != true {
		t.Fatalf("answer %v", m)
	}
}

// TestHMACSignedAnswers: with HS256 enabled through Config.EnabledJWA, a
// client registered with introspection_signed_response_alg HS256 gets
// answers signed with its client secret as the HMAC key (what a route
// must never accept: anyone holding the secret could forge them).
func TestHMACSignedAnswers(t *testing.T) {
	hmacClient := oidcprovidertest.Client{ID: "rs-hmac", Secret: "rs-hmac-secret-of-at-least-32-bytes!",
		IntrospectionSignedResponseAlg: "HS256"}
	p := oidcprovidertest.Start(t, oidcprovidertest.Config{
		Clients:    []oidcprovidertest.Client{service, hmacClient},
		Resources:  []oidcprovidertest.Resource{{Indicator: opaqueAPI}},
		EnabledJWA: map[string][]string{"introspectionSigningAlgValues": {"RS256", "HS256"}},
	})
	tok := p.MustClientCredentialsToken(t, service.ID, service.Secret, opaqueAPI)
	res, err := p.Introspect(tok, hmacClient.ID, hmacClient.Secret, oidcprovidertest.WithAccept("application/token-introspection+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusOK {
		t.Fatalf("%d %s", res.Status, res.Body)
	}
	jws := string(res.Body)
	if h := jwsPart(t, jws, 0); h["alg"] != "HS256" || h["typ"] != "token-introspection+jwt" {
		t.Fatalf("header %v", h)
	}
	if c := jwsPart(t, jws, 1); c["aud"] != hmacClient.ID {
		t.Fatalf("claims %v", c)
	}
	i := strings.LastIndex(jws, ".")
	mac := hmac.New(sha256.New, []byte(hmacClient.Secret))
	mac.Write([]byte(jws[:i]))
	if want := base64.RawURLEncoding.EncodeToString(mac.Sum(nil)); jws[i+1:] != want {
		t.Fatalf("not an HMAC keyed with the client secret: %s", jws[i+1:])
	}
	// RS256 stays the other clients' alg.
	res, err = p.Introspect(tok, service.ID, service.Secret, oidcprovidertest.WithAccept("application/token-introspection+jwt"))
	if err != nil || res.Status != http.StatusOK || jwsPart(t, string(res.Body), 0)["alg"] != "RS256" {
		t.Fatalf("%v %d %s", err, res.Status, res.Body)
	}
}
