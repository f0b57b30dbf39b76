package jwtauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jsonscan"
)

// Verifying one token: its JOSE header, its signature against the
// candidate keys of the sources, and its payload split into Claims.

// maxCandidateKeys bounds the signature checks one token can cost when it
// names no kid, so a large key set cannot be turned into a CPU amplifier.
const maxCandidateKeys = 8

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
	if err := jsonscan.CheckStrict(raw); err != nil {
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
	if h.Alg, ok = jsonscan.String(m["alg"]); !ok {
		return h, errors.New("alg is not a string")
	}
	if kid, present := m["kid"]; present {
		if h.Kid, ok = jsonscan.String(kid); !ok {
			return h, errors.New("kid is not a string")
		}
	}
	if typ, present := m["typ"]; present {
		if h.Typ, ok = jsonscan.String(typ); !ok {
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
	if err := jsonscan.CheckStrict(payload); err != nil {
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
		exp, _ := jsonscan.Float(c["exp"]) // checkClaims made sure it is there
		// the header's alg and kid, kept as strings the entry need not own:
		// jwx's name of the alg when it is the header's, and a named kid
		// as the signer's (candidates matched it exactly)
		algName := alg.String()
		if algName != h.Alg {
			algName = h.Alg
		}
		kid := ""
		if h.Kid != "" {
			kid = signer.kid
		}
		v.cache.add(cacheKey, cachedToken{payload: payload, exp: exp, alg: algName, kid: kid, thumbprint: signer.thumbprint})
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

// VerifySigned checks a JWS that is not an access token (a signed
// introspection answer, RFC 9701) against the verifier's keys and
// algorithms, with the same header rules as a token (strict JSON, no crit,
// an accepted alg) and a typ header that must be typ, compared as a media
// type. It returns the payload, strict JSON, and applies no claim rule:
// those of such a document are not an access token's, so the caller
// checks them. A kid no key set holds may fetch a remote set once, within
// the sources' unknown-kid budget.
func (v *Verifier) VerifySigned(ctx context.Context, tok, typ string) ([]byte, *Error) {
	if !precheckToken(tok) {
		return nil, InvalidToken("The signed document is not a compact JWS.")
	}
	hdrPart, _, _ := strings.Cut(tok, ".")
	h, err := parseHeader(hdrPart)
	switch {
	case err != nil:
		return nil, InvalidToken("The signed document's header is malformed or names a member twice.")
	case h.Crit:
		return nil, InvalidToken("The signed document has critical header parameters.")
	case !h.HasTyp || mediaType(h.Typ) != mediaType(typ):
		return nil, InvalidToken("The signed document's type is not " + typ + ".")
	}
	alg, ok := v.algorithms[h.Alg]
	if !ok {
		return nil, InvalidToken("The signed document's algorithm is not accepted.")
	}
	payload, _, found, aerr := v.checkSignature(tok, alg, h)
	if aerr == nil && !found {
		for _, s := range v.sources {
			s.refreshForUnknownKid(ctx, h.Kid)
		}
		payload, _, _, aerr = v.checkSignature(tok, alg, h)
	}
	switch {
	case aerr != nil:
		return nil, aerr
	case payload == nil:
		return nil, InvalidToken("The signed document's signature is invalid.")
	}
	if jsonscan.CheckStrict(payload) != nil {
		return nil, InvalidToken("The signed document is not strict JSON.")
	}
	return payload, nil
}
