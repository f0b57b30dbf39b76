package profile

import "github.com/workspace-edge/caddy-workspace-profile/internal/jsonscan"

// Reading a legacy body without decoding it whole: the body is cut with
// jsonscan.CutObject (checked once by json.Valid) into members kept as raw
// JSON, and only the few members the normalizer reads are decoded. The
// readers below take those raw values.

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
		if t, plain := jsonscan.Literal(v); plain {
			return t, true
		}
		return []byte(jsonscan.Unquote(v)), true
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
