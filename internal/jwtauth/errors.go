package jwtauth

// Error is a refusal of a token: its Code is one of the Code constants,
// its Desc a sentence for the client (a problem's detail, a challenge's
// error_description). Desc never contains the token or a claim value. The
// core knows nothing of HTTP: the glue maps each code to a status.
type Error struct {
	Code string
	Desc string
}

func (e *Error) Error() string { return e.Code + ": " + e.Desc }

// Codes of the refusals the core makes. They reach clients as the code of
// the route's problem answers, and clients switch on them, so they never
// change once released.
const (
	CodeMissingToken     = "MissingToken"
	CodeInvalidToken     = "InvalidToken"
	CodeTokenExpired     = "TokenExpired"
	CodeTokenNotYetValid = "TokenNotYetValid"
	CodeInvalidIssuer    = "InvalidIssuer"
	CodeInvalidAudience  = "InvalidAudience"
	CodeInvalidRequest   = "InvalidRequest"
	CodeKeysUnavailable  = "KeysUnavailable"
	// CodeIntrospectionUnavailable: the introspection endpoint could not
	// answer (down, slow, failing, every call slot busy). Like
	// KeysUnavailable it says nothing of the token, so it is never a 401.
	CodeIntrospectionUnavailable = "IntrospectionUnavailable"
)

var (
	// ErrMissingToken: the request carries no bearer token.
	ErrMissingToken = &Error{CodeMissingToken, "No bearer token was sent."}
	// ErrKeysUnavailable: no source has a key set in force yet, or any
	// more (past max_stale).
	ErrKeysUnavailable = &Error{CodeKeysUnavailable, "The signing keys could not be loaded yet. Try again shortly."}
	// ErrIntrospectionUnavailable: the introspection endpoint gave no
	// usable answer in time.
	ErrIntrospectionUnavailable = &Error{CodeIntrospectionUnavailable, "The token could not be checked with its issuer. Try again shortly."}
)

// InvalidToken is an InvalidToken refusal with its description.
func InvalidToken(desc string) *Error { return &Error{CodeInvalidToken, desc} }

// InvalidRequest is an InvalidRequest refusal with its description.
func InvalidRequest(desc string) *Error { return &Error{CodeInvalidRequest, desc} }
