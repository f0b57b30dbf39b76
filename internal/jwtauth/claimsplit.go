package jwtauth

import (
	"encoding/json"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jsonscan"
)

// splitClaims is decodeClaims without reflection, for a payload that
// verified and passed jsonscan.CheckStrict and decodeClaims once already
// (the token cache holds only such payloads): it cuts the top-level object
// into its members, each value a sub-slice of raw, and decodes a member
// name with encoding/json only when the name is not its own text. A cache
// hit pays for this instead of json.Unmarshal, the largest cost of a
// cached GET.
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
	i := jsonscan.SkipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return nil, false
	}
	c := make(Claims)
	i = jsonscan.SkipSpace(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		return c, jsonscan.SkipSpace(raw, i+1) == len(raw)
	}
	for {
		if i >= len(raw) || raw[i] != '"' {
			return nil, false
		}
		end, plain := jsonscan.ScanString(raw, i)
		if end < 0 {
			return nil, false
		}
		var name string
		if plain {
			name = string(raw[i+1 : end-1])
		} else if name, plain = jsonscan.String(raw[i:end]); !plain {
			return nil, false
		}
		if _, twice := c[name]; twice {
			return nil, false // decodeClaims keeps the last; let it say
		}
		i = jsonscan.SkipSpace(raw, end)
		if i >= len(raw) || raw[i] != ':' {
			return nil, false
		}
		i = jsonscan.SkipSpace(raw, i+1)
		vend := valueEnd(raw, i)
		if vend < 0 {
			return nil, false
		}
		c[name] = json.RawMessage(raw[i:vend:vend])
		i = jsonscan.SkipSpace(raw, vend)
		if i >= len(raw) {
			return nil, false
		}
		switch raw[i] {
		case ',':
			i = jsonscan.SkipSpace(raw, i+1)
		case '}':
			return c, jsonscan.SkipSpace(raw, i+1) == len(raw)
		default:
			return nil, false
		}
	}
}

// valueEnd is jsonscan.ValueEnd checked, since raw may be anything: the
// value it cuts is held to json.Valid unless it is a string that is its
// own text (the commonest claim, and valid whenever it is one).
func valueEnd(raw []byte, i int) int {
	if i < len(raw) && raw[i] == '"' {
		if end, plain := jsonscan.ScanString(raw, i); end < 0 || plain {
			return end
		}
	}
	end := jsonscan.ValueEnd(raw, i)
	if end < 0 {
		return -1
	}
	if !json.Valid(raw[i:end]) {
		return -1
	}
	return end
}
