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
		jwtauth.CodeInvalidIssuer, jwtauth.CodeInvalidAudience:
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

// wwwAuthenticate is the challenge for e, or "" when none is sent.
func wwwAuthenticate(e *jwtauth.Error) string {
	switch e.Code {
	case jwtauth.CodeMissingToken:
		return `Bearer realm="workspace"`
	case jwtauth.CodeInvalidRequest:
		return `Bearer realm="workspace", error="invalid_request"`
	case jwtauth.CodeInvalidToken, jwtauth.CodeTokenExpired, jwtauth.CodeTokenNotYetValid, jwtauth.CodeInvalidIssuer, jwtauth.CodeInvalidAudience:
		return `Bearer realm="workspace", error="invalid_token", error_description="` + e.Desc + `"`
	}
	return ""
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
