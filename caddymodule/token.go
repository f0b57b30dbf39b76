package caddymodule

import (
	"net/http"
	"net/url"
	"strings"
)

// maxTokenLen is the largest compact JWS the route accepts (8 KiB). Larger
// tokens are refused before any decoding, so a client cannot make the edge
// parse megabytes of base64.
const maxTokenLen = 8 << 10

// tokenParam is the query parameter that may carry the token.
const tokenParam = "access_token"

// extractToken finds the bearer token of r: the Authorization header
// (scheme case-insensitive) or, when allowQuery is set, the access_token
// query parameter. Both at once, the parameter twice or percent-encoded in
// its name are invalid_request: a token must be unambiguous, and the
// access-log filter must be able to find it by its literal name.
func extractToken(r *http.Request, allowQuery bool) (string, *authError) {
	var token string
	fromHeader := false
	if h := r.Header.Values("Authorization"); len(h) > 0 {
		if len(h) > 1 {
			return "", errInvalidRequest("more than one Authorization header")
		}
		scheme, cred, ok := strings.Cut(h[0], " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			// another scheme (Basic, ...) carries no bearer token
			return "", errMissingToken
		}
		token, fromHeader = strings.TrimSpace(cred), true
		if token == "" {
			return "", errMissingToken
		}
	}
	if !allowQuery || r.URL.RawQuery == "" {
		if !fromHeader {
			return "", errMissingToken
		}
		return token, nil
	}
	found := 0
	for pair := range strings.SplitSeq(r.URL.RawQuery, "&") {
		rawKey, rawVal, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(rawKey)
		if err != nil || key != tokenParam {
			continue
		}
		if rawKey != tokenParam {
			return "", errInvalidRequest("the access_token parameter name must not be percent-encoded")
		}
		found++
		if found > 1 {
			return "", errInvalidRequest("the access_token parameter appears more than once")
		}
		if fromHeader {
			return "", errInvalidRequest("the token was sent both in the Authorization header and in the query")
		}
		v, err := url.QueryUnescape(rawVal)
		if err != nil || v == "" {
			return "", errInvalidToken("the access_token parameter is malformed")
		}
		token = v
	}
	if token == "" {
		return "", errMissingToken
	}
	return token, nil
}

// precheckToken refuses what cannot be a compact JWS before any parsing:
// too long, not three parts, an empty part, or a character outside the
// unpadded base64url alphabet. It is cheap enough to run on every request
// and is the fuzzed boundary between the network and jwx.
func precheckToken(tok string) bool {
	if len(tok) == 0 || len(tok) > maxTokenLen {
		return false
	}
	dots, partLen := 0, 0
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case c == '.':
			if !validPartLen(partLen) {
				return false
			}
			dots++
			partLen = 0
			continue
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
		partLen++
	}
	return dots == 2 && validPartLen(partLen)
}

// validPartLen: a part is not empty, and unpadded base64 never leaves a
// single character over (a length of 1 mod 4).
func validPartLen(n int) bool { return n > 0 && n%4 != 1 }
