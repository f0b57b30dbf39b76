package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/dpop/dpoptest"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// The DPoP challenges of the default algorithms.
const (
	dpopAlgs            = `algs="RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA Ed25519"`
	challengeDPoPOnly   = `DPoP realm="workspace", ` + dpopAlgs
	challengeBearerDPoP = `Bearer realm="workspace", ` + challengeDPoPOnly
)

func dpopChallengeFor(errCode, desc string) string {
	return `DPoP realm="workspace", error="` + errCode + `", error_description="` + desc + `", ` + dpopAlgs
}

var traceIDField = regexp.MustCompile(`"traceId":"[^"]*"`)

// wantRefusal checks a 401 exactly: its challenge, and its problem
// details byte for byte but for the trace ID.
func wantRefusal(t *testing.T, r itResponse, code, detail, challenge string) {
	t.Helper()
	if r.status != 401 {
		t.Fatalf("status %d, want 401 (%s)", r.status, r.body)
	}
	if got := r.header.Get("WWW-Authenticate"); got != challenge {
		t.Fatalf("WWW-Authenticate\n got %s\nwant %s", got, challenge)
	}
	want := `{"type":"https://tools.ietf.org/html/rfc9110#section-15.5.2","title":"Unauthorized","status":401,` +
		`"detail":"` + detail + `","instance":"` + profilePath + `","code":"` + code + `","traceId":""}`
	if got := traceIDField.ReplaceAllString(string(r.body), `"traceId":""`); got != want {
		t.Fatalf("problem details\n got %s\nwant %s", got, want)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q", ct)
	}
}

// TestDPoPThroughCaddy: with the default (dpop allowed), a bound token
// passes with its proof and with nothing else; every rule broken once is
// answered with its exact challenge and problem.
func TestDPoPThroughCaddy(t *testing.T) {
	f := newDPoPFixture(t, "", "")
	url := itBase + profilePath
	type refusal struct{ code, detail, challenge string }
	invalidProof := func(desc string) refusal {
		return refusal{codeInvalidDPoPProof, desc, dpopChallengeFor("invalid_dpop_proof", desc)}
	}
	invalidToken := func(desc string) refusal {
		return refusal{"InvalidToken", desc, dpopChallengeFor("invalid_token", desc)}
	}
	check := func(r itResponse, want refusal) {
		t.Helper()
		wantRefusal(t, r, want.code, want.detail, want.challenge)
	}

	good := f.proof(t, "GET", nil)
	r := doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound, good)
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"UserId":"dpop-user"`)) {
		t.Fatalf("bound token with its proof: %d %s", r.status, r.body)
	}
	t.Run("replay", func(t *testing.T) {
		check(doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound, good),
			invalidProof("The DPoP proof was already used; make a new one for each request."))
	})
	t.Run("the cached token still needs its proof", func(t *testing.T) {
		// the 200 above put the token in the verified-token cache
		check(doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound), invalidProof("The request has no DPoP proof."))
	})
	t.Run("wrong htu", func(t *testing.T) {
		p := f.client.Proof(t, "GET", itSite+"/api/workspace/account/other", f.bound, time.Now(), nil, nil)
		check(doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound, p), invalidProof("The DPoP proof is for another URI (htu)."))
		p = f.client.Proof(t, "GET", "https://"+itHost+profilePath, f.bound, time.Now(), nil, nil)
		check(doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound, p), invalidProof("The DPoP proof is for another URI (htu)."))
	})
	t.Run("htu spellings that are the same URI", func(t *testing.T) {
		for _, htu := range []string{
			"HTTP://LOCALHOST:" + strings.TrimPrefix(itHost, "localhost:") + profilePath + "?x=1#f",
			itSite + "/api/./workspace/account/%70rofile",
		} {
			p := f.client.Proof(t, "GET", htu, f.bound, time.Now(), nil, nil)
			if r := doDPoP(t, f.tc, "GET", url+"?x=2", "DPoP "+f.bound, p); r.status != 200 {
				t.Fatalf("htu %s: %d %s", htu, r.status, r.body)
			}
		}
	})
	t.Run("wrong htm", func(t *testing.T) {
		check(doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound, f.proof(t, "PUT", nil)),
			invalidProof("The DPoP proof is for another HTTP method (htm)."))
	})
	t.Run("stale iat", func(t *testing.T) {
		// 60 s window plus the 30 s leeway
		check(doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound, f.proof(t, "GET", map[string]any{"iat": time.Now().Add(-95 * time.Second).Unix()})),
			invalidProof("The DPoP proof is too old (iat); make a new one for each request."))
	})
	t.Run("future iat", func(t *testing.T) {
		check(doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound, f.proof(t, "GET", map[string]any{"iat": time.Now().Add(40 * time.Second).Unix()})),
			invalidProof("The DPoP proof is issued in the future (iat)."))
	})
	t.Run("wrong ath", func(t *testing.T) {
		check(doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound, f.proof(t, "GET", map[string]any{"ath": dpoptest.ATH(f.unbound)})),
			invalidProof("The DPoP proof is for another access token (ath)."))
	})
	t.Run("two DPoP headers", func(t *testing.T) {
		check(doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound, f.proof(t, "GET", nil), f.proof(t, "GET", nil)),
			invalidProof("The request has more than one DPoP header."))
	})
	t.Run("proof by another key", func(t *testing.T) {
		other := dpoptest.NewProver(t, jwa.ES256())
		p := other.Proof(t, "GET", f.htu, f.bound, time.Now(), nil, nil)
		check(doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound, p),
			invalidToken("The token is bound to another key than the one that signed the DPoP proof."))
	})
	t.Run("bound token as Bearer", func(t *testing.T) {
		check(doDPoP(t, f.tc, "GET", url, "Bearer "+f.bound, f.proof(t, "GET", nil)),
			invalidToken("The token is bound to a DPoP key: send it with the DPoP scheme and a DPoP proof."))
	})
	t.Run("bound token in the query", func(t *testing.T) {
		check(doDPoP(t, f.tc, "GET", url+"?access_token="+f.bound, "", f.proof(t, "GET", nil)),
			invalidToken("The token is bound to a DPoP key: send it with the DPoP scheme and a DPoP proof."))
	})
	t.Run("unbound token as DPoP", func(t *testing.T) {
		p := f.client.Proof(t, "GET", f.htu, f.unbound, time.Now(), nil, nil)
		check(doDPoP(t, f.tc, "GET", url, "DPoP "+f.unbound, p),
			invalidToken("The token is not bound to a DPoP key (no cnf.jkt claim): send it with the Bearer scheme."))
	})
	t.Run("invalid token as DPoP", func(t *testing.T) {
		forged := f.bound[:len(f.bound)-4] + "AAAA"
		check(doDPoP(t, f.tc, "GET", url, "DPoP "+forged, f.client.Proof(t, "GET", f.htu, forged, time.Now(), nil, nil)),
			invalidToken("The token signature is invalid."))
	})
	t.Run("unbound Bearer still works", func(t *testing.T) {
		if r := doDPoP(t, f.tc, "GET", url, "Bearer "+f.unbound); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		// a DPoP header beside a bearer token is not looked at
		if r := doDPoP(t, f.tc, "GET", url, "Bearer "+f.unbound, "garbage"); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("no token: both schemes offered", func(t *testing.T) {
		check(doDPoP(t, f.tc, "GET", url, ""), refusal{"MissingToken", "No bearer token was sent.", challengeBearerDPoP})
	})
	t.Run("invalid Bearer token keeps its Bearer challenge", func(t *testing.T) {
		r := doDPoP(t, f.tc, "GET", url, "Bearer "+f.unbound[:len(f.unbound)-4]+"AAAA")
		wantRefusal(t, r, "InvalidToken", "The token signature is invalid.",
			`Bearer realm="workspace", error="invalid_token", error_description="The token signature is invalid."`)
	})
	t.Run("PUT", func(t *testing.T) {
		req, _ := http.NewRequest("PUT", url, strings.NewReader(`{"FirstName":"Dee"}`))
		req.Header.Set("Authorization", "DPoP "+f.bound)
		req.Header.Set("DPoP", f.proof(t, "PUT", nil))
		req.Header.Set("Content-Type", "application/json")
		resp, err := f.tc.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"FirstName":"Dee"`)) {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})
}

// TestDPoPRewrite: htm and htu name the request as the client sent it,
// before a rewrite on the site changed its path.
func TestDPoPRewrite(t *testing.T) {
	f := newDPoPFixture(t, "", "rewrite /alias "+profilePath)
	aliasHTU := itSite + "/alias"
	p := f.client.Proof(t, "GET", aliasHTU, f.bound, time.Now(), nil, nil)
	if r := doDPoP(t, f.tc, "GET", itBase+"/alias", "DPoP "+f.bound, p); r.status != 200 {
		t.Fatalf("proof for the URI the client addressed: %d %s", r.status, r.body)
	}
	p = f.client.Proof(t, "GET", f.htu, f.bound, time.Now(), nil, nil)
	r := doDPoP(t, f.tc, "GET", itBase+"/alias", "DPoP "+f.bound, p)
	wantRefusal(t, r, codeInvalidDPoPProof, "The DPoP proof is for another URI (htu).",
		dpopChallengeFor("invalid_dpop_proof", "The DPoP proof is for another URI (htu)."))
}

// TestDPoPRequired: dpop required refuses bearer tokens before verifying
// them and offers the DPoP scheme only.
func TestDPoPRequired(t *testing.T) {
	f := newDPoPFixture(t, "dpop required", "")
	url := itBase + profilePath
	r := doDPoP(t, f.tc, "GET", url, "Bearer "+f.unbound)
	wantRefusal(t, r, "InvalidToken", detailDPoPRequired, dpopChallengeFor("invalid_token", detailDPoPRequired))
	r = doDPoP(t, f.tc, "GET", url+"?access_token="+f.unbound, "")
	wantRefusal(t, r, "InvalidToken", detailDPoPRequired, dpopChallengeFor("invalid_token", detailDPoPRequired))
	wantRefusal(t, doDPoP(t, f.tc, "GET", url, ""), "MissingToken", detailNoDPoPToken, challengeDPoPOnly)
	if r := doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound, f.proof(t, "GET", nil)); r.status != 200 {
		t.Fatalf("bound token with proof: %d %s", r.status, r.body)
	}
}

// TestDPoPOff: dpop off is the route before DPoP (the DPoP scheme is no
// token, Bearer challenges only), and a bound token is still never taken
// as a bearer token.
func TestDPoPOff(t *testing.T) {
	f := newDPoPFixture(t, "dpop off", "")
	url := itBase + profilePath
	wantRefusal(t, doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound, f.proof(t, "GET", nil)),
		"MissingToken", "No bearer token was sent.", `Bearer realm="workspace"`)
	wantRefusal(t, doDPoP(t, f.tc, "GET", url, "Bearer "+f.bound), "InvalidToken", detailBoundNoDPoP,
		`Bearer realm="workspace", error="invalid_token", error_description="`+detailBoundNoDPoP+`"`)
	if r := doDPoP(t, f.tc, "GET", url, "Bearer "+f.unbound); r.status != 200 {
		t.Fatalf("bearer token: %d %s", r.status, r.body)
	}
}

// TestDPoPOptions: the block form, a restricted algorithm list named in
// the challenge, and a configured origin for htu (TLS ended before Caddy).
func TestDPoPOptions(t *testing.T) {
	f := newDPoPFixture(t, `dpop {
			algorithms ES256 PS256
			iat_window 10s
			replay_cache_size 100
			origin https://API.example.com:443
		}`, "")
	url := itBase + profilePath
	wantRefusal(t, doDPoP(t, f.tc, "GET", url, ""), "MissingToken", "No bearer token was sent.",
		`Bearer realm="workspace", DPoP realm="workspace", algs="ES256 PS256"`)
	p := f.client.Proof(t, "GET", "https://api.example.com"+profilePath, f.bound, time.Now(), nil, nil)
	if r := doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound, p); r.status != 200 {
		t.Fatalf("proof for the configured origin: %d %s", r.status, r.body)
	}
	r := doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound, f.proof(t, "GET", nil))
	if r.status != 401 || r.header.Get("WWW-Authenticate") != `DPoP realm="workspace", error="invalid_dpop_proof", error_description="The DPoP proof is for another URI (htu).", algs="ES256 PS256"` {
		t.Fatalf("proof for Caddy's own origin: %d %q", r.status, r.header.Get("WWW-Authenticate"))
	}
	// 10 s window plus the 30 s leeway
	old := f.client.Proof(t, "GET", "https://api.example.com"+profilePath, f.bound, time.Now().Add(-45*time.Second), nil, nil)
	if r := doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound, old); r.status != 401 {
		t.Fatalf("proof older than iat_window: %d", r.status)
	}
	ed := dpoptest.NewProver(t, jwa.EdDSA())
	c := jwtauthtest.Claims("ed-user")
	c["cnf"] = map[string]any{"jkt": ed.Thumbprint}
	tok := f.key.Mint(t, c, nil)
	r = doDPoP(t, f.tc, "GET", url, "DPoP "+tok, ed.Proof(t, "GET", "https://api.example.com"+profilePath, tok, time.Now(), nil, nil))
	if r.status != 401 || !strings.Contains(string(r.body), "The DPoP proof algorithm is not accepted.") {
		t.Fatalf("EdDSA proof with algorithms ES256 PS256: %d %s", r.status, r.body)
	}
}

// TestDPoPUpstream: the backend gets the token as a bearer token and never
// the proof.
func TestDPoPUpstream(t *testing.T) {
	u := startDPoPUpstream(t)
	tc, backend, client, tok := u.tc, u.backend, u.client, u.tok
	proof := client.Proof(t, "GET", itSite+profilePath, tok, time.Now(), nil, nil)
	r := doDPoP(t, tc, "GET", itBase+profilePath, "DPoP "+tok, proof)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	reqs := backend.Requests()
	if len(reqs) != 1 {
		t.Fatalf("backend saw %d requests", len(reqs))
	}
	if got := reqs[0].Header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+tok {
		t.Fatalf("backend Authorization %q, want the token as Bearer", got)
	}
	if v, ok := reqs[0].Header["Dpop"]; ok {
		t.Fatalf("backend got a DPoP header: %q", v)
	}
	// a bound token sent as Bearer never reaches the backend
	if r := doDPoP(t, tc, "GET", itBase+profilePath, "Bearer "+tok); r.status != 401 || len(backend.Requests()) != 1 {
		t.Fatalf("bound token as Bearer: %d, backend saw %d", r.status, len(backend.Requests()))
	}
	// the backend refusing the token: the client is told in the scheme it
	// used (RFC 9449 section 7.1)
	backend.Set(401, []byte(`{"title":"Unauthorized"}`))
	proof = client.Proof(t, "GET", itSite+profilePath, tok, time.Now(), nil, nil)
	r = doDPoP(t, tc, "GET", itBase+profilePath, "DPoP "+tok, proof)
	want := `DPoP realm="workspace", error="invalid_token", error_description="The backend refused the token.", algs="`
	if got := r.header.Get("WWW-Authenticate"); r.status != 401 || !strings.HasPrefix(got, want) {
		t.Fatalf("backend 401 to a DPoP client: %d, challenge %q, want it to start %q", r.status, got, want)
	}
}

// TestDPoPNotLogged: no log line (the module's or the access log, with the
// filter the docs give) holds the token or any part of the proof.
func TestDPoPNotLogged(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "access.log")
	f := newDPoPFixtureLogged(t, logPath)
	url := itBase + profilePath
	good := f.proof(t, "GET", nil)
	doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound, good)
	doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound, good) // replayed
	bad := f.proof(t, "GET", map[string]any{"htm": "PUT"})
	doDPoP(t, f.tc, "GET", url, "DPoP "+f.bound, bad)
	doDPoP(t, f.tc, "GET", url, "Bearer "+f.bound, bad)
	var data []byte
	waitFor(t, func() bool {
		data, _ = os.ReadFile(logPath)
		return bytes.Count(data, []byte("\n")) >= 4
	})
	for _, secret := range []string{f.bound, strings.Split(f.bound, ".")[2], good, strings.Split(good, ".")[1], strings.Split(good, ".")[2],
		strings.Split(bad, ".")[2], strings.Split(good, ".")[0]} {
		if bytes.Contains(data, []byte(secret)) {
			t.Fatalf("a token or proof is in the log:\n%s", data)
		}
	}
	if !bytes.Contains(data, []byte(`"user_id":"dpop-user"`)) {
		t.Fatalf("the access log lacks the user:\n%s", data)
	}
}

// newDPoPFixtureLogged is newDPoPFixture with an access log (and the
// module's own log lines at debug) in logPath, through Caddyfile.example's
// log block: Caddy redacts Authorization itself but not DPoP.
func newDPoPFixtureLogged(t *testing.T, logPath string) dpopFixture {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "rs-1")
	f := dpopFixture{key: k, client: dpoptest.NewProver(t, jwa.ES256()), htu: itSite + profilePath}
	c := jwtauthtest.Claims("dpop-user")
	c["cnf"] = map[string]any{"jkt": f.client.Thumbprint}
	f.bound = k.Mint(t, c, nil)
	global := strings.Replace(itGlobal, "skip_install_trust", fmt.Sprintf("skip_install_trust\n\tlog {\n\t\toutput file %s\n\t\tlevel DEBUG\n\t}", logPath+".caddy"), 1)
	// the access log is Caddyfile.example's own block: what the example
	// ships is what keeps proofs out of the log
	cfg := fmt.Sprintf(global+itSite+` {
	%s
	workspace_profile {
		jwks_file %s
		issuer %s
		audience %s
		storage memory
		create_missing
	}
}
`, exampleLogBlock(t, logPath), writeFile(t, "k.json", jwtauthtest.JWKS(t, k)), testIssuer, testAudience)
	f.tc = startCaddyfile(t, cfg)
	t.Cleanup(func() {
		data, _ := os.ReadFile(logPath + ".caddy")
		for _, secret := range []string{f.bound, strings.Split(f.bound, ".")[2]} {
			if bytes.Contains(data, []byte(secret)) {
				t.Errorf("the token is in Caddy's own log:\n%s", data)
			}
		}
		if !bytes.Contains(data, []byte("workspace_profile")) {
			t.Errorf("Caddy's own log holds no line of the module:\n%.2000s", data)
		}
	})
	return f
}

// TestDPoPCaddyfile: the option's forms and its errors.
func TestDPoPCaddyfile(t *testing.T) {
	base := "jwks_file k.json\nissuer i\naudience a\n"
	good := map[string]DPoP{
		"dpop off":      {Mode: "off"},
		"dpop allowed":  {Mode: "allowed"},
		"dpop required": {Mode: "required"},
		"dpop {\nrequired\nalgorithms ES256\nalgorithms PS256\niat_window 2m\nreplay_cache_size 5\norigin https://a.example\n}": {
			Mode: "required", Algorithms: []string{"ES256", "PS256"}, IATWindow: 2 * 60 * 1e9, ReplayCacheSize: 5, Origin: "https://a.example"},
		"dpop allowed {\nmode off\n}": {Mode: "off"},
	}
	for line, want := range good {
		h := parseWorkspaceProfile(t, base+line)
		if h.DPoP == nil {
			t.Fatalf("%q: no dpop", line)
		}
		got, _ := json.Marshal(h.DPoP)
		w, _ := json.Marshal(want)
		if string(got) != string(w) {
			t.Errorf("%q: %s, want %s", line, got, w)
		}
	}
	for _, line := range []string{
		"dpop sometimes", "dpop on off", "dpop {\nalgorithms HS256\n}", "dpop {\nalgorithms none\n}", "dpop {\niat_window -1s\n}",
		"dpop {\nreplay_cache_size 0\n}", "dpop {\norigin https://a.example/path?x=1\n}", "dpop {\norigin ftp://a\n}",
		"dpop {\nnonce on\n}", "dpop off\ndpop required", "dpop {\nrequired x\n}",
		`dpop ""`, "dpop {\nmode \"\"\n}",
	} {
		if err := parseWorkspaceProfileErr(base + line); err == nil || !strings.Contains(err.Error(), "dpop") {
			t.Errorf("%q: err %v, want one naming dpop", line, err)
		}
	}
}

// TestDPoPJSON: the JSON form provisions, and a bad mode or origin fails
// naming the option.
func TestDPoPJSON(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.ES256(), "k")
	jwks := jwtauthtest.JWKS(t, k)
	h, _ := newFileHandler(t, jwks, func(h *Handler) {
		_ = json.Unmarshal([]byte(`{"mode":"required","algorithms":["ES256"],"iat_window":"30s","replay_cache_size":10,"origin":"https://a.example:8443"}`), &h.DPoP)
	})
	if !h.DPoP.required() || h.DPoP.origin != "https://a.example:8443" || h.DPoP.challenge != `DPoP realm="workspace", algs="ES256"` {
		t.Fatalf("provisioned %+v", h.DPoP)
	}
	def, _ := newFileHandler(t, jwks, nil)
	if def.DPoP == nil || def.DPoP.Mode != DPoPAllowed || !def.DPoP.on() {
		t.Fatalf("default dpop %+v", def.DPoP)
	}
	for _, raw := range []string{`{"mode":"on"}`, `{"origin":"https://a/b#f"}`, `{"algorithms":["HS256"]}`, `{"iat_window":"-1s"}`} {
		h := &Handler{JWKSFiles: []string{writeFile(t, "jwks.json", jwks)}, Issuers: []string{testIssuer}, Audiences: []string{testAudience},
			StorageRaw: json.RawMessage(`{"backend":"memory"}`)}
		_ = json.Unmarshal([]byte(raw), &h.DPoP)
		ctx, cancel := newTestContext()
		err := h.Provision(ctx)
		_ = h.Cleanup()
		cancel()
		if err == nil || !strings.HasPrefix(err.Error(), "dpop") {
			t.Errorf("%s: err %v, want one naming dpop", raw, err)
		}
	}
}

func parseWorkspaceProfileErr(body string) error {
	var h Handler
	return h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("workspace_profile {\n" + body + "\n}"))
}

func parseWorkspaceProfile(t *testing.T, body string) Handler {
	t.Helper()
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("workspace_profile {\n" + body + "\n}")); err != nil {
		t.Fatalf("%q: %v", body, err)
	}
	return h
}

// TestDPoPReplayCacheShared: every handler of the process (a reload's
// new config beside the old, with another iat_window or another
// replay_cache_size) shares one cache, so a proof used through one is
// refused through the others; the cache takes the largest size of the
// live handlers and keeps entries for their longest window, and follows
// them when a handler's config is unloaded.
func TestDPoPReplayCacheShared(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.ES256(), "k")
	jwks := jwtauthtest.JWKS(t, k)
	withSize := func(n int) func(*Handler) {
		return func(h *Handler) { h.DPoP, h.CreateMissing = &DPoP{ReplayCacheSize: n}, true }
	}
	a, _ := newFileHandler(t, jwks, withSize(777_001))
	b, _ := newFileHandler(t, jwks, func(h *Handler) {
		withSize(777_000)(h)
		h.DPoP.IATWindow = caddy.Duration(20 * time.Minute) // a reload that changes the window
	})
	cHandler := &Handler{JWKSFiles: []string{writeFile(t, "jwks.json", jwks)}, Issuers: []string{testIssuer}, Audiences: []string{testAudience},
		StorageRaw: json.RawMessage(`{"backend":"memory"}`), DPoP: &DPoP{ReplayCacheSize: 777_002}, CreateMissing: true}
	ctx, cancel := newTestContext()
	if err := cHandler.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if got := replayCache.c.Max(); got != 777_002 {
		t.Fatalf("size with three live handlers: %d, want the largest, 777002", got)
	}
	if got := replayCache.c.Window(); got != 20*time.Minute+DefaultLeeway {
		t.Fatalf("window with three live handlers: %v, want the longest, 20m30s", got)
	}
	client := dpoptest.NewProver(t, jwa.ES256())
	claims := jwtauthtest.Claims("u-1")
	claims["cnf"] = map[string]any{"jkt": client.Thumbprint}
	tok := k.Mint(t, claims, nil)
	proof := client.Proof(t, "GET", "http://example.com"+profilePath, tok, time.Now(), nil, nil)
	hdr := map[string]string{"Authorization": "DPoP " + tok, "DPoP": proof}
	if rec := serve(t, a, "GET", "http://example.com"+profilePath, hdr, ""); rec.Code != 200 {
		t.Fatalf("first use: %d %s", rec.Code, rec.Body)
	}
	for name, h := range map[string]*Handler{"another window": b, "another size": cHandler} {
		if rec := serve(t, h, "GET", "http://example.com"+profilePath, hdr, ""); rec.Code != 401 || !strings.Contains(rec.Body.String(), "already used") {
			t.Fatalf("replay through a handler with %s: %d %s", name, rec.Code, rec.Body)
		}
	}
	// the largest handler's config is unloaded: the size follows the
	// live ones, and the used proof is still refused
	_ = cHandler.Cleanup()
	cancel()
	waitReplayCacheSize(t, 777_001)
	if rec := serve(t, b, "GET", "http://example.com"+profilePath, hdr, ""); rec.Code != 401 || !strings.Contains(rec.Body.String(), "already used") {
		t.Fatalf("replay after the largest handler left: %d %s", rec.Code, rec.Body)
	}
}
