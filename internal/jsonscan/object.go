package jsonscan

import "encoding/json"

// CutObject returns the JSON object at the start of body (which has no
// leading space), checked with json.Valid. It accepts exactly what
// json.Decoder accepts when it decodes body into a map and More() then
// reports false: one object, then nothing but JSON space, or anything at
// all after space and a ']' or '}' (More peeks at one byte only). A null,
// which decodes to a nil map, and every other value are refused. The
// common case, a body that is one valid object, costs one json.Valid.
func CutObject(body []byte) ([]byte, bool) {
	if len(body) == 0 || body[0] != '{' {
		return nil, false
	}
	if json.Valid(body) {
		return body, true
	}
	// The bracket counting of ValueEnd is exact on valid JSON, so if the
	// Decoder's scanner accepts an object at the start of body, it ends
	// where ValueEnd says and json.Valid accepts that cut; if the scanner
	// refuses, no cut is valid.
	end := ValueEnd(body, 0)
	if end < 0 || !json.Valid(body[:end]) {
		return nil, false
	}
	if i := SkipSpace(body, end); i < len(body) && body[i] != ']' && body[i] != '}' {
		return nil, false
	}
	return body[:end], true
}

// NextMember reads the member of the valid JSON object obj that follows
// index i (1, just after the opening brace, or the next of the previous
// member). It returns the member's key, quotes included, its value and the
// index after it, or a negative next at the closing brace. obj must be
// valid JSON (CutObject's answer, or a value cut from one): it is not
// checked, so that walking an object costs one pass over it.
func NextMember(obj []byte, i int) (key, val []byte, next int) {
	if i = SkipSpace(obj, i); obj[i] == ',' {
		i = SkipSpace(obj, i+1)
	}
	if obj[i] == '}' {
		return nil, nil, -1
	}
	ke := StringEnd(obj, i)
	key = obj[i:ke]
	i = SkipSpace(obj, SkipSpace(obj, ke)+1) // past the colon
	next = ValueEnd(obj, i)
	return key, obj[i:next], next
}

// NextElement is NextMember for the valid JSON array arr.
func NextElement(arr []byte, i int) (val []byte, next int) {
	if i = SkipSpace(arr, i); arr[i] == ',' {
		i = SkipSpace(arr, i+1)
	}
	if arr[i] == ']' {
		return nil, -1
	}
	next = ValueEnd(arr, i)
	return arr[i:next], next
}
