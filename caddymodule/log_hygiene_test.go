package caddymodule

// Privacy and log hygiene (catalogue part E, see docs/threat-model.md),
// each row a subtest, through the logged sites of
// logged_sites_helpers_test.go.

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// TestLogHygiene: no log line, access or module, at any level, holds a
// token, its payload or signature, or profile data; Authorization is
// redacted, the query token is filtered even from odd request targets,
// and the metrics hold no token or personal data (catalogue rows E01-E04,
// E09, see docs/threat-model.md).
func TestLogHygiene(t *testing.T) {
	s, tok := startPrivateProfile(t)
	pii := []string{"PrivateFirstName", "private.person@mail.example"}

	t.Run("E01_authorization_redacted", func(t *testing.T) {
		for _, base := range []string{s.a, s.b} {
			if r := s.do(t, "GET", base+profilePath, bearer(tok), nil); r.status != 200 {
				t.Errorf("%s: %d", base, r.status)
			}
		}
		access, _ := os.ReadFile(s.accessLog)
		if !bytes.Contains(access, []byte(`"Authorization":["REDACTED"]`)) {
			t.Errorf("the access log does not show Authorization redacted:\n%.2000s", access)
		}
		if !bytes.Contains(access, []byte(`"user_id":"e-user"`)) {
			t.Errorf("the access log lacks the request's user_id: the scan below would check nothing")
		}
		module, _ := os.ReadFile(s.moduleLog)
		if !bytes.Contains(module, []byte(`"level":"debug"`)) {
			t.Errorf("the module's log has no debug line: is it at DEBUG?")
		}
		example, _ := os.ReadFile(filepath.Join("..", "Caddyfile.example"))
		if bytes.Contains(example, []byte("log_credentials")) {
			t.Error("Caddyfile.example sets log_credentials")
		}
		s.noSecrets(t, append([]string{tok}, pii...)...)
	})

	t.Run("E02_query_token_filtered", func(t *testing.T) {
		for _, base := range []string{s.a, s.b} {
			if r := s.do(t, "GET", base+profilePath+"?access_token="+tok+"&x=1", nil, nil); r.status != 200 {
				t.Errorf("%s: %d %s", base, r.status, r.body)
			}
		}
		access, _ := os.ReadFile(s.accessLog)
		if !bytes.Contains(access, []byte(`x=1`)) {
			t.Errorf("the query's other parameters are not logged: the filter ran on nothing?\n%.2000s", access)
		}
		s.noSecrets(t, append([]string{tok}, pii...)...)
	})

	t.Run("E03_filter_bypass_targets", func(t *testing.T) {
		for _, target := range []string{
			"//x:y" + profilePath + "?access_token=" + tok,
			profilePath + "?a=1;access_token=" + tok,
			profilePath + "?access_token=" + tok + "&access_token=" + tok,
			profilePath + "?access%5Ftoken=" + tok,
			profilePath + "?ACCESS_TOKEN=" + tok,
			profilePath + "?Access%5FToken=" + tok + "#frag",
			"/elsewhere?access_token=" + tok,
			"/api/other?token=" + tok,
		} {
			r := rawRoundTrip(t, rawGet(target))
			if strings.Contains(r.body, tok) {
				t.Errorf("%.40s: the answer echoes the token", target)
			}
		}
		s.noSecrets(t, append([]string{tok}, pii...)...)
	})

	t.Run("E04_failure_logs", func(t *testing.T) {
		// failures that log: the store down (error), the backend down (warn),
		// bad tokens (debug), each carrying the token and profile data
		s.store.down.Store(true)
		s.put(t, tok, `{"FirstName":"PrivateFirstName"}`)
		s.get(t, tok)
		s.store.down.Store(false)
		s.do(t, "GET", s.c+profilePath, bearer(tok), nil)
		s.do(t, "GET", s.a+profilePath, bearer(tok[:len(tok)-4]+"AAAA"), nil)
		s.do(t, "GET", s.a+profilePath+"?access_token="+tok, bearer(tok), nil)
		s.backend.Set(500, []byte(`{"detail":"BackendPrivateBody"}`))
		s.do(t, "PUT", s.b+profilePath, jsonPut(tok, ""), []byte(`{"FirstName":"PrivateFirstName"}`))
		s.backend.Set(200, []byte(`{"userId":"u-1","userName":"alice"}`))
		module, _ := os.ReadFile(s.moduleLog)
		if !bytes.Contains(module, []byte("profile store failed")) {
			t.Errorf("the module's log has no store failure: the scan checked nothing of it")
		}
		s.noSecrets(t, append([]string{tok, "BackendPrivateBody"}, pii...)...)
	})

	t.Run("E09_metrics", func(t *testing.T) {
		s.do(t, "GET", s.a+profilePath+"?access_token="+tok, nil, nil)
		m := s.do(t, "GET", itAdmin+"/metrics", nil, nil)
		if m.status != 200 || !bytes.Contains(m.body, []byte("caddy_workspace_profile_requests_total")) {
			t.Fatalf("metrics: %d", m.status)
		}
		for _, leak := range []string{tok, strings.Split(tok, ".")[2], "e-user", "eUser", "mail.example", "PrivateFirstName"} {
			if bytes.Contains(m.body, []byte(leak)) {
				t.Errorf("the metrics hold %q", leak)
			}
		}
		s.noSecrets(t, tok)
	})
}

// TestQueryTokenNeverLeaves: a query token is not forwarded upstream (the
// credential goes as a header), its answers are not stored by caches, and
// query_token off refuses it (rows E05, E07, E08).
func TestQueryTokenNeverLeaves(t *testing.T) {
	s, tok := startPrivateProfile(t)

	t.Run("E05_not_forwarded_upstream", func(t *testing.T) {
		before := len(s.backend.Requests())
		for _, q := range []string{"?access_token=" + tok + "&x=1", "?x=1&access_token=" + tok} {
			if r := s.do(t, "GET", s.b+profilePath+q, nil, nil); r.status != 200 {
				t.Errorf("%s: %d", q, r.status)
			}
		}
		seen := s.backend.Requests()[before:]
		if len(seen) != 2 {
			t.Fatalf("%d requests forwarded", len(seen))
		}
		for _, r := range seen {
			if strings.Contains(r.RequestURI, tok) || strings.Contains(r.RawQuery, "access_token") || r.RawQuery != "x=1" ||
				r.Header.Get("Authorization") != "Bearer "+tok {
				t.Errorf("forwarded %q, Authorization %q", r.RequestURI, r.Header.Get("Authorization"))
			}
		}
		s.noSecrets(t, tok)
	})

	t.Run("E07_answers_not_stored", func(t *testing.T) {
		for _, base := range []string{s.a, s.b} {
			r := s.do(t, "GET", base+profilePath+"?access_token="+tok, nil, nil)
			if r.status != 200 || !strings.Contains(r.header.Get("Cache-Control"), "no-store") {
				t.Errorf("%s: %d Cache-Control %q", base, r.status, r.header.Get("Cache-Control"))
			}
			if bad := s.do(t, "GET", base+profilePath+"?access_token=x.y.z", nil, nil); !strings.Contains(bad.header.Get("Cache-Control"), "no-store") &&
				bad.header.Get("Cache-Control") != "" {
				t.Errorf("%s refusal: Cache-Control %q", base, bad.header.Get("Cache-Control"))
			}
		}
		s.noSecrets(t, tok)
	})

	t.Run("E08_query_token_switch", func(t *testing.T) {
		// the contract: query tokens on by default, query_token off refuses them
		if r := s.do(t, "GET", s.a+profilePath+"?access_token="+tok, nil, nil); r.status != 200 {
			t.Errorf("default on: %d %s", r.status, r.body)
		}
		r := s.do(t, "GET", s.c+profilePath+"?access_token="+tok, nil, nil)
		if r.status != 401 && r.status != 400 {
			t.Errorf("query_token off: %d %s", r.status, r.body)
		}
		if r.status == 401 && r.problemCode(t) != "MissingToken" {
			t.Errorf("query_token off: %s", r.body)
		}
		s.noSecrets(t, tok)
	})
}

// TestRefusalsEchoNothing: 401 and 403 answers have a fixed realm and
// echo nothing of the request URI or the token (row E06).
func TestRefusalsEchoNothing(t *testing.T) {
	s, tok := startPrivateProfile(t)

	t.Run("E06_fixed_realm_no_echo", func(t *testing.T) {
		bad := tok[:len(tok)-6] + "AAAAAA"
		for _, target := range []string{profilePath + "?echo=ECHO-MARKER&access_token=" + bad, profilePath + "?echo=ECHO-MARKER"} {
			hdr := map[string]string{}
			if !strings.Contains(target, "access_token") {
				hdr = bearer(bad)
			}
			r := s.do(t, "GET", s.a+target, hdr, nil)
			wa := r.header.Get("WWW-Authenticate")
			if r.status != 401 || !strings.HasPrefix(wa, `Bearer realm="workspace"`) {
				t.Errorf("%s: %d %q", target, r.status, wa)
			}
			for _, leak := range []string{"ECHO-MARKER", bad, strings.Split(bad, ".")[2], strings.Split(bad, ".")[1]} {
				if strings.Contains(wa, leak) || bytes.Contains(r.body, []byte(leak)) {
					t.Errorf("%s: the answer echoes %.12s", target, leak)
				}
			}
			var p struct{ Instance string }
			_ = json.Unmarshal(r.body, &p)
			if p.Instance != profilePath {
				t.Errorf("instance %q", p.Instance)
			}
		}
		// 403 for a service account: no challenge, nothing echoed
		svc := jwtauthtest.Claims("e-svc")
		svc["UserType"] = 2
		r := s.do(t, "GET", s.a+profilePath+"?echo=ECHO-MARKER", bearer(s.key.Mint(t, svc, nil)), nil)
		if r.status != 403 || r.header.Get("WWW-Authenticate") != "" || bytes.Contains(r.body, []byte("ECHO-MARKER")) {
			t.Errorf("403: %d %v %s", r.status, r.header, r.body)
		}
		s.noSecrets(t, tok, bad)
	})
}

// startPrivateProfile starts the logged sites with e-user's profile, whose
// first name and email are the personal data no log may hold; it returns
// the sites and e-user's token.
func startPrivateProfile(t *testing.T) (*loggedSites, string) {
	s := startLoggedSites(t)
	tok := s.token(t, "e-user")
	if r := s.put(t, tok, `{"UserName":"eUser","FirstName":"PrivateFirstName","Email":"private.person@mail.example"}`); r.status != 200 {
		t.Fatalf("setup: %d %s", r.status, r.body)
	}
	return s, tok
}
