package jsonscan

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"
)

// SkipSpace returns the index of the first byte at or after b[i] that is
// not JSON whitespace (RFC 8259 section 2), or len(b).
func SkipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// StringEnd returns the index after the string whose opening quote is at
// b[i], or -1 when it is not closed. A quote closes the string when an
// even number of backslashes precedes it. Nothing else is checked: a
// control character or invalid UTF-8 inside is Literal's to find.
func StringEnd(b []byte, i int) int {
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

// ValueEnd returns the index after the value that starts at b[i], or -1
// when there is none there or an object, array or string in it is not
// closed. Objects and arrays are cut by counting brackets outside strings,
// which is exact on valid JSON; the value is not otherwise checked (a
// caller reading text that may be invalid runs json.Valid on the cut). A
// number or literal ends at the first comma, closing bracket or space.
func ValueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return StringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				e := StringEnd(b, j)
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
	if j == i {
		return -1
	}
	return j
}

// ScanString is StringEnd and Literal in one: the index after the string
// whose opening quote is at b[i] (or -1), and whether its text is its own
// bytes. A string of printable ASCII, the commonest by far in tokens and
// profiles, is read in one pass; any other is left to StringEnd and
// Literal.
func ScanString(b []byte, i int) (end int, plain bool) {
	for j := i + 1; j < len(b); j++ {
		c := b[j]
		if asciiText[c] {
			continue
		}
		if c == '"' {
			return j + 1, true
		}
		break
	}
	if end = StringEnd(b, i); end < 0 {
		return -1, false
	}
	_, plain = Literal(b[i:end])
	return end, plain
}

// asciiText holds the bytes that stand for themselves in a JSON string
// and are ASCII: neither a control character, a quote nor a backslash.
var asciiText = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// Literal returns the text of the JSON string q (quotes included) when
// that text is q's own bytes, as encoding/json would decode it: no escape,
// no quote, no control character, and valid UTF-8 (encoding/json replaces
// invalid bytes with U+FFFD). ok is false when q must be decoded, or is
// not a string at all; then Unquote or String decodes it.
func Literal(q []byte) (text []byte, ok bool) {
	if len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' {
		return nil, false
	}
	in := q[1 : len(q)-1]
	for j, c := range in {
		if asciiText[c] {
			continue
		}
		if c < utf8.RuneSelf {
			return nil, false
		}
		// beyond ASCII: the rest must be valid UTF-8 and stand for itself
		for _, c := range in[j:] {
			if c < 0x20 || c == '"' || c == '\\' {
				return nil, false
			}
		}
		if !utf8.Valid(in[j:]) {
			return nil, false
		}
		break
	}
	return in, true
}

// String decodes a JSON string literal as json.Unmarshal into a string
// does; ok is false for anything else (a number, null, an absent value).
// Most strings are their own text and are read without reflection.
func String(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if in, plain := Literal(raw); plain {
		return string(in), true
	}
	return decode(raw)
}

// decode is String's way with escapes, apart so that the string
// json.Unmarshal decodes into is allocated on this way only.
func decode(raw []byte) (string, bool) {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// Unquote decodes the JSON string q, which must be a valid one (quotes
// included), as encoding/json does.
func Unquote(q []byte) string {
	s, _ := String(q)
	return s
}

// Float reads a JSON number, as a value is cut (no space around it), as a
// finite float64; a string, even "1700000000", is not one, nor is null.
// RFC 7519's NumericDate is read so.
func Float(raw []byte) (float64, bool) {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}
