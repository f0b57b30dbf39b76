package jwtauth

import (
	"encoding/json"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jsonscan"
)

// Claims is the verified payload of a token, each claim kept as raw JSON
// and decoded only when something asks for it: most requests read a
// handful of claims out of many.
type Claims map[string]json.RawMessage

// Str returns a string claim; ok is false when it is absent or not a string.
func (c Claims) Str(name string) (string, bool) {
	return jsonscan.String(c[name])
}

// Folded returns the values of every member whose name equals name
// ignoring case, as .NET compares claim types: the exactly named member
// first. jsonscan.CheckStrict has made sure no name appears twice exactly.
func (c Claims) Folded(name string) []json.RawMessage {
	var out []json.RawMessage
	if raw, ok := c[name]; ok {
		out = append(out, raw)
	}
	for k, raw := range c {
		if k != name && FoldEqual(k, name) {
			out = append(out, raw)
		}
	}
	return out
}

// Text is a claim's string form: strings unquoted, anything else (numbers
// as written in the token, booleans, arrays, objects) as compact JSON.
func (c Claims) Text(name string) (string, bool) {
	raw, ok := c[name]
	if !ok {
		return "", false
	}
	return RawText(raw), true
}
