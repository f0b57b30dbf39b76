package introspect

import (
	"encoding/json"
	"testing"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jsonscan"
)

// FuzzIntrospectionAnswer: on any body, parseAnswer never panics and
// gives exactly one of claims, a refusal or an error; claims come only
// from a strict JSON object whose top-level active is the value true, and
// every registered member of them is the top level's own, never ext's.
//
//	go test ./internal/introspect -run '^$' -fuzz FuzzIntrospectionAnswer -fuzztime 10s
func FuzzIntrospectionAnswer(f *testing.F) {
	for _, s := range []string{
		`{"active":true,"sub":"alice","aud":"workspace-api","exp":1900000000}`,
		`{"active":"true"}`, `{"active":1}`, `{}`, `{"active":false}`, `[true]`, `null`, `<html>`,
		`{"active":false,"active":true}`,
		`{"active":true,"ext":{"sub":"mallory","aud":"x","email":"e","active":true}}`,
		`{"active":true,"token_use":"refresh_token"}`, `{"active":true,"token_type":"refresh_token"}`,
		`{"active":true,"sub":"\ud800"}`, `{"active":true,"ext":[1]}`, `{"active":true,"ext":{"a":1,"a":2}}`,
		` {"active" : true } `, `{"active":true}x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c, refusal, err := parseAnswer(body)
		outcomes := 0
		for _, b := range []bool{c != nil, refusal != nil, err != nil} {
			if b {
				outcomes++
			}
		}
		if outcomes != 1 {
			t.Fatalf("claims %v, refusal %v, error %v", c, refusal, err)
		}
		if c == nil {
			return
		}
		if jsonscan.CheckStrict(body) != nil {
			t.Fatal("claims from JSON that is not strict")
		}
		var top map[string]any
		if err := json.Unmarshal(body, &top); err != nil || top["active"] != true {
			t.Fatalf("claims from an answer encoding/json reads as %v (%v)", top, err)
		}
		var raw map[string]json.RawMessage
		_ = json.Unmarshal(body, &raw)
		for name := range registered {
			if got, want := string(c[name]), string(raw[name]); got != want {
				t.Fatalf("%s is %s, the top level's is %s", name, got, want)
			}
		}
	})
}
