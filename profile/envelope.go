package profile

import "encoding/json"

// ItemType classifies an error or warning item (the legacy API's enum).
type ItemType int

// Item types.
const (
	TypeValidation   ItemType = 0
	TypeBusinessRule ItemType = 1
	TypeSystem       ItemType = 2
)

// Severity of an error or warning item (the legacy API's enum).
type Severity int

// Severities.
const (
	SeverityInfo    Severity = 0
	SeverityWarning Severity = 1
	SeverityError   Severity = 2
)

// TargetProfile is the Target of every item this route emits.
const TargetProfile = "Profile"

// Item is one error or warning of the envelope. Code and Message are always
// set; the other keys are written as null when empty, as ASP.NET does.
type Item struct {
	Code     string            `json:"Code"`
	Message  string            `json:"Message"`
	Target   *string           `json:"Target"`
	Field    *string           `json:"Field"`
	Metadata map[string]string `json:"Metadata"`
	Type     ItemType          `json:"Type"`
	Severity Severity          `json:"Severity"`
}

// ProfileData is the wire form of a Profile, the envelope's Data.
type ProfileData struct {
	UserID    string   `json:"UserId"`
	UserName  *string  `json:"UserName"`
	Email     *string  `json:"Email"`
	FirstName *string  `json:"FirstName"`
	LastName  *string  `json:"LastName"`
	UserType  UserType `json:"UserType"`
}

// Data converts p to its wire form; unset fields become null.
func (p Profile) Data() *ProfileData {
	return &ProfileData{
		UserID:    p.UserID,
		UserName:  nullable(p.UserName),
		Email:     nullable(p.Email),
		FirstName: nullable(p.FirstName),
		LastName:  nullable(p.LastName),
		UserType:  p.UserType,
	}
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Envelope is the body of every response on the route that is not an
// authentication failure. Errors and Warnings are never null.
type Envelope struct {
	Data     *ProfileData `json:"Data"`
	Errors   Items        `json:"Errors"`
	Warnings Items        `json:"Warnings"`
	Success  bool         `json:"Success"`
}

// Items is a list of errors or warnings; it is written as [] when empty,
// even in an Envelope built by hand.
type Items []Item

// MarshalJSON implements json.Marshaler.
func (it Items) MarshalJSON() ([]byte, error) {
	if len(it) == 0 {
		return []byte("[]"), nil
	}
	return json.Marshal([]Item(it))
}

// OK is a successful envelope carrying p and the given warnings.
func OK(p Profile, warnings ...Item) Envelope {
	return Envelope{Data: p.Data(), Errors: []Item{}, Warnings: nonNil(warnings), Success: true}
}

// Failed is an envelope that carries errors and no data.
func Failed(errs ...Item) Envelope {
	return Envelope{Errors: nonNil(errs), Warnings: []Item{}}
}

func nonNil(items []Item) []Item {
	if items == nil {
		return []Item{}
	}
	return items
}

// Problem is an RFC 9457 problem details body shaped as ASP.NET Core writes
// it, with the extension members code and traceId.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	Code     string `json:"code"`
	TraceID  string `json:"traceId,omitempty"`
}

// problemTypes are the type URIs ASP.NET Core uses for each status.
var problemTypes = map[int][2]string{
	400: {"https://tools.ietf.org/html/rfc9110#section-15.5.1", "Bad Request"},
	401: {"https://tools.ietf.org/html/rfc9110#section-15.5.2", "Unauthorized"},
	403: {"https://tools.ietf.org/html/rfc9110#section-15.5.4", "Forbidden"},
	502: {"https://tools.ietf.org/html/rfc9110#section-15.6.3", "Bad Gateway"},
	503: {"https://tools.ietf.org/html/rfc9110#section-15.6.4", "Service Unavailable"},
}

// NewProblem builds the problem for status with the ASP.NET type and title.
func NewProblem(status int, code, detail, instance, traceID string) Problem {
	t := problemTypes[status]
	if t[0] == "" {
		t = [2]string{"about:blank", "Error"}
	}
	return Problem{Type: t[0], Title: t[1], Status: status, Detail: detail, Instance: instance, Code: code, TraceID: traceID}
}
