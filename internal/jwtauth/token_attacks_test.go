package jwtauth

// Attacks on the token itself: algorithm and key choice, forged
// signatures, claim checks and encodings (catalogue part A, see
// docs/threat-model.md), each row a subtest on the row machinery of
// helpers_test.go. The rows whose outcome is HTTP (status,
// WWW-Authenticate, no store call) are in caddymodule/refusal_answers_test.go.

import (
	"context"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// TestTokenAlgorithmPinning: a token is checked with the algorithm its key
// was published for and the allow-list holds, never one the token picks:
// no unsigned token, no HMAC keyed with a public key, no header alg that
// differs from the key's (catalogue rows A01-A06, docs/threat-model.md).
func TestTokenAlgorithmPinning(t *testing.T) {
	k := newThreatKeys(t)
	std := envOpts{keys: k.all()}
	rsaPub := func() *rsa.PublicKey {
		var raw any
		if err := jwk.Export(k.rs.Pub, &raw); err != nil {
			t.Fatal(err)
		}
		return raw.(*rsa.PublicKey)
	}()
	rows := []threatRow{
		{"A01_baseline_accepted", 0, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, std)
			for _, key := range k.all() {
				c := e.expect(t, key.Mint(t, jwtauthtest.ClaimsAt(e.clock, "alice", time.Hour), nil), "ok")
				if sub, _ := c.Str("sub"); sub != "alice" {
					t.Fatalf("%s: sub %q", key.Alg, sub)
				}
			}
		}},
		{"A02_alg_none", 0, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, std)
			good := k.rs.Mint(t, jwtauthtest.ClaimsAt(e.clock, "alice", time.Hour), nil)
			_, p, s := parts(good)
			for _, alg := range []string{"none", "None", "NONE", "nOnE"} {
				h := jwtauthtest.B64([]byte(`{"alg":"` + alg + `","typ":"JWT"}`))
				e.expect(t, h+"."+p+".", CodeInvalidToken)
				e.expect(t, h+"."+p+"."+s, CodeInvalidToken) // keeping the original signature
			}
		}},
		{"A03_signature_missing", 0, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, std)
			h, p, _ := parts(k.rs.Mint(t, jwtauthtest.ClaimsAt(e.clock, "alice", time.Hour), nil))
			e.expect(t, h+"."+p+".", CodeInvalidToken)
			e.expect(t, h+"."+p, CodeInvalidToken)
		}},
		{"A04_hmac_keyed_with_public_key", 0, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, std)
			spki, _ := x509.MarshalPKIXPublicKey(rsaPub)
			pkcs1 := x509.MarshalPKCS1PublicKey(rsaPub)
			hdr := []byte(`{"alg":"HS256","kid":"rs","typ":"JWT"}`)
			payload := jwtauthtest.MustJSON(t, jwtauthtest.ClaimsAt(e.clock, "alice", time.Hour))
			for _, secret := range [][]byte{
				pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}),
				pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: pkcs1}),
				spki, pkcs1, jwtauthtest.MustJSON(t, k.rs.Pub),
			} {
				e.expect(t, hs256(secret, hdr, payload), CodeInvalidToken)
			}
			e.expect(t, jwtauthtest.HS256WithPublicKey(t, k.rs.Pub, jwtauthtest.ClaimsAt(e.clock, "alice", time.Hour)), CodeInvalidToken)
		}},
		// the header names another algorithm than the one whose signature
		// is valid: the key's alg does not match, so no key is a
		// candidate. A token with valid claims and no candidate key may
		// make the one throttled unknown-kid fetch (B04), never more.
		{"A05_header_alg_differs_from_key", 1, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, std)
			e.clock.Advance(defaultMinRefresh) // the throttle allows one fetch
			good := k.rs.Mint(t, jwtauthtest.ClaimsAt(e.clock, "alice", time.Hour), nil)
			e.expect(t, withHeader(good, `{"alg":"HS256","kid":"rs"}`), CodeInvalidToken)
			e.expect(t, withHeader(good, `{"alg":"PS256","kid":"rs"}`), CodeInvalidToken)
			// a valid PS256 signature by the key published as RS256
			ps := jwtauthtest.Key{Alg: jwa.PS256(), Kid: "rs", Priv: k.rs.Priv}
			e.expect(t, ps.Mint(t, jwtauthtest.ClaimsAt(e.clock, "alice", time.Hour), nil), CodeInvalidToken)
		}},
		{"A06_alg_outside_allow_list", 0, func(t *testing.T, r *rowEnvs) {
			// a key published without alg: only the allow-list stands
			noAlg := k.rs.Pub
			clone, _ := noAlg.Clone()
			_ = clone.Remove(jwk.AlgorithmKey)
			doc := fmt.Appendf(nil, `{"keys":[%s]}`, jwtauthtest.MustJSON(t, clone))
			e := r.env(t, envOpts{doc: doc, cfg: func(c *Config) { c.Algorithms = []string{"RS256"} }})
			rs512 := jwtauthtest.Key{Alg: jwa.RS512(), Kid: "rs", Priv: k.rs.Priv}
			e.expect(t, rs512.Mint(t, jwtauthtest.ClaimsAt(e.clock, "alice", time.Hour), nil), CodeInvalidToken)
			e.expect(t, hs256([]byte("k"), []byte(`{"alg":"HS256","kid":"rs"}`), jwtauthtest.MustJSON(t, jwtauthtest.ClaimsAt(e.clock, "alice", time.Hour))), CodeInvalidToken)
			e.expect(t, k.rs.Mint(t, jwtauthtest.ClaimsAt(e.clock, "alice", time.Hour), nil), "ok")
			if _, err := New(Config{Sources: []Source{e.src}, Issuers: []string{"i"}, Audiences: []string{"a"}, Algorithms: []string{"HS256"}}); err == nil {
				t.Fatal("HS256 accepted in the allow-list")
			}
		}},
	}
	runRows(t, rows)
}

// TestTokenKeyChoice: the key comes from the configured key sets only,
// named by an exact kid: keys and key URLs in the header are ignored and
// never fetched, odd kids are plain map keys, an unknown kid has no
// fallback (rows A07-A11).
func TestTokenKeyChoice(t *testing.T) {
	k := newThreatKeys(t)
	std := envOpts{keys: k.all()}
	rows := []threatRow{
		{"A07_key_embedded_in_header", 0, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, std)
			attacker := jwtauthtest.NewKey(t, jwa.ES256(), "es") // same kid as a trusted key
			jwkJSON := json.RawMessage(jwtauthtest.MustJSON(t, attacker.Pub))
			claims := jwtauthtest.ClaimsAt(e.clock, "alice", time.Hour)
			e.expect(t, attacker.Mint(t, claims, map[string]any{"jwk": jwkJSON}), CodeInvalidToken)
			e.expect(t, attacker.Mint(t, claims, map[string]any{"jwk": jwkJSON, "kid": nil}), CodeInvalidToken)
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, attacker.Priv.Public(), attacker.Priv)
			if err != nil {
				t.Fatal(err)
			}
			e.expect(t, attacker.Mint(t, claims, map[string]any{"x5c": []string{base64.StdEncoding.EncodeToString(der)}}), CodeInvalidToken)
		}},
		{"A08_key_url_in_header_never_fetched", 0, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, std)
			evil := jwtauthtest.NewJWKSServer(t, jwtauthtest.JWKS(t, k.rs))
			attacker := jwtauthtest.NewKey(t, jwa.ES256(), "es")
			claims := jwtauthtest.ClaimsAt(e.clock, "alice", time.Hour)
			for _, member := range []string{"jku", "x5u"} {
				for _, u := range []string{evil.URL + "/jwks", "http://169.254.169.254/latest/meta-data/"} {
					e.expect(t, attacker.Mint(t, claims, map[string]any{member: u}), CodeInvalidToken)
				}
			}
			if n := evil.Fetches.Load(); n != 0 {
				t.Fatalf("%d requests to the URL a token named", n)
			}
		}},
		{"A09_kid_injection", 0, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, std)
			claims := jwtauthtest.ClaimsAt(e.clock, "alice", time.Hour)
			payload := jwtauthtest.MustJSON(t, claims)
			e.expect(t, hs256(nil, []byte(`{"alg":"HS256","kid":"../../../../dev/null"}`), payload), CodeInvalidToken)
			// expired, so that the unknown kids cannot make a fetch either
			old := jwtauthtest.ClaimsAt(e.clock, "alice", -time.Hour)
			for _, kid := range []string{"x' UNION SELECT 'x'--", "a\r\nX-Injected: 1", strings.Repeat("k", 64<<10)} {
				e.expect(t, k.es.Mint(t, old, map[string]any{"kid": kid}), CodeInvalidToken)
			}
			for _, hdr := range []string{`{"alg":"ES256","kid":1}`, `{"alg":256,"kid":"es"}`, `{"alg":"ES256","kid":null}`, `{"alg":["ES256"]}`} {
				e.expect(t, k.es.SignRaw(t, []byte(hdr), payload), CodeInvalidToken)
			}
		}},
		// the unknown kid with valid claims makes the one throttled fetch
		{"A10_unknown_or_other_kid", 1, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, std)
			e.clock.Advance(defaultMinRefresh) // the throttle allows one fetch
			claims := jwtauthtest.ClaimsAt(e.clock, "alice", time.Hour)
			e.expect(t, k.rs.Mint(t, claims, map[string]any{"kid": "nonexistent"}), CodeInvalidToken)
			e.expect(t, k.rs.Mint(t, claims, map[string]any{"kid": "rs2"}), CodeInvalidToken) // names another key
			e.expect(t, k.es.Mint(t, claims, map[string]any{"kid": "nonexistent-2"}), CodeInvalidToken)
		}},
		// the Envoy policy: a token without kid is tried against every key
		// of its alg (at most maxCandidateKeys)
		{"A11_no_kid_tries_keys_of_its_alg", 0, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, std)
			claims := jwtauthtest.ClaimsAt(e.clock, "alice", time.Hour)
			e.expect(t, k.rs2.Mint(t, claims, map[string]any{"kid": nil}), "ok")
			e.expect(t, k.ed.Mint(t, claims, map[string]any{"kid": nil}), "ok")
			other := jwtauthtest.NewKey(t, jwa.RS256(), "x")
			e.expect(t, other.Mint(t, claims, map[string]any{"kid": nil}), CodeInvalidToken)
		}},
	}
	runRows(t, rows)
}

// TestTokenSignatureForgeries: forged ECDSA signatures are refused, and a
// malleated valid one, which ECDSA accepts, gets a cache entry of its own
// (rows A12, A13).
func TestTokenSignatureForgeries(t *testing.T) {
	k := newThreatKeys(t)
	std := envOpts{keys: k.all()}
	rows := []threatRow{
		{"A12_ecdsa_forgeries", 0, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, std)
			good := k.es.Mint(t, jwtauthtest.ClaimsAt(e.clock, "alice", time.Hour), nil)
			sig := sigBytes(t, good)
			n := elliptic.P256().Params().N
			nb := n.FillBytes(make([]byte, 32))
			rr, ss := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
			der, _ := asn1.Marshal(struct{ R, S *big.Int }{rr, ss})
			rPlusN := new(big.Int).Add(rr, n).FillBytes(make([]byte, 33))
			for name, forged := range map[string][]byte{
				"psychic r=s=0": make([]byte, 64),
				"r=s=n":         append(append([]byte{}, nb...), nb...),
				"r+n, 65 bytes": append(rPlusN, sig[32:]...),
				"ASN.1 DER":     der,
				"63 bytes":      sig[:63],
				"65 bytes":      append(append([]byte{}, sig...), 0),
			} {
				t.Run(name, func(t *testing.T) { e.expect(t, withSig(good, forged), CodeInvalidToken) })
			}
			e.expect(t, good, "ok")
		}},
		{"A13_ecdsa_malleated_signature", 0, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, envOpts{keys: k.all(), cfg: func(c *Config) { c.CacheSize = 16 }})
			good := k.es.Mint(t, jwtauthtest.ClaimsAt(e.clock, "alice", time.Hour), nil)
			sig := sigBytes(t, good)
			n := elliptic.P256().Params().N
			s2 := new(big.Int).Sub(n, new(big.Int).SetBytes(sig[32:])).FillBytes(make([]byte, 32))
			mall := withSig(good, append(append([]byte{}, sig[:32]...), s2...))
			if mall == good {
				t.Fatal("malleation left the token unchanged")
			}
			// a malleated signature that a forged variant of it would
			// poison: same header and payload, junk signature
			h, p, _ := parts(good)
			junk := h + "." + p + "." + jwtauthtest.B64(make([]byte, 64))
			e.expect(t, junk, CodeInvalidToken) // before anything is cached
			c1 := e.expect(t, good, "ok")
			c2 := e.expect(t, mall, "ok") // standard ECDSA accepts (r, n-s)
			if s1, _ := c1.Str("sub"); s1 != "alice" {
				t.Fatal(s1)
			}
			if s2, _ := c2.Str("sub"); s2 != "alice" {
				t.Fatal(s2)
			}
			if got := e.v.cache.lru.Len(); got != 2 {
				t.Fatalf("%d cache entries for two spellings, want 2 (one each, none shared)", got)
			}
			e.expect(t, junk, CodeInvalidToken) // a cached header.payload never lends its entry
			if got := e.v.cache.lru.Len(); got != 2 {
				t.Fatalf("a refused token entered the cache: %d entries", got)
			}
			e.expect(t, mall, "ok")
		}},
	}
	runRows(t, rows)
}

// TestTokenClaimChecks: time claims with the leeway, a required exp and an
// optional maximum lifetime, NumericDate types, exact issuer and audience,
// token type and client (rows A14-A19).
func TestTokenClaimChecks(t *testing.T) {
	k := newThreatKeys(t)
	std := envOpts{keys: k.all()}
	rows := []threatRow{
		{"A14_time_claims_with_leeway", 0, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, std) // the contract's leeway: 30s by default
			now := e.clock.Now().Unix()
			mint := func(set map[string]any) string { return k.rs.Mint(t, claimsWith(e.clock, set), nil) }
			e.expect(t, mint(map[string]any{"exp": now - 3600}), CodeTokenExpired)
			e.expect(t, mint(map[string]any{"exp": now - 20}), "ok")
			e.expect(t, mint(map[string]any{"exp": now - 45}), CodeTokenExpired)
			e.expect(t, mint(map[string]any{"nbf": now + 3600}), CodeTokenNotYetValid)
			e.expect(t, mint(map[string]any{"nbf": now + 20}), "ok")
			e.expect(t, mint(map[string]any{"iat": now + 3600}), CodeTokenNotYetValid)
		}},
		// exp absent is refused; no maximum lifetime is in the contract
		// (a year-long token is accepted), see docs/threat-model.md
		{"A15_exp_required_and_max_lifetime", 0, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, std)
			e.expect(t, k.rs.Mint(t, claimsWith(e.clock, map[string]any{"exp": nil}), nil), CodeInvalidToken)
			// a maximum lifetime is an option (max_token_lifetime): with
			// 24h, exp 25h ahead is refused, 24h ahead (and within the
			// leeway of it) accepted; without it, a ten-year token passes
			day := r.env(t, envOpts{keys: k.all(), cfg: func(c *Config) { c.MaxLifetime = 24 * time.Hour }})
			now := day.clock.Now()
			for _, c := range []struct {
				exp  time.Time
				want string
			}{
				{now.Add(25 * time.Hour), CodeInvalidToken}, {now.Add(24*time.Hour + time.Minute), CodeInvalidToken},
				{now.Add(24*time.Hour + 20*time.Second), "ok"}, {now.Add(time.Hour), "ok"},
			} {
				day.expect(t, k.rs.Mint(t, claimsWith(day.clock, map[string]any{"exp": c.exp.Unix()}), nil), c.want)
			}
			e.expect(t, k.rs.Mint(t, claimsWith(e.clock, map[string]any{"exp": now.Add(10 * 365 * 24 * time.Hour).Unix()}), nil), "ok")
		}},
		{"A16_numericdate_abuse", 0, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, std)
			for _, name := range []string{"exp", "nbf", "iat"} {
				for _, v := range []string{`"2001001001"`, `-1`, `9223372036854775807`, `2.001e206`, `null`, `true`, `[1]`} {
					e.expect(t, k.rs.SignRaw(t, []byte(`{"alg":"RS256","kid":"rs"}`), rawPayload(e.clock, []string{name}, `"`+name+`":`+v)), CodeInvalidToken)
				}
			}
		}},
		{"A17_issuer_exact", 0, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, std)
			for _, iss := range []any{"https://evil.example", nil, jwtauthtest.Issuer + "/", strings.ToUpper(jwtauthtest.Issuer), 1, []string{jwtauthtest.Issuer}} {
				e.expect(t, k.rs.Mint(t, claimsWith(e.clock, map[string]any{"iss": iss}), nil), CodeInvalidIssuer)
			}
		}},
		{"A18_audience", 0, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, std)
			for _, aud := range []any{"other", nil, []string{"other"}, 1, []int{1}} {
				e.expect(t, k.rs.Mint(t, claimsWith(e.clock, map[string]any{"aud": aud}), nil), CodeInvalidAudience)
			}
			e.expect(t, k.rs.Mint(t, claimsWith(e.clock, map[string]any{"aud": []string{"other", jwtauthtest.Audience}}), nil), "ok")
		}},
		// token-type confusion: an OpenID ID token issued to a client
		// named like the API (aud = azp = the audience, typ JWT) passes
		// the permissive default, and is refused once token_type at+jwt
		// is set; a token of another client is refused once clients is
		// set. Refused tokens naming an unknown kid make no fetch, though
		// the clock would allow one.
		{"A19_token_type_and_client", 0, func(t *testing.T, r *rowEnvs) {
			idToken := func(e *threatEnv, hdr map[string]any) string {
				return k.rs.Mint(t, claimsWith(e.clock, map[string]any{"aud": jwtauthtest.Audience, "azp": jwtauthtest.Audience,
					"nonce": "n-1", "auth_time": e.clock.Now().Unix()}), hdr)
			}
			access := func(e *threatEnv, client string, hdr map[string]any) string {
				return k.rs.Mint(t, claimsWith(e.clock, map[string]any{"client_id": client, "scope": "profile"}), hdr)
			}
			open := r.env(t, std)
			open.expect(t, idToken(open, nil), "ok")

			typed := r.env(t, envOpts{keys: k.all(), cfg: func(c *Config) { c.TokenTypes = []string{"at+jwt"} }})
			typed.clock.Advance(time.Minute)
			typed.expect(t, idToken(typed, nil), CodeInvalidToken)
			typed.expect(t, idToken(typed, map[string]any{"typ": nil}), CodeInvalidToken)
			typed.expect(t, idToken(typed, map[string]any{"kid": "unknown"}), CodeInvalidToken)
			for _, typ := range []string{"at+jwt", "application/at+jwt", "AT+JWT", "Application/At+Jwt"} {
				typed.expect(t, access(typed, "web", map[string]any{"typ": typ}), "ok")
			}
			for _, typ := range []any{"at+jwt ", "application/at+jwt/x", "text/at+jwt", "at+jwt; x=1", 1, []string{"at+jwt"}, nil} {
				tok := access(typed, "web", map[string]any{"typ": typ})
				if typ == nil {
					tok = k.rs.SignRaw(t, []byte(`{"alg":"RS256","kid":"rs","typ":null}`),
						jwtauthtest.MustJSON(t, claimsWith(typed.clock, map[string]any{"client_id": "web"})))
				}
				typed.expect(t, tok, CodeInvalidToken)
			}

			clients := r.env(t, envOpts{keys: k.all(), cfg: func(c *Config) { c.Clients = []string{"web", "mobile"} }})
			clients.clock.Advance(time.Minute)
			clients.expect(t, access(clients, "web", nil), "ok")
			clients.expect(t, k.rs.Mint(t, claimsWith(clients.clock, map[string]any{"azp": "mobile"}), nil), "ok")
			clients.expect(t, k.rs.Mint(t, claimsWith(clients.clock, map[string]any{"client_id": "web", "azp": "web"}), nil), "ok")
			for name, set := range map[string]map[string]any{
				"another client":           {"client_id": "batch"},
				"another client, azp":      {"azp": "batch"},
				"case differs":             {"client_id": "Web"},
				"client_id and azp differ": {"client_id": "web", "azp": "batch"},
				"neither":                  {},
				"client_id not a string":   {"client_id": []string{"web"}},
				"azp not a string":         {"azp": 1},
			} {
				if _, aerr := clients.v.Verify(context.Background(), k.rs.Mint(t, claimsWith(clients.clock, set), nil)); code(aerr) != CodeInvalidToken {
					t.Errorf("%s: %s, want InvalidToken", name, code(aerr))
				}
			}
			clients.expect(t, access(clients, "batch", map[string]any{"kid": "unknown"}), CodeInvalidToken)
			clients.expect(t, idToken(clients, nil), CodeInvalidToken) // azp is the API itself
		}},
	}
	runRows(t, rows)
}

// TestTokenEncodingStrictness: crit, duplicate members, non-canonical
// base64url, non-compact serialisations, JWE and oversized tokens are all
// refused, fast and with bounded allocation (rows A20-A25).
func TestTokenEncodingStrictness(t *testing.T) {
	k := newThreatKeys(t)
	std := envOpts{keys: k.all()}
	rows := []threatRow{
		{"A20_crit_refused", 0, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, std)
			claims := jwtauthtest.ClaimsAt(e.clock, "alice", time.Hour)
			for _, crit := range []any{[]string{"x-unknown"}, []string{}, []string{"alg"}, []string{"exp"}} {
				e.expect(t, k.rs.Mint(t, claims, map[string]any{"crit": crit, "x-unknown": 1}), CodeInvalidToken)
			}
		}},
		{"A21_duplicate_members", 0, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, std)
			payload := jwtauthtest.MustJSON(t, jwtauthtest.ClaimsAt(e.clock, "alice", time.Hour))
			for _, hdr := range []string{
				`{"alg":"none","alg":"RS256","kid":"rs"}`,
				`{"alg":"RS256","kid":"x","kid":"rs"}`,
				`{"alg":"RS256","kid":"rs","typ":"JWT","typ":"at+jwt"}`,
				`{"ALG":"RS256","kid":"rs"}`,           // no exact alg: encoding/json would fold it
				`{"alg":"RS256","Kid":"x","kid":"rs"}`, // only the exact kid names the key
				`{"alg":"RS256","kid":"rs","al\u0067":"RS256"}`,
			} {
				tok := k.rs.SignRaw(t, []byte(hdr), payload)
				if strings.Contains(hdr, `"Kid"`) {
					e.expect(t, tok, "ok") // Kid is another member, not a duplicate
					continue
				}
				e.expect(t, tok, CodeInvalidToken)
			}
			hdr := []byte(`{"alg":"RS256","kid":"rs"}`)
			e.expect(t, k.rs.SignRaw(t, hdr, rawPayload(e.clock, nil, `"sub":"admin"`)), CodeInvalidToken)
			now := e.clock.Now().Unix()
			e.expect(t, k.rs.SignRaw(t, hdr, rawPayload(e.clock, []string{"exp"}, fmt.Sprintf(`"exp":%d,"exp":%d`, now-3600, now+3600))), CodeInvalidToken)
		}},
		{"A22_non_canonical_encoding", 0, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, std)
			good := k.rs.Mint(t, jwtauthtest.ClaimsAt(e.clock, "alice", time.Hour), nil)
			h, p, s := parts(good)
			std64 := base64.StdEncoding.EncodeToString(sigBytes(t, good))
			for _, tok := range []string{
				h + "=." + p + "." + s, good + "=", h + "." + p + "." + std64,
				h + "." + p + " ." + s, good + "\n", " " + good, h + ".\t" + p + "." + s,
			} {
				e.expect(t, tok, CodeInvalidToken)
			}
			// every non-canonical spelling of the signature: the unused
			// low bits of its last character set
			if len(s)%4 == 0 {
				t.Fatal("a signature length without unused bits")
			}
			const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
			last := strings.IndexByte(alphabet, s[len(s)-1])
			mask := 0x0f
			if len(s)%4 == 3 {
				mask = 0x03
			}
			for x := 1; x <= mask; x++ {
				e.expect(t, h+"."+p+"."+s[:len(s)-1]+string(alphabet[last|x]), CodeInvalidToken)
			}
			// non-UTF-8 in a claim, signed
			e.expect(t, k.rs.SignRaw(t, []byte(`{"alg":"RS256","kid":"rs"}`), rawPayload(e.clock, []string{"sub"}, "\"sub\":\"al\xffice\"")), CodeInvalidToken)
			e.expect(t, good, "ok")
		}},
		{"A23_non_compact_serialisation", 0, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, std)
			good := k.rs.Mint(t, jwtauthtest.ClaimsAt(e.clock, "alice", time.Hour), nil)
			h, p, s := parts(good)
			e.expect(t, fmt.Sprintf(`{"protected":%q,"payload":%q,"signature":%q}`, h, p, s), CodeInvalidToken)
			e.expect(t, fmt.Sprintf(`{"payload":%q,"signatures":[{"protected":%q,"signature":%q}]}`, p, h, s), CodeInvalidToken)
			e.expect(t, string(jwtauthtest.MustJSON(t, jwtauthtest.ClaimsAt(e.clock, "alice", time.Hour))), CodeInvalidToken)
			e.expect(t, jwtauthtest.B64(jwtauthtest.MustJSON(t, jwtauthtest.ClaimsAt(e.clock, "alice", time.Hour))), CodeInvalidToken)
		}},
		{"A24_jwe_refused_fast", 0, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, std)
			for _, hdr := range []string{
				`{"alg":"PBES2-HS256+A128KW","enc":"A128GCM","p2c":2147483647,"p2s":"AAAAAAAAAAAAAAAAAAAAAA"}`,
				`{"alg":"RSA-OAEP","enc":"A256GCM","zip":"DEF","kid":"rs"}`,
			} {
				tok := jwtauthtest.B64([]byte(hdr)) + ".AAAA.AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA"
				start := time.Now()
				e.expect(t, tok, CodeInvalidToken)
				if d := time.Since(start); d > 50*time.Millisecond {
					t.Fatalf("a JWE took %v to refuse", d)
				}
			}
		}},
		{"A25_size_abuse", 0, func(t *testing.T, r *rowEnvs) {
			e := r.env(t, std)
			over := k.rs.Mint(t, claimsWith(e.clock, map[string]any{"pad": strings.Repeat("x", MaxTokenLen)}), nil)
			deep := k.rs.SignRaw(t, []byte(`{"alg":"RS256","kid":"rs"}`), rawPayload(e.clock, nil, `"x":`+strings.Repeat("[", 100000)+strings.Repeat("]", 100000)))
			garbage := strings.Repeat("QUFB", 1<<18)
			for name, tok := range map[string]string{
				"over 8 KiB": over, "1 MiB of dots": strings.Repeat(".", 1<<20), "1 MiB base64": garbage,
				"1 MiB base64 in three parts": garbage + "." + garbage + "." + garbage,
				"8 MiB header":                strings.Repeat("A", 8<<20) + ".e30.AAAA", "100000-deep claim": deep,
			} {
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				before := ms.TotalAlloc
				start := time.Now()
				e.expect(t, tok, CodeInvalidToken)
				runtime.ReadMemStats(&ms)
				if alloc := ms.TotalAlloc - before; alloc > 64<<10 {
					t.Errorf("%s: %d bytes allocated to refuse it", name, alloc)
				}
				if d := time.Since(start); d > 50*time.Millisecond {
					t.Errorf("%s: %v to refuse", name, d)
				}
			}
		}},
	}
	runRows(t, rows)
}
