package jwtauth

import (
	"context"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// TestVerifySigned: a signed document that is not an access token is
// held to a token's header rules and to its own typ, and its payload is
// returned without any access-token claim rule (it names no sub, no exp,
// another audience).
func TestVerifySigned(t *testing.T) {
	key := jwtauthtest.NewKey(t, jwa.ES256(), "k1")
	other := jwtauthtest.NewKey(t, jwa.ES256(), "k1")
	ks, _, err := parseKeySet(jwtauthtest.JWKS(t, key))
	if err != nil {
		t.Fatal(err)
	}
	v, err := New(Config{Sources: []Source{&FileSource{set: ks}}, Issuers: []string{jwtauthtest.Issuer},
		Audiences: []string{jwtauthtest.Audience}, Algorithms: []string{"ES256"}})
	if err != nil {
		t.Fatal(err)
	}
	const typ = "token-introspection+jwt"
	doc := map[string]any{"iss": jwtauthtest.Issuer, "aud": "a-client", "token_introspection": map[string]any{"active": true}}
	tests := []struct {
		name string
		tok  string
		ok   bool
	}{
		{"good", key.Mint(t, doc, map[string]any{"typ": typ}), true},
		{"typ with application/", key.Mint(t, doc, map[string]any{"typ": "application/" + typ}), true},
		{"typ in capitals", key.Mint(t, doc, map[string]any{"typ": "Token-Introspection+JWT"}), true},
		{"typ of a token", key.Mint(t, doc, nil), false},
		{"no typ", key.Mint(t, doc, map[string]any{"typ": nil}), false},
		{"crit", key.Mint(t, doc, map[string]any{"typ": typ, "crit": []string{"exp"}}), false},
		{"alg not accepted", jwtauthtest.NewKey(t, jwa.RS256(), "k1").Mint(t, doc, map[string]any{"typ": typ}), false},
		{"other key", other.Mint(t, doc, map[string]any{"typ": typ}), false},
		{"duplicate member", key.SignRaw(t, []byte(`{"alg":"ES256","kid":"k1","typ":"`+typ+`"}`), []byte(`{"aud":"a","aud":"b"}`)), false},
		{"not a JWS", "a.b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload, aerr := v.VerifySigned(context.Background(), tt.tok, typ)
			if (aerr == nil) != tt.ok {
				t.Fatalf("got %v, want ok=%v", aerr, tt.ok)
			}
			if tt.ok && len(payload) == 0 {
				t.Fatal("no payload")
			}
		})
	}
}
