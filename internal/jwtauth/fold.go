package jwtauth

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// FoldEqual compares the way .NET's OrdinalIgnoreCase does, and Go's
// EqualFold too: two runes are equal when they fold to one another or
// share an upper or lower case form, so that `ſ` matches `s`, `ı` matches
// `i` and the Kelvin sign matches `k`. Invalid UTF-8 never matches. Claim
// names and the token parameter are compared this way; the glue's route
// matcher uses it for path segments, so that both read letters alike.
func FoldEqual(a, b string) bool {
	// ASCII first, byte by byte: claim names almost always are, and two
	// ASCII names of different lengths never fold to one another
	for a != "" && b != "" && a[0] < utf8.RuneSelf && b[0] < utf8.RuneSelf {
		if x, y := a[0]|0x20, b[0]|0x20; a[0] != b[0] && (x != y || x < 'a' || x > 'z') {
			return false
		}
		a, b = a[1:], b[1:]
	}
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra == utf8.RuneError && na == 1 || rb == utf8.RuneError && nb == 1 {
			return false
		}
		if ra != rb && unicode.ToUpper(ra) != unicode.ToUpper(rb) && unicode.ToLower(ra) != unicode.ToLower(rb) &&
			!strings.EqualFold(a[:na], b[:nb]) {
			return false
		}
		a, b = a[na:], b[nb:]
	}
	return a == b
}
