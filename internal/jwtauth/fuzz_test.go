package jwtauth

// Fuzz targets for the two parsers of untrusted input in the core: the
// bearer token (end to end: pre-check, header, signature, claims) and the
// key set a provider serves. Their corpora are in testdata/fuzz/<Target>/,
// seeded with every catalogue row's token or document and the Envoy
// vectors (written by TestFuzzCorpus with -update-fuzz-corpus, from the
// fixed keys of testdata/fuzz-keys.json so that the seeded tokens verify
// in every run).

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jsonscan"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

var updateFuzzCorpus = flag.Bool("update-fuzz-corpus", false, "rewrite the seeds of testdata/fuzz (and testdata/fuzz-keys.json if missing)")

// fuzzNow is the verifier's fixed clock in FuzzVerify: the Envoy vectors
// are valid then, and the seeded tokens expire in 2100.
var fuzzNow = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

const fuzzExp = 4102444800 // 2100-01-01

const fuzzKeysPath = "testdata/fuzz-keys.json"

// fuzzKeys are the fixed signing keys of the seeds, one per default
// algorithm, made once and kept in testdata (test keys, no secret).
func fuzzKeys(t testing.TB) []jwtauthtest.Key {
	raw, err := os.ReadFile(fuzzKeysPath)
	if os.IsNotExist(err) && *updateFuzzCorpus {
		set := jwk.NewSet()
		for _, a := range DefaultAlgorithms {
			alg, _ := jwa.LookupSignatureAlgorithm(a)
			k := jwtauthtest.NewKey(t, alg, "fuzz-"+a)
			priv, err := jwk.Import(k.Priv)
			if err != nil {
				t.Fatal(err)
			}
			_ = priv.Set(jwk.KeyIDKey, k.Kid)
			_ = priv.Set(jwk.AlgorithmKey, alg)
			_ = set.AddKey(priv)
		}
		raw, _ = json.MarshalIndent(set, "", " ")
		if err := os.MkdirAll(filepath.Dir(fuzzKeysPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(fuzzKeysPath, raw, 0o644); err != nil {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	set, err := jwk.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	var keys []jwtauthtest.Key
	for i := range set.Len() {
		priv, _ := set.Key(i)
		var signer any
		if err := jwk.Export(priv, &signer); err != nil {
			t.Fatal(err)
		}
		alg, _ := priv.Algorithm()
		kid, _ := priv.KeyID()
		pub, _ := jwk.PublicKeyOf(priv)
		sa, _ := jwa.LookupSignatureAlgorithm(alg.String())
		var s crypto.Signer
		switch k := signer.(type) {
		case *rsa.PrivateKey:
			s = k
		case *ecdsa.PrivateKey:
			s = k
		case ed25519.PrivateKey:
			s = k
		default:
			t.Fatalf("fuzz key %s: %T", kid, signer)
		}
		keys = append(keys, jwtauthtest.Key{Alg: sa, Kid: kid, Priv: s, Pub: pub})
	}
	return keys
}

// fuzzVerifier is a verifier on one URL source serving the fuzz keys and
// both Envoy key sets, accepting both issuers and audiences.
func fuzzVerifier(t testing.TB, cacheSize int) (*Verifier, *URLSource, *jwtauthtest.Server, *jwtauthtest.Clock) {
	keys := fuzzKeys(t)
	vec := loadEnvoyVectors(t)
	var docs struct{ Keys []json.RawMessage }
	for _, d := range [][]byte{jwtauthtest.JWKS(t, keys...), vec.JWKSRSA, vec.JWKSES256} {
		var one struct{ Keys []json.RawMessage }
		if err := json.Unmarshal(d, &one); err != nil {
			t.Fatal(err)
		}
		docs.Keys = append(docs.Keys, one.Keys...)
	}
	idp := jwtauthtest.NewJWKSServer(t, jwtauthtest.MustJSON(t, map[string]any{"keys": docs.Keys}))
	clock := jwtauthtest.NewClock()
	// min_refresh of 1ns spaces no scheduled fetch; unknown-kid fetches
	// keep their own budget, so the checks below are upper bounds
	src := NewURLSource(idp.URL, URLOptions{Now: clock.Now, Mono: clock.Mono, FetchTimeout: testFetchTimeout,
		Refresh: RefreshOptions{MinRefresh: time.Nanosecond}})
	if _, err := src.refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	v, err := New(Config{Sources: []Source{src}, Issuers: []string{jwtauthtest.Issuer, vec.Issuer},
		Audiences: []string{jwtauthtest.Audience, vec.Audience}, Now: func() time.Time { return fuzzNow }, CacheSize: cacheSize})
	if err != nil {
		t.Fatal(err)
	}
	return v, src, idp, clock
}

// mayFetch is when a refused token is allowed to make a fetch: it is a
// well-formed token of an accepted alg whose claims pass, naming a key
// the set does not have (the throttled unknown-kid refresh, B04).
func mayFetch(v *Verifier, ks *keySet, tok string) bool {
	if !precheckToken(tok) {
		return false
	}
	hdrPart, rest, _ := strings.Cut(tok, ".")
	payloadPart, _, _ := strings.Cut(rest, ".")
	h, err := parseHeader(hdrPart)
	if err != nil || h.Crit {
		return false
	}
	if _, ok := v.algorithms[h.Alg]; !ok {
		return false
	}
	if len(ks.candidates(h.Alg, h.Kid, nil)) > 0 {
		return false
	}
	c, err := parseClaims(payloadPart)
	return err == nil && v.checkClaims(c) == nil && v.checkKind(h, c) == nil
}

var knownCodes = map[string]bool{CodeInvalidToken: true, CodeTokenExpired: true, CodeTokenNotYetValid: true,
	CodeInvalidIssuer: true, CodeInvalidAudience: true}

// FuzzVerify: token verification end to end never panics; a refused token
// has a 401 code, a description without the token, and makes no key set
// fetch unless mayFetch allows it; an accepted token is canonical, its
// claims strict, and it verifies again, with and without the cache, to the
// same claims.
func FuzzVerify(f *testing.F) {
	f.Add("aaaa.bbbb.cccc")
	v, src, idp, clock := fuzzVerifier(f, 0)
	cached, _, _, _ := fuzzVerifier(f, 64)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, tok string) {
		ks := src.set.Load()
		clock.Advance(time.Nanosecond) // time passes, far from max_stale
		before := idp.Fetches.Load()
		c, aerr := v.Verify(ctx, tok)
		fetched := idp.Fetches.Load() - before
		if aerr != nil {
			if !knownCodes[aerr.Code] {
				t.Fatalf("refused with %s", aerr.Code)
			}
			if len(tok) >= 16 && strings.Contains(aerr.Desc, tok) {
				t.Fatal("the description holds the token")
			}
			if fetched > 0 && !mayFetch(v, ks, tok) {
				t.Fatalf("a refused token made %d fetches", fetched)
			}
			if fetched > 1 {
				t.Fatalf("%d fetches for one token", fetched)
			}
			if _, cerr := cached.Verify(ctx, tok); cerr == nil {
				t.Fatal("the cached verifier accepts what the other refuses")
			}
			return
		}
		if fetched != 0 && !mayFetch(v, ks, tok) {
			t.Fatalf("an accepted token made %d fetches", fetched)
		}
		for _, p := range strings.Split(tok, ".") {
			if _, err := base64.RawURLEncoding.Strict().DecodeString(p); err != nil {
				t.Fatalf("accepted a non-canonical part: %v", err)
			}
		}
		payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
		if err := jsonscan.CheckStrict(payload); err != nil {
			t.Fatalf("accepted claims that are not strict: %v", err)
		}
		if sub, _ := c.Str(v.SubjectClaim()); sub == "" {
			t.Fatal("accepted without a subject")
		}
		again, aerr := v.Verify(ctx, tok)
		if aerr != nil || !reflect.DeepEqual(c, again) {
			t.Fatalf("re-verification differs: %v", aerr)
		}
		for range 2 { // a miss, then a hit
			cc, cerr := cached.Verify(ctx, tok)
			if cerr != nil || !reflect.DeepEqual(c, cc) {
				t.Fatalf("the cached verifier differs: %v", cerr)
			}
		}
	})
}

// FuzzParseKeySet: an untrusted JWKS document never panics the parser;
// a set it accepts is not empty, and every key in it has a supported type,
// an alg (if any) that fits it, RSA of 2048 bits or more, and passes the
// same filter again when written back as a JWK.
func FuzzParseKeySet(f *testing.F) {
	f.Add([]byte(`{"keys":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ks, _, err := parseKeySet(data)
		if err != nil {
			if ks != nil {
				t.Fatal("a set with an error")
			}
			return
		}
		if ks == nil || len(ks.keys) == 0 {
			t.Fatal("an empty set accepted")
		}
		for _, vk := range ks.keys {
			switch key := vk.key.(type) {
			case *rsa.PublicKey:
				if vk.kty != "RSA" || key.N.BitLen() < minRSABits {
					t.Fatalf("RSA key kty %s, %d bits", vk.kty, key.N.BitLen())
				}
			case *ecdsa.PublicKey:
				if vk.kty != "EC" {
					t.Fatalf("ECDSA key of kty %s", vk.kty)
				}
			case ed25519.PublicKey:
				if vk.kty != "OKP" {
					t.Fatalf("Ed25519 key of kty %s", vk.kty)
				}
			default:
				t.Fatalf("a key of type %T accepted", vk.key)
			}
			if vk.alg != "" && !SupportedAlgorithm(vk.alg) {
				t.Fatalf("a key of alg %q accepted", vk.alg)
			}
			if vk.thumbprint == "" {
				t.Fatal("no thumbprint")
			}
			pub, err := jwk.Import(vk.key)
			if err != nil {
				t.Fatalf("accepted key does not import again: %v", err)
			}
			if vk.kid != "" {
				_ = pub.Set(jwk.KeyIDKey, vk.kid)
			}
			if vk.alg != "" {
				a, _ := jwa.LookupSignatureAlgorithm(vk.alg)
				_ = pub.Set(jwk.AlgorithmKey, a)
			}
			raw, err := json.Marshal(pub)
			if err != nil {
				t.Fatal(err)
			}
			again, err := parseVerifyKey(raw)
			if err != nil || again.thumbprint != vk.thumbprint || again.alg != vk.alg || again.kid != vk.kid {
				t.Fatalf("an accepted key fails the filter again: %v", err)
			}
		}
	})
}

// TestFuzzCorpus keeps the committed corpora seeded: with
// -update-fuzz-corpus it writes the seeds; without, it checks every seed
// is there (a row's seed lost from the repository fails here).
func TestFuzzCorpus(t *testing.T) {
	for target, seeds := range map[string]map[string]string{
		"FuzzVerify":      verifySeeds(t),
		"FuzzParseKeySet": keySetSeeds(t),
	} {
		dir := filepath.Join("testdata", "fuzz", target)
		names := make([]string, 0, len(seeds))
		for name := range seeds {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			path := filepath.Join(dir, "seed-"+name)
			typ := "string"
			if target == "FuzzParseKeySet" {
				typ = "[]byte"
			}
			body := "go test fuzz v1\n" + typ + "(" + strconv.Quote(seeds[name]) + ")\n"
			if *updateFuzzCorpus {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				// a seed that exists keeps its bytes: signatures are not
				// deterministic, and churn would hide real changes
				if _, err := os.Stat(path); err == nil {
					continue
				}
				if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s: seed %s missing (run go test -run TestFuzzCorpus -update-fuzz-corpus)", target, name)
			}
		}
	}
}

// TestFuzzVerifySeedsMeanSomething: the seeds of FuzzVerify that must
// verify do (else the fuzzer's accepted-token invariants would never run),
// and the attack seeds are refused.
func TestFuzzVerifySeedsMeanSomething(t *testing.T) {
	v, _, _, _ := fuzzVerifier(t, 0)
	accepted := map[string]bool{"A11-no-kid": true, "A13-malleated": true, "A18-aud-array": true,
		"C-envoy-GoodToken": true, "C-envoy-GoodTokenWithSpaces": true, "C-envoy-NestedGoodToken": true}
	for name, tok := range verifySeeds(t) {
		want := accepted[name] || strings.HasPrefix(name, "A01-")
		if _, aerr := v.Verify(context.Background(), tok); (aerr == nil) != want {
			t.Errorf("seed %s: %v, want accepted %v", name, aerr, want)
		}
	}
}

// verifySeeds are the catalogue's tokens (parts A and C, and part B's
// cheap-reject ones) made with the fixed fuzz keys, and the Envoy vectors.
func verifySeeds(t *testing.T) map[string]string {
	keys := fuzzKeys(t)
	key := func(alg string) jwtauthtest.Key {
		for _, k := range keys {
			if k.Alg.String() == alg {
				return k
			}
		}
		t.Fatalf("no fuzz key for %s", alg)
		return jwtauthtest.Key{}
	}
	rs, es, ed := key("RS256"), key("ES256"), key("EdDSA")
	claims := func(set map[string]any) map[string]any {
		return overlay(map[string]any{"iss": jwtauthtest.Issuer, "aud": jwtauthtest.Audience, "sub": "alice", "iat": fuzzNow.Unix(), "exp": fuzzExp}, set)
	}
	good := claims(nil)
	payload := string(jwtauthtest.MustJSON(t, good))
	withExtra := func(drop, extra string) []byte {
		c := claims(map[string]any{drop: nil})
		b := jwtauthtest.MustJSON(t, c)
		return append(append(b[:len(b)-1:len(b)-1], ","+extra...), '}')
	}
	raw := func(k jwtauthtest.Key, hdr string, p []byte) string { return k.SignRaw(t, []byte(hdr), p) }
	rsHdr := `{"alg":"RS256","kid":"fuzz-RS256"}`
	seeds := map[string]string{}
	for _, k := range keys {
		seeds["A01-"+k.Alg.String()] = k.Mint(t, good, nil)
	}
	tok := rs.Mint(t, good, nil)
	h, p, s := parts(tok)
	seeds["A02-none"] = jwtauthtest.B64([]byte(`{"alg":"none"}`)) + "." + p + "."
	seeds["A02-nOnE-kept-sig"] = jwtauthtest.B64([]byte(`{"alg":"nOnE"}`)) + "." + p + "." + s
	seeds["A03-empty-sig"] = h + "." + p + "."
	seeds["A03-two-parts"] = h + "." + p
	seeds["A04-hs256-public-key"] = jwtauthtest.HS256WithPublicKey(t, rs.Pub, good)
	seeds["A05-ps256-header"] = withHeader(tok, `{"alg":"PS256","kid":"fuzz-RS256"}`)
	seeds["A06-hs256"] = withHeader(tok, `{"alg":"HS256","kid":"fuzz-RS256"}`)
	// an attacker's key under a trusted kid, made afresh: the written
	// seed is one such token, refused whichever key made it
	attacker := jwtauthtest.NewKey(t, jwa.ES256(), es.Kid)
	seeds["A07-jwk"] = attacker.Mint(t, good, map[string]any{"jwk": json.RawMessage(jwtauthtest.MustJSON(t, attacker.Pub))})
	seeds["A08-jku"] = attacker.Mint(t, good, map[string]any{"jku": "http://169.254.169.254/"})
	seeds["A09-kid-traversal"] = es.Mint(t, good, map[string]any{"kid": "../../../../dev/null"})
	seeds["A09-kid-crlf"] = es.Mint(t, good, map[string]any{"kid": "a\r\nb"})
	seeds["A09-kid-int"] = raw(es, `{"alg":"ES256","kid":1}`, []byte(payload))
	seeds["A10-unknown-kid"] = rs.Mint(t, good, map[string]any{"kid": "nonexistent"})
	seeds["A10-other-kid"] = rs.Mint(t, good, map[string]any{"kid": "fuzz-PS256"})
	seeds["A11-no-kid"] = ed.Mint(t, good, map[string]any{"kid": nil})
	esTok := es.Mint(t, good, nil)
	sig, _ := base64.RawURLEncoding.DecodeString(strings.Split(esTok, ".")[2])
	n := ecdsaN(es)
	rr, ss := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	der, _ := asn1.Marshal(struct{ R, S *big.Int }{rr, ss})
	seeds["A12-psychic"] = withSig(esTok, make([]byte, 64))
	seeds["A12-r-s-n"] = withSig(esTok, append(n.FillBytes(make([]byte, 32)), n.FillBytes(make([]byte, 32))...))
	seeds["A12-der"] = withSig(esTok, der)
	seeds["A12-63-bytes"] = withSig(esTok, sig[:63])
	seeds["A13-malleated"] = withSig(esTok, append(append([]byte{}, sig[:32]...), new(big.Int).Sub(n, ss).FillBytes(make([]byte, 32))...))
	seeds["A14-expired"] = rs.Mint(t, claims(map[string]any{"exp": fuzzNow.Unix() - 3600}), nil)
	seeds["A14-nbf-future"] = rs.Mint(t, claims(map[string]any{"nbf": fuzzNow.Unix() + 3600}), nil)
	seeds["A15-no-exp"] = rs.Mint(t, claims(map[string]any{"exp": nil}), nil)
	for i, v := range []string{`"2001001001"`, `-1`, `9223372036854775807`, `2.001e206`, `null`} {
		seeds[fmt.Sprintf("A16-exp-%d", i)] = raw(rs, rsHdr, withExtra("exp", `"exp":`+v))
	}
	seeds["A17-iss-slash"] = rs.Mint(t, claims(map[string]any{"iss": jwtauthtest.Issuer + "/"}), nil)
	seeds["A18-aud-array"] = rs.Mint(t, claims(map[string]any{"aud": []string{"x", jwtauthtest.Audience}}), nil)
	seeds["A20-crit"] = rs.Mint(t, good, map[string]any{"crit": []string{"exp"}})
	seeds["A21-dup-alg"] = raw(rs, `{"alg":"none","alg":"RS256","kid":"fuzz-RS256"}`, []byte(payload))
	seeds["A21-dup-sub"] = raw(rs, rsHdr, withExtra("", `"sub":"admin"`))
	seeds["A22-padding"] = tok + "="
	seeds["A22-std-base64"] = h + "." + p + "." + strings.NewReplacer("-", "+", "_", "/").Replace(s)
	seeds["A22-non-canonical"] = h + "." + p + "." + s[:len(s)-1] + "B"
	seeds["A22-non-utf8"] = raw(rs, rsHdr, withExtra("sub", "\"sub\":\"a\xffb\""))
	seeds["A23-flattened"] = fmt.Sprintf(`{"protected":%q,"payload":%q,"signature":%q}`, h, p, s)
	seeds["A24-jwe"] = jwtauthtest.B64([]byte(`{"alg":"PBES2-HS256+A128KW","enc":"A128GCM","p2c":2147483647}`)) + ".AAAA.AAAA.AAAA.AAAA"
	seeds["A25-dots"] = strings.Repeat(".", 4096)
	seeds["B16-wrong-iss-unknown-kid"] = rs.Mint(t, claims(map[string]any{"iss": "https://other"}), map[string]any{"kid": "unknown"})
	for _, name := range []string{"iss", "sub", "jti"} {
		seeds["C08-"+name+"-int"] = raw(rs, rsHdr, withExtra(name, `"`+name+`":1`))
	}
	seeds["C08-aud-int-list"] = raw(rs, rsHdr, withExtra("aud", `"aud":[1,2]`))
	for _, v := range loadEnvoyVectors(t).Tokens {
		seeds["C-envoy-"+v.Name] = v.Token
	}
	return seeds
}

func ecdsaN(k jwtauthtest.Key) *big.Int { return k.Priv.(*ecdsa.PrivateKey).Curve.Params().N }

// keySetSeeds are the catalogue's key set documents (parts B and C), the
// Envoy key sets and the fuzz keys' set.
func keySetSeeds(t *testing.T) map[string]string {
	keys := fuzzKeys(t)
	vec := loadEnvoyVectors(t)
	one := string(jwtauthtest.MustJSON(t, keys[0].Pub))
	es := ""
	for _, k := range keys {
		if k.Alg == jwa.ES256() {
			es = string(jwtauthtest.MustJSON(t, k.Pub))
		}
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	der, _ := x509.MarshalPKIXPublicKey(small.Public())
	var rsaPub any
	_ = jwk.Export(keys[0].Pub, &rsaPub)
	der2048, _ := x509.MarshalPKIXPublicKey(rsaPub)
	seeds := map[string]string{
		"fuzz-keys":          string(jwtauthtest.JWKS(t, keys...)),
		"C-envoy-rsa":        string(vec.JWKSRSA),
		"C-envoy-es256":      string(vec.JWKSES256),
		"single-jwk":         one,
		"pem-2048":           string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der2048})),
		"B02-empty":          `{"keys":[]}`,
		"B10-html":           "<html>hi</html>",
		"B10-truncated":      one[:20],
		"B10-trailing-comma": `{"keys":[` + one + `,]}`,
		"B10-keys-object":    `{"keys":{}}`,
		"B10-rsa-no-n":       `{"keys":[{"kty":"RSA","e":"AQAB"}]}`,
		"B10-bad-base64":     `{"keys":[{"kty":"RSA","n":"!!!","e":"AQAB"}]}`,
		"B10-off-curve":      `{"keys":[{"kty":"EC","crv":"P-256","x":"AQ","y":"AQ"}]}`,
		"B11-unsupported":    `{"keys":[{"kty":"ML-DSA","kid":"pq"},{"kty":"oct","k":"c2VjcmV0"},` + es + `]}`,
		"B12-rsa-1024":       fmt.Sprintf(`{"keys":[{"kty":"RSA","kid":"small","alg":"RS256","n":%q,"e":"AQAB"}]}`, jwtauthtest.B64(small.N.Bytes())),
		"B12-pem-1024":       string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
		"B12-use-enc":        strings.Replace(one, `"kty"`, `"use":"enc","kty"`, 1),
		"B12-key-ops-sign":   strings.Replace(one, `"kty"`, `"key_ops":["sign"],"kty"`, 1),
		"B12-key-ops-verify": strings.Replace(one, `"kty"`, `"key_ops":["verify"],"kty"`, 1),
		"B12-alg-hs256":      strings.Replace(one, `"RS256"`, `"HS256"`, 1),
		"B12-duplicate-kid":  `{"keys":[` + es + `,` + es + `]}`,
		"C09-rsa-missing-n":  `{"keys":[{"kty":"RSA","alg":"RS256","kid":"x","e":"AQAB"},` + es + `]}`,
		"C09-keys-string":    `{"keys":"x"}`,
	}
	return seeds
}
