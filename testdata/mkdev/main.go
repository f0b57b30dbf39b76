// Command mkdev regenerates the development key set and tokens in testdata/:
//
//	go run ./testdata/mkdev
//
// It makes a fresh RSA key, writes its public half to dev-jwks.json and signs
// far-future tokens with it; the private key is never written, so nothing
// here can mint new tokens. These files are for local runs and the README's
// walk-through only: NEVER trust this key set in production.
package main

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"log"
	"os"
	"path/filepath"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

const (
	dir      = "testdata"
	issuer   = "https://dev-idp.workspace.invalid"
	audience = "workspace-api"
	kid      = "dev-never-for-production"
	farExp   = 4102444800 // 2100-01-01
)

func main() {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		log.Fatal(err)
	}
	key, err := jwk.Import(priv)
	must(err)
	must(key.Set(jwk.KeyIDKey, kid))
	must(key.Set(jwk.AlgorithmKey, jwa.RS256()))
	pub, err := jwk.PublicKeyOf(key)
	must(err)
	set := jwk.NewSet()
	must(set.AddKey(pub))
	writeJSON("dev-jwks.json", set)

	base := map[string]any{
		"iss": issuer, "aud": audience, "iat": 1790000000, "exp": farExp,
		"note": "DEVELOPMENT TOKEN: signed by testdata/dev-jwks.json, never valid in production",
	}
	tokens := map[string]map[string]any{
		"dev-token.txt": {"sub": "dev-user-1", "preferred_username": "alice", "email": "alice@example.com",
			"given_name": "Alice", "family_name": "Liddell", "UserType": 0},
		"dev-token-bob.txt":             {"sub": "dev-user-2", "preferred_username": "bob", "UserType": 0},
		"dev-token-service-account.txt": {"sub": "dev-service-1", "UserType": 2},
	}
	for name, claims := range tokens {
		for k, v := range base {
			claims[k] = v
		}
		payload, err := json.Marshal(claims)
		must(err)
		hdrs := jws.NewHeaders()
		must(hdrs.Set(jws.KeyIDKey, kid))
		must(hdrs.Set(jws.TypeKey, "JWT"))
		tok, err := jws.Sign(payload, jws.WithKey(jwa.RS256(), key, jws.WithProtectedHeaders(hdrs)))
		must(err)
		must(os.WriteFile(filepath.Join(dir, name), append(tok, '\n'), 0o644))
	}
}

func writeJSON(name string, v any) {
	buf, err := json.MarshalIndent(v, "", "  ")
	must(err)
	must(os.WriteFile(filepath.Join(dir, name), append(buf, '\n'), 0o644))
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
