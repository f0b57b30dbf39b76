package jwtauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// maxCandidateKeys bounds the signature checks one token can cost when it
// names no kid, so a large key set cannot be turned into a CPU amplifier.
const maxCandidateKeys = 8

// Defaults of Config.
const (
	DefaultLeeway  = 30 * time.Second
	DefaultSubject = "sub"
)

// DefaultAlgorithms are the signature algorithms accepted when none are
// configured: every asymmetric JWS algorithm jwx verifies, including
// RFC 9864's fully-specified Ed25519 beside the older EdDSA; never HMAC or
// none.
var DefaultAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"}

// Config is what a Verifier checks tokens against.
type Config struct {
	// Sources of the signing keys; at least one.
	Sources []Source
	// Algorithms accepted; each must pass SupportedAlgorithm. Empty:
	// DefaultAlgorithms.
	Algorithms []string
	// Issuers accepted as iss, and audiences of which aud must name one;
	// at least one of each.
	Issuers   []string
	Audiences []string
	// Leeway is the clock skew allowed on exp, nbf and iat; nil is
	// DefaultLeeway (0 is a valid leeway).
	Leeway *time.Duration
	// Subject is the claim that names the caller; empty is DefaultSubject.
	Subject string
	// CacheSize is how many verified tokens are remembered; 0 disables.
	CacheSize int
	// Now is the verifier's clock; nil is time.Now.
	Now func() time.Time
	// Observer is told of cache lookups; nil is nobody.
	Observer Observer
	// TokenTypes, when set, are the accepted values of the JOSE header
	// typ (RFC 9068 §4: at+jwt), compared as media types: ignoring case
	// and with "application/" implied where no "/" is written
	// (RFC 7515 §4.1.9). A token without typ is then refused. Empty: typ
	// is not checked.
	TokenTypes []string
	// Clients, when set, are the accepted clients: the token's client_id
	// (RFC 9068 §2.2), else its azp (OpenID Connect), compared exactly. A
	// token naming neither, or two different clients in them, is then
	// refused. Empty: the client is not checked.
	Clients []string
	// MaxLifetime, when positive, is the longest a token may still live:
	// one whose exp lies further ahead than MaxLifetime (plus the leeway)
	// is refused, as Kong's maximum_expiration and Envoy's max_lifetime
	// refuse it, so that a leaked long-lived token is no use here. Zero:
	// no limit.
	MaxLifetime time.Duration
}

// Verifier checks tokens against the keys of its sources and the claim
// rules of its Config. It is safe for concurrent use.
type Verifier struct {
	sources    []Source
	algorithms map[string]jwa.SignatureAlgorithm
	issuers    []string
	audiences  []string
	leeway     time.Duration
	subject    string
	now        func() time.Time
	cache      *tokenCache // nil when disabled
	observer   Observer
	tokenTypes []string // normalized by mediaType; nil: no check
	clients    []string // nil: no check
	maxLife    time.Duration
}

// New checks cfg (Check, and that it has key sources) and builds its
// verifier.
func New(cfg Config) (*Verifier, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if len(cfg.Sources) == 0 {
		return nil, errors.New("at least one key source is required")
	}
	for _, s := range cfg.Sources {
		if s == nil {
			return nil, errors.New("a key source is nil")
		}
	}
	v := &Verifier{
		sources:    cfg.Sources,
		algorithms: map[string]jwa.SignatureAlgorithm{},
		issuers:    cfg.Issuers,
		audiences:  cfg.Audiences,
		leeway:     DefaultLeeway,
		subject:    cfg.Subject,
		now:        cfg.Now,
		observer:   cfg.Observer,
	}
	if cfg.Leeway != nil {
		v.leeway = *cfg.Leeway
	}
	if v.subject == "" {
		v.subject = DefaultSubject
	}
	if v.now == nil {
		v.now = time.Now
	}
	algs := cfg.Algorithms
	if len(algs) == 0 {
		algs = DefaultAlgorithms
	}
	for _, a := range algs {
		v.algorithms[a], _ = jwa.LookupSignatureAlgorithm(a)
	}
	for _, tt := range cfg.TokenTypes {
		v.tokenTypes = append(v.tokenTypes, mediaType(tt))
	}
	v.clients = cfg.Clients
	v.maxLife = cfg.MaxLifetime
	if cfg.CacheSize > 0 {
		v.cache = newTokenCache(cfg.CacheSize)
	}
	return v, nil
}

// SubjectClaim is the name of the claim that names the caller.
func (v *Verifier) SubjectClaim() string { return v.subject }

// Claims is the verified payload of a token, each claim kept as raw JSON
// and decoded only when something asks for it: most requests read a
// handful of claims out of many.
type Claims map[string]json.RawMessage

// Str returns a string claim; ok is false when it is absent or not a string.
func (c Claims) Str(name string) (string, bool) {
	return jsonString(c[name])
}

// jsonString decodes a JSON string literal. Claims are almost always plain
// ASCII without escapes, which are read without reflection.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if plain := raw[1 : len(raw)-1]; bytes.IndexByte(plain, '\\') < 0 && bytes.IndexByte(plain, '"') < 0 {
		for _, b := range plain {
			if b < 0x20 || b >= 0x80 {
				goto slow
			}
		}
		return string(plain), true
	}
slow:
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// Folded returns the values of every member whose name equals name
// ignoring case, as .NET compares claim types: the exactly named member
// first. checkClaimsJSON has made sure no name appears twice exactly.
func (c Claims) Folded(name string) []json.RawMessage {
	var out []json.RawMessage
	if raw, ok := c[name]; ok {
		out = append(out, raw)
	}
	for k, raw := range c {
		if k != name && FoldEqual(k, name) {
			out = append(out, raw)
		}
	}
	return out
}

// Text is a claim's string form: strings unquoted, anything else (numbers
// as written in the token, booleans, arrays, objects) as compact JSON.
func (c Claims) Text(name string) (string, bool) {
	raw, ok := c[name]
	if !ok {
		return "", false
	}
	return RawText(raw), true
}

// RawText is the string form of one claim value, as Text gives it.
func RawText(raw json.RawMessage) string {
	if s, ok := jsonString(raw); ok {
		return s
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return string(raw)
	}
	return buf.String()
}

// header is the part of the JOSE header the verifier looks at. jku, x5u,
// jwk and x5c are deliberately not read: keys come only from the config.
type header struct {
	Alg    string
	Kid    string
	Typ    string
	HasTyp bool
	Crit   bool // a crit member is present, whatever its value
}

// parseHeader decodes the JOSE header strictly: valid UTF-8, no control
// characters, no member named twice (RFC 7515 §4: {"alg":"none",
// "alg":"RS256"} is refused, not read last-wins), and alg and kid read by
// their exact names (encoding/json would also fill them from "ALG" or
// "Kid"), each a string when present; so is typ.
func parseHeader(seg string) (header, error) {
	var h header
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return h, err
	}
	if err := checkClaimsJSON(raw); err != nil {
		return h, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return h, err
	}
	if m == nil {
		return h, errNotObject
	}
	var ok bool
	if h.Alg, ok = jsonString(m["alg"]); !ok {
		return h, errors.New("alg is not a string")
	}
	if kid, present := m["kid"]; present {
		if h.Kid, ok = jsonString(kid); !ok {
			return h, errors.New("kid is not a string")
		}
	}
	if typ, present := m["typ"]; present {
		if h.Typ, ok = jsonString(typ); !ok {
			return h, errors.New("typ is not a string")
		}
		h.HasTyp = true
	}
	_, h.Crit = m["crit"]
	return h, nil
}

// Verify returns the claims of a valid token, or the refusal to answer.
// The signature is checked before the claims, so a forged token is always
// InvalidToken whatever its claims say.
func (v *Verifier) Verify(ctx context.Context, tok string) (Claims, *Error) {
	if len(tok) == 0 || len(tok) > MaxTokenLen {
		return nil, InvalidToken("The token is not a compact JWS.")
	}
	var cacheKey [sha256.Size]byte
	if v.cache != nil {
		// A hit is a token byte for byte equal to one that passed every
		// check below, precheckToken's included, so a hit skips them and
		// cuts the payload without reflection (splitClaims).
		cacheKey = sha256.Sum256([]byte(tok))
		if payload, ok := v.cache.lookup(cacheKey, v.now(), v.leeway, v.sources); ok {
			if c, err := splitClaims(payload); err == nil {
				if v.observer != nil {
					v.observer.TokenCacheLookup(true)
				}
				return c, nil
			}
		}
		if v.observer != nil {
			v.observer.TokenCacheLookup(false)
		}
	}
	if !precheckToken(tok) {
		return nil, InvalidToken("The token is not a compact JWS.")
	}
	hdrPart, rest, _ := strings.Cut(tok, ".")
	payloadPart, _, _ := strings.Cut(rest, ".")
	h, err := parseHeader(hdrPart)
	if err != nil {
		return nil, InvalidToken("The token header is malformed or names a member twice.")
	}
	if h.Crit {
		return nil, InvalidToken("The token has critical header parameters.")
	}
	alg, ok := v.algorithms[h.Alg]
	if !ok {
		return nil, InvalidToken("The token algorithm is not accepted.")
	}
	payload, signer, found, aerr := v.checkSignature(tok, alg, h)
	if aerr != nil {
		return nil, aerr
	}
	if !found {
		// Refresh only for a token that would otherwise pass: a
		// malformed, expired or foreign token must never make us fetch.
		if c, err := parseClaims(payloadPart); err == nil && v.checkClaims(c) == nil && v.checkKind(h, c) == nil {
			for _, s := range v.sources {
				s.refreshForUnknownKid(ctx, h.Kid)
			}
			// Look again whether or not this call fetched: a concurrent
			// caller's fetch may have ended between our first look and
			// our turn on the source's lock (which then, within the
			// unknown-kid budget's spacing, fetches nothing). No candidate key was found,
			// so when the set did not change this costs no signature check.
			payload, signer, found, aerr = v.checkSignature(tok, alg, h)
			if aerr != nil {
				return nil, aerr
			}
		}
		if !found {
			return nil, InvalidToken("No configured key matches the token.")
		}
	}
	if payload == nil {
		return nil, InvalidToken("The token signature is invalid.")
	}
	if err := checkClaimsJSON(payload); err != nil {
		return nil, InvalidToken("The token claims are not strict JSON: invalid UTF-8, a control character, a lone surrogate or a member named twice.")
	}
	c, err := decodeClaims(payload)
	if err != nil {
		return nil, InvalidToken("The token claims are malformed.")
	}
	if aerr := v.checkClaims(c); aerr != nil {
		return nil, aerr
	}
	if aerr := v.checkKind(h, c); aerr != nil {
		return nil, aerr
	}
	if v.cache != nil {
		exp, _ := numericDate(c["exp"]) // checkClaims made sure it is there
		v.cache.add(cacheKey, cachedToken{payload: payload, exp: exp, thumbprint: signer.thumbprint})
	}
	return c, nil
}

// checkSignature tries the candidate keys. found reports whether any key
// could have signed the token; payload is nil when none verified it, else
// signer is the key that did.
func (v *Verifier) checkSignature(tok string, alg jwa.SignatureAlgorithm, h header) (payload []byte, signer verifyKey, found bool, aerr *Error) {
	var buf [maxCandidateKeys]verifyKey
	cands := buf[:0]
	loaded := false
	for _, s := range v.sources {
		if ks := s.current(); ks != nil {
			loaded = true
			cands = ks.candidates(h.Alg, h.Kid, cands)
		}
	}
	if !loaded {
		return nil, verifyKey{}, false, ErrKeysUnavailable
	}
	if len(cands) > maxCandidateKeys {
		cands = cands[:maxCandidateKeys]
	}
	for _, k := range cands {
		if p, err := jws.VerifyCompactFast(k.key, []byte(tok), alg); err == nil {
			return p, k, true, nil
		}
	}
	return nil, verifyKey{}, len(cands) > 0, nil
}

func parseClaims(seg string) (Claims, error) {
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return nil, err
	}
	return decodeClaims(raw)
}

// decodeClaims splits the payload into raw claims; the types are checked
// where each claim is read, so "exp must be numeric" can be told apart
// from a string that looks like a number.
func decodeClaims(raw []byte) (Claims, error) {
	var c Claims
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	if c == nil {
		return nil, errNotObject
	}
	return c, nil
}

var errNotObject = errors.New("claims are not a JSON object")

// checkClaims applies the contract's claim rules in ASP.NET's order:
// lifetime, then issuer, then audience, then the subject.
func (v *Verifier) checkClaims(c Claims) *Error {
	now := float64(v.now().UnixNano()) / 1e9
	leeway := v.leeway.Seconds()
	exp, ok := numericDate(c["exp"])
	if !ok {
		return InvalidToken("The token has no numeric exp claim.")
	}
	if !saneDate(exp) {
		return InvalidToken("The token has an exp claim outside the years 1970 to 9999.")
	}
	if now > exp+leeway {
		return &Error{CodeTokenExpired, "The token has expired."}
	}
	if v.maxLife > 0 && exp-now > v.maxLife.Seconds()+leeway {
		return InvalidToken("The token lives longer than this API accepts.")
	}
	for _, name := range []string{"nbf", "iat"} {
		raw, present := c[name]
		if !present {
			continue
		}
		t, ok := numericDate(raw)
		if !ok {
			return InvalidToken("The token has a non-numeric " + name + " claim.")
		}
		if !saneDate(t) {
			return InvalidToken("The token has an " + name + " claim outside the years 1970 to 9999.")
		}
		if t > now+leeway {
			return &Error{CodeTokenNotYetValid, "The token is not valid yet."}
		}
	}
	if iss, _ := c.Str("iss"); !slices.Contains(v.issuers, iss) {
		return &Error{CodeInvalidIssuer, "The token issuer is not accepted."}
	}
	if !audienceMatches(c["aud"], v.audiences) {
		return &Error{CodeInvalidAudience, "The token audience is not accepted."}
	}
	// jti is a string (RFC 7519 §4.1.7); a number or an object would be
	// read differently by whatever keys a replay check on it
	if raw, present := c["jti"]; present {
		if _, ok := jsonString(raw); !ok {
			return InvalidToken("The token has a non-string jti claim.")
		}
	}
	sub, _ := c.Str(v.subject)
	if sub == "" {
		return InvalidToken("The token has no subject.")
	}
	// HTTP trims spaces around a header value, so " u-1" would reach a
	// backend as u-1 while this edge keeps them apart.
	if strings.TrimSpace(sub) != sub {
		return InvalidToken("The token subject has leading or trailing whitespace.")
	}
	return nil
}

// checkKind applies the optional rules on what kind of token this is and
// whom it was issued to: the header typ (RFC 9068 §4, RFC 8725 §3.11) and
// the client (RFC 8725 §3.12), so that an OpenID ID token, or an access
// token of another client of the same audience, does not pass. Like
// checkClaims it runs on the unverified token too, before an unknown-kid
// fetch, so a token it refuses never makes one.
func (v *Verifier) checkKind(h header, c Claims) *Error {
	if v.tokenTypes != nil {
		if !h.HasTyp {
			return InvalidToken("The token has no type header; an access token is required.")
		}
		if !slices.Contains(v.tokenTypes, mediaType(h.Typ)) {
			return InvalidToken("The token type is not accepted; an access token is required.")
		}
	}
	if v.clients != nil {
		client, aerr := tokenClient(c)
		if aerr != nil {
			return aerr
		}
		if !slices.Contains(v.clients, client) {
			return InvalidToken("The token was issued to a client that is not accepted.")
		}
	}
	return nil
}

// CheckTokenType refuses a configured token type that no typ header could
// match: empty, or holding spaces, controls, or a parameter (";").
func CheckTokenType(tt string) error {
	if tt == "" {
		return errors.New("a token type is empty")
	}
	for _, c := range []byte(tt) {
		if c <= ' ' || c >= 0x7f || c == ';' || c == ',' {
			return fmt.Errorf("%q is not a media type without parameters", tt)
		}
	}
	return nil
}

// tokenClient is the client a token was issued to: client_id (RFC 9068
// §2.2), else azp (OpenID Connect Core §2). Both present and different is
// refused rather than one of them believed.
func tokenClient(c Claims) (string, *Error) {
	var vals []string
	for _, name := range []string{"client_id", "azp"} {
		raw, present := c[name]
		if !present {
			continue
		}
		s, ok := jsonString(raw)
		if !ok {
			return "", InvalidToken("The token has a non-string " + name + " claim.")
		}
		vals = append(vals, s)
	}
	switch {
	case len(vals) == 0:
		return "", InvalidToken("The token names no client in client_id or azp.")
	case len(vals) == 2 && vals[0] != vals[1]:
		return "", InvalidToken("The token names different clients in client_id and azp.")
	}
	return vals[0], nil
}

// mediaType is a typ value in the form it is compared in: ASCII letters in
// lower case (media types ignore case, and are ASCII: no Unicode folding,
// so a Kelvin sign is not a k), with "application/" prepended when it has
// no "/", as RFC 7515 §4.1.9 has recipients read it. So at+jwt, AT+JWT and
// application/at+jwt are one type.
func mediaType(typ string) string {
	b := []byte(typ)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	typ = string(b)
	if !strings.Contains(typ, "/") {
		typ = "application/" + typ
	}
	return typ
}

// numericDate accepts a JSON number only (RFC 7519's NumericDate); a
// string, even "1700000000", is refused.
func numericDate(raw json.RawMessage) (float64, bool) {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// maxNumericDate is 9999-12-31T23:59:59Z, the last second .NET's DateTime
// (and so the backend) can represent.
const maxNumericDate = 253402300799

// saneDate: a NumericDate between the epoch and the end of year 9999.
// Anything else is a token no provider issues, and one that overflows or
// wraps in the backend's date types.
func saneDate(t float64) bool { return t >= 0 && t <= maxNumericDate }

// audienceMatches: aud is one string or an array of strings (RFC 7519).
func audienceMatches(raw json.RawMessage, accepted []string) bool {
	if one, ok := jsonString(raw); ok {
		return slices.Contains(accepted, one)
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		for _, a := range many {
			if slices.Contains(accepted, a) {
				return true
			}
		}
	}
	return false
}
