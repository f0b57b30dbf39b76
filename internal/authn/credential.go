package authn

import (
	"net/http"
	"strings"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
)

// SchemeAPIKey is Credential.Scheme of a credential from the API-key
// header (Config.APIKeyHeader), beside jwtauth's SchemeBearer,
// SchemeQuery and SchemeDPoP.
const SchemeAPIKey = "api_key_header"

// Kind is what a credential is, by its shape alone: which verifier may
// look at it.
type Kind uint8

const (
	// KindInvalid: no verifier's (characters outside RFC 6750's token
	// characters, longer than 8 KiB): refused.
	KindInvalid Kind = iota
	// KindJWT: three dot-separated parts, for the token core, whose strict
	// pre-check (canonical base64url) runs before any parsing.
	KindJWT
	// KindOpaque: any other token of RFC 6750 token characters, for
	// introspection. A compact JWE (five parts) is one: this module
	// decrypts nothing, but its issuer can read it (zitadel's opaque
	// tokens are JWEs it encrypted for itself).
	KindOpaque
	// KindAPIKey: from the API-key header whatever its value, or a token
	// starting with the API-key prefix, for the API-key store.
	KindAPIKey
)

func (k Kind) String() string {
	switch k {
	case KindJWT:
		return "jwt"
	case KindOpaque:
		return "opaque"
	case KindAPIKey:
		return "api_key"
	}
	return "invalid"
}

// Credential is the one credential of a request: its value, the scheme it
// came under (jwtauth.SchemeBearer, SchemeQuery, SchemeDPoP or
// SchemeAPIKey) and its kind.
type Credential struct {
	Token  string
	Scheme string
	Kind   Kind
}

// viaDPoP reports whether the credential came with the DPoP scheme.
func (c Credential) viaDPoP() bool { return c.Scheme == jwtauth.SchemeDPoP }

// TwoCredentialsDetail is the detail of the refusal of the API-key
// header beside another credential, naming the header.
func TwoCredentialsDetail(header string) string {
	return "The request carries more than one credential: send " + header + " or Authorization, once."
}

// KeyRecognition says what an API key looks like on a request: the header
// it comes in (canonical form), and the prefix of a Bearer or
// access_token value that is one.
type KeyRecognition struct {
	Header string
	Prefix string
}

// Extract finds the one credential of r and its kind. The token rules are
// jwtauth.ExtractCredential's (one Authorization header, the query
// parameter only when allowQuery and only under its literal name, the
// DPoP scheme only with acceptDPoP); the key header beside any
// Authorization header or a query token, or twice, is invalid_request as a
// token in two places is: the route never guesses which credential the
// client meant.
func Extract(r *http.Request, allowQuery, acceptDPoP bool, keys KeyRecognition) (Credential, *jwtauth.Error) {
	vals, hasKey := r.Header[keys.Header]
	if hasKey {
		if len(vals) > 1 || len(r.Header["Authorization"]) > 0 {
			return Credential{}, jwtauth.InvalidRequest(TwoCredentialsDetail(keys.Header))
		}
	}
	c, err := jwtauth.ExtractCredential(r, allowQuery, acceptDPoP)
	if hasKey {
		switch {
		case err == nil:
			return Credential{}, jwtauth.InvalidRequest(TwoCredentialsDetail(keys.Header))
		case err.Code != jwtauth.CodeMissingToken:
			return Credential{}, err // a misspelt token parameter, as without a key
		}
		return Credential{Token: vals[0], Scheme: SchemeAPIKey, Kind: KindAPIKey}, nil
	}
	if err != nil {
		return Credential{}, err
	}
	return Credential{Token: c.Token, Scheme: c.Scheme, Kind: Classify(c.Token, keys.Prefix)}, nil
}

// Classify routes a token by its shape, an API key by keyPrefix. It looks
// only at what tells the shapes apart, so that the path of a JWT costs a
// prefix test and a count of dots: the JWT's own strict pre-check is the
// token core's (a cache hit is byte for byte a token that passed it).
func Classify(tok, keyPrefix string) Kind {
	if len(tok) == 0 || len(tok) > jwtauth.MaxTokenLen {
		return KindInvalid
	}
	if keyPrefix != "" && strings.HasPrefix(tok, keyPrefix) {
		return KindAPIKey
	}
	if strings.Count(tok, ".") == 2 {
		return KindJWT
	}
	if !isB64Token(tok) {
		return KindInvalid
	}
	return KindOpaque
}

// isB64Token reports whether s is RFC 6750's b64token: token characters
// (ALPHA, DIGIT, "-", ".", "_", "~", "+", "/") then any number of "=".
func isB64Token(s string) bool {
	s = strings.TrimRight(s, "=")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}
