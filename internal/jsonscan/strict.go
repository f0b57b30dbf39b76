package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// Why CheckStrict refuses a text. Each makes two parsers (this edge, a
// backend, a log pipeline) able to read one text two ways, so none of
// them is accepted.
var (
	ErrUTF8      = errors.New("JSON text is not valid UTF-8")
	ErrSurrogate = errors.New("JSON text holds a lone UTF-16 surrogate")
	ErrControl   = errors.New("JSON text holds a control character")
	ErrDuplicate = errors.New("JSON text names a member twice")
	ErrSyntax    = errors.New("JSON text is not well-formed")
)

// maxListedKeys is how many member names of one object are compared by a
// linear scan; larger objects use a map, so an 8 KiB text cannot cost a
// quadratic number of comparisons.
const maxListedKeys = 16

// CheckStrict refuses what encoding/json would accept by rewriting or by
// choosing silently (RFC 8259 section 8.1, RFC 7493 I-JSON):
//
//   - invalid UTF-8 (json.Unmarshal turns it into U+FFFD, so that subjects
//     `user\xff` and `user\xfe` would share one profile);
//   - a \u escape of a lone surrogate (turned into U+FFFD too);
//   - a control character, raw or escaped (C0, DEL, C1), in any string,
//     so that no value can reach a header or a log line raw;
//   - a member named twice in any object, names compared after unescaping
//     (RFC 7519 section 4 lets a parser take either; the last wins in
//     encoding/json, the first in some backends).
//
// A token's header and claims, and a DPoP proof's, are read under it. The
// JSON grammar itself is left to json.Unmarshal, which runs after; this
// scan only has to stay safe on malformed input.
func CheckStrict(raw []byte) error {
	if !utf8.Valid(raw) {
		return ErrUTF8
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
				return ErrSyntax
			}
			stack = stack[:len(stack)-1]
		case ',':
			if n := len(stack); n > 0 && stack[n-1].object {
				stack[n-1].expectKey = true
			}
		case '"':
			end, escaped, err := strictString(raw, i)
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
						return ErrSyntax
					}
					name = []byte(s)
				}
				if f.set == nil && len(f.keys) < maxListedKeys {
					for _, k := range f.keys {
						if bytes.Equal(k, name) {
							return ErrDuplicate
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
						return ErrDuplicate
					}
					f.set[string(name)] = struct{}{}
				}
			}
			i = end
		}
	}
	return nil
}

// strictString reads the JSON string starting at raw[start] (a quote)
// under CheckStrict's rules, and returns the index of its closing quote
// and whether it holds escapes.
func strictString(raw []byte, start int) (end int, escaped bool, err error) {
	for i := start + 1; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '"':
			return i, escaped, nil
		case c < 0x20 || c == 0x7f:
			return 0, false, ErrControl
		case c == 0xc2 && i+1 < len(raw) && raw[i+1] >= 0x80 && raw[i+1] <= 0x9f: // C1, U+0080-U+009F
			return 0, false, ErrControl
		case c == '\\':
			escaped = true
			if i+1 >= len(raw) {
				return 0, false, ErrSyntax
			}
			i++
			switch raw[i] {
			case 'b', 'f', 'n', 'r', 't':
				return 0, false, ErrControl
			case 'u':
			default:
				continue
			}
			r, ok := Hex4(raw, i+1)
			if !ok {
				return 0, false, ErrSyntax
			}
			if r < 0x20 || r >= 0x7f && r <= 0x9f {
				return 0, false, ErrControl
			}
			i += 4
			if isSurrogate(r) {
				var lone bool
				if i, lone = surrogate(raw, i, r); lone {
					return 0, false, ErrSurrogate
				}
			}
		}
	}
	return 0, false, ErrSyntax
}
