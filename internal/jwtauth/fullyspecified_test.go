package jwtauth

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// TestFullySpecifiedAlgorithms (RFC 9864): Ed25519 is accepted by default
// with an OKP Ed25519 key, whether the key names that alg or none; the key's
// own alg must equal the token's exactly, so EdDSA and Ed25519 do not stand
// in for each other; Ed448, which jwx verifies only through a module this
// one does not link, is not an algorithm a config may name.
func TestFullySpecifiedAlgorithms(t *testing.T) {
	clock := jwtauthtest.NewClock()
	ed := jwtauthtest.NewKey(t, jwa.EdDSAEd25519(), "ed25519")
	legacy := jwtauthtest.NewKey(t, jwa.EdDSA(), "eddsa")
	noAlg, _ := ed.Pub.Clone()
	_ = noAlg.Remove(jwk.AlgorithmKey)
	_ = noAlg.Set(jwk.KeyIDKey, "ed-no-alg")
	noAlgKey := jwtauthtest.Key{Alg: jwa.EdDSAEd25519(), Kid: "ed-no-alg", Priv: ed.Priv, Pub: noAlg}
	idp := jwtauthtest.NewServer(t)
	idp.ServeKeys(t, "", ed, legacy, noAlgKey)
	s := loadedSource(t, idp, clock, RefreshOptions{})
	v := newTestVerifier(t, clock, s)
	ctx := context.Background()
	mint := func(k jwtauthtest.Key, alg jwa.SignatureAlgorithm) string {
		k.Alg = alg
		return k.Mint(t, jwtauthtest.ClaimsAt(clock, "u", time.Hour), nil)
	}
	for name, c := range map[string]struct {
		tok  string
		want string
	}{
		"Ed25519 token, Ed25519 key":         {mint(ed, jwa.EdDSAEd25519()), "ok"},
		"EdDSA token, EdDSA key":             {mint(legacy, jwa.EdDSA()), "ok"},
		"Ed25519 token, key without alg":     {mint(noAlgKey, jwa.EdDSAEd25519()), "ok"},
		"EdDSA token, key without alg":       {mint(noAlgKey, jwa.EdDSA()), "ok"},
		"Ed25519 token, key published EdDSA": {mint(legacy, jwa.EdDSAEd25519()), CodeInvalidToken},
		"EdDSA token, key published Ed25519": {mint(ed, jwa.EdDSA()), CodeInvalidToken},
	} {
		if _, aerr := v.Verify(ctx, c.tok); code(aerr) != c.want {
			t.Errorf("%s: %s (%v), want %s", name, code(aerr), aerr, c.want)
		}
	}

	// only on the allow-list: a config without Ed25519 refuses it
	only, err := New(Config{Sources: []Source{s}, Issuers: []string{jwtauthtest.Issuer}, Audiences: []string{jwtauthtest.Audience},
		Algorithms: []string{"EdDSA"}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, aerr := only.Verify(ctx, mint(ed, jwa.EdDSAEd25519())); aerr == nil || aerr.Desc != "The token algorithm is not accepted." {
		t.Errorf("Ed25519 outside the allow-list: %v", aerr)
	}
	if _, err := New(Config{Sources: []Source{s}, Issuers: []string{"i"}, Audiences: []string{"a"}, Algorithms: []string{"Ed448"}}); err == nil {
		t.Error("Ed448 accepted in the allow-list")
	}
}

// TestOKPKeyFit: a key's alg must fit its type and curve. Ed25519 and EdDSA
// need crv Ed25519; an X25519 (key agreement) key naming either, an Ed448
// key, and an RSA or EC key named Ed25519 are skipped, not kept.
func TestOKPKeyFit(t *testing.T) {
	ed := jwtauthtest.NewKey(t, jwa.EdDSAEd25519(), "ed")
	x := string(jwtauthtest.MustJSON(t, ed.Pub))
	var pub map[string]any
	if err := jwkJSON(x, &pub); err != nil {
		t.Fatal(err)
	}
	rsaKey := jwtauthtest.NewKey(t, jwa.RS256(), "r")
	ecKey := jwtauthtest.NewKey(t, jwa.ES256(), "e")
	named := func(k jwtauthtest.Key, alg string) string {
		c, _ := k.Pub.Clone()
		_ = c.Set(jwk.AlgorithmKey, jwa.NewSignatureAlgorithm(alg))
		return string(jwtauthtest.MustJSON(t, c))
	}
	for name, c := range map[string]struct {
		key  string
		kept bool
	}{
		"OKP Ed25519 alg Ed25519": {x, true},
		"OKP Ed25519 alg EdDSA":   {named(ed, "EdDSA"), true},
		"OKP X25519 alg Ed25519":  {fmt.Sprintf(`{"kty":"OKP","crv":"X25519","x":%q,"alg":"Ed25519","kid":"x"}`, pub["x"]), false},
		"OKP X25519 alg EdDSA":    {fmt.Sprintf(`{"kty":"OKP","crv":"X25519","x":%q,"alg":"EdDSA","kid":"x"}`, pub["x"]), false},
		"OKP Ed448 alg Ed448":     {`{"kty":"OKP","crv":"Ed448","x":"` + b64Zero(57) + `","alg":"Ed448","kid":"x"}`, false},
		"OKP Ed448 no alg":        {`{"kty":"OKP","crv":"Ed448","x":"` + b64Zero(57) + `","kid":"x"}`, false},
		"RSA alg Ed25519":         {named(rsaKey, "Ed25519"), false},
		"EC alg Ed25519":          {named(ecKey, "Ed25519"), false},
	} {
		_, err := parseVerifyKey([]byte(c.key))
		if (err == nil) != c.kept {
			t.Errorf("%s: kept %v (%v), want %v", name, err == nil, err, c.kept)
		}
	}
}

func jwkJSON(s string, dst any) error { return json.Unmarshal([]byte(s), dst) }

func b64Zero(n int) string { return jwtauthtest.B64(make([]byte, n)) }
