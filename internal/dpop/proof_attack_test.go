package dpop

import (
	"context"
	"crypto/elliptic"
	"encoding/base64"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/dpop/dpoptest"
)

// Attacks on the proof checks and the replay cache, each defended.

// TestReplayFloodWithFutureIATKeepsOthersWorking: one client holding its
// own valid bound token floods the shared replay cache with proofs whose
// iat lies ahead of the clock (allowed: up to 5 s plus the leeway). Every
// other client's fresh proof (iat = now, as RFC 9449 asks) is still
// accepted, a second and a minute later: were such a proof refused "too
// old to be checked for replay" once the cache is full of the flood, one
// client with a valid bound token would deny service to all until the
// flood's iats left the window (up to window + 2 x leeway + 5 s, 125 s by
// default). docs/dpop.md promises that a flood only shrinks the window from
// its old end.
func TestReplayFloodWithFutureIATKeepsOthersWorking(t *testing.T) {
	const size = 50
	now := testNow
	v := newTestVerifier(t, Config{Leeway: 30 * time.Second, Replay: NewReplayCache(size), Now: func() time.Time { return now }})
	attacker := dpoptest.NewProver(t, jwa.ES256())
	victim := dpoptest.NewProver(t, jwa.ES256())

	for i := range size {
		// 34 s ahead: within DefaultFuture (5 s) plus the 30 s leeway
		p := attacker.Proof(t, "GET", testURI, testToken, now.Add(34*time.Second), nil, nil)
		if _, err := v.Verify(context.Background(), request(p)); err != nil {
			t.Fatalf("attacker proof %d refused: %v", i, err)
		}
	}
	// a second later, an honest client with a fresh proof
	now = now.Add(time.Second)
	p := victim.Proof(t, "GET", testURI, testToken, now, nil, nil)
	if _, err := v.Verify(context.Background(), request(p)); err != nil {
		t.Fatalf("an honest client's fresh proof is refused after another client's flood: %v", err)
	}
	// and 60 s later still (the flood's entries stay until they leave the window)
	now = now.Add(60 * time.Second)
	p = victim.Proof(t, "GET", testURI, testToken, now, nil, nil)
	if _, err := v.Verify(context.Background(), request(p)); err != nil {
		t.Fatalf("60 s after the flood an honest client's fresh proof is still refused: %v", err)
	}
}

// TestReplayFloodWithPresentIATKeepsOthersWorking: the documented
// case (a flood of proofs dated now) does leave fresh proofs working, and
// never lets a replay through.
func TestReplayFloodWithPresentIATKeepsOthersWorking(t *testing.T) {
	const size = 50
	now := testNow
	v := newTestVerifier(t, Config{Leeway: 30 * time.Second, Replay: NewReplayCache(size), Now: func() time.Time { return now }})
	attacker := dpoptest.NewProver(t, jwa.ES256())
	victim := dpoptest.NewProver(t, jwa.ES256())
	var first string
	for i := range 3 * size {
		if i%10 == 9 {
			now = now.Add(time.Second) // a flood of 10 proofs a second, each dated now
		}
		p := attacker.Proof(t, "GET", testURI, testToken, now, nil, nil)
		if i == 0 {
			first = p
		}
		if _, err := v.Verify(context.Background(), request(p)); err != nil {
			t.Fatalf("attacker proof %d refused: %v", i, err)
		}
	}
	if _, err := v.Verify(context.Background(), request(first)); err == nil {
		t.Fatal("a replayed proof was accepted after the cache evicted it")
	}
	now = now.Add(time.Second)
	if _, err := v.Verify(context.Background(), request(victim.Proof(t, "GET", testURI, testToken, now, nil, nil))); err != nil {
		t.Fatalf("fresh proof refused: %v", err)
	}
}

// TestMalleatedECDSAProofIsAReplay: an ES256 signature (r, s) also
// verifies as (r, n-s), so an eavesdropper can make a byte-different proof
// from a used one. The replay key is the jti (with key and htu), not the
// proof's bytes, so the twin is refused as a replay.
func TestMalleatedECDSAProofIsAReplay(t *testing.T) {
	v := newTestVerifier(t, Config{})
	p := dpoptest.NewProver(t, jwa.ES256())
	proof := p.Proof(t, "GET", testURI, testToken, testNow, nil, nil)
	if _, err := v.Verify(context.Background(), request(proof)); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(proof, ".")
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		t.Fatalf("signature: %v (%d bytes)", err, len(sig))
	}
	n := elliptic.P256().Params().N
	s := new(big.Int).SetBytes(sig[32:])
	s.Sub(n, s)
	twinSig := append(append([]byte{}, sig[:32]...), s.FillBytes(make([]byte, 32))...)
	twin := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(twinSig)
	if twin == proof {
		t.Fatal("no twin made")
	}
	chk, err2 := v.Check(request(twin))
	if err2 != nil {
		t.Fatalf("the malleated twin should verify (it is the same proof): %v", err2)
	}
	if chk.Thumbprint != p.Thumbprint {
		t.Fatal("thumbprint")
	}
	if err := v.Commit(context.Background(), chk); err == nil || !strings.Contains(err.Desc, "already used") {
		t.Fatalf("malleated twin of a used proof: %v, want refused as already used", err)
	}
}

// TestHTUSpellingsNamingAnotherAuthority: the URI a proof names is compared after
// normalization, and nothing that names another authority (userinfo, a
// zone, an escaped host, a backslash) is ever taken for ours.
func TestHTUSpellingsNamingAnotherAuthority(t *testing.T) {
	v := newTestVerifier(t, Config{})
	p := dpoptest.NewProver(t, jwa.ES256())
	const uri = "https://api.example.com/api/workspace/account/profile"
	refused := []string{
		"https://evil@api.example.com/api/workspace/account/profile",
		"https://api.example.com@evil/api/workspace/account/profile",
		"https://api.example.com%2F@evil/api/workspace/account/profile",
		"https://api%2Eexample.com/api/workspace/account/profile",
		"https://api.example.com\\@evil/api/workspace/account/profile",
		"https://api.example.com:8443/api/workspace/account/profile",
		"https://api.example.com:65979/api/workspace/account/profile", // 443 + 65536
		"http://api.example.com/api/workspace/account/profile",
		"https://api.example.com/api/workspace/account/profile/",
		"https://api.example.com/api/workspace/account/profile;x=1",
		"https://api.example.com/API/workspace/account/profile",
		"https://api.example.com/api/workspace/account%2Fprofile",
		"https://api.example.com/api/workspace/account/profile%",
		"//api.example.com/api/workspace/account/profile",
		"/api/workspace/account/profile",
		"wss://api.example.com/api/workspace/account/profile",
		"https://api.example.com./api/workspace/account/profile",
		"https://[::1]/api/workspace/account/profile",
	}
	for _, htu := range refused {
		proof := p.Proof(t, "GET", htu, testToken, testNow, nil, nil)
		if _, err := v.Verify(context.Background(), Request{Proofs: []string{proof}, Method: "GET", URI: uri, AccessToken: testToken}); err == nil ||
			err.Desc != "The DPoP proof is for another URI (htu)." {
			t.Errorf("htu %q accepted for %s (%v)", htu, uri, err)
		}
	}
	same := []string{
		"HTTPS://API.EXAMPLE.COM:443/api/workspace/account/profile?x#y",
		"https://api.example.com:0443/api/workspace/account/profile",
		"https://api.example.com/api/workspace/x/../account/./profile",
		"https://api.example.com/api/workspace/x/%2E%2E/account/%70rofile",
	}
	for _, htu := range same {
		proof := p.Proof(t, "GET", htu, testToken, testNow, nil, nil)
		if _, err := v.Verify(context.Background(), Request{Proofs: []string{proof}, Method: "GET", URI: uri, AccessToken: testToken}); err != nil {
			t.Errorf("htu %q refused for %s: %v", htu, uri, err)
		}
	}
	// IPv6 hosts: the literal compares in its normalized form, the port too
	for _, c := range []struct{ htu, uri string }{
		{"http://[::1]:80/p", "http://[::1]/p"},
		{"http://[0:0::1]/p", ""}, // another spelling of ::1 is not ours: refused
	} {
		proof := p.Proof(t, "GET", c.htu, testToken, testNow, nil, nil)
		target := c.uri
		if target == "" {
			target = "http://[::1]/p"
		}
		_, err := v.Verify(context.Background(), Request{Proofs: []string{proof}, Method: "GET", URI: target, AccessToken: testToken})
		if (c.uri != "") != (err == nil) {
			t.Errorf("htu %q for %s: %v", c.htu, target, err)
		}
	}
}

// TestProofHeaderMismatchesRefused: a second proof comma-joined into one
// header, a proof whose alg names another key type than its jwk, a jwk
// declaring another alg, and ath over a whitespace-padded token are
// refused.
func TestProofHeaderMismatchesRefused(t *testing.T) {
	v := newTestVerifier(t, Config{})
	ec := dpoptest.NewProver(t, jwa.ES256())
	ed := dpoptest.NewProver(t, jwa.EdDSA())
	a := ec.Proof(t, "GET", testURI, testToken, testNow, nil, nil)
	b := ec.Proof(t, "GET", testURI, testToken, testNow, nil, nil)
	cases := map[string]Request{
		"comma-joined":          {Proofs: []string{a + ", " + b}, Method: "GET", URI: testURI, AccessToken: testToken},
		"comma-joined no space": {Proofs: []string{a + "," + b}, Method: "GET", URI: testURI, AccessToken: testToken},
		"alg ES384 with a P-256 key": request(ec.Proof(t, "GET", testURI, testToken, testNow,
			map[string]any{"alg": "ES384"}, nil)),
		"Ed25519 with a jwk saying EdDSA": request(ed.Proof(t, "GET", testURI, testToken, testNow,
			map[string]any{"alg": "Ed25519", "jwk": withMember(ed.JWK, "alg", "EdDSA")}, nil)),
		"typ DPoP+JWT": request(ec.Proof(t, "GET", testURI, testToken, testNow, map[string]any{"typ": "DPoP+JWT"}, nil)),
		"typ application/dpop+jwt": request(ec.Proof(t, "GET", testURI, testToken, testNow,
			map[string]any{"typ": "application/dpop+jwt"}, nil)),
		"ath of the token with a space": {Proofs: []string{ec.Proof(t, "GET", testURI, " "+testToken, testNow, nil, nil)},
			Method: "GET", URI: testURI, AccessToken: testToken},
		"htm get": request(ec.Proof(t, "get", testURI, testToken, testNow, nil, nil)),
		"iat a string": request(ec.Proof(t, "GET", testURI, testToken, testNow, nil,
			map[string]any{"iat": "1700000000"})),
		"jti a number": request(ec.Proof(t, "GET", testURI, testToken, testNow, nil, map[string]any{"jti": 7})),
	}
	for name, req := range cases {
		if _, err := v.Verify(context.Background(), req); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
