package caddymodule

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/dpop/dpoptest"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// Attacks on DPoP through a real Caddy: a replay flood, header and request
// spellings, cnf shapes, and what reaches the upstream. Each test names an
// attack that is defended.

// boundProof is a proof by the fixture's client for htu with the bound
// token, issued at iat.
func boundProof(t *testing.T, f dpopFixture, method, htu string, iat time.Time) string {
	return f.client.Proof(t, method, htu, f.bound, iat, nil, nil)
}

func wantRawProblem(t *testing.T, r rawResponse, status int, code, detail string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if code != "" && !strings.Contains(r.body, `"code":"`+code+`"`) {
		t.Fatalf("code: want %s in %s", code, r.body)
	}
	if detail != "" && !strings.Contains(r.body, `"detail":"`+detail+`"`) {
		t.Fatalf("detail: want %q in %s", detail, r.body)
	}
}

// TestDPoPReplayFloodFallsOnFlooder: a client with its
// own valid DPoP-bound token sends more than replay_cache_size requests
// whose proofs are dated 30 s ahead (iat may be 5 s plus the 30 s leeway
// ahead). Every other client's fresh proof (iat now, as RFC 9449 asks)
// keeps being accepted: were new proofs refused "too old to be checked for
// replay" once the cache is full, one client would deny DPoP to the whole
// process. A full cache forgets the flooding key's own oldest proofs, so
// only the flooder's window shrinks.
func TestDPoPReplayFloodFallsOnFlooder(t *testing.T) {
	const size = 23
	freshReplayCache(t)
	f := newDPoPFixture(t, fmt.Sprintf("dpop {\n\t\t\treplay_cache_size %d\n\t\t}", size), "")
	waitReplayCacheSize(t, size)
	url := itBase + profilePath
	if r := doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound, boundProof(t, f, "GET", f.htu, time.Now())); r.status != 200 {
		t.Fatalf("victim before the flood: %d %s", r.status, r.body)
	}
	attacker := dpoptest.NewProver(t, jwa.ES256())
	c := jwtauthtest.Claims("attacker")
	c["cnf"] = map[string]any{"jkt": attacker.Thumbprint}
	atok := f.key.Mint(t, c, nil)
	accepted := 0
	for range 2 * size {
		p := attacker.Proof(t, "GET", f.htu, atok, time.Now().Add(30*time.Second), nil, nil)
		// the flooder's own proofs of one second may be refused once its
		// share fills the cache; which is its problem alone
		if r := doDPoP(t, f.tc, "GET", url, "DPoP "+atok, p); r.status == 200 {
			accepted++
		}
	}
	if accepted < size-1 {
		t.Fatalf("only %d of the flood's proofs were accepted: the cache was not filled", accepted)
	}
	for i := range 3 {
		r := doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound, boundProof(t, f, "GET", f.htu, time.Now()))
		if r.status != 200 {
			t.Fatalf("victim's fresh proof %d after another client's flood: %d %s", i, r.status, r.body)
		}
	}
}

// TestDPoPHeaderSpellings: through raw sockets, spellings of the DPoP
// and Authorization headers and of the request that must not change what
// is checked.
func TestDPoPHeaderSpellings(t *testing.T) {
	f := newDPoPFixture(t, "", "")
	good := func() string { return boundProof(t, f, "GET", f.htu, time.Now()) }
	auth := "Authorization: DPoP " + f.bound

	t.Run("a second DPoP header under another case", func(t *testing.T) {
		r := rawRoundTrip(t, rawRequest("GET", profilePath, itHost, auth, "DPoP: "+good(), "dpop: "+good()))
		wantRawProblem(t, r, 401, codeInvalidDPoPProof, "The request has more than one DPoP header.")
	})
	t.Run("two proofs comma-joined in one header", func(t *testing.T) {
		r := rawRoundTrip(t, rawRequest("GET", profilePath, itHost, auth, "DPoP: "+good()+", "+good()))
		wantRawProblem(t, r, 401, codeInvalidDPoPProof, "The DPoP proof is not a compact JWS.")
	})
	t.Run("an empty DPoP header beside a good one", func(t *testing.T) {
		r := rawRoundTrip(t, rawRequest("GET", profilePath, itHost, auth, "DPoP: ", "DPoP: "+good()))
		wantRawProblem(t, r, 401, codeInvalidDPoPProof, "The request has more than one DPoP header.")
	})
	t.Run("scheme in lower case with two spaces", func(t *testing.T) {
		r := rawRoundTrip(t, rawRequest("GET", profilePath, itHost, "Authorization: dpop  "+f.bound, "DPoP: "+good()))
		if r.status != 200 || !strings.Contains(r.body, `"UserId":"dpop-user"`) {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("scheme and token separated by a tab", func(t *testing.T) {
		r := rawRoundTrip(t, rawRequest("GET", profilePath, itHost, "Authorization: DPoP\t"+f.bound, "DPoP: "+good()))
		wantRawProblem(t, r, 401, "MissingToken", "")
	})
	t.Run("DPoP scheme and the query parameter", func(t *testing.T) {
		r := rawRoundTrip(t, rawRequest("GET", profilePath+"?access_token="+f.bound, itHost, auth, "DPoP: "+good()))
		wantRawProblem(t, r, 400, "InvalidRequest", "")
	})
	t.Run("X-Forwarded-* never name the URI", func(t *testing.T) {
		p := boundProof(t, f, "GET", "https://api.example.com"+profilePath, time.Now())
		r := rawRoundTrip(t, rawRequest("GET", profilePath, itHost, auth, "DPoP: "+p,
			"X-Forwarded-Proto: https", "X-Forwarded-Host: api.example.com", "Forwarded: proto=https;host=api.example.com",
			"X-Forwarded-Port: 443"))
		wantRawProblem(t, r, 401, codeInvalidDPoPProof, "The DPoP proof is for another URI (htu).")
	})
	t.Run("Host in upper case is the same URI", func(t *testing.T) {
		r := rawRoundTrip(t, rawRequest("GET", profilePath, strings.ToUpper(itHost), auth, "DPoP: "+good()))
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("absolute-form target: the Host header does not name the URI", func(t *testing.T) {
		p := boundProof(t, f, "GET", "http://evil.example"+profilePath, time.Now())
		r := rawRoundTrip(t, rawRequest("GET", itSite+profilePath, "evil.example", auth, "DPoP: "+p))
		if r.status == 200 {
			t.Fatalf("a proof for the Host header's authority passed on an absolute-form request to this site: %s", r.body)
		}
	})
	t.Run("a route spelling needs a proof for that spelling", func(t *testing.T) {
		upper := "/API/workspace/account/profile"
		r := rawRoundTrip(t, rawRequest("GET", upper, itHost, auth, "DPoP: "+good()))
		wantRawProblem(t, r, 401, codeInvalidDPoPProof, "The DPoP proof is for another URI (htu).")
		r = rawRoundTrip(t, rawRequest("GET", upper, itHost, auth, "DPoP: "+boundProof(t, f, "GET", itSite+upper, time.Now())))
		if r.status != 200 {
			t.Fatalf("proof for the spelling the client used: %d %s", r.status, r.body)
		}
		semi := profilePath + ";jsessionid=1"
		r = rawRoundTrip(t, rawRequest("GET", semi, itHost, auth, "DPoP: "+good()))
		wantRawProblem(t, r, 401, codeInvalidDPoPProof, "The DPoP proof is for another URI (htu).")
	})
	t.Run("a used proof is spent for every spelling of its URI", func(t *testing.T) {
		p := boundProof(t, f, "GET", itSite+"/api/workspace/account/profil%65", time.Now())
		if r := rawRoundTrip(t, rawRequest("GET", profilePath, itHost, auth, "DPoP: "+p)); r.status != 200 {
			t.Fatalf("first use: %d %s", r.status, r.body)
		}
		for _, target := range []string{"/api/workspace/account/profil%65", "/api/workspace/account/%70rofile?x=1",
			"/api/workspace/x/../account/profile", profilePath + "?access_token_x=1"} {
			r := rawRoundTrip(t, rawRequest("GET", target, strings.ToUpper(itHost), auth, "DPoP: "+p))
			wantRawProblem(t, r, 401, codeInvalidDPoPProof, "The DPoP proof was already used; make a new one for each request.")
		}
	})
	t.Run("the token's signing key cannot sign a proof for another token", func(t *testing.T) {
		// a proof by the client's key for the unbound token is still for another token (ath)
		p := f.client.Proof(t, "GET", f.htu, f.unbound, time.Now(), nil, nil)
		r := rawRoundTrip(t, rawRequest("GET", profilePath, itHost, auth, "DPoP: "+p))
		wantRawProblem(t, r, 401, codeInvalidDPoPProof, "The DPoP proof is for another access token (ath).")
	})
}

// TestDPoPConfirmationShapes: cnf shapes a provider could mint; a bound
// token is never accepted without a proof, and malformed bindings are
// refused whatever the scheme.
func TestDPoPConfirmationShapes(t *testing.T) {
	f := newDPoPFixture(t, "", "")
	url := itBase + profilePath
	mint := func(cnf any) string {
		c := jwtauthtest.Claims("cnf-user")
		c["cnf"] = cnf
		return f.key.Mint(t, c, nil)
	}
	for name, cnf := range map[string]any{
		"jkt a number":      map[string]any{"jkt": 7},
		"jkt an array":      map[string]any{"jkt": []any{f.client.Thumbprint}},
		"jkt empty":         map[string]any{"jkt": ""},
		"cnf an array":      []any{map[string]any{"jkt": f.client.Thumbprint}},
		"cnf a string":      f.client.Thumbprint,
		"cnf null":          nil,
		"x5t#S256 only":     map[string]any{"x5t#S256": "abc"},
		"cnf empty":         map[string]any{},
		"JKT in upper case": map[string]any{"JKT": f.client.Thumbprint},
	} {
		t.Run(name, func(t *testing.T) {
			var tok string
			if cnf == nil {
				c := jwtauthtest.Claims("cnf-user")
				c["cnf"] = nil
				tok = f.key.SignRaw(t, jwtauthtest.MustJSON(t, map[string]any{"alg": "RS256", "kid": f.key.Kid}), jwtauthtest.MustJSON(t, c))
			} else {
				tok = mint(cnf)
			}
			if r := doDPoP(t, f.tc, "GET", url, "Bearer "+tok); r.status != 401 || !bytes.Contains(r.body, []byte(`"code":"InvalidToken"`)) {
				t.Fatalf("as Bearer: %d %s", r.status, r.body)
			}
			p := f.client.Proof(t, "GET", f.htu, tok, time.Now(), nil, nil)
			if r := doDPoP(t, f.tc, "GET", url, "DPoP "+tok, p); r.status != 401 || !bytes.Contains(r.body, []byte(`"code":"InvalidToken"`)) {
				t.Fatalf("as DPoP: %d %s", r.status, r.body)
			}
		})
	}
	t.Run("jkt beside x5t#S256 still needs the proof", func(t *testing.T) {
		tok := mint(map[string]any{"jkt": f.client.Thumbprint, "x5t#S256": "abc"})
		if r := doDPoP(t, f.tc, "GET", url, "Bearer "+tok); r.status != 401 {
			t.Fatalf("as Bearer: %d %s", r.status, r.body)
		}
		if r := doDPoP(t, f.tc, "GET", url, "DPoP "+tok); r.status != 401 {
			t.Fatalf("as DPoP without a proof: %d %s", r.status, r.body)
		}
		// a cached verification still needs a proof on every request
		if r := doDPoP(t, f.tc, "GET", url, "DPoP "+tok, f.client.Proof(t, "GET", f.htu, tok, time.Now(), nil, nil)); r.status != 200 {
			t.Fatalf("with its proof: %d %s", r.status, r.body)
		}
		if r := doDPoP(t, f.tc, "GET", url, "DPoP "+tok); r.status != 401 {
			t.Fatalf("cached, without a proof: %d %s", r.status, r.body)
		}
	})
}

// TestDPoPProofNeverReachesUpstream: in upstream mode the proof never reaches
// the backend, whatever the client names in Connection or sends as a
// trailer, and the backend always gets the token as Bearer; a refused
// proof reaches nothing.
func TestDPoPProofNeverReachesUpstream(t *testing.T) {
	u := startDPoPUpstream(t)
	backend, client, tok := u.backend, u.client, u.tok
	htu := itSite + profilePath

	// refused proofs first: nothing reaches the backend
	bad := client.Proof(t, "GET", htu, tok, time.Now().Add(-10*time.Minute), nil, nil)
	r := rawRoundTrip(t, rawRequest("GET", profilePath, itHost, "Authorization: DPoP "+tok, "DPoP: "+bad))
	wantRawProblem(t, r, 401, codeInvalidDPoPProof, "")
	if n := len(backend.Requests()); n != 0 {
		t.Fatalf("a refused proof reached the backend (%d requests)", n)
	}

	// GET naming DPoP and Authorization in Connection
	p := client.Proof(t, "GET", htu, tok, time.Now(), nil, nil)
	r = rawRoundTrip(t, "GET "+profilePath+" HTTP/1.1\r\nHost: "+itHost+"\r\nAuthorization: DPoP "+tok+"\r\nDPoP: "+p+
		"\r\nConnection: keep-alive, DPoP, Authorization, X-Workspace-User-Id\r\n\r\n")
	if r.status != 200 {
		t.Fatalf("GET: %d %s", r.status, r.body)
	}
	// PUT with a chunked body and DPoP announced and sent as a trailer
	p = client.Proof(t, "PUT", htu, tok, time.Now(), nil, nil)
	body := `{"FirstName":"Dee"}`
	r = rawRoundTrip(t, "PUT "+profilePath+" HTTP/1.1\r\nHost: "+itHost+"\r\nAuthorization: DPoP "+tok+"\r\nDPoP: "+p+
		"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nTrailer: DPoP\r\nConnection: close\r\n\r\n"+
		fmt.Sprintf("%x\r\n%s\r\n0\r\nDPoP: %s\r\n\r\n", len(body), body, p))
	if r.status != 200 {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	reqs := backend.Requests()
	if len(reqs) != 2 {
		t.Fatalf("backend saw %d requests, want 2", len(reqs))
	}
	for i, q := range reqs {
		for name, v := range q.Header {
			if strings.EqualFold(name, "DPoP") || strings.Contains(strings.Join(v, ","), p[:40]) {
				t.Fatalf("request %d: the backend got the proof under %s: %q", i, name, v)
			}
		}
		for name, v := range q.Trailer {
			t.Fatalf("request %d: the backend got trailer %s: %q", i, name, v)
		}
		if got := q.Header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+tok {
			t.Fatalf("request %d: Authorization %q", i, got)
		}
		if got := q.Header.Get("X-Workspace-User-Id"); got != "u-1" {
			t.Fatalf("request %d: X-Workspace-User-Id %q", i, got)
		}
	}
}
