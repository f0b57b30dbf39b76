package introspect

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// checkRequest holds what every call sends: a POST of the token with its
// hint, as a form, asking for JSON.
func checkRequest(t *testing.T, r jwtauthtest.Request, accept string) url.Values {
	t.Helper()
	f := form(t, r)
	switch {
	case r.Method != "POST":
		t.Fatalf("method %s", r.Method)
	case r.Header.Get("Content-Type") != "application/x-www-form-urlencoded":
		t.Fatalf("content type %q", r.Header.Get("Content-Type"))
	case r.Header.Get("Accept") != accept:
		t.Fatalf("accept %q", r.Header.Get("Accept"))
	case f.Get("token") != testToken || f.Get("token_type_hint") != "access_token":
		t.Fatalf("form %v", f)
	}
	return f
}

// TestClientSecretBasic: the id and the secret are each
// form-encoded before they are joined and base64-encoded, so that a ':'
// in the id or ':', '/', '+', '%' in the secret reach the endpoint as
// they are; and the secret is sent in the header only, never also in the
// body.
func TestClientSecretBasic(t *testing.T) {
	const id, secret = "client:one", "a:b/c+d%e f"
	e := newEnv(t, func(c *Config) { c.ClientID, c.ClientSecret = id, secret })
	e.serve(e.answer(nil))
	if _, aerr := e.verify(testToken); aerr != nil {
		t.Fatal(aerr)
	}
	r := e.srv.Requests()[0]
	f := checkRequest(t, r, "application/json")
	auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Basic ")
	if !ok {
		t.Fatalf("Authorization %q", r.Header.Get("Authorization"))
	}
	raw, err := base64.StdEncoding.DecodeString(auth)
	if err != nil {
		t.Fatal(err)
	}
	encID, encSecret, _ := strings.Cut(string(raw), ":") // the id's own ':' is encoded
	gotID, err1 := url.QueryUnescape(encID)
	gotSecret, err2 := url.QueryUnescape(encSecret)
	if err1 != nil || err2 != nil || gotID != id || gotSecret != secret {
		t.Fatalf("decoded %q / %q from %q", gotID, gotSecret, raw)
	}
	if strings.Contains(string(r.Body), "secret") || f.Has("client_secret") || f.Has("client_id") ||
		strings.Contains(string(r.Body), url.QueryEscape(secret)) {
		t.Fatalf("client credentials also in the body: %q", r.Body)
	}
	e.noSecretsLogged(t, secret, url.QueryEscape(secret), auth)
}

// TestClientSecretPost: id and secret in the body, no Authorization.
func TestClientSecretPost(t *testing.T) {
	const secret = "a:b/c+d%e"
	e := newEnv(t, func(c *Config) { c.AuthMethod, c.ClientSecret = ClientSecretPost, secret })
	e.serve(e.answer(nil))
	if _, aerr := e.verify(testToken); aerr != nil {
		t.Fatal(aerr)
	}
	r := e.srv.Requests()[0]
	f := checkRequest(t, r, "application/json")
	if f.Get("client_id") != testClient || f.Get("client_secret") != secret || r.Header.Get("Authorization") != "" {
		t.Fatalf("form %v, Authorization %q", f, r.Header.Get("Authorization"))
	}
}

// TestClientNone: the id in the body, nothing else.
func TestClientNone(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AuthMethod, c.ClientSecret = None, "" })
	e.serve(e.answer(nil))
	if _, aerr := e.verify(testToken); aerr != nil {
		t.Fatal(aerr)
	}
	r := e.srv.Requests()[0]
	f := checkRequest(t, r, "application/json")
	if f.Get("client_id") != testClient || f.Has("client_secret") || f.Has("client_assertion") || r.Header.Get("Authorization") != "" {
		t.Fatalf("form %v, Authorization %q", f, r.Header.Get("Authorization"))
	}
}

// writeECKey writes a fresh P-256 private key as PKCS #8 PEM.
func writeECKey(t *testing.T) (string, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "client.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, k
}

// TestPrivateKeyJWT: each call carries a fresh client assertion that the
// endpoint verifies with the client's public key: this client as iss and
// sub, the issuer as aud, a jti never sent twice, a lifetime of 60 s, and
// the configured kid, else the key's RFC 7638 thumbprint.
func TestPrivateKeyJWT(t *testing.T) {
	path, priv := writeECKey(t)
	pub, err := jwk.Import(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	tp, _ := pub.Thumbprint(crypto.SHA256)
	for _, kid := range []string{"", "client-key-1"} {
		t.Run("kid="+kid, func(t *testing.T) {
			e := newEnv(t, func(c *Config) {
				c.AuthMethod, c.ClientSecret, c.ClientKey, c.ClientKeyID = PrivateKeyJWT, "", path, kid
				c.CacheSize = 1
			})
			e.serve(e.answer(nil))
			for _, tok := range []string{testToken, testToken + "x"} {
				if _, aerr := e.verify(tok); aerr != nil {
					t.Fatal(aerr)
				}
			}
			wantKid := kid
			if kid == "" {
				wantKid = base64.RawURLEncoding.EncodeToString(tp)
			}
			jtis := map[string]bool{}
			for _, r := range e.srv.Requests() {
				f := form(t, r)
				if r.Header.Get("Authorization") != "" || f.Has("client_secret") || f.Get("client_id") != testClient ||
					f.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
					t.Fatalf("form %v, Authorization %q", f, r.Header.Get("Authorization"))
				}
				a := f.Get("client_assertion")
				msg, err := jws.Parse([]byte(a))
				if err != nil {
					t.Fatal(err)
				}
				if gotKid, _ := msg.Signatures()[0].ProtectedHeaders().KeyID(); gotKid != wantKid {
					t.Fatalf("kid %q, want %q", gotKid, wantKid)
				}
				payload, err := jws.Verify([]byte(a), jws.WithKey(jwa.ES256(), pub))
				if err != nil {
					t.Fatalf("assertion does not verify: %v", err)
				}
				var c struct {
					Iss, Sub, Jti string
					Aud           any
					Iat, Exp      int64
				}
				if err := json.Unmarshal(payload, &c); err != nil {
					t.Fatal(err)
				}
				aud, _ := json.Marshal(c.Aud)
				if c.Iss != testClient || c.Sub != testClient || (string(aud) != `"`+jwtauthtest.Issuer+`"` && string(aud) != `["`+jwtauthtest.Issuer+`"]`) ||
					c.Jti == "" || jtis[c.Jti] || c.Iat != e.clock.Now().Unix() || time.Duration(c.Exp-c.Iat)*time.Second != 60*time.Second {
					t.Fatalf("assertion claims %+v aud %s", c, aud)
				}
				jtis[c.Jti] = true
				e.noSecretsLogged(t, a)
			}
			if len(jtis) != 2 {
				t.Fatalf("%d assertions", len(jtis))
			}
		})
	}
}
