package caddymodule

import (
	"net/http"
	"strings"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
)

// Problem details of DPoP refusals: sentences for the client.
const (
	detailDPoPRequired      = "This route accepts only DPoP-bound tokens, sent with the DPoP scheme and a DPoP proof."
	detailNoDPoPToken       = "No DPoP-bound token was sent."
	detailBoundAsBearer     = "The token is bound to a DPoP key: send it with the DPoP scheme and a DPoP proof."
	detailBoundNoDPoP       = "The token is bound to a DPoP key, and this route does not accept DPoP."
	detailUnboundAsDPoP     = "The token is not bound to a DPoP key (no cnf.jkt claim): send it with the Bearer scheme."
	detailCnfMalformed      = "The token has a malformed cnf claim."
	detailCnfOther          = "The token is bound to a key by a confirmation method other than DPoP, which this route cannot check."
	detailDPoPKeyMismatch   = "The token is bound to another key than the one that signed the DPoP proof."
	codeInvalidDPoPProof    = "InvalidDPoPProof"
	dpopErrorInvalidProof   = "invalid_dpop_proof"
	dpopErrorInvalidToken   = "invalid_token"
	dpopErrorInvalidRequest = "invalid_request"
)

// on reports whether DPoP tokens are accepted at all.
func (d *DPoP) on() bool { return d != nil && d.verifier != nil }

func (d *DPoP) required() bool { return d.on() && d.Mode == DPoPRequired }

// extract finds the token: with DPoP off, exactly as before DPoP
// (Authorization: DPoP is another scheme, so no token).
func (d *DPoP) extract(r *http.Request, allowQuery bool) (jwtauth.Credential, *jwtauth.Error) {
	return jwtauth.ExtractCredential(r, allowQuery, d.on())
}

// missing is the refusal of a request without a token: when DPoP is
// allowed, its challenge offers both schemes (RFC 9449 §7.2); when it is
// required, DPoP only; when it is off, Bearer only, as before.
func (d *DPoP) missing(aerr *jwtauth.Error) *refusal {
	switch {
	case !d.on() || aerr.Code != jwtauth.CodeMissingToken:
		return refuse(aerr)
	case d.required():
		return withChallenge(aerr.Code, detailNoDPoPToken, d.challenge)
	}
	return withChallenge(aerr.Code, aerr.Desc, bearerChallenge("", "")+", "+d.challenge)
}

// asDPoP is a refusal of a token answered with a DPoP challenge: the
// client used (or must use) the DPoP scheme, so that is the scheme its
// error is told in (RFC 9449 §7.1). A refusal without a challenge (503
// KeysUnavailable) keeps none.
func (d *DPoP) asDPoP(aerr *jwtauth.Error) *refusal {
	errCode := ""
	switch aerr.Code {
	case jwtauth.CodeInvalidToken, jwtauth.CodeTokenExpired, jwtauth.CodeTokenNotYetValid, jwtauth.CodeInvalidIssuer, jwtauth.CodeInvalidAudience:
		errCode = dpopErrorInvalidToken
	case codeInvalidDPoPProof:
		errCode = dpopErrorInvalidProof
	case jwtauth.CodeInvalidRequest:
		errCode = dpopErrorInvalidRequest
	default:
		return refuse(aerr)
	}
	return withChallenge(aerr.Code, aerr.Desc, d.dpopChallenge(errCode, aerr.Desc))
}

// backendRefusal is the challenge of a backend's 401 in upstream mode: in
// the scheme the client used (RFC 9449 §7.1), so a DPoP client is told in
// a DPoP challenge. The request passed authenticate, so its Authorization
// holds one credential of a scheme this handler accepts.
func (d *DPoP) backendRefusal(r *http.Request, desc string) string {
	if auth := r.Header.Get("Authorization"); d.on() && len(auth) > 5 && strings.EqualFold(auth[:5], "DPoP ") {
		return d.dpopChallenge(dpopErrorInvalidToken, desc)
	}
	return bearerChallenge("invalid_token", desc)
}

// dpopChallenge is the DPoP challenge with an error: realm, error and its
// description, then algs (RFC 9449 §7.1).
func (d *DPoP) dpopChallenge(errCode, desc string) string {
	return `DPoP realm="workspace", error="` + errCode + `", error_description="` + desc + `", ` + d.algs
}
