package jsonscan

// HasLoneSurrogate reports whether a JSON text holds, inside a string, a
// \u escape of a UTF-16 surrogate that is not part of a pair: a high
// surrogate (D800-DBFF) not directly followed by an escaped low one
// (DC00-DFFF), or a low one alone. encoding/json decodes such an escape
// to U+FFFD, so a value would be read other than it was sent (RFC 8259
// section 8.2, RFC 7493 section 2.1). It only scans string escapes; b need
// not be valid JSON (other faults are the decoder's to find).
func HasLoneSurrogate(b []byte) bool {
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !inString {
			inString = c == '"'
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			if i+1 >= len(b) {
				return false
			}
			i++
			if b[i] != 'u' {
				continue
			}
			r, ok := Hex4(b, i+1)
			if !ok {
				continue
			}
			i += 4
			if isSurrogate(r) {
				var lone bool
				if i, lone = surrogate(b, i, r); lone {
					return true
				}
			}
		}
	}
	return false
}

// isSurrogate reports whether r is a UTF-16 surrogate code unit, high or
// low; the scanners call surrogate for those only.
func isSurrogate(r rune) bool { return 0xD800 <= r && r <= 0xDFFF }

// surrogate applies the pairing rule to r, the code unit of a \u escape
// whose last hex digit is b[i]: lone is true when r is a low surrogate, or
// a high one not directly followed by the \u escape of a low one. last is
// the index of the escape's last hex digit, or of its low half's.
func surrogate(b []byte, i int, r rune) (last int, lone bool) {
	switch {
	case 0xDC00 <= r && r <= 0xDFFF: // a low half first
		return i, true
	case 0xD800 <= r && r <= 0xDBFF:
		if i+2 >= len(b) || b[i+1] != '\\' || b[i+2] != 'u' {
			return i, true
		}
		lo, ok := Hex4(b, i+3)
		if !ok || lo < 0xDC00 || lo > 0xDFFF {
			return i, true
		}
		return i + 6, false
	}
	return i, false
}

// Hex4 reads the four hex digits of a \u escape at b[i:].
func Hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// IsHex reports whether c is a hex digit, of either case. \u escapes and
// percent escapes (RFC 3986 section 2.1) are read with it.
func IsHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// Unhex is the value of the hex digit c (IsHex(c)).
func Unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}
