package jwtauth

import "encoding/json"

// splitClaims is decodeClaims without reflection, for a payload that
// verified and passed checkClaimsJSON and decodeClaims once already (the
// token cache holds only such payloads): it cuts the top-level object into
// its members, each value a sub-slice of raw, and decodes a member name
// with encoding/json only when the name holds an escape. A cache hit pays
// for this instead of json.Unmarshal, the largest cost of a cached GET.
//
// It never panics on any input. When raw is anything but a JSON object it
// can cut (a shape decodeClaims would refuse, or one it does not expect),
// it gives decodeClaims's own answer, so the two always agree.
func splitClaims(raw []byte) (Claims, error) {
	if c, ok := cutObject(raw); ok {
		return c, nil
	}
	return decodeClaims(raw)
}

func cutObject(raw []byte) (Claims, bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return nil, false
	}
	c := make(Claims)
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		return c, skipSpace(raw, i+1) == len(raw)
	}
	for {
		if i >= len(raw) || raw[i] != '"' {
			return nil, false
		}
		end, escaped := stringEnd(raw, i)
		if end < 0 {
			return nil, false
		}
		var name string
		if escaped {
			if json.Unmarshal(raw[i:end], &name) != nil {
				return nil, false
			}
		} else {
			name = string(raw[i+1 : end-1])
		}
		if _, twice := c[name]; twice {
			return nil, false // decodeClaims keeps the last; let it say
		}
		i = skipSpace(raw, end)
		if i >= len(raw) || raw[i] != ':' {
			return nil, false
		}
		i = skipSpace(raw, i+1)
		vend := valueEnd(raw, i)
		if vend < 0 {
			return nil, false
		}
		c[name] = json.RawMessage(raw[i:vend:vend])
		i = skipSpace(raw, vend)
		if i >= len(raw) {
			return nil, false
		}
		switch raw[i] {
		case ',':
			i = skipSpace(raw, i+1)
		case '}':
			return c, skipSpace(raw, i+1) == len(raw)
		default:
			return nil, false
		}
	}
}

func skipSpace(raw []byte, i int) int {
	for i < len(raw) && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r') {
		i++
	}
	return i
}

// stringEnd: raw[i] is '"'; the index after the closing quote, or -1.
// Control characters and invalid UTF-8 are not looked for: the payload
// passed checkClaimsJSON, and a name that holds them is compared with
// decodeClaims's answer in the tests.
func stringEnd(raw []byte, i int) (end int, escaped bool) {
	for j := i + 1; j < len(raw); j++ {
		switch b := raw[j]; {
		case b == '\\':
			escaped = true
			j++
		case b == '"':
			return j + 1, escaped
		case b < 0x20 || b >= 0x80:
			escaped = true // decoded by encoding/json, as decodeClaims would
		}
	}
	return -1, false
}

// valueEnd: the index after the JSON value starting at raw[i], or -1. The
// value is checked with json.Valid unless it is a plain string.
func valueEnd(raw []byte, i int) int {
	if i >= len(raw) {
		return -1
	}
	switch raw[i] {
	case '"':
		end, escaped := stringEnd(raw, i)
		if end > 0 && escaped && !json.Valid(raw[i:end]) {
			return -1
		}
		return end
	case '{', '[':
		depth := 0
		for j := i; j < len(raw); j++ {
			switch raw[j] {
			case '"':
				end, _ := stringEnd(raw, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					if !json.Valid(raw[i : j+1]) {
						return -1
					}
					return j + 1
				}
			}
		}
		return -1
	default:
		j := i
		for j < len(raw) && raw[j] != ',' && raw[j] != '}' && raw[j] != ']' &&
			raw[j] != ' ' && raw[j] != '\t' && raw[j] != '\n' && raw[j] != '\r' {
			j++
		}
		if j == i || !json.Valid(raw[i:j]) {
			return -1
		}
		return j
	}
}
