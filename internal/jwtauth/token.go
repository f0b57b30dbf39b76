package jwtauth

import (
	"net/http"
	"net/url"
	"strings"
	"unicode"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jsonscan"
)

// MaxTokenLen is the largest compact JWS the route accepts (8 KiB). Larger
// tokens are refused before any decoding, so a client cannot make the edge
// parse megabytes of base64.
const MaxTokenLen = 8 << 10

// tokenParam is the query parameter that may carry the token.
const tokenParam = "access_token"

// Schemes a token may arrive under (Credential.Scheme).
const (
	// SchemeBearer: Authorization: Bearer (RFC 6750 §2.1).
	SchemeBearer = "Bearer"
	// SchemeQuery: the access_token query parameter, a bearer token too
	// (RFC 6750 §2.3).
	SchemeQuery = "query"
	// SchemeDPoP: Authorization: DPoP (RFC 9449 §7.1), a token that must
	// come with a DPoP proof; the core does not check the proof.
	SchemeDPoP = "DPoP"
)

// Credential is a token and the scheme it came under.
type Credential struct {
	Token  string
	Scheme string // SchemeBearer, SchemeQuery or SchemeDPoP
}

// ExtractCredential finds the token of r and the scheme it came under:
// the Authorization header (scheme case-insensitive) or, when allowQuery
// is set, the access_token query parameter. Both at once, or the parameter
// twice, are invalid_request: a token must be unambiguous.
//
// The parameter under any other spelling is invalid_request too, whether
// or not query tokens are accepted: percent-encoded (Access%5FToken), in
// other letter case (ACCESS_TOKEN, as ASP.NET's query collection reads it),
// mangled the way PHP reads names (access.token, access_token[]), or after
// a `;` separator. Such a request is refused rather than cleaned, so that
// the literal name is the only one the access-log filter has to find and
// the backend never receives a token in its query.
//
// With acceptDPoP, Authorization: DPoP is taken beside Bearer (scheme
// case-insensitive too), and every rule above holds for it as for Bearer:
// one Authorization header, and a DPoP token beside the query parameter
// is invalid_request. Without it, DPoP is another scheme, so no token.
func ExtractCredential(r *http.Request, allowQuery, acceptDPoP bool) (Credential, *Error) {
	var token, scheme string
	fromHeader := false
	if h := r.Header.Values("Authorization"); len(h) > 0 {
		if len(h) > 1 {
			return Credential{}, InvalidRequest("The request has more than one Authorization header.")
		}
		name, cred, ok := strings.Cut(h[0], " ")
		switch {
		case ok && strings.EqualFold(name, SchemeBearer):
			scheme = SchemeBearer
		case ok && acceptDPoP && strings.EqualFold(name, SchemeDPoP):
			scheme = SchemeDPoP
		default:
			// another scheme (Basic, ...) carries no bearer token
			return Credential{}, ErrMissingToken
		}
		token, fromHeader = strings.TrimSpace(cred), true
		if token == "" {
			return Credential{}, ErrMissingToken
		}
	}
	found := 0
	for amp := range strings.SplitSeq(r.URL.RawQuery, "&") {
		for i, pair := range strings.Split(amp, ";") {
			rawKey, rawVal, _ := strings.Cut(pair, "=")
			if !namesTokenParam(rawKey) {
				continue
			}
			if rawKey != tokenParam || i > 0 {
				return Credential{}, InvalidRequest("The token parameter must be spelled access_token, after an & or at the start of the query.")
			}
			if !allowQuery {
				continue // dropped on the way to the backend, never read
			}
			found++
			if found > 1 {
				return Credential{}, InvalidRequest("The access_token parameter appears more than once.")
			}
			if fromHeader {
				return Credential{}, InvalidRequest("The token was sent both in the Authorization header and in the query.")
			}
			v, err := url.QueryUnescape(rawVal)
			if err != nil || v == "" {
				return Credential{}, InvalidToken("The access_token parameter is malformed.")
			}
			token, scheme = v, SchemeQuery
		}
	}
	if token == "" {
		return Credential{}, ErrMissingToken
	}
	return Credential{Token: token, Scheme: scheme}, nil
}

// namesTokenParam reports whether a raw query name is, to some backend,
// the token parameter. The name is decoded leniently (percent escapes,
// IIS's %uXXXX, + as a space; an undecodable escape kept as written), cut
// at a NUL (PHP ends names there) and at an array suffix `[...]`, and then
// only its letters and digits are compared, ignoring case: every separator
// a backend reads as `_` or drops (PHP's ' ', '.', an unclosed '[';
// frameworks that read '-' as '_') is ignored. So access_token,
// ACCESS_TOKEN, access.token, access[token, access-token and %61ccess_token
// are all the token parameter.
func namesTokenParam(rawKey string) bool {
	if len(rawKey) < len(tokenParamLetters) {
		return false // no spelling is shorter than the letters themselves
	}
	key := lenientUnescape(rawKey)
	if i := strings.IndexByte(key, 0); i >= 0 {
		key = key[:i]
	}
	if i := strings.IndexByte(key, '['); i > 0 && strings.IndexByte(key[i:], ']') > 0 {
		key = key[:i]
	}
	letters := make([]rune, 0, len(key))
	for _, r := range key {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			letters = append(letters, r)
		}
	}
	return FoldEqual(string(letters), tokenParamLetters)
}

// tokenParamLetters is the token parameter's name without its separator.
const tokenParamLetters = "accesstoken"

// lenientUnescape decodes %XX and %uXXXX escapes and + as a space, keeping
// anything it cannot decode as written, as the most lenient backends do.
func lenientUnescape(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b.WriteByte(' ')
		case c == '%' && i+2 < len(s) && jsonscan.IsHex(s[i+1]) && jsonscan.IsHex(s[i+2]):
			b.WriteByte(jsonscan.Unhex(s[i+1])<<4 | jsonscan.Unhex(s[i+2]))
			i += 2
		case c == '%' && i+5 < len(s) && (s[i+1] == 'u' || s[i+1] == 'U'):
			if r, ok := jsonscan.Hex4([]byte(s), i+2); ok {
				b.WriteRune(r)
				i += 5
				continue
			}
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// WithoutTokenParams drops from a raw query every pair that names the token
// parameter, in any spelling namesTokenParam knows and after an & or a ;,
// and keeps the others exactly as they were encoded.
func WithoutTokenParams(raw string) string {
	if raw == "" {
		return ""
	}
	kept := make([]string, 0, 4)
pairs:
	for pair := range strings.SplitSeq(raw, "&") {
		if pair == "" {
			continue
		}
		for sub := range strings.SplitSeq(pair, ";") {
			if key, _, _ := strings.Cut(sub, "="); namesTokenParam(key) {
				continue pairs
			}
		}
		kept = append(kept, pair)
	}
	return strings.Join(kept, "&")
}

// IsCompactJWS reports whether s passes the pre-check every token passes
// before any parsing (precheckToken): at most 8 KiB, three non-empty parts
// of canonical unpadded base64url. DPoP proofs are held to it too.
func IsCompactJWS(s string) bool { return precheckToken(s) }

// precheckToken refuses what cannot be a compact JWS before any parsing:
// too long, not three parts, an empty part, a character outside the
// unpadded base64url alphabet, or a part that is not the canonical
// encoding of its bytes. It is cheap enough to run on every request (one
// pass, no allocation) and is the fuzzed boundary between the network and
// jwx.
//
// Canonical: the last character of a part whose length is 2 or 3 mod 4
// carries 4 or 2 bits that decode to nothing, and they must be zero (as
// base64.RawURLEncoding.Strict() requires). Otherwise up to 16 spellings
// of one signature would verify as byte-different tokens: distinct cache
// entries, distinct strings in any log or deny-list keyed on the token.
func precheckToken(tok string) bool {
	if len(tok) == 0 || len(tok) > MaxTokenLen {
		return false
	}
	dots, partLen := 0, 0
	var last byte // the value (0-63) of the part's last character
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case c == '.':
			if !validPart(partLen, last) {
				return false
			}
			dots++
			partLen = 0
			continue
		case 'A' <= c && c <= 'Z':
			last = c - 'A'
		case 'a' <= c && c <= 'z':
			last = c - 'a' + 26
		case '0' <= c && c <= '9':
			last = c - '0' + 52
		case c == '-':
			last = 62
		case c == '_':
			last = 63
		default:
			return false
		}
		partLen++
	}
	return dots == 2 && validPart(partLen, last)
}

// validPart: a part is not empty, unpadded base64 never leaves a single
// character over (a length of 1 mod 4), and the bits of the last character
// that hold no data are zero.
func validPart(n int, last byte) bool {
	switch n % 4 {
	case 1:
		return false
	case 2:
		return n > 0 && last&0x0f == 0
	case 3:
		return last&0x03 == 0
	}
	return n > 0
}
