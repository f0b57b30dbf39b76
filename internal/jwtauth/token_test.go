package jwtauth

import (
	"encoding/base64"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestPrecheckToken(t *testing.T) {
	part := func(n int) string { return strings.Repeat("A", n) }
	tests := map[string]bool{
		"aaaa.bbbb.cccc":                    true,
		"aQ.bbA.cg":                         true,
		"aR.bbA.cg":                         false, // non-canonical: low bits of R set
		"aQ.bbB.cg":                         false,
		"aQ.bbA.ch":                         false,
		part(100) + "." + part(10) + ".A":   false, // 1 mod 4
		"aaaa.bbbb.cccc.dddd.eeee":          false,
		"aaaa.bbbb":                         false,
		"aaaa..cccc":                        false,
		".bbbb.cccc":                        false,
		"aaaa.bbbb.":                        false,
		"aaaa.bb=b.cccc":                    false,
		"aa+a.bbbb.cccc":                    false,
		"aa/a.bbbb.cccc":                    false,
		"aaaa.bbbb.cc cc":                   false,
		"":                                  false,
		"aaaa.bbbb.cccé":                    false,
		part(MaxTokenLen-10) + ".bbbb.cccc": true, // exactly 8 KiB
		part(MaxTokenLen-9) + ".bbbb.cccc":  false,
	}
	for tok, want := range tests {
		if got := precheckToken(tok); got != want {
			name := tok
			if len(name) > 40 {
				name = name[:40] + "..."
			}
			t.Errorf("precheckToken(%q) = %v, want %v", name, got, want)
		}
	}
}

// FuzzPrecheckToken: the pre-check never panics, never accepts more than
// 8 KiB, and whatever it accepts is three non-empty parts that decode as
// unpadded base64url, which is all jwx is ever handed.
func FuzzPrecheckToken(f *testing.F) {
	for _, s := range []string{"aaaa.bbbb.cccc", "eyJhbGciOiJub25lIn0.e30.", "a.b.c.d.e", "", "..", "a=.b.c", "\xff.\xfe.\xfd"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		if !precheckToken(tok) {
			return
		}
		if len(tok) > MaxTokenLen {
			t.Fatalf("accepted %d bytes", len(tok))
		}
		parts := strings.Split(tok, ".")
		if len(parts) != 3 {
			t.Fatalf("accepted %d parts", len(parts))
		}
		for _, p := range parts {
			// canonical: Strict refuses non-zero unused bits, so one
			// signature has exactly one spelling
			if _, err := base64.RawURLEncoding.Strict().DecodeString(p); err != nil || p == "" {
				t.Fatalf("accepted part %q: %v", p, err)
			}
		}
	})
}

func TestExtractToken(t *testing.T) {
	tests := []struct {
		name    string
		target  string
		auth    []string
		query   bool
		token   string
		errCode string
	}{
		{name: "header", auth: []string{"Bearer abc"}, query: true, token: "abc"},
		{name: "header lower-case scheme", auth: []string{"bearer abc"}, token: "abc"},
		{name: "header extra spaces", auth: []string{"Bearer   abc  "}, token: "abc"},
		{name: "query", target: "/p?x=1&access_token=abc", query: true, token: "abc"},
		{name: "query escaped value", target: "/p?access_token=a%2Eb", query: true, token: "a.b"},
		{name: "query ignored when off", target: "/p?access_token=abc", query: false, errCode: CodeMissingToken},
		{name: "nothing", target: "/p?x=1", query: true, errCode: CodeMissingToken},
		{name: "other scheme", auth: []string{"Basic abc"}, errCode: CodeMissingToken},
		{name: "scheme only", auth: []string{"Bearer"}, errCode: CodeMissingToken},
		{name: "both", target: "/p?access_token=abc", auth: []string{"Bearer abc"}, query: true, errCode: CodeInvalidRequest},
		{name: "query twice", target: "/p?access_token=a&access_token=b", query: true, errCode: CodeInvalidRequest},
		{name: "encoded name", target: "/p?%61ccess_token=abc", query: true, errCode: CodeInvalidRequest},
		{name: "two headers", auth: []string{"Bearer a", "Bearer b"}, errCode: CodeInvalidRequest},
		{name: "empty query value", target: "/p?access_token=", query: true, errCode: CodeInvalidToken},
		{name: "bad escape", target: "/p?access_token=%zz", query: true, errCode: CodeInvalidToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := tt.target
			if target == "" {
				target = "/p"
			}
			r := httptest.NewRequest("GET", target, nil)
			for _, a := range tt.auth {
				r.Header.Add("Authorization", a)
			}
			tok, aerr := ExtractToken(r, tt.query)
			if tt.errCode != "" {
				if aerr == nil || aerr.Code != tt.errCode {
					t.Fatalf("got token %q, err %v; want %s", tok, aerr, tt.errCode)
				}
				return
			}
			if aerr != nil || tok != tt.token {
				t.Fatalf("got %q, %v; want %q", tok, aerr, tt.token)
			}
		})
	}
}

// TestExtractCredential: the DPoP scheme is taken beside Bearer, every rule
// of ExtractToken holds for it, and ExtractToken itself still reads it as
// another scheme.
func TestExtractCredential(t *testing.T) {
	tests := []struct {
		name    string
		target  string
		auth    []string
		query   bool
		token   string
		scheme  string
		errCode string
		// what ExtractToken says of the same request: the old rules
		oldToken string
		oldCode  string
	}{
		{name: "bearer", auth: []string{"Bearer abc"}, query: true, token: "abc", scheme: SchemeBearer, oldToken: "abc"},
		{name: "query", target: "/p?access_token=abc", query: true, token: "abc", scheme: SchemeQuery, oldToken: "abc"},
		{name: "dpop", auth: []string{"DPoP abc"}, query: true, token: "abc", scheme: SchemeDPoP, oldCode: CodeMissingToken},
		{name: "dpop any case", auth: []string{"dpop abc"}, token: "abc", scheme: SchemeDPoP, oldCode: CodeMissingToken},
		{name: "dpop extra spaces", auth: []string{"DPoP   abc "}, token: "abc", scheme: SchemeDPoP, oldCode: CodeMissingToken},
		{name: "dpop scheme only", auth: []string{"DPoP"}, errCode: CodeMissingToken, oldCode: CodeMissingToken},
		{name: "dpop empty", auth: []string{"DPoP  "}, errCode: CodeMissingToken, oldCode: CodeMissingToken},
		{name: "dpop and query", target: "/p?access_token=abc", auth: []string{"DPoP abc"}, query: true, errCode: CodeInvalidRequest, oldCode: CodeMissingToken},
		{name: "dpop and query off", target: "/p?access_token=abc", auth: []string{"DPoP abc"}, token: "abc", scheme: SchemeDPoP, oldCode: CodeMissingToken},
		{name: "dpop and bearer headers", auth: []string{"DPoP a", "Bearer b"}, errCode: CodeInvalidRequest, oldCode: CodeInvalidRequest},
		{name: "dpop with misspelled parameter", target: "/p?ACCESS_TOKEN=x", auth: []string{"DPoP a"}, errCode: CodeInvalidRequest, oldCode: CodeMissingToken},
		{name: "other scheme", auth: []string{"DPoPx abc"}, errCode: CodeMissingToken, oldCode: CodeMissingToken},
		{name: "basic", auth: []string{"Basic abc"}, errCode: CodeMissingToken, oldCode: CodeMissingToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := tt.target
			if target == "" {
				target = "/p"
			}
			r := httptest.NewRequest("GET", target, nil)
			for _, a := range tt.auth {
				r.Header.Add("Authorization", a)
			}
			c, aerr := ExtractCredential(r, tt.query)
			switch {
			case tt.errCode != "":
				if aerr == nil || aerr.Code != tt.errCode {
					t.Fatalf("got %+v, err %v; want %s", c, aerr, tt.errCode)
				}
			case aerr != nil || c.Token != tt.token || c.Scheme != tt.scheme:
				t.Fatalf("got %+v, %v; want %q under %s", c, aerr, tt.token, tt.scheme)
			}
			tok, oerr := ExtractToken(r, tt.query)
			switch {
			case tt.oldCode != "":
				if oerr == nil || oerr.Code != tt.oldCode {
					t.Fatalf("ExtractToken: got %q, err %v; want %s", tok, oerr, tt.oldCode)
				}
			case oerr != nil || tok != tt.oldToken:
				t.Fatalf("ExtractToken: got %q, %v; want %q", tok, oerr, tt.oldToken)
			}
		})
	}
}
