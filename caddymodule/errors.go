package caddymodule

import (
	"errors"
	"net/http"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// Problem codes the glue refuses with besides the core's (jwtauth.Code*).
const (
	codeServiceAccountForbidden = "ServiceAccountForbidden"
	// codeInvalidPath: the path names the route only through an encoded
	// slash, a backslash or a control character.
	codeInvalidPath = "InvalidPath"
)

// errServiceAccount refuses a token of a service account, in the legacy
// API's own words.
var errServiceAccount = &jwtauth.Error{Code: codeServiceAccountForbidden, Desc: profile.ServiceAccountDetail}

// authStatus is the status of an authentication refusal: the core's codes
// carry none, so this is where they meet HTTP.
func authStatus(e *jwtauth.Error) int {
	switch e.Code {
	case jwtauth.CodeMissingToken, jwtauth.CodeInvalidToken, jwtauth.CodeTokenExpired, jwtauth.CodeTokenNotYetValid,
		jwtauth.CodeInvalidIssuer, jwtauth.CodeInvalidAudience, codeInvalidDPoPProof:
		return http.StatusUnauthorized
	case jwtauth.CodeInvalidRequest:
		return http.StatusBadRequest
	case codeServiceAccountForbidden:
		return http.StatusForbidden
	case jwtauth.CodeKeysUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusUnauthorized
}

// refusal is an authentication refusal with the WWW-Authenticate
// challenge it is answered with. The core's refusals carry no challenge
// (it knows nothing of HTTP); most are answered with their code's Bearer
// challenge (wwwAuthenticate), and the DPoP ones (dpop_challenges.go) with
// one that names the scheme the client used and the handler's algorithms.
type refusal struct {
	*jwtauth.Error
	challenge string // "": the code's default, wwwAuthenticate
}

// refuse is e answered with its code's default challenge.
func refuse(e *jwtauth.Error) *refusal { return &refusal{Error: e} }

// withChallenge is the refusal (code, desc) answered with challenge.
func withChallenge(code, desc, challenge string) *refusal {
	return &refusal{Error: &jwtauth.Error{Code: code, Desc: desc}, challenge: challenge}
}

// wwwAuthenticate is the challenge the refusal is answered with, "" for none.
func (r *refusal) wwwAuthenticate() string {
	if r.challenge != "" {
		return r.challenge
	}
	return wwwAuthenticate(r.Error)
}

// wwwAuthenticate is the default challenge for e, or "" when none is sent.
func wwwAuthenticate(e *jwtauth.Error) string {
	switch e.Code {
	case jwtauth.CodeMissingToken:
		return bearerChallenge("", "")
	case jwtauth.CodeInvalidRequest:
		return bearerChallenge("invalid_request", "")
	case jwtauth.CodeInvalidToken, jwtauth.CodeTokenExpired, jwtauth.CodeTokenNotYetValid, jwtauth.CodeInvalidIssuer, jwtauth.CodeInvalidAudience:
		return bearerChallenge("invalid_token", e.Desc)
	}
	return ""
}

// bearerChallenge is the one place a WWW-Authenticate Bearer challenge is
// written (RFC 6750 section 3): the realm, then the error code and its
// description when there are. A description never holds a quote: every
// one is a sentence of this module's.
func bearerChallenge(errCode, desc string) string {
	c := `Bearer realm="workspace"`
	if errCode != "" {
		c += `, error="` + errCode + `"`
	}
	if desc != "" {
		c += `, error_description="` + desc + `"`
	}
	return c
}

// statusOf maps an error of the profile service to the status and envelope
// item the route answers with. It is the one place where domain errors meet
// HTTP; anything it does not know is a store failure.
func statusOf(err error) (int, profile.Item) {
	switch {
	case errors.Is(err, profile.ErrNotFound):
		return http.StatusNotFound, profile.NotFoundItem()
	case errors.Is(err, profile.ErrPreconditionFailed):
		return http.StatusPreconditionFailed, profile.PreconditionFailedItem()
	case errors.Is(err, profile.ErrUserNameTaken):
		return http.StatusBadRequest, profile.UserNameTakenItem()
	default:
		return http.StatusServiceUnavailable, profile.StorageUnavailableItem()
	}
}
