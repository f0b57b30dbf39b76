package authn

import (
	"net/http"
	"strings"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
)

// Codes of the refusals this package makes besides the token core's
// (jwtauth.Code*). Clients switch on them, so they never change.
const (
	CodeServiceAccountForbidden = "ServiceAccountForbidden"
	CodeInvalidDPoPProof        = "InvalidDPoPProof"
)

// Refusal is the answer to a request whose caller is not accepted: the
// status, the problem's code and detail, and the WWW-Authenticate
// challenge ("" for none). It is built whole where the decision is made,
// so the glue only writes it.
type Refusal struct {
	Status    int
	Code      string
	Detail    string
	Challenge string
}

func (r *Refusal) Error() string { return r.Code + ": " + r.Detail }

// Status is the HTTP status of a refusal's code: the core's codes carry
// none, so this is where they meet HTTP.
func Status(code string) int {
	switch code {
	case jwtauth.CodeInvalidRequest:
		return http.StatusBadRequest
	case CodeServiceAccountForbidden:
		return http.StatusForbidden
	case jwtauth.CodeKeysUnavailable, jwtauth.CodeIntrospectionUnavailable, CodeStorageUnavailable:
		// nothing was learnt of the credential: try again, never a 401
		return http.StatusServiceUnavailable
	}
	// MissingToken, InvalidToken, TokenExpired, TokenNotYetValid,
	// InvalidIssuer, InvalidAudience, InvalidDPoPProof and anything new
	return http.StatusUnauthorized
}

// Challenge errors (RFC 6750 §3.1, RFC 9449 §7.1).
const (
	errInvalidRequest = "invalid_request"
	errInvalidToken   = "invalid_token"
	errInvalidProof   = "invalid_dpop_proof"
)

// BearerChallenge is the one place a WWW-Authenticate Bearer challenge is
// written (RFC 6750 §3): the realm, then the error code and its
// description when there are. A description never holds a quote: every
// one is a sentence of this module's.
func BearerChallenge(errCode, desc string) string {
	c := `Bearer realm="workspace"`
	if errCode != "" {
		c += `, error="` + errCode + `"`
	}
	if desc != "" {
		c += `, error_description="` + desc + `"`
	}
	return c
}

// Challenges are the handler's DPoP settings the challenges depend on,
// given as data: whether DPoP is accepted at all, whether it is required,
// and the proof algorithms a DPoP challenge names.
type Challenges struct {
	dpopOn, dpopRequired bool
	algs                 string // `algs="..."`
	dpopBare             string // `DPoP realm="workspace", algs="..."`
}

// NewChallenges builds the challenges of a DPoP mode and its proof
// algorithms (ignored when the mode is off).
func NewChallenges(mode DPoPMode, algs []string) Challenges {
	if mode == DPoPOff {
		return Challenges{}
	}
	c := Challenges{dpopOn: true, dpopRequired: mode == DPoPRequired, algs: `algs="` + strings.Join(algs, " ") + `"`}
	c.dpopBare = `DPoP realm="workspace", ` + c.algs
	return c
}

// dpopChallenge is the DPoP challenge with an error: realm, error and its
// description, then algs (RFC 9449 §7.1).
func (c *Challenges) dpopChallenge(errCode, desc string) string {
	return `DPoP realm="workspace", error="` + errCode + `", error_description="` + desc + `", ` + c.algs
}

// refuse is e answered with its code's Bearer challenge, or none for a
// code that has none (403, 503).
func refuse(e *jwtauth.Error) *Refusal {
	r := &Refusal{Status: Status(e.Code), Code: e.Code, Detail: e.Desc}
	switch e.Code {
	case jwtauth.CodeMissingToken:
		r.Challenge = BearerChallenge("", "")
	case jwtauth.CodeInvalidRequest:
		r.Challenge = BearerChallenge(errInvalidRequest, "")
	case jwtauth.CodeInvalidToken, jwtauth.CodeTokenExpired, jwtauth.CodeTokenNotYetValid, jwtauth.CodeInvalidIssuer, jwtauth.CodeInvalidAudience:
		r.Challenge = BearerChallenge(errInvalidToken, e.Desc)
	}
	return r
}

// asDPoP is a refusal of a token answered with a DPoP challenge: the
// client used (or must use) the DPoP scheme, so that is the scheme its
// error is told in (RFC 9449 §7.1). A refusal without a challenge (503
// KeysUnavailable) keeps none.
func (c *Challenges) asDPoP(e *jwtauth.Error) *Refusal {
	errCode := ""
	switch e.Code {
	case jwtauth.CodeInvalidToken, jwtauth.CodeTokenExpired, jwtauth.CodeTokenNotYetValid, jwtauth.CodeInvalidIssuer, jwtauth.CodeInvalidAudience:
		errCode = errInvalidToken
	case CodeInvalidDPoPProof:
		errCode = errInvalidProof
	case jwtauth.CodeInvalidRequest:
		errCode = errInvalidRequest
	default:
		return refuse(e)
	}
	return &Refusal{Status: Status(e.Code), Code: e.Code, Detail: e.Desc, Challenge: c.dpopChallenge(errCode, e.Desc)}
}

// missing is the refusal of a request without a credential: when DPoP is
// allowed, its challenge offers both schemes (RFC 9449 §7.2); when it is
// required, DPoP only; when it is off, Bearer only.
func (c *Challenges) missing(e *jwtauth.Error) *Refusal {
	switch {
	case !c.dpopOn || e.Code != jwtauth.CodeMissingToken:
		return refuse(e)
	case c.dpopRequired:
		return &Refusal{Status: Status(e.Code), Code: e.Code, Detail: DetailNoDPoPToken, Challenge: c.dpopBare}
	}
	return &Refusal{Status: Status(e.Code), Code: e.Code, Detail: e.Desc, Challenge: BearerChallenge("", "") + ", " + c.dpopBare}
}

// BackendChallenge is the challenge of a backend's 401 in upstream mode,
// in the scheme the client used (RFC 9449 §7.1): authorization is the
// request's Authorization header, which passed Authenticate, so it holds
// one credential of a scheme this route accepts.
func (c *Challenges) BackendChallenge(authorization, desc string) string {
	if c.dpopOn && len(authorization) > 5 && strings.EqualFold(authorization[:5], "DPoP ") {
		return c.dpopChallenge(errInvalidToken, desc)
	}
	return BearerChallenge(errInvalidToken, desc)
}
