package profile

import "strconv"

// The texts the HTTP layer writes to clients in answers it makes itself,
// beside the items of codes.go: every message of the route is written in
// this package, so that a change of wording is one diff and reviewed as
// contract.

// Details of the problems the HTTP layer answers with besides the token
// core's own.
const (
	DetailInvalidPath         = "The request path names this route through an encoded slash, a backslash or a control character."
	DetailUnusableSubject     = "The token subject is not a usable profile key."
	DetailIdentityClaimTwice  = "The token names an identity claim twice, in different letter case."
	DetailBackendRefusedToken = "The backend refused the token."
)

// ServiceAccountDetail is the legacy API's own words for refusing a service
// account; a backend 403 that says them keeps its code,
// ServiceAccountForbidden, and the route says them when it refuses one.
const ServiceAccountDetail = "Service accounts cannot access this endpoint via API keys."

// msgBackendRejected is said of a backend's 4xx that gives no reason.
const msgBackendRejected = "The backend rejected the request."

// NoChangesWarning says a PUT left the profile as it was.
func NoChangesWarning() Item {
	return NewWarning(CodeNoChanges, "The request changes nothing; the profile is as it was.", "")
}

// BodyUnreadableItem says the PUT body broke off while it was read.
func BodyUnreadableItem() Item {
	return NewError(CodeInvalidJSON, "The request body could not be read.", "", TypeValidation, nil)
}

// BackendRejectedItem is a backend's refusal that gives no reason.
func BackendRejectedItem() Item {
	return NewError(CodeUpstreamError, msgBackendRejected, "", TypeBusinessRule, nil)
}

// UpstreamUnavailableItem says the backend could not be reached.
func UpstreamUnavailableItem() Item {
	return NewError(CodeUpstreamUnavailable, "The backend could not be reached.", "", TypeSystem, nil)
}

// UpstreamTimeoutItem says the backend did not answer in time.
func UpstreamTimeoutItem() Item {
	return NewError(CodeUpstreamTimeout, "The backend did not answer in time.", "", TypeSystem, nil)
}

// UpstreamBrokenOffItem says the backend's answer broke off after its
// headers.
func UpstreamBrokenOffItem() Item {
	return NewError(CodeUpstreamInvalidResponse, "The backend's answer broke off.", "", TypeSystem, nil)
}

// UpstreamTooLargeItem says the backend's answer exceeded maxBytes.
func UpstreamTooLargeItem(maxBytes int64) Item {
	return NewError(CodeUpstreamResponseTooLarge, "The backend's answer is larger than this API accepts.", "", TypeSystem,
		map[string]string{"MaxBytes": strconv.FormatInt(maxBytes, 10)})
}
