package jwtauth

import (
	"encoding/json"
	"testing"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jsonscan"
)

// TestSplitClaimsAgreesWithDecodeOnAdversarialPayloads: payloads built to make the cache
// hit's splitter and decodeClaims read a claim differently. Each is put
// through Verify's own gate (jsonscan.CheckStrict then decodeClaims) and, when
// it passes, splitClaims must give the very same members.
func TestSplitClaimsAgreesWithDecodeOnAdversarialPayloads(t *testing.T) {
	deep := ""
	for range 2000 {
		deep += "["
	}
	for range 2000 {
		deep += "]"
	}
	payloads := []string{
		`{"sub":"a","s\u0075b":"b"}`,
		`{"sub":"a" , "cnf" : {"jkt":"x","jkt":"y"}}`,
		"\ufeff{\"sub\":\"a\"}",
		`{"sub":"a","n":1e999}`,
		`{"sub":"a","n":-0.0e-0}`,
		`{"sub":"a","n":123456789012345678901234567890}`,
		`{"sub":"a","d":` + deep + `}`,
		`{"sub":"a","x":"\"}","cnf":{"jkt":"k"}}`,
		`{"sub":"a","x":"\\","cnf":{"jkt":"k"}}`,
		`{"sub":"a","cnf":{"jkt":"k"},"y":"]}"}`,
		`{"sub":"a","\u0063nf":{"jkt":"k"}}`,
		`{"sub":"a","é":"1","é":"2"}`,
		"{\"sub\":\"a\",\"k\":\"\u2028\"}",
		`{"sub":"a"}` + "\n",
		` {"sub":"a"} `,
		`{"sub":"a",}`,
		`{"sub":"a"}{}`,
		`{"sub":"a","t":true,"f":false,"z":null}`,
		`{"sub":"a","t":tru}`,
		`{"sub":"a","o":{"a":[1,{"b":"}"}]}}`,
	}
	for _, p := range payloads {
		raw := []byte(p)
		if jsonscan.CheckStrict(raw) != nil {
			continue
		}
		want, err := decodeClaims(raw)
		if err != nil {
			continue
		}
		got, err := splitClaims(raw)
		if err != nil {
			t.Errorf("%q: splitClaims refused what decodeClaims read: %v", p, err)
			continue
		}
		if len(got) != len(want) {
			t.Errorf("%q: %d members, want %d", p, len(got), len(want))
		}
		for name, w := range want {
			g, ok := got[name]
			if !ok || !jsonEqual(g, w) {
				t.Errorf("%q: member %q is %s, want %s", p, name, g, w)
			}
		}
	}
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return string(a) == string(b)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya) && string(a) == string(b)
}
