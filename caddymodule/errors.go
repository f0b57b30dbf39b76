package caddymodule

import (
	"errors"
	"net/http"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// authError is a refusal of the authentication step: it becomes a problem
// details response. desc goes into the detail and WWW-Authenticate's
// error_description; it never contains the token or any claim value.
type authError struct {
	status int
	code   string
	desc   string
}

func (e *authError) Error() string { return e.code + ": " + e.desc }

// Problem codes of authentication (CONTRACT section 3).
const (
	codeMissingToken            = "MissingToken"
	codeInvalidToken            = "InvalidToken"
	codeTokenExpired            = "TokenExpired"
	codeTokenNotYetValid        = "TokenNotYetValid"
	codeInvalidIssuer           = "InvalidIssuer"
	codeInvalidAudience         = "InvalidAudience"
	codeInvalidRequest          = "InvalidRequest"
	codeServiceAccountForbidden = "ServiceAccountForbidden"
	codeKeysUnavailable         = "KeysUnavailable"
	// codeInvalidPath: the path names the route only through an encoded
	// slash, a backslash or a control character.
	codeInvalidPath = "InvalidPath"
)

// serviceAccountDetail is the legacy API's own words for the refusal.
const serviceAccountDetail = profile.ServiceAccountDetail

var (
	errMissingToken    = &authError{http.StatusUnauthorized, codeMissingToken, "No bearer token was sent."}
	errServiceAccount  = &authError{http.StatusForbidden, codeServiceAccountForbidden, serviceAccountDetail}
	errKeysUnavailable = &authError{http.StatusServiceUnavailable, codeKeysUnavailable, "The signing keys could not be loaded yet. Try again shortly."}
)

func errInvalidToken(desc string) *authError {
	return &authError{http.StatusUnauthorized, codeInvalidToken, desc}
}

func errInvalidRequest(desc string) *authError {
	return &authError{http.StatusBadRequest, codeInvalidRequest, desc}
}

// wwwAuthenticate is the challenge for e, or "" when none is sent.
func (e *authError) wwwAuthenticate() string {
	switch e.code {
	case codeMissingToken:
		return `Bearer realm="workspace"`
	case codeInvalidRequest:
		return `Bearer realm="workspace", error="invalid_request"`
	case codeInvalidToken, codeTokenExpired, codeTokenNotYetValid, codeInvalidIssuer, codeInvalidAudience:
		return `Bearer realm="workspace", error="invalid_token", error_description="` + e.desc + `"`
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
