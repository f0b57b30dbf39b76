package jwtauth

import (
	"encoding/json"
	"testing"
)

func TestJSONString(t *testing.T) {
	tests := []struct {
		raw  string
		want string
		ok   bool
	}{
		{`"plain"`, "plain", true},
		{`""`, "", true},
		{`"tab\there"`, "tab\there", true},
		{`"quote\"d"`, `quote"d`, true},
		{`"\u00e9t\u00e9"`, "été", true},
		{`"été"`, "été", true},
		{`12`, "", false},
		{`null`, "", false},
		{`["a"]`, "", false},
		{`"`, "", false},
	}
	for _, tt := range tests {
		got, ok := jsonString(json.RawMessage(tt.raw))
		if got != tt.want || ok != tt.ok {
			t.Errorf("jsonString(%s) = %q, %v; want %q, %v", tt.raw, got, ok, tt.want, tt.ok)
		}
	}
}

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
	if f, ok := numericDate(c["f"]); !ok || f != 1.5e9 {
		t.Errorf("numericDate(f) = %v %v", f, ok)
	}
	if _, ok := numericDate(c["s"]); ok {
		t.Error("a string is a NumericDate")
	}
	if f, ok := numericDate(c["neg"]); !ok || f != -1 {
		t.Errorf("numericDate(neg) = %v %v", f, ok)
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
