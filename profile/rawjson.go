package profile

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// Reading a legacy body without decoding it whole: the body is checked once
// by json.Valid, then cut into members kept as raw JSON, and only the few
// members the normalizer reads are decoded. The cutting functions below
// trust their input to be valid JSON, except cutObject, which checks it.

// cutObject returns the JSON object at the start of body (which has no
// leading space). It accepts exactly what json.Decoder accepted when it
// decoded body into a map with a later More() false: one object, then
// nothing but JSON space, or anything at all after space and a ']' or '}'
// (More peeks at one byte only). A null, which decodes to a nil map, and
// every other value are refused.
func cutObject(body []byte) ([]byte, bool) {
	if len(body) == 0 || body[0] != '{' {
		return nil, false
	}
	if json.Valid(body) {
		return body, true
	}
	// The bracket counting of valueEnd is exact on valid JSON, so if the
	// Decoder's scanner accepts an object at the start of body, it ends
	// where valueEnd says and json.Valid accepts that cut; if the scanner
	// refuses, no cut is valid.
	end := valueEnd(body, 0)
	if end < 0 || !json.Valid(body[:end]) {
		return nil, false
	}
	if i := skipSpace(body, end); i < len(body) && body[i] != ']' && body[i] != '}' {
		return nil, false
	}
	return body[:end], true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the string whose opening quote is at
// b[i], or -1 when it is not closed. A quote closes the string when an even
// number of backslashes precedes it.
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return -1
		}
		p, n := j+k, 0
		for b[p-1-n] == '\\' { // stops at the opening quote at the latest
			n++
		}
		if n%2 == 0 {
			return p + 1
		}
		j = p + 1
	}
	return -1
}

// valueEnd returns the index after the value that starts at b[i], or -1
// when an object, array or string in it is not closed.
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				e := stringEnd(b, j)
				if e < 0 {
					return -1
				}
				j = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	return j
}

// nextMember reads the member of the object obj that follows index i (just
// after the opening brace or after the previous member). It returns the
// member's key, quotes included, its value and the index after it, or a
// negative next at the closing brace.
func nextMember(obj []byte, i int) (key, val []byte, next int) {
	if i = skipSpace(obj, i); obj[i] == ',' {
		i = skipSpace(obj, i+1)
	}
	if obj[i] == '}' {
		return nil, nil, -1
	}
	ke := stringEnd(obj, i)
	key = obj[i:ke]
	i = skipSpace(obj, skipSpace(obj, ke)+1) // past the colon
	next = valueEnd(obj, i)
	return key, obj[i:next], next
}

// nextElement is nextMember for the array arr.
func nextElement(arr []byte, i int) (val []byte, next int) {
	if i = skipSpace(arr, i); arr[i] == ',' {
		i = skipSpace(arr, i+1)
	}
	if arr[i] == ']' {
		return nil, -1
	}
	next = valueEnd(arr, i)
	return arr[i:next], next
}

// unquote decodes the JSON string q (quotes included) as encoding/json
// does; only a string with escapes or invalid UTF-8 takes the slow way.
func unquote(q []byte) string {
	if in, ok := plainString(q); ok {
		return string(in)
	}
	return decodeString(q)
}

// plainString is the text of the JSON string q when it is q's own bytes:
// no escapes and valid UTF-8 (encoding/json replaces invalid bytes).
func plainString(q []byte) ([]byte, bool) {
	in := q[1 : len(q)-1]
	return in, bytes.IndexByte(in, '\\') < 0 && utf8.Valid(in)
}

func decodeString(q []byte) string {
	var s string
	_ = json.Unmarshal(q, &s) // q is a valid JSON string
	return s
}

// is reports whether the raw JSON value v is an object ('{'), an array
// ('[') or a string ('"').
func is(v []byte, kind byte) bool { return len(v) > 0 && v[0] == kind }

// textBytes is the text the normalizer reads from the raw JSON value v: a
// string's, not empty, or a number's literal (the encoding/json Number).
// Other types and absent members have none.
func textBytes(v []byte) ([]byte, bool) {
	switch {
	case len(v) == 0:
		return nil, false
	case v[0] == '"':
		if len(v) == 2 {
			return nil, false
		}
		if t, plain := plainString(v); plain {
			return t, true
		}
		return []byte(decodeString(v)), true
	case v[0] == '-' || '0' <= v[0] && v[0] <= '9':
		return v, true
	}
	return nil, false
}

func str(v []byte) *string {
	if t, ok := textBytes(v); ok {
		s := string(t)
		return &s
	}
	return nil
}

// smallInt is strconv.Atoi(string(t)) when that succeeds with 0, 1 or 2,
// read without making a string: a sign, then decimal digits only.
func smallInt(t []byte) (int, bool) {
	neg := len(t) > 0 && t[0] == '-'
	if len(t) > 0 && (t[0] == '+' || t[0] == '-') {
		t = t[1:]
	}
	if len(t) == 0 {
		return 0, false
	}
	n := 0
	for _, c := range t {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n = n*10 + int(c-'0'); n > 2 {
			n = 3 // out of range; digits still checked
		}
	}
	if n > 2 || (neg && n != 0) {
		return 0, false
	}
	return n, true
}
