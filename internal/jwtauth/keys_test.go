package jwtauth

import (
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

func TestParseKeySet(t *testing.T) {
	rsaKey := jwtauthtest.NewKey(t, jwa.RS256(), "r")
	ecKey := jwtauthtest.NewKey(t, jwa.ES256(), "e")
	rsaJWK := string(jwtauthtest.MustJSON(t, rsaKey.Pub))

	t.Run("jwks with unsupported keys skipped", func(t *testing.T) {
		doc := `{"keys":[` + rsaJWK + `,
			{"kty":"oct","k":"c2VjcmV0","kid":"hmac"},
			{"kty":"RSA","kid":"enc","use":"enc","n":"` + strings.Repeat("A", 10) + `","e":"AQAB"},
			{"kty":"XYZ","kid":"future"},
			` + string(jwtauthtest.MustJSON(t, ecKey.Pub)) + `]}`
		ks, skipped, err := parseKeySet([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(ks.kids(), ","); got != "r,e" {
			t.Fatalf("kids %s, want r,e", got)
		}
		if len(skipped) != 3 {
			t.Fatalf("skipped %+v, want 3", skipped)
		}
	})
	t.Run("single jwk", func(t *testing.T) {
		ks, _, err := parseKeySet([]byte(rsaJWK))
		if err != nil || len(ks.keys) != 1 || ks.keys[0].alg != "RS256" {
			t.Fatalf("%+v %v", ks, err)
		}
	})
	t.Run("pem public key", func(t *testing.T) {
		var raw any
		if err := jwk.Export(rsaKey.Pub, &raw); err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKIXPublicKey(raw)
		if err != nil {
			t.Fatal(err)
		}
		ks, _, err := parseKeySet(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
		if err != nil || len(ks.keys) != 1 {
			t.Fatalf("%+v %v", ks, err)
		}
	})
	t.Run("private key publishes its public half", func(t *testing.T) {
		priv, err := jwk.Import(rsaKey.Priv)
		if err != nil {
			t.Fatal(err)
		}
		ks, _, err := parseKeySet(jwtauthtest.MustJSON(t, priv))
		if err != nil || len(ks.keys) != 1 {
			t.Fatalf("%+v %v", ks, err)
		}
		if _, isPriv := ks.keys[0].key.(interface{ Public() any }); isPriv {
			t.Fatal("private key kept")
		}
	})
	for name, doc := range map[string]string{
		"not json":       "nope",
		"no keys member": `{"foo":[]}`,
		"only symmetric": `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`,
		"empty set":      `{"keys":[]}`,
	} {
		t.Run("refused: "+name, func(t *testing.T) {
			if _, _, err := parseKeySet([]byte(doc)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestSupportedAlgorithm(t *testing.T) {
	for _, a := range DefaultAlgorithms {
		if !SupportedAlgorithm(a) {
			t.Errorf("%s refused", a)
		}
	}
	for _, a := range []string{"HS256", "HS512", "none", "rs256", "ES256K", "Ed448", "ed25519", ""} {
		if SupportedAlgorithm(a) {
			t.Errorf("%s accepted", a)
		}
	}
}
