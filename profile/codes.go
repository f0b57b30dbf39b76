package profile

import "strconv"

// Error and warning codes of the envelope. They are part of the public
// contract: clients switch on them, so they never change once released.
const (
	CodeInvalidJSON          = "InvalidJson"
	CodeDuplicateProperty    = "DuplicateProperty"
	CodeInvalidType          = "InvalidType"
	CodeRequired             = "Required"
	CodeTooShort             = "TooShort"
	CodeTooLong              = "TooLong"
	CodeInvalidCharacters    = "InvalidCharacters"
	CodeInvalidEmail         = "InvalidEmail"
	CodeUserNameTaken        = "UserNameTaken"
	CodeProfileNotFound      = "ProfileNotFound"
	CodePreconditionFailed   = "PreconditionFailed"
	CodePayloadTooLarge      = "PayloadTooLarge"
	CodeUnsupportedMediaType = "UnsupportedMediaType"
	CodeMethodNotAllowed     = "MethodNotAllowed"
	CodeStorageUnavailable   = "StorageUnavailable"

	// warnings
	CodeUnknownField = "UnknownField"
	CodeNoChanges    = "NoChanges"
)

// Codes of the items the normalizer and the upstream trip emit.
const (
	CodeUpstreamError            = "UpstreamError"
	CodeUpstreamInvalidResponse  = "UpstreamInvalidResponse"
	CodeUpstreamUnavailable      = "UpstreamUnavailable"
	CodeUpstreamTimeout          = "UpstreamTimeout"
	CodeUpstreamResponseTooLarge = "UpstreamResponseTooLarge"
	CodeValidationError          = "ValidationError"
)

// The four properties a PUT may carry, in their canonical spelling.
const (
	FieldUserName  = "UserName"
	FieldEmail     = "Email"
	FieldFirstName = "FirstName"
	FieldLastName  = "LastName"
)

func target() *string { t := TargetProfile; return &t }

func fieldPtr(f string) *string {
	if f == "" {
		return nil
	}
	return &f
}

// NewError builds an error item about field (empty for the whole request).
func NewError(code, message, field string, typ ItemType, meta map[string]string) Item {
	return Item{Code: code, Message: message, Target: target(), Field: fieldPtr(field),
		Metadata: meta, Type: typ, Severity: SeverityError}
}

// NewWarning builds a warning item about field (empty for the whole request).
func NewWarning(code, message, field string) Item {
	return Item{Code: code, Message: message, Target: target(), Field: fieldPtr(field),
		Type: TypeValidation, Severity: SeverityWarning}
}

// Items for the failures the HTTP layer reports; kept here so that every
// message of the route is written in one place.

// NotFoundItem says the caller has no profile.
func NotFoundItem() Item {
	return NewError(CodeProfileNotFound, "No profile exists for the authenticated account.", "", TypeBusinessRule, nil)
}

// PreconditionFailedItem says If-Match did not match the current ETag.
func PreconditionFailedItem() Item {
	return NewError(CodePreconditionFailed, "The profile has changed since it was read (If-Match does not match the current ETag).", "", TypeBusinessRule, nil)
}

// PayloadTooLargeItem says the body exceeded maxBytes.
func PayloadTooLargeItem(maxBytes int64) Item {
	return NewError(CodePayloadTooLarge, "The request body is too large.", "", TypeValidation,
		map[string]string{"MaxBytes": strconv.FormatInt(maxBytes, 10)})
}

// UnsupportedMediaTypeItem says the body is not JSON.
func UnsupportedMediaTypeItem() Item {
	return NewError(CodeUnsupportedMediaType, "The request body must be sent as application/json.", "", TypeValidation, nil)
}

// MethodNotAllowedItem says only GET and PUT are served.
func MethodNotAllowedItem() Item {
	return NewError(CodeMethodNotAllowed, "This endpoint supports GET and PUT only.", "", TypeValidation, nil)
}

// StorageUnavailableItem says the store failed; details stay in the log.
func StorageUnavailableItem() Item {
	return NewError(CodeStorageUnavailable, "The profile store is unavailable. Try again later.", "", TypeSystem, nil)
}

// UserNameTakenItem says another account holds the requested user name.
func UserNameTakenItem() Item {
	return NewError(CodeUserNameTaken, "The user name is already taken.", FieldUserName, TypeBusinessRule, nil)
}
