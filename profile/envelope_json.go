package profile

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends the envelope's JSON to dst, byte for byte what
// json.Marshal writes. The route's commonest answer, a profile with no
// errors and no warnings, is written without reflection; any envelope
// holding items goes through json.Marshal.
func (e Envelope) AppendJSON(dst []byte) ([]byte, error) {
	if len(e.Errors) > 0 || len(e.Warnings) > 0 {
		b, err := json.Marshal(e)
		return append(dst, b...), err
	}
	dst = append(dst, `{"Data":`...)
	if d := e.Data; d == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, `{"UserId":`...)
		dst = appendJSONString(dst, d.UserID)
		dst = append(dst, `,"UserName":`...)
		dst = appendNullableString(dst, d.UserName)
		dst = append(dst, `,"Email":`...)
		dst = appendNullableString(dst, d.Email)
		dst = append(dst, `,"FirstName":`...)
		dst = appendNullableString(dst, d.FirstName)
		dst = append(dst, `,"LastName":`...)
		dst = appendNullableString(dst, d.LastName)
		dst = append(dst, `,"UserType":`...)
		dst = strconv.AppendInt(dst, int64(d.UserType), 10)
		dst = append(dst, '}')
	}
	dst = append(dst, `,"Errors":[],"Warnings":[],"Success":`...)
	dst = strconv.AppendBool(dst, e.Success)
	return append(dst, '}'), nil
}

func appendNullableString(dst []byte, s *string) []byte {
	if s == nil {
		return append(dst, "null"...)
	}
	return appendJSONString(dst, *s)
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as encoding/json does by default: ", \ and
// control characters escaped (\b \f \n \r \t by name), <, > and & as
// \u003c, \u003e and \u0026, U+2028 and U+2029 escaped, and each byte of
// invalid UTF-8 written as \ufffd.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
