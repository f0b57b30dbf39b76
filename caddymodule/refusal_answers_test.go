package caddymodule

// The HTTP side of the token and key set rows of the catalogue (parts A
// to C, docs/threat-model.md): the rows whose outcome is a status, a
// WWW-Authenticate challenge, a problem body or the absence of a store
// call. The token rules themselves are proven row by row in
// internal/jwtauth (token_attacks_test.go, keyset_faults_test.go,
// envoy_vectors_test.go); here a sample of each refused kind goes through
// the handler, counting store calls, and the rows that need the whole
// server go through a real Caddy.

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// The exact challenges the route answers with.
const (
	// both schemes: dpop is allowed by default (RFC 9449 §7.2)
	challengeMissing = `Bearer realm="workspace", DPoP realm="workspace", algs="RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA Ed25519"`
	challengeRequest = `Bearer realm="workspace", error="invalid_request"`
)

// invalidTokenChallenge is the whole challenge of a refused token: realm,
// error and one description, nothing else (no URI, no scope).
var invalidTokenChallenge = regexp.MustCompile(`^Bearer realm="workspace", error="invalid_token", error_description="[^"\\]+"$`)

// refusalHandler is a handler on the memory store with an RS256 and an
// ES256 key, creating missing profiles, whose store calls are counted.
type refusalHandler struct {
	t     *testing.T
	k, es jwtauthtest.Key
	h     *Handler
	store *countingStore
}

func newRefusalHandler(t *testing.T) *refusalHandler {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "rs")
	es := jwtauthtest.NewKey(t, jwa.ES256(), "es")
	h, store := newFileHandler(t, jwtauthtest.JWKS(t, k, es), func(h *Handler) { h.CreateMissing = true })
	return &refusalHandler{t: t, k: k, es: es, h: h, store: store}
}

// good is a fresh valid token of alice.
func (f *refusalHandler) good() string { return f.k.Mint(f.t, jwtauthtest.Claims("alice"), nil) }

// refused: status, exact code, exact challenge form, no store call,
// and a body that holds neither the token nor its claim values
func (f *refusalHandler) refused(t *testing.T, rec *httptest.ResponseRecorder, before int64, status int, code, challenge string, secrets ...string) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d: %s", rec.Code, status, rec.Body)
	}
	if p := decodeProblem(t, rec); p.Code != code {
		t.Fatalf("code %q, want %q", p.Code, code)
	}
	got := rec.Header().Values("WWW-Authenticate")
	switch {
	case challenge == "invalid_token":
		if len(got) != 1 || !invalidTokenChallenge.MatchString(got[0]) {
			t.Fatalf("WWW-Authenticate %q, want one invalid_token challenge", got)
		}
	case challenge == "":
		if len(got) != 0 {
			t.Fatalf("WWW-Authenticate %q, want none", got)
		}
	default:
		if len(got) != 1 || got[0] != challenge {
			t.Fatalf("WWW-Authenticate %q, want exactly %q", got, challenge)
		}
	}
	if n := f.store.calls.Load() - before; n != 0 {
		t.Fatalf("%d store calls for a refused request", n)
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		for _, where := range append([]string{rec.Body.String()}, got...) {
			if strings.Contains(where, s) {
				t.Fatalf("the answer holds %q", s)
			}
		}
	}
}

// get is a GET of the route with hdr, and the store calls before it.
func (f *refusalHandler) get(hdr map[string]string) (*httptest.ResponseRecorder, int64) {
	before := f.store.calls.Load()
	return serve(f.t, f.h, "GET", profilePath, hdr, ""), before
}

// TestRefusedTokenAnswers: through the handler, an accepted token reaches
// the store; every refused kind of token is a 401 with its exact code, one
// invalid_token challenge and no store call, and neither the answer nor
// the challenge holds the token, its claims, its kid, the library's words
// or anything of the request URI (catalogue rows A01-A25, A29, C11, see
// docs/threat-model.md).
func TestRefusedTokenAnswers(t *testing.T) {
	f := newRefusalHandler(t)
	k, es, h, store, good, refused, get := f.k, f.es, f.h, f.store, f.good, f.refused, f.get

	t.Run("A01_accepted_token_reaches_store", func(t *testing.T) {
		before := store.calls.Load()
		if rec := serve(t, h, "GET", profilePath, bearer(good()), ""); rec.Code != 200 {
			t.Fatalf("GET %d %s", rec.Code, rec.Body)
		}
		if rec := serve(t, h, "PUT", profilePath, map[string]string{"Authorization": "Bearer " + good(), "Content-Type": "application/json"},
			`{"Email":"alice@example.com"}`); rec.Code != 200 {
			t.Fatalf("PUT %d %s", rec.Code, rec.Body)
		}
		if store.calls.Load() == before {
			t.Fatal("an accepted request did not reach the store")
		}
	})

	// a sample of every refused kind of part A: 401 InvalidToken (or its
	// claim-specific code) with the invalid_token challenge and no store call
	t.Run("A02-A25_refused_token_kinds", func(t *testing.T) {
		tok := good()
		parts := strings.Split(tok, ".")
		claims := jwtauthtest.Claims("alice")
		with := func(name string, v any) map[string]any {
			c := jwtauthtest.Claims("alice")
			if v == nil {
				delete(c, name)
			} else {
				c[name] = v
			}
			return c
		}
		cases := []struct{ id, tok, code string }{
			{"A02_alg_none", jwtauthtest.B64([]byte(`{"alg":"none"}`)) + "." + parts[1] + ".", "InvalidToken"},
			{"A03_two_segments", parts[0] + "." + parts[1], "InvalidToken"},
			{"A04_hmac_keyed_with_public_key", jwtauthtest.HS256WithPublicKey(t, k.Pub, claims), "InvalidToken"},
			{"A07_embedded_jwk", jwtauthtest.NewKey(t, jwa.ES256(), "es").Mint(t, claims, map[string]any{"jwk": es.Pub}), "InvalidToken"},
			{"A09_sql_in_kid", es.Mint(t, with("exp", time.Now().Add(-time.Hour).Unix()), map[string]any{"kid": "x' UNION SELECT 'x'--"}), "InvalidToken"},
			{"A12_zero_signature", parts[0] + "." + parts[1] + "." + jwtauthtest.B64(make([]byte, 64)), "InvalidToken"},
			{"A14_expired", k.Mint(t, with("exp", time.Now().Add(-time.Hour).Unix()), nil), "TokenExpired"},
			{"A15_exp_missing", k.Mint(t, with("exp", nil), nil), "InvalidToken"},
			{"A16_exp_a_string", k.Mint(t, with("exp", "2001001001"), nil), "InvalidToken"},
			{"A17_issuer_trailing_slash", k.Mint(t, with("iss", testIssuer+"/"), nil), "InvalidIssuer"},
			{"A18_audience_missing", k.Mint(t, with("aud", nil), nil), "InvalidAudience"},
			{"A20_crit_names_exp", k.Mint(t, claims, map[string]any{"crit": []string{"exp"}}), "InvalidToken"},
			{"A21_duplicate_alg", k.SignRaw(t, []byte(`{"alg":"none","alg":"RS256","kid":"rs"}`), jwtauthtest.MustJSON(t, claims)), "InvalidToken"},
			{"A22_standard_base64_signature", parts[0] + "." + parts[1] + "." + strings.NewReplacer("-", "+", "_", "/").Replace(parts[2]) + "=", "InvalidToken"},
			{"A23_flattened_json", `{"protected":"` + parts[0] + `","payload":"` + parts[1] + `","signature":"` + parts[2] + `"}`, "InvalidToken"},
			{"A24_five_part_jwe", parts[0] + ".AAAA.AAAA.AAAA.AAAA", "InvalidToken"},
			{"A25_over_8_KiB", strings.Repeat("A", 9000) + ".e30.AAAA", "InvalidToken"},
		}
		for _, c := range cases {
			t.Run(c.id, func(t *testing.T) {
				rec, before := get(bearer(c.tok))
				sig := c.tok[strings.LastIndexByte(c.tok, '.')+1:]
				refused(t, rec, before, 401, c.code, "invalid_token", c.tok, sig, "alice", "UNION")
			})
		}
	})

	t.Run("A29_refusal_reveals_nothing", func(t *testing.T) {
		rec, before := get(bearer(k.Mint(t, jwtauthtest.Claims("alice-secret-sub"), map[string]any{"kid": "kid-secret"})))
		refused(t, rec, before, 401, "InvalidToken", "invalid_token", "alice-secret-sub", "kid-secret", "jwx", "jws.")
	})

	// C11: Envoy's response contract with a fixed realm and no echo of the
	// request URI or query
	t.Run("C11_fixed_realm_no_echo", func(t *testing.T) {
		before := store.calls.Load()
		rec := serve(t, h, "GET", profilePath+"?echo=reflected-value", bearer("a.b.c"), "")
		refused(t, rec, before, 401, "InvalidToken", "invalid_token", "reflected-value")
		before = store.calls.Load()
		rec = serve(t, h, "GET", profilePath+"?echo=reflected-value", nil, "")
		refused(t, rec, before, 401, "MissingToken", challengeMissing, "reflected-value")
	})
}

// TestCredentialExtraction: one credential per request: none is a 401
// with only the realm, two (header and query, or two headers) a 400
// invalid_request, a lower-case scheme is accepted, other schemes count as
// no token, and two tokens joined in one header are one malformed token
// (rows A26, C10).
func TestCredentialExtraction(t *testing.T) {
	f := newRefusalHandler(t)
	h, store, good, refused, get := f.h, f.store, f.good, f.refused, f.get

	t.Run("A26_one_credential_per_request", func(t *testing.T) {
		// 401 without error=: exactly the realm
		rec, before := get(nil)
		refused(t, rec, before, 401, "MissingToken", challengeMissing)
		req := httptest.NewRequest("GET", profilePath+"?access_token="+good(), nil)
		req.Header.Set("Authorization", "Bearer "+good())
		refused(t, serveReq(t, h, req), store.calls.Load(), 400, "InvalidRequest", challengeRequest)
		req = httptest.NewRequest("GET", profilePath, nil)
		req.Header.Add("Authorization", "Bearer "+good())
		req.Header.Add("Authorization", "Bearer "+good())
		refused(t, serveReq(t, h, req), store.calls.Load(), 400, "InvalidRequest", challengeRequest)
		if rec := serve(t, h, "GET", profilePath, map[string]string{"Authorization": "bearer " + good()}, ""); rec.Code != 200 {
			t.Fatalf("lower-case scheme: %d", rec.Code)
		}
		for _, v := range []string{"Basic dXNlcjpwYXNz", "Bearer-invalid " + good(), "Bearer ", "Bearer"} {
			rec, before := get(map[string]string{"Authorization": v})
			refused(t, rec, before, 401, "MissingToken", challengeMissing)
		}
	})

	// C10: a header token and a bad query token are two credentials; two
	// tokens joined in one header value are one malformed token
	t.Run("C10_header_and_query_or_joined_tokens", func(t *testing.T) {
		req := httptest.NewRequest("GET", profilePath+"?access_token=bad", nil)
		req.Header.Set("Authorization", "Bearer "+good())
		refused(t, serveReq(t, h, req), store.calls.Load(), 400, "InvalidRequest", challengeRequest)
		rec, before := get(map[string]string{"Authorization": "Bearer " + good() + "," + good()})
		refused(t, rec, before, 401, "InvalidToken", "invalid_token")
	})
}

// TestServiceAccountForbidden: a service account's token is a 403
// ServiceAccountForbidden problem without a challenge and no store call;
// an ordinary user's token is never 403 (row A28).
func TestServiceAccountForbidden(t *testing.T) {
	f := newRefusalHandler(t)
	k, refused, get := f.k, f.refused, f.get

	t.Run("A28_service_account_forbidden", func(t *testing.T) {
		c := jwtauthtest.Claims("svc")
		c["UserType"] = 2
		rec, before := get(bearer(k.Mint(t, c, nil)))
		// contract: 403 problem details, no WWW-Authenticate
		refused(t, rec, before, 403, "ServiceAccountForbidden", "")
		c["UserType"] = 1
		if rec, _ := get(bearer(k.Mint(t, c, nil))); rec.Code != 200 {
			t.Fatalf("an ordinary user token: %d", rec.Code)
		}
	})
}

func serveReq(t *testing.T, h *Handler, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	rec := httptest.NewRecorder()
	if err := h.ServeHTTP(rec, req, next); err != nil {
		t.Fatal(err)
	}
	return rec
}

// TestKeysUnavailableUntilProviderRecovers: through a real Caddy, with the
// provider down the route answers 503 KeysUnavailable with Retry-After and
// no challenge, then 200 once it is back (catalogue row B01).
func TestKeysUnavailableUntilProviderRecovers(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.ES256(), "es")
	idp := jwtauthtest.NewServer(t)
	idp.Serve(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) })
	tc := startCaddy(t, itConfig{jwksURL: idp.URL})

	t.Run("B01_provider_down_then_back", func(t *testing.T) {
		r := do(t, tc.Client, "GET", itBase+profilePath, bearer(k.Mint(t, jwtauthtest.Claims("alice"), nil)), "")
		if r.status != 503 || r.problemCode(t) != "KeysUnavailable" || r.header.Get("Retry-After") == "" || r.header.Get("WWW-Authenticate") != "" {
			t.Fatalf("provider down: %d %v %s", r.status, r.header, r.body)
		}
		idp.ServeKeys(t, "", k)
		deadline := time.Now().Add(8 * time.Second) // the first-fetch backoff runs on the real clock
		for {
			r = do(t, tc.Client, "GET", itBase+profilePath, bearer(k.Mint(t, jwtauthtest.Claims("alice"), nil)), "")
			if r.status == 200 || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if r.status != 200 {
			t.Fatalf("after recovery: %d %s", r.status, r.body)
		}
	})
}

// TestRouteSpellingsNeverReachUpstreamUnauthenticated: through a real
// Caddy, no spelling or method of the route reaches the site's catch-all
// API block (the legacy upstream's stand-in, answering 299) without a
// token (catalogue row A27).
func TestRouteSpellingsNeverReachUpstreamUnauthenticated(t *testing.T) {
	// the provider up: nothing here is refused for want of keys
	k := jwtauthtest.NewKey(t, jwa.ES256(), "es")
	idp := jwtauthtest.NewServer(t)
	idp.ServeKeys(t, "", k)
	tc := startCaddy(t, itConfig{jwksURL: idp.URL})

	t.Run("A27_route_spellings_and_methods", func(t *testing.T) {
		for _, target := range []string{profilePath + "/", "/" + profilePath, strings.Replace(profilePath, "/profile", "%2Fprofile", 1),
			strings.ToUpper(profilePath), profilePath + ";x=1", profilePath + "/."} {
			for _, method := range []string{"GET", "HEAD", "PUT", "DELETE"} {
				r := do(t, tc.Client, method, itBase+target, nil, "")
				if r.status == 299 || r.status < 300 {
					t.Errorf("%s %s without a token: %d", method, target, r.status)
				}
			}
			// by design, OPTIONS passes to the next handler (CORS
			// preflight, as Kong's run_on_preflight); it carries no
			// identity and is not an unauthenticated profile access
			// (or refused outright, for a spelling the route refuses)
			if r := do(t, tc.Client, "OPTIONS", itBase+target, nil, ""); r.status != 299 && r.status != 400 {
				t.Errorf("OPTIONS %s: %d, want the next handler's 299 or 400", target, r.status)
			}
		}
	})
}
