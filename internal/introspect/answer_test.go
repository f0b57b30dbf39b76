package introspect

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
)

// TestAnswerRules: every rule on an answer, each once broken. A refusal
// that holds whatever the rules is cached for negative_ttl, an answer
// that is no verdict on the token (not strict JSON) is not cached, and an
// active answer is cached and re-checked on the hit: the second Verify
// of each case must give the first one's answer, with one call or two as
// the case says.
func TestAnswerRules(t *testing.T) {
	zero := time.Duration(0)
	tests := []struct {
		name  string
		mod   func(*Config)
		body  func(e *env) []byte
		code  string
		calls int // endpoint calls after two Verify
		check func(t *testing.T, c jwtauth.Claims)
	}{
		{name: "active", body: func(e *env) []byte { return e.answer(nil) }, calls: 1},
		{name: "active_string", body: func(e *env) []byte { return e.answer(map[string]any{"active": "true"}) }, code: "InvalidToken", calls: 1},
		{name: "active_one", body: func(e *env) []byte { return e.answer(map[string]any{"active": 1}) }, code: "InvalidToken", calls: 1},
		{name: "active_missing", body: func(e *env) []byte { return e.answer(map[string]any{"active": nil}) }, code: "InvalidToken", calls: 1},
		{name: "active_false", body: func(e *env) []byte { return []byte(`{"active":false}`) }, code: "InvalidToken", calls: 1},
		{name: "active_string_null", body: func(e *env) []byte { return e.answer(map[string]any{"active": "null"}) }, code: "InvalidToken", calls: 1},
		{name: "active_only_in_ext", body: func(e *env) []byte {
			return e.answer(map[string]any{"active": nil, "ext": map[string]any{"active": true}})
		}, code: "InvalidToken", calls: 1},
		{name: "no_exp", body: func(e *env) []byte { return e.answer(map[string]any{"exp": nil}) }, calls: 1},
		{name: "no_iss", body: func(e *env) []byte { return e.answer(map[string]any{"iss": nil}) }, calls: 1},
		{name: "no_aud", body: func(e *env) []byte { return e.answer(map[string]any{"aud": nil}) }, code: "InvalidAudience", calls: 1},
		{name: "wrong_aud", body: func(e *env) []byte { return e.answer(map[string]any{"aud": "other-api"}) }, code: "InvalidAudience", calls: 1},
		{name: "aud_array", body: func(e *env) []byte { return e.answer(map[string]any{"aud": []string{"other-api", "workspace-api"}}) }, calls: 1},
		{name: "aud_only_in_ext", body: func(e *env) []byte {
			return e.answer(map[string]any{"aud": nil, "ext": map[string]any{"aud": "workspace-api"}})
		}, code: "InvalidAudience", calls: 1},
		{name: "foreign_iss", body: func(e *env) []byte { return e.answer(map[string]any{"iss": "https://evil.test"}) }, code: "InvalidIssuer", calls: 1},
		{name: "exp_past", mod: func(c *Config) { c.Leeway = &zero }, body: func(e *env) []byte {
			return e.answer(map[string]any{"exp": e.clock.Now().Add(-time.Second).Unix()})
		}, code: "TokenExpired", calls: 2},
		{name: "exp_string", body: func(e *env) []byte { return e.answer(map[string]any{"exp": "9999999999"}) }, code: "InvalidToken", calls: 1},
		{name: "nbf_future", mod: func(c *Config) { c.Leeway = &zero }, body: func(e *env) []byte {
			return e.answer(map[string]any{"nbf": e.clock.Now().Add(time.Minute).Unix()})
		}, code: "TokenNotYetValid", calls: 1},
		{name: "max_lifetime", mod: func(c *Config) { c.MaxLifetime = 10 * time.Minute }, body: func(e *env) []byte { return e.answer(nil) }, code: "InvalidToken", calls: 1},
		{name: "clients_other", mod: func(c *Config) { c.Clients = []string{"app-2"} }, body: func(e *env) []byte { return e.answer(nil) }, code: "InvalidToken", calls: 1},
		{name: "clients_match", mod: func(c *Config) { c.Clients = []string{"app-1"} }, body: func(e *env) []byte { return e.answer(nil) }, calls: 1},
		{name: "refresh_token_use", body: func(e *env) []byte { return e.answer(map[string]any{"token_use": "refresh_token"}) }, code: "InvalidToken", calls: 1},
		{name: "access_token_use", body: func(e *env) []byte { return e.answer(map[string]any{"token_use": "access_token"}) }, calls: 1},
		{name: "refresh_token_type", body: func(e *env) []byte { return e.answer(map[string]any{"token_type": "refresh_token"}) }, code: "InvalidToken", calls: 1},
		{name: "refresh_token_type_urn", body: func(e *env) []byte {
			return e.answer(map[string]any{"token_type": "urn:ietf:params:oauth:token-type:refresh_token"})
		}, code: "InvalidToken", calls: 1},
		{name: "ext_claims", body: func(e *env) []byte {
			return e.answer(map[string]any{"ext": map[string]any{"email": "a@example.com", "UserType": 2, "sub": "mallory", "cnf": map[string]any{"jkt": "x"}}})
		}, calls: 1, check: func(t *testing.T, c jwtauth.Claims) {
			if s, _ := c.Str("email"); s != "a@example.com" {
				t.Fatalf("email from ext: %q", s)
			}
			if string(c["UserType"]) != "2" {
				t.Fatalf("UserType from ext: %s", c["UserType"])
			}
			if s, _ := c.Str("sub"); s != "alice" {
				t.Fatalf("sub taken from ext: %q", s)
			}
			if _, ok := c["cnf"]; ok {
				t.Fatal("cnf taken from ext")
			}
		}},
		{name: "ext_does_not_override", body: func(e *env) []byte {
			return e.answer(map[string]any{"email": "top@example.com", "ext": map[string]any{"email": "ext@example.com"}})
		}, calls: 1, check: func(t *testing.T, c jwtauth.Claims) {
			if s, _ := c.Str("email"); s != "top@example.com" {
				t.Fatalf("email: %q", s)
			}
		}},
		{name: "duplicate_active", body: func(e *env) []byte {
			return []byte(`{"active":false,"active":true,"aud":"workspace-api","sub":"alice"}`)
		}, code: "InvalidToken", calls: 2},
		{name: "duplicate_aud", body: func(e *env) []byte {
			return []byte(`{"active":true,"aud":"other","aud":"workspace-api","sub":"alice"}`)
		}, code: "InvalidToken", calls: 2},
		{name: "duplicate_in_ext", body: func(e *env) []byte {
			return []byte(`{"active":true,"aud":"workspace-api","sub":"alice","ext":{"UserType":1,"UserType":2}}`)
		}, code: "InvalidToken", calls: 2},
		{name: "lone_surrogate", body: func(e *env) []byte {
			return []byte(`{"active":true,"aud":"workspace-api","sub":"alice\ud800"}`)
		}, code: "InvalidToken", calls: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.mod)
			e.serve(tt.body(e))
			for range 2 {
				c, aerr := e.verify(testToken)
				wantCode(t, aerr, tt.code)
				if tt.check != nil && aerr == nil {
					tt.check(t, c)
				}
			}
			if e.calls() != tt.calls {
				t.Fatalf("%d endpoint calls, want %d", e.calls(), tt.calls)
			}
		})
	}
}

// TestNoExpCachedForCacheTTL: an answer without exp is used for cache_ttl
// and asked again after it.
func TestNoExpCachedForCacheTTL(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.CacheTTL = 10 * time.Second })
	e.serve(e.answer(map[string]any{"exp": nil}))
	for _, step := range []struct {
		advance time.Duration
		calls   int
	}{{0, 1}, {9 * time.Second, 1}, {time.Second, 2}, {9 * time.Second, 2}, {time.Second, 3}} {
		e.clock.Advance(step.advance)
		_, aerr := e.verify(testToken)
		wantCode(t, aerr, "")
		if e.calls() != step.calls {
			t.Fatalf("after %s: %d calls, want %d", step.advance, e.calls(), step.calls)
		}
	}
}

// TestCachedAnswerNeverUsedPastExp: an answer expiring before cache_ttl
// is used until its exp only; past it the endpoint is asked again, and an
// answer still naming that exp is refused as expired.
func TestCachedAnswerNeverUsedPastExp(t *testing.T) {
	zero := time.Duration(0)
	e := newEnv(t, func(c *Config) { c.Leeway = &zero })
	e.serve(e.answer(map[string]any{"exp": e.clock.Now().Add(10 * time.Second).Unix()}))
	_, aerr := e.verify(testToken)
	wantCode(t, aerr, "")
	e.clock.Advance(9 * time.Second)
	_, aerr = e.verify(testToken)
	wantCode(t, aerr, "")
	if e.calls() != 1 {
		t.Fatalf("%d calls before exp", e.calls())
	}
	e.clock.Advance(2 * time.Second)
	_, aerr = e.verify(testToken)
	wantCode(t, aerr, "TokenExpired")
	if e.calls() != 2 {
		t.Fatalf("%d calls after exp, want 2", e.calls())
	}
}

// TestCacheHitRechecksRules: an entry in the cache passes only what
// a fresh answer would: one cached past its exp, for another audience or
// another client, or not yet valid is refused on the hit, without a call;
// one whose nbf has since passed is accepted on the hit.
func TestCacheHitRechecksRules(t *testing.T) {
	zero := time.Duration(0)
	tests := []struct {
		name  string
		mod   func(*Config)
		claim map[string]any
		code  string
	}{
		{"past_exp", nil, map[string]any{"exp": -time.Hour}, "TokenExpired"},
		{"other_audience", nil, map[string]any{"aud": "other-api"}, "InvalidAudience"},
		{"other_client", func(c *Config) { c.Clients = []string{"app-2"} }, nil, "InvalidToken"},
		{"longer_than_max_lifetime", func(c *Config) { c.MaxLifetime = time.Minute }, nil, "InvalidToken"},
		{"not_yet_valid", nil, map[string]any{"nbf": time.Hour}, "TokenNotYetValid"},
		{"foreign_issuer", nil, map[string]any{"iss": "https://evil.test"}, "InvalidIssuer"},
		{"good", nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) {
				c.Leeway = &zero
				if tt.mod != nil {
					tt.mod(c)
				}
			})
			extra := map[string]any{}
			for k, v := range tt.claim {
				if d, ok := v.(time.Duration); ok {
					v = e.clock.Now().Add(d).Unix()
				}
				extra[k] = v
			}
			c, _, err := parseAnswer(e.answer(extra))
			if err != nil || c == nil {
				t.Fatalf("answer: %v", err)
			}
			// as a cache shared with a config of other rules would hold it
			e.in.cache.Add(sha256.Sum256([]byte(testToken)), entry{claims: c, until: e.clock.Now().Add(time.Minute)})
			_, aerr := e.verify(testToken)
			wantCode(t, aerr, tt.code)
			if e.calls() != 0 {
				t.Fatal("a cache hit called the endpoint")
			}
		})
	}
	t.Run("nbf_passes_while_cached", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.Leeway = &zero })
		e.serve(e.answer(map[string]any{"nbf": e.clock.Now().Add(5 * time.Second).Unix()}))
		_, aerr := e.verify(testToken)
		wantCode(t, aerr, "TokenNotYetValid")
		e.clock.Advance(6 * time.Second)
		_, aerr = e.verify(testToken)
		wantCode(t, aerr, "")
		if e.calls() != 1 {
			t.Fatalf("%d calls", e.calls())
		}
	})
}

// TestRevokedTokenRefusedAfterCacheTTL: a token the endpoint stops
// calling active is refused once its answer's cache_ttl has passed; the
// inactive answer is then kept for negative_ttl only.
func TestRevokedTokenRefusedAfterCacheTTL(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.CacheTTL = 30 * time.Second; c.NegativeTTL = 5 * time.Second })
	e.serve(e.answer(nil))
	steps := []struct {
		name    string
		advance time.Duration
		body    []byte
		code    string
		calls   int
	}{
		{"active", 0, nil, "", 1},
		{"revoked, answer cached", 29 * time.Second, []byte(`{"active":false}`), "", 1},
		{"revoked, cache_ttl passed", time.Second, nil, "InvalidToken", 2},
		{"negative answer cached", 4 * time.Second, e.answer(nil), "InvalidToken", 2},
		{"negative_ttl passed", time.Second, nil, "", 3},
	}
	for _, s := range steps {
		e.clock.Advance(s.advance)
		if s.body != nil {
			e.serve(s.body)
		}
		_, aerr := e.verify(testToken)
		if (aerr == nil) != (s.code == "") || (aerr != nil && aerr.Code != s.code) {
			t.Fatalf("%s: %v, want %q", s.name, aerr, s.code)
		}
		if e.calls() != s.calls {
			t.Fatalf("%s: %d calls, want %d", s.name, e.calls(), s.calls)
		}
	}
}

// TestCacheBounded: the cache holds cache_size answers at most.
func TestCacheBounded(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.CacheSize = 3 })
	e.serve(e.answer(nil))
	for i := range 10 {
		_, aerr := e.verify(fmt.Sprintf("token-%d", i))
		wantCode(t, aerr, "")
	}
	if n := e.in.Status().CachedAnswers; n != 3 {
		t.Fatalf("%d answers cached", n)
	}
}
