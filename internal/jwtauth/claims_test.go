package jwtauth

import (
	"testing"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jsonscan"
)

func TestClaimReaders(t *testing.T) {
	c, err := decodeClaims([]byte(`{"n":2,"f":1.5e9,"s":"2","b":true,"a":["x", "y"],"o":{"k": 1},"neg":-1}`))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"n": "2", "s": "2", "b": "true", "a": `["x","y"]`, "o": `{"k":1}`} {
		if got, ok := c.Text(name); !ok || got != want {
			t.Errorf("text(%s) = %q, want %q", name, got, want)
		}
	}
	if _, ok := c.Text("missing"); ok {
		t.Error("text of a missing claim")
	}
	if f, ok := jsonscan.Float(c["f"]); !ok || f != 1.5e9 {
		t.Errorf("jsonscan.Float(f) = %v %v", f, ok)
	}
	if _, ok := jsonscan.Float(c["s"]); ok {
		t.Error("a string is a NumericDate")
	}
	if f, ok := jsonscan.Float(c["neg"]); !ok || f != -1 {
		t.Errorf("jsonscan.Float(neg) = %v %v", f, ok)
	}
	if !audienceMatches(c["a"], []string{"y"}) || audienceMatches(c["a"], []string{"z"}) || audienceMatches(c["n"], []string{"2"}) {
		t.Error("audienceMatches")
	}
	for _, bad := range []string{`[]`, `"x"`, `null`, `{`, `{} {}`} {
		if _, err := decodeClaims([]byte(bad)); err == nil {
			t.Errorf("decodeClaims(%s) accepted", bad)
		}
	}
}
