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

// TestExtractCredential: with DPoP not accepted, a bearer token from the
// header or the query, and DPoP is another scheme; with DPoP accepted, the
// DPoP scheme is taken beside Bearer and every rule holds for it.
func TestExtractCredential(t *testing.T) {
	// outcome is what one call says of a request: a token (and, when
	// scheme is set, the scheme it came under) or a refusal's code
	type outcome struct{ token, scheme, errCode string }
	tests := []struct {
		name   string
		target string
		auth   []string
		query  bool
		bearer outcome  // DPoP not accepted
		dpop   *outcome // DPoP accepted; nil: not asserted
	}{
		{name: "header", auth: []string{"Bearer abc"}, query: true, bearer: outcome{token: "abc"}},
		{name: "header lower-case scheme", auth: []string{"bearer abc"}, bearer: outcome{token: "abc"}},
		{name: "header extra spaces", auth: []string{"Bearer   abc  "}, bearer: outcome{token: "abc"}},
		{name: "query", target: "/p?x=1&access_token=abc", query: true, bearer: outcome{token: "abc"}},
		{name: "query escaped value", target: "/p?access_token=a%2Eb", query: true, bearer: outcome{token: "a.b"}},
		{name: "query ignored when off", target: "/p?access_token=abc", query: false, bearer: outcome{errCode: CodeMissingToken}},
		{name: "nothing", target: "/p?x=1", query: true, bearer: outcome{errCode: CodeMissingToken}},
		{name: "other scheme", auth: []string{"Basic abc"}, bearer: outcome{errCode: CodeMissingToken}},
		{name: "scheme only", auth: []string{"Bearer"}, bearer: outcome{errCode: CodeMissingToken}},
		{name: "both", target: "/p?access_token=abc", auth: []string{"Bearer abc"}, query: true, bearer: outcome{errCode: CodeInvalidRequest}},
		{name: "query twice", target: "/p?access_token=a&access_token=b", query: true, bearer: outcome{errCode: CodeInvalidRequest}},
		{name: "encoded name", target: "/p?%61ccess_token=abc", query: true, bearer: outcome{errCode: CodeInvalidRequest}},
		{name: "two headers", auth: []string{"Bearer a", "Bearer b"}, bearer: outcome{errCode: CodeInvalidRequest}},
		{name: "empty query value", target: "/p?access_token=", query: true, bearer: outcome{errCode: CodeInvalidToken}},
		{name: "bad escape", target: "/p?access_token=%zz", query: true, bearer: outcome{errCode: CodeInvalidToken}},

		{name: "bearer", auth: []string{"Bearer abc"}, query: true, bearer: outcome{token: "abc"}, dpop: &outcome{token: "abc", scheme: SchemeBearer}},
		{name: "query, DPoP accepted", target: "/p?access_token=abc", query: true, bearer: outcome{token: "abc"}, dpop: &outcome{token: "abc", scheme: SchemeQuery}},
		{name: "dpop", auth: []string{"DPoP abc"}, query: true, bearer: outcome{errCode: CodeMissingToken}, dpop: &outcome{token: "abc", scheme: SchemeDPoP}},
		{name: "dpop any case", auth: []string{"dpop abc"}, bearer: outcome{errCode: CodeMissingToken}, dpop: &outcome{token: "abc", scheme: SchemeDPoP}},
		{name: "dpop extra spaces", auth: []string{"DPoP   abc "}, bearer: outcome{errCode: CodeMissingToken}, dpop: &outcome{token: "abc", scheme: SchemeDPoP}},
		{name: "dpop scheme only", auth: []string{"DPoP"}, bearer: outcome{errCode: CodeMissingToken}, dpop: &outcome{errCode: CodeMissingToken}},
		{name: "dpop empty", auth: []string{"DPoP  "}, bearer: outcome{errCode: CodeMissingToken}, dpop: &outcome{errCode: CodeMissingToken}},
		{name: "dpop and query", target: "/p?access_token=abc", auth: []string{"DPoP abc"}, query: true, bearer: outcome{errCode: CodeMissingToken}, dpop: &outcome{errCode: CodeInvalidRequest}},
		{name: "dpop and query off", target: "/p?access_token=abc", auth: []string{"DPoP abc"}, bearer: outcome{errCode: CodeMissingToken}, dpop: &outcome{token: "abc", scheme: SchemeDPoP}},
		{name: "dpop and bearer headers", auth: []string{"DPoP a", "Bearer b"}, bearer: outcome{errCode: CodeInvalidRequest}, dpop: &outcome{errCode: CodeInvalidRequest}},
		{name: "dpop with misspelled parameter", target: "/p?ACCESS_TOKEN=x", auth: []string{"DPoP a"}, bearer: outcome{errCode: CodeMissingToken}, dpop: &outcome{errCode: CodeInvalidRequest}},
		{name: "dpop-like scheme", auth: []string{"DPoPx abc"}, bearer: outcome{errCode: CodeMissingToken}, dpop: &outcome{errCode: CodeMissingToken}},
		{name: "basic", auth: []string{"Basic abc"}, bearer: outcome{errCode: CodeMissingToken}, dpop: &outcome{errCode: CodeMissingToken}},
	}
	check := func(t *testing.T, mode string, c Credential, aerr *Error, want outcome) {
		t.Helper()
		switch {
		case want.errCode != "":
			if aerr == nil || aerr.Code != want.errCode {
				t.Fatalf("%s: got %+v, err %v; want %s", mode, c, aerr, want.errCode)
			}
		case aerr != nil || c.Token != want.token || (want.scheme != "" && c.Scheme != want.scheme):
			t.Fatalf("%s: got %+v, %v; want %q under %q", mode, c, aerr, want.token, want.scheme)
		}
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
			c, aerr := ExtractCredential(r, tt.query, false)
			check(t, "DPoP not accepted", c, aerr, tt.bearer)
			if tt.dpop != nil {
				c, aerr := ExtractCredential(r, tt.query, true)
				check(t, "DPoP accepted", c, aerr, *tt.dpop)
			}
		})
	}
}
