package caddymodule

import (
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// Request outcomes, the values of requests_total's outcome label.
const (
	outcomeOK                       = "ok"
	outcomeNotModified              = "not_modified"
	outcomeValidationError          = "validation_error"
	outcomeNotFound                 = "not_found"
	outcomePrecondition             = "precondition_failed"
	outcomeMethodNotAllowed         = "method_not_allowed"
	outcomeStorageError             = "storage_error"
	outcomeUpstreamError            = "upstream_error"
	outcomeClientClosed             = "client_closed"
	outcomeUserNameTaken            = "user_name_taken"
	outcomePayloadTooLarge          = "payload_too_large"
	outcomeUnsupportedMedia         = "unsupported_media_type"
	outcomeServiceAccount           = "service_account"
	outcomeKeysUnavailable          = "keys_unavailable"
	outcomeIntrospectionUnavailable = "introspection_unavailable"
	outcomeMissingToken             = "missing_token"
	outcomeInvalidToken             = "invalid_token"
	outcomeExpired                  = "expired"
	outcomeNotYetValid              = "not_yet_valid"
	outcomeInvalidIssuer            = "invalid_issuer"
	outcomeInvalidAudience          = "invalid_audience"
	outcomeInvalidRequest           = "invalid_request"
	outcomeUpstreamRejected         = "upstream_rejected"
	outcomeInvalidPath              = "invalid_path"
)

// outcomeOf is the one table from the code of an answer the route makes
// itself (a problem's code, the first error of a failed envelope) to the
// outcome it is counted under. The writers of serve.go consult it, so that
// a response is counted where, and as, it is written. A backend's answer
// relayed in upstream mode is counted by its status instead
// (relayedOutcome): its codes are the backend's.
var outcomeOf = map[string]string{
	// refusals of the token core, and the glue's own
	jwtauth.CodeMissingToken:             outcomeMissingToken,
	jwtauth.CodeInvalidToken:             outcomeInvalidToken,
	codeInvalidDPoPProof:                 outcomeInvalidToken,
	jwtauth.CodeTokenExpired:             outcomeExpired,
	jwtauth.CodeTokenNotYetValid:         outcomeNotYetValid,
	jwtauth.CodeInvalidIssuer:            outcomeInvalidIssuer,
	jwtauth.CodeInvalidAudience:          outcomeInvalidAudience,
	jwtauth.CodeInvalidRequest:           outcomeInvalidRequest,
	jwtauth.CodeKeysUnavailable:          outcomeKeysUnavailable,
	jwtauth.CodeIntrospectionUnavailable: outcomeIntrospectionUnavailable,
	codeServiceAccountForbidden:          outcomeServiceAccount,
	codeInvalidPath:                      outcomeInvalidPath,

	// the request itself
	profile.CodeMethodNotAllowed:     outcomeMethodNotAllowed,
	profile.CodeUnsupportedMediaType: outcomeUnsupportedMedia,
	profile.CodePayloadTooLarge:      outcomePayloadTooLarge,
	profile.CodeInvalidJSON:          outcomeValidationError,
	profile.CodeDuplicateProperty:    outcomeValidationError,
	profile.CodeInvalidType:          outcomeValidationError,
	profile.CodeRequired:             outcomeValidationError,
	profile.CodeTooShort:             outcomeValidationError,
	profile.CodeTooLong:              outcomeValidationError,
	profile.CodeInvalidCharacters:    outcomeValidationError,
	profile.CodeInvalidEmail:         outcomeValidationError,

	// the store
	profile.CodeProfileNotFound:    outcomeNotFound,
	profile.CodePreconditionFailed: outcomePrecondition,
	profile.CodeUserNameTaken:      outcomeUserNameTaken,
	profile.CodeStorageUnavailable: outcomeStorageError,

	// the backend trip
	profile.CodeUpstreamUnavailable:      outcomeUpstreamError,
	profile.CodeUpstreamTimeout:          outcomeUpstreamError,
	profile.CodeUpstreamInvalidResponse:  outcomeUpstreamError,
	profile.CodeUpstreamResponseTooLarge: outcomeUpstreamError,
}

// problemOutcome is the outcome of a problem the route writes; a code the
// table lacks is an invalid token, as every refusal of a token is.
func problemOutcome(code string) string {
	if o, ok := outcomeOf[code]; ok {
		return o
	}
	return outcomeInvalidToken
}

// envelopeOutcome is the outcome of an envelope the route writes: ok when
// it succeeds, else its first error's; a code the table lacks is the
// request's fault, as the validation rules' many codes are.
func envelopeOutcome(env profile.Envelope) string {
	if env.Success {
		return outcomeOK
	}
	if len(env.Errors) > 0 {
		if o, ok := outcomeOf[env.Errors[0].Code]; ok {
			return o
		}
	}
	return outcomeValidationError
}

// relayedOutcome is the outcome of a backend's answer relayed in upstream
// mode, by its normalized status.
func relayedOutcome(status int) string {
	switch {
	case status < 400:
		return outcomeOK
	case status >= 500:
		return outcomeUpstreamError
	}
	return outcomeUpstreamRejected
}

func countOutcome(outcome string) { metricRequests.WithLabelValues(outcome).Inc() }
