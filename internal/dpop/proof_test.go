package dpop

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/workspace-edge/caddy-workspace-profile/internal/dpop/dpoptest"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

const (
	testURI   = "https://api.example.com/api/workspace/account/profile"
	testToken = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln"
)

var testNow = time.Unix(1_700_000_000, 0)

func newTestVerifier(t testing.TB, cfg Config) *Verifier {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return testNow }
	}
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func request(proofs ...string) Request {
	return Request{Proofs: proofs, Method: "GET", URI: testURI, AccessToken: testToken}
}

// TestCheckGoodProofs: a proof of each default algorithm passes, and the
// thumbprint is the key's RFC 7638 one.
func TestCheckGoodProofs(t *testing.T) {
	v := newTestVerifier(t, Config{})
	for _, alg := range []jwa.SignatureAlgorithm{jwa.ES256(), jwa.ES384(), jwa.ES512(), jwa.RS256(), jwa.PS256(), jwa.EdDSA(), jwa.EdDSAEd25519()} {
		t.Run(alg.String(), func(t *testing.T) {
			p := dpoptest.NewProver(t, alg)
			proof := p.Proof(t, "GET", testURI, testToken, testNow, nil, nil)
			tp, err := v.Verify(context.Background(), request(proof))
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if tp != p.Thumbprint {
				t.Fatalf("thumbprint %q, want %q", tp, p.Thumbprint)
			}
		})
	}
}

// TestCheckRules breaks each rule of RFC 9449 §4.3 once; every proof is
// otherwise good, and each must be refused with its own description.
func TestCheckRules(t *testing.T) {
	p := dpoptest.NewProver(t, jwa.ES256())
	other := dpoptest.NewProver(t, jwa.ES256())
	good := func(hdr, claims map[string]any) string {
		return p.Proof(t, "GET", testURI, testToken, testNow, hdr, claims)
	}
	privJWK := func() map[string]any {
		k, err := jwk.Import(p.Key.Priv)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		_ = json.Unmarshal(jwtauthtest.MustJSON(t, k), &m)
		return m
	}()
	rsaSmall, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallJWK := map[string]any{"kty": "RSA", "n": jwtauthtest.B64(rsaSmall.N.Bytes()), "e": "AQAB"}
	rsaProver := dpoptest.NewProver(t, jwa.RS256())
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384JWK, _ := jwk.Import(p384.Public())
	hs := jwtauthtest.HS256WithPublicKey(t, p.Key.Pub, map[string]any{"jti": "x", "htm": "GET", "htu": testURI, "iat": testNow.Unix()})
	// a proof signed by another key than the one in its header
	forged := other.Proof(t, "GET", testURI, testToken, testNow, map[string]any{"jwk": p.JWK}, nil)
	goodProof := good(nil, nil)
	parts := strings.Split(goodProof, ".")

	tests := []struct {
		name  string
		req   Request
		desc  string // a fragment of the refusal
		proof string
	}{
		{name: "no proof", req: request(), desc: "no DPoP proof"},
		{name: "two DPoP headers", req: request(goodProof, goodProof), desc: "more than one DPoP header"},
		{name: "oversize", proof: good(nil, map[string]any{"pad": strings.Repeat("a", MaxProofLen)}), desc: "larger than 8 KiB"},
		{name: "not a JWS", proof: "a.b", desc: "not a compact JWS"},
		{name: "typ missing", proof: good(map[string]any{"typ": nil}, nil), desc: "typ is not dpop+jwt"},
		{name: "typ JWT", proof: good(map[string]any{"typ": "JWT"}, nil), desc: "typ is not dpop+jwt"},
		{name: "typ other case", proof: good(map[string]any{"typ": "DPoP+JWT"}, nil), desc: "typ is not dpop+jwt"},
		{name: "typ with application/", proof: good(map[string]any{"typ": "application/dpop+jwt"}, nil), desc: "typ is not dpop+jwt"},
		{name: "alg none", proof: jwtauthtest.B64(jwtauthtest.MustJSON(t, map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": p.JWK})) + "." + parts[1] + ".c2ln", desc: "algorithm is not accepted"},
		{name: "alg HS256", proof: hs, desc: "typ is not dpop+jwt"},
		{name: "alg HS256 with typ", proof: jwtauthtest.B64(jwtauthtest.MustJSON(t, map[string]any{"typ": "dpop+jwt", "alg": "HS256", "jwk": p.JWK})) + "." + parts[1] + "." + parts[2], desc: "algorithm is not accepted"},
		{name: "alg not configured", req: request(good(nil, nil)), desc: "algorithm is not accepted"},
		{name: "no jwk", proof: good(map[string]any{"jwk": nil}, nil), desc: "has no jwk"},
		{name: "jwk a string", proof: good(map[string]any{"jwk": "key"}, nil), desc: "has no jwk"},
		{name: "private jwk", proof: good(map[string]any{"jwk": privJWK}, nil), desc: "must be a public key"},
		{name: "symmetric jwk", proof: good(map[string]any{"jwk": map[string]any{"kty": "oct", "k": "c2VjcmV0"}}, nil), desc: "must be a public key"},
		{name: "jwk alg differs", proof: good(map[string]any{"jwk": withMember(p.JWK, "alg", "ES384")}, nil), desc: "does not fit the algorithm"},
		{name: "key of another curve", proof: good(map[string]any{"jwk": p384JWK}, nil), desc: "does not fit the algorithm"},
		{name: "RSA key under ES256", proof: good(map[string]any{"jwk": rsaProver.JWK}, nil), desc: "does not fit the algorithm"},
		{name: "RSA key under 2048 bits", proof: rsaProver.Proof(t, "GET", testURI, testToken, testNow, map[string]any{"jwk": smallJWK}, nil), desc: "shorter than 2048 bits"},
		{name: "crit", proof: good(map[string]any{"crit": []string{"x"}, "x": 1}, nil), desc: "critical header"},
		{name: "bad signature", proof: parts[0] + "." + parts[1] + "." + strings.Split(good(nil, nil), ".")[2], desc: "signature is invalid"},
		{name: "signed by another key", proof: forged, desc: "signature is invalid"},
		{name: "wrong htm", proof: good(nil, map[string]any{"htm": "PUT"}), desc: "another HTTP method"},
		{name: "htm lower case", proof: good(nil, map[string]any{"htm": "get"}), desc: "another HTTP method"},
		{name: "wrong htu path", proof: good(nil, map[string]any{"htu": "https://api.example.com/api/workspace/account/other"}), desc: "another URI"},
		{name: "wrong htu scheme", proof: good(nil, map[string]any{"htu": "http://api.example.com/api/workspace/account/profile"}), desc: "another URI"},
		{name: "wrong htu host", proof: good(nil, map[string]any{"htu": "https://evil.example.com/api/workspace/account/profile"}), desc: "another URI"},
		{name: "wrong htu port", proof: good(nil, map[string]any{"htu": "https://api.example.com:8443/api/workspace/account/profile"}), desc: "another URI"},
		{name: "htu path case", proof: good(nil, map[string]any{"htu": "https://api.example.com/API/workspace/account/profile"}), desc: "another URI"},
		{name: "htu encoded slash", proof: good(nil, map[string]any{"htu": "https://api.example.com/api%2Fworkspace/account/profile"}), desc: "another URI"},
		{name: "htu relative", proof: good(nil, map[string]any{"htu": "/api/workspace/account/profile"}), desc: "another URI"},
		{name: "htu userinfo", proof: good(nil, map[string]any{"htu": "https://u@api.example.com/api/workspace/account/profile"}), desc: "another URI"},
		{name: "stale iat", proof: good(nil, map[string]any{"iat": testNow.Add(-DefaultWindow - time.Second).Unix()}), desc: "too old"},
		{name: "future iat", proof: good(nil, map[string]any{"iat": testNow.Add(DefaultFuture + time.Second).Unix()}), desc: "in the future"},
		{name: "iat a string", proof: good(nil, map[string]any{"iat": "1700000000"}), desc: "no numeric iat"},
		{name: "no iat", proof: good(nil, map[string]any{"iat": nil}), desc: "no numeric iat"},
		{name: "no ath", proof: good(nil, map[string]any{"ath": nil}), desc: "no ath claim"},
		{name: "wrong ath", proof: good(nil, map[string]any{"ath": dpoptest.ATH(testToken + "x")}), desc: "another access token"},
		{name: "ath a number", proof: good(nil, map[string]any{"ath": 1}), desc: "non-string ath"},
		{name: "no jti", proof: good(nil, map[string]any{"jti": nil}), desc: "no string jti"},
		{name: "jti a number", proof: good(nil, map[string]any{"jti": 42}), desc: "no string jti"},
		{name: "jti empty", proof: good(nil, map[string]any{"jti": ""}), desc: "no string jti"},
		{name: "no htm", proof: good(nil, map[string]any{"htm": nil}), desc: "no string htm"},
		{name: "no htu", proof: good(nil, map[string]any{"htu": nil}), desc: "no string htu"},
		{name: "duplicate claim", proof: p.Raw(t, jwtauthtest.MustJSON(t, map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": p.JWK}),
			[]byte(`{"jti":"a","jti":"b","htm":"GET","htu":"`+testURI+`","iat":1700000000,"ath":"`+dpoptest.ATH(testToken)+`"}`)), desc: "not strict JSON"},
		{name: "duplicate header member", proof: p.Raw(t, []byte(`{"typ":"dpop+jwt","typ":"JWT","alg":"ES256","jwk":`+string(jwtauthtest.MustJSON(t, p.JWK))+`}`),
			jwtauthtest.MustJSON(t, map[string]any{"jti": "a", "htm": "GET", "htu": testURI, "iat": testNow.Unix(), "ath": dpoptest.ATH(testToken)})), desc: "names a member twice"},
		{name: "invalid UTF-8 in claims", proof: p.Raw(t, jwtauthtest.MustJSON(t, map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": p.JWK}),
			[]byte("{\"jti\":\"a\xff\",\"htm\":\"GET\",\"htu\":\""+testURI+"\",\"iat\":1700000000,\"ath\":\""+dpoptest.ATH(testToken)+"\"}")), desc: "not strict JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newTestVerifier(t, Config{})
			if tt.name == "alg not configured" {
				v = newTestVerifier(t, Config{Algorithms: []string{"RS256", "EdDSA"}})
			}
			req := tt.req
			if tt.proof != "" {
				req = request(tt.proof)
			}
			tp, err := v.Verify(context.Background(), req)
			if err == nil {
				t.Fatalf("accepted (thumbprint %s)", tp)
			}
			if !strings.Contains(err.Desc, tt.desc) {
				t.Fatalf("refused with %q, want %q", err.Desc, tt.desc)
			}
			if strings.Contains(err.Desc, testToken) || (tt.proof != "" && strings.Contains(err.Desc, tt.proof)) {
				t.Fatalf("the refusal holds the token or the proof: %q", err.Desc)
			}
		})
	}
	// and the untouched proof passes: the table breaks one rule a row
	if _, err := newTestVerifier(t, Config{}).Verify(context.Background(), request(goodProof)); err != nil {
		t.Fatalf("good proof refused: %v", err)
	}
}

func withMember(m map[string]any, name string, v any) map[string]any {
	out := map[string]any{name: v}
	for k, x := range m {
		if k != name {
			out[k] = x
		}
	}
	return out
}

// TestCheckHTUVariants: htu spellings RFC 3986 normalization makes equal
// to the request URI pass; the query and fragment are ignored.
func TestCheckHTUVariants(t *testing.T) {
	p := dpoptest.NewProver(t, jwa.ES256())
	v := newTestVerifier(t, Config{})
	for _, htu := range []string{
		testURI,
		testURI + "?x=1",
		testURI + "#frag",
		testURI + "?x=1#frag",
		"HTTPS://API.EXAMPLE.COM/api/workspace/account/profile",
		"https://api.example.com:443/api/workspace/account/profile",
		"https://api.example.com:/api/workspace/account/profile",
		"https://api.example.com/api/%77orkspace/account/profile",
		"https://api.example.com/api/./workspace/x/../account/profile",
	} {
		proof := p.Proof(t, "GET", htu, testToken, testNow, nil, nil)
		if _, err := v.Verify(context.Background(), request(proof)); err != nil {
			t.Errorf("htu %q refused: %v", htu, err)
		}
	}
	// the request side is normalized the same way: a request URI with its
	// default port and a query matches a plain htu
	proof := p.Proof(t, "GET", testURI, testToken, testNow, nil, nil)
	req := request(proof)
	req.URI = "https://API.example.com:443/api/workspace/account/profile?a=b"
	if _, err := v.Verify(context.Background(), req); err != nil {
		t.Errorf("request URI with default port refused: %v", err)
	}
}

// TestCheckIATWindow: the window's edges, with and without leeway.
func TestCheckIATWindow(t *testing.T) {
	p := dpoptest.NewProver(t, jwa.ES256())
	for _, tt := range []struct {
		name   string
		cfg    Config
		offset time.Duration
		ok     bool
	}{
		{"60s old", Config{}, -60 * time.Second, true},
		{"61s old", Config{}, -61 * time.Second, false},
		{"5s ahead", Config{}, 5 * time.Second, true},
		{"6s ahead", Config{}, 6 * time.Second, false},
		{"61s old with leeway", Config{Leeway: 30 * time.Second}, -61 * time.Second, true},
		{"91s old with leeway", Config{Leeway: 30 * time.Second}, -91 * time.Second, false},
		{"35s ahead with leeway", Config{Leeway: 30 * time.Second}, 35 * time.Second, true},
		{"10m window", Config{Window: 10 * time.Minute}, -9 * time.Minute, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := newTestVerifier(t, tt.cfg)
			_, err := v.Verify(context.Background(), request(p.Proof(t, "GET", testURI, testToken, testNow.Add(tt.offset), nil, nil)))
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

// TestReplay: a proof is accepted once; Check alone does not spend it;
// the same jti under another key is another proof.
func TestReplay(t *testing.T) {
	p := dpoptest.NewProver(t, jwa.ES256())
	other := dpoptest.NewProver(t, jwa.ES256())
	v := newTestVerifier(t, Config{})
	proof := p.Proof(t, "GET", testURI, testToken, testNow, nil, map[string]any{"jti": "one"})
	for range 3 {
		if _, err := v.Check(request(proof)); err != nil {
			t.Fatalf("check: %v", err)
		}
	}
	if _, err := v.Verify(context.Background(), request(proof)); err != nil {
		t.Fatalf("first use refused: %v", err)
	}
	if _, err := v.Verify(context.Background(), request(proof)); err == nil || !strings.Contains(err.Desc, "already used") {
		t.Fatalf("replay: %v", err)
	}
	// the same jti again in a new proof of the same key is a replay too
	again := p.Proof(t, "GET", testURI, testToken, testNow.Add(time.Second), nil, map[string]any{"jti": "one"})
	if _, err := v.Verify(context.Background(), request(again)); err == nil {
		t.Fatal("reused jti accepted")
	}
	theirs := other.Proof(t, "GET", testURI, testToken, testNow, nil, map[string]any{"jti": "one"})
	if _, err := v.Verify(context.Background(), request(theirs)); err != nil {
		t.Fatalf("another key's jti refused: %v", err)
	}
}

// TestReplayAcrossVerifiers: verifiers that share a cache (a config reload)
// share what was used.
func TestReplayAcrossVerifiers(t *testing.T) {
	p := dpoptest.NewProver(t, jwa.ES256())
	cache := NewReplayCache(10)
	a := newTestVerifier(t, Config{Replay: cache})
	b := newTestVerifier(t, Config{Replay: cache})
	proof := p.Proof(t, "GET", testURI, testToken, testNow, nil, nil)
	if _, err := a.Verify(context.Background(), request(proof)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify(context.Background(), request(proof)); err == nil {
		t.Fatal("replayed through the second verifier")
	}
}

func TestNewRefusesBadAlgorithms(t *testing.T) {
	for _, alg := range []string{"none", "HS256", "RS1", "es256"} {
		if _, err := New(Config{Algorithms: []string{alg}}); err == nil {
			t.Errorf("%s accepted", alg)
		}
	}
}

// TestCheckKeyMismatchBeforeSignature: a proof by another key than the
// token's cnf.jkt is refused as a key mismatch before its signature is
// checked: even a proof with a broken signature gets that answer.
func TestCheckKeyMismatchBeforeSignature(t *testing.T) {
	v := newTestVerifier(t, Config{Now: func() time.Time { return testNow }})
	bound, other := dpoptest.NewProver(t, jwa.ES256()), dpoptest.NewProver(t, jwa.ES256())
	p := other.Proof(t, "GET", testURI, testToken, testNow, nil, nil)
	broken := p[:len(p)-4] + "AAAA"
	for _, proof := range []string{p, broken} {
		req := request(proof)
		req.Thumbprint = bound.Thumbprint
		if _, err := v.Check(req); err == nil || !err.KeyMismatch {
			t.Fatalf("proof by another key: %v, want KeyMismatch", err)
		}
	}
	req := request(bound.Proof(t, "GET", testURI, testToken, testNow, nil, nil))
	req.Thumbprint = bound.Thumbprint
	if got, err := v.Check(req); err != nil || got.Thumbprint != bound.Thumbprint {
		t.Fatalf("proof by the bound key: %v", err)
	}
}
