package jwtauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jsonscan"
)

// The claim rules a token must pass: lifetime, issuer, audience, subject,
// and the optional token type and client.

// ClaimRules are the claim rules a credential's claims pass whatever
// carried them (a JWT's payload, an introspection answer): lifetime,
// issuer, audience and jti, and the client when Clients is set. They live
// here once, so that a token verified by signature and one verified by
// introspection are held to the same rules in the same order.
type ClaimRules struct {
	// Issuers accepted as iss, and audiences of which aud must name one.
	Issuers   []string
	Audiences []string
	// Leeway is the clock skew allowed on exp, nbf and iat.
	Leeway time.Duration
	// MaxLifetime, when positive, is the longest exp may lie ahead
	// (plus Leeway).
	MaxLifetime time.Duration
	// Clients, when set, are the accepted clients (client_id, else azp);
	// CheckClient applies them.
	Clients []string
	// ExpOptional and IssOptional let an absent exp or iss pass: an
	// introspection answer need name neither (the endpoint vouches for
	// the token). When present, each is held to its rule.
	ExpOptional bool
	IssOptional bool
}

// Check applies the rules in ASP.NET's order: lifetime, then issuer, then
// audience, then jti's type. The subject and the client are not its.
func (r *ClaimRules) Check(c Claims, at time.Time) *Error {
	now := float64(at.UnixNano()) / 1e9
	leeway := r.Leeway.Seconds()
	rawExp, present := c["exp"]
	if present || !r.ExpOptional {
		exp, ok := jsonscan.Float(rawExp)
		if !ok {
			return InvalidToken("The token has no numeric exp claim.")
		}
		if !saneDate(exp) {
			return InvalidToken("The token has an exp claim outside the years 1970 to 9999.")
		}
		if now > exp+leeway {
			return &Error{CodeTokenExpired, "The token has expired."}
		}
		if r.MaxLifetime > 0 && exp-now > r.MaxLifetime.Seconds()+leeway {
			return InvalidToken("The token lives longer than this API accepts.")
		}
	}
	for _, name := range []string{"nbf", "iat"} {
		raw, present := c[name]
		if !present {
			continue
		}
		t, ok := jsonscan.Float(raw)
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
	if _, present := c["iss"]; present || !r.IssOptional {
		if iss, _ := c.Str("iss"); !slices.Contains(r.Issuers, iss) {
			return &Error{CodeInvalidIssuer, "The token issuer is not accepted."}
		}
	}
	if !audienceMatches(c["aud"], r.Audiences) {
		return &Error{CodeInvalidAudience, "The token audience is not accepted."}
	}
	// jti is a string (RFC 7519 §4.1.7); a number or an object would be
	// read differently by whatever keys a replay check on it
	if raw, present := c["jti"]; present {
		if _, ok := jsonscan.String(raw); !ok {
			return InvalidToken("The token has a non-string jti claim.")
		}
	}
	return nil
}

// CheckClient applies Clients, when set: the token's client (client_id,
// else azp) must be one of them.
func (r *ClaimRules) CheckClient(c Claims) *Error {
	if r.Clients == nil {
		return nil
	}
	client, aerr := tokenClient(c)
	if aerr != nil {
		return aerr
	}
	if !slices.Contains(r.Clients, client) {
		return InvalidToken("The token was issued to a client that is not accepted.")
	}
	return nil
}

// checkClaims applies the claim rules every token must pass, then the
// subject rule (unless deferred to the caller).
func (v *Verifier) checkClaims(c Claims) *Error {
	if aerr := v.rules.Check(c, v.now()); aerr != nil {
		return aerr
	}
	if v.deferSubject {
		return nil
	}
	sub, _ := c.Str(v.subject)
	return CheckSubject(sub)
}

// CheckSubject is the subject rule, on the subject claim's string value
// ("" when it is absent or not a string): a non-empty string without
// spaces around it. The verifier applies it last among the claim rules
// unless Config.DeferSubject leaves it to the caller, which must then
// apply it itself.
func CheckSubject(sub string) *Error {
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
	return v.rules.CheckClient(c)
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
		s, ok := jsonscan.String(raw)
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

// maxNumericDate is 9999-12-31T23:59:59Z, the last second .NET's DateTime
// (and so the backend) can represent.
const maxNumericDate = 253402300799

// saneDate: a NumericDate between the epoch and the end of year 9999.
// Anything else is a token no provider issues, and one that overflows or
// wraps in the backend's date types.
func saneDate(t float64) bool { return t >= 0 && t <= maxNumericDate }

// audienceMatches: aud is one string or an array of strings (RFC 7519).
func audienceMatches(raw json.RawMessage, accepted []string) bool {
	if one, ok := jsonscan.String(raw); ok {
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
