package jwtauth

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

// splitClaims must answer exactly as decodeClaims does, for any input: the
// same error or none, the same names and byte-identical values.
func checkSplitAgrees(t *testing.T, raw []byte) {
	t.Helper()
	want, werr := decodeClaims(raw)
	got, gerr := splitClaims(raw)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%q: decodeClaims error %v, splitClaims error %v", raw, werr, gerr)
	}
	if len(got) != len(want) {
		t.Fatalf("%q: %d members, decodeClaims has %d", raw, len(got), len(want))
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || !bytes.Equal(g, v) {
			t.Fatalf("%q: member %q is %q, decodeClaims has %q", raw, k, g, v)
		}
	}
}

var splitSeeds = []string{
	`{}`, ` { } `, `{"sub":"u-1","exp":1700000000,"aud":["a","b"],"cnf":{"jkt":"x"}}`,
	`{"a":1,"a":2}`, `{"a\u0062":"c\"d"}`, `{"é":"ü","x":"\u00e9"}`, `{"a":[{"b":"]}"}],"c":null}`,
	`{"a":true,"b":false,"c":-1.5e3}`, "{\"a\":\"\x01\"}", "{\"a\x01\":1}", `{"a":1,}`, `{"a" 1}`,
	`{"a":1}x`, `{"a":tru}`, `{"a":[1,2}`, `{"a":"`, `null`, `[]`, `"x"`, ``, `{"a":{"b":{"c":[[]]}}}`,
	"{\"a\":\"\xff\"}", "{\"\xff\":1}", `{"a":01}`, `{"a":1 , "b" : 2 }`, "{\"a\":\t\"b\"\n}",
}

func TestSplitClaimsAgreesWithDecodeClaims(t *testing.T) {
	for _, s := range splitSeeds {
		checkSplitAgrees(t, []byte(s))
	}
	// the members really are cut, not handed to the fallback
	c, ok := cutObject([]byte(`{"sub":"u-1","aud":["a"],"n":2}`))
	if !ok || string(c["sub"]) != `"u-1"` || string(c["aud"]) != `["a"]` || string(c["n"]) != "2" {
		t.Fatalf("cutObject: %v %q", ok, c)
	}
}

func FuzzSplitClaims(f *testing.F) {
	for _, s := range splitSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) { checkSplitAgrees(t, raw) })
}

// FoldEqual's ASCII fast path must agree with the rune-by-rune rule.
func TestFoldEqualASCIIPath(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"UserType", "usertype", true}, {"sub", "SUB", true}, {"sub", "sub2", false}, {"[", "{", false},
		{"@", "`", false}, {"a_b", "A_B", true}, {"kid", "\u212aid", true}, {"kis", "KI\u017f", true},
		{"user type", "usertype", false}, {"", "", true}, {"a", "", false}, {"Ab\xff", "ab\xff", false},
	} {
		if got := FoldEqual(c.a, c.b); got != c.want {
			t.Errorf("FoldEqual(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func FuzzFoldEqual(f *testing.F) {
	f.Add("UserType", "usertype")
	f.Add("kid", "\u212aid")
	f.Fuzz(func(t *testing.T, a, b string) {
		want := utf8.ValidString(a) && utf8.ValidString(b) && strings.EqualFold(a, b)
		if got := FoldEqual(a, b); got != want {
			t.Fatalf("FoldEqual(%q, %q) = %v, strings.EqualFold says %v", a, b, got, want)
		}
	})
}
