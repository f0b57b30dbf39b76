package jwtauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// Why a claims set is refused before its claims are read. Each makes two
// parsers (this edge, a backend, a log pipeline) able to read one token
// two ways, so none of them is accepted.
var (
	errClaimsUTF8      = errors.New("claims are not valid UTF-8")
	errClaimsSurrogate = errors.New("claims hold a lone UTF-16 surrogate")
	errClaimsControl   = errors.New("claims hold a control character")
	errClaimsDuplicate = errors.New("claims name a member twice")
	errClaimsSyntax    = errors.New("claims are not well-formed JSON")
)

// maxListedKeys is how many member names of one object are compared by a
// linear scan; larger objects use a map, so an 8 KiB token cannot cost a
// quadratic number of comparisons.
const maxListedKeys = 16

// checkClaimsJSON refuses what encoding/json would accept by rewriting or
// by choosing silently (RFC 8259 §8.1, RFC 7493 I-JSON):
//
//   - invalid UTF-8 (json.Unmarshal turns it into U+FFFD, so that subjects
//     `user\xff` and `user\xfe` would share one profile);
//   - a \u escape of a lone surrogate (turned into U+FFFD too);
//   - a control character, raw or escaped (C0, DEL, C1), in any string,
//     so that no claim value can reach a header or a log line raw;
//   - a member named twice in any object, names compared after unescaping
//     (RFC 7519 §4 lets a parser take either; the last wins here, the
//     first in some backends).
//
// The JSON grammar itself is left to json.Unmarshal, which runs after; this
// scan only has to stay safe on malformed input.
func checkClaimsJSON(raw []byte) error {
	if !utf8.Valid(raw) {
		return errClaimsUTF8
	}
	type frame struct {
		object    bool
		expectKey bool
		keys      [][]byte
		set       map[string]struct{}
	}
	var stackBuf [8]frame
	stack := stackBuf[:0]
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; c {
		case '{', '[':
			stack = append(stack, frame{object: c == '{', expectKey: c == '{'})
		case '}', ']':
			if len(stack) == 0 {
				return errClaimsSyntax
			}
			stack = stack[:len(stack)-1]
		case ',':
			if n := len(stack); n > 0 && stack[n-1].object {
				stack[n-1].expectKey = true
			}
		case '"':
			end, escaped, err := scanString(raw, i)
			if err != nil {
				return err
			}
			if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].expectKey {
				f := &stack[n-1]
				f.expectKey = false
				name := raw[i+1 : end]
				if escaped {
					var s string
					if json.Unmarshal(raw[i:end+1], &s) != nil {
						return errClaimsSyntax
					}
					name = []byte(s)
				}
				if f.set == nil && len(f.keys) < maxListedKeys {
					for _, k := range f.keys {
						if bytes.Equal(k, name) {
							return errClaimsDuplicate
						}
					}
					f.keys = append(f.keys, name)
				} else {
					if f.set == nil {
						f.set = make(map[string]struct{}, 2*maxListedKeys)
						for _, k := range f.keys {
							f.set[string(k)] = struct{}{}
						}
						f.keys = nil
					}
					if _, dup := f.set[string(name)]; dup {
						return errClaimsDuplicate
					}
					f.set[string(name)] = struct{}{}
				}
			}
			i = end
		}
	}
	return nil
}

// scanString reads the JSON string starting at raw[start] (a quote) and
// returns the index of its closing quote and whether it holds escapes.
func scanString(raw []byte, start int) (end int, escaped bool, err error) {
	for i := start + 1; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '"':
			return i, escaped, nil
		case c < 0x20 || c == 0x7f:
			return 0, false, errClaimsControl
		case c == 0xc2 && i+1 < len(raw) && raw[i+1] >= 0x80 && raw[i+1] <= 0x9f: // C1, U+0080-U+009F
			return 0, false, errClaimsControl
		case c == '\\':
			escaped = true
			if i+1 >= len(raw) {
				return 0, false, errClaimsSyntax
			}
			i++
			switch raw[i] {
			case 'b', 'f', 'n', 'r', 't':
				return 0, false, errClaimsControl
			case 'u':
			default:
				continue
			}
			r, ok := hex4(raw, i+1)
			if !ok {
				return 0, false, errClaimsSyntax
			}
			i += 4
			switch {
			case r < 0x20 || r >= 0x7f && r <= 0x9f:
				return 0, false, errClaimsControl
			case r >= 0xdc00 && r <= 0xdfff:
				return 0, false, errClaimsSurrogate
			case r >= 0xd800 && r <= 0xdbff:
				// a high surrogate must be followed by an escaped low one
				if i+2 >= len(raw) || raw[i+1] != '\\' || raw[i+2] != 'u' {
					return 0, false, errClaimsSurrogate
				}
				lo, ok := hex4(raw, i+3)
				if !ok || lo < 0xdc00 || lo > 0xdfff {
					return 0, false, errClaimsSurrogate
				}
				i += 6
			}
		}
	}
	return 0, false, errClaimsSyntax
}

// hex4 reads four hex digits at raw[i:].
func hex4(raw []byte, i int) (rune, bool) {
	if i+4 > len(raw) {
		return 0, false
	}
	var r rune
	for _, c := range raw[i : i+4] {
		if !ishex(c) {
			return 0, false
		}
		r = r<<4 | rune(unhex(c))
	}
	return r, true
}
