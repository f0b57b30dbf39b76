package profile

import (
	"bytes"
	"slices"
	"strings"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jsonscan"
)

// LegacyResponse is what a legacy backend answered, read whole.
type LegacyResponse struct {
	Status      int
	ContentType string
	Body        []byte
}

// Normalized is what the client gets for a LegacyResponse: an envelope, a
// problem (401 and 403), or neither for a body-less answer (304).
type Normalized struct {
	Status   int
	Envelope *Envelope
	Problem  *Problem
}

// Normalize turns whatever a legacy backend answered into the contract's
// shapes. It never fails and never passes the backend's text, HTML or
// server-error messages through: 2xx and 4xx statuses are kept, 5xx become
// 502, 401 and 403 become problem details.
func Normalize(r LegacyResponse) Normalized {
	switch {
	case r.Status == 304:
		return Normalized{Status: 304}
	case r.Status == 401 || r.Status == 403:
		return Normalized{Status: r.Status, Problem: legacyProblem(r)}
	case r.Status >= 500 || r.Status < 200:
		// a 5xx body may hold stack traces or internals: never passed on
		return failed(502, NewError(CodeUpstreamError, "The backend failed to process the request.", "", TypeSystem, nil))
	case r.Status >= 300 && r.Status < 400:
		return invalidResponse()
	}

	body := bytes.TrimSpace(r.Body)
	if len(body) == 0 {
		if r.Status < 300 {
			return Normalized{Status: 200, Envelope: &Envelope{Errors: Items{}, Warnings: Items{}, Success: true}}
		}
		return genericClientError(r.Status)
	}
	var obj object
	if !parseObject(r.ContentType, body, &obj) {
		if r.Status < 300 {
			return invalidResponse()
		}
		return genericClientError(r.Status)
	}
	// The shape is decided by the status first: a profile may well have a
	// "title" or "type" of its own, and only a 4xx is read as a problem.
	switch {
	case isEnvelope(&obj):
		return fromEnvelope(r.Status, &obj)
	case r.Status < 300 && isFlatProfile(&obj):
		box := profileData(&obj)
		box.env = Envelope{Data: &box.data, Errors: Items{}, Warnings: Items{}, Success: true}
		return Normalized{Status: r.Status, Envelope: &box.env}
	case r.Status < 300:
		return invalidResponse()
	case isProblem(&obj):
		return failed(r.Status, problemItems(&obj)...)
	default:
		return genericClientError(r.Status)
	}
}

func failed(status int, errs ...Item) Normalized {
	env := Failed(errs...)
	return Normalized{Status: status, Envelope: &env}
}

func invalidResponse() Normalized {
	return failed(502, NewError(CodeUpstreamInvalidResponse, "The backend answered in a form this API does not understand.", "", TypeSystem, nil))
}

// genericClientError keeps a 4xx whose body says nothing usable, with the
// item the contract uses for that status where it has one.
func genericClientError(status int) Normalized {
	var it Item
	switch status {
	case 404:
		it = NotFoundItem()
	case 405:
		it = MethodNotAllowedItem()
	case 412:
		it = PreconditionFailedItem()
	case 413:
		it = NewError(CodePayloadTooLarge, "The request body is too large.", "", TypeValidation, nil)
	case 415:
		it = UnsupportedMediaTypeItem()
	default:
		it = BackendRejectedItem()
	}
	return failed(status, it)
}

// isEnvelope: the legacy envelope's own members. A "data" member alone
// counts only when the object is not itself a profile that happens to
// have a field called data.
func isEnvelope(o *object) bool {
	return o.m[kSuccess] != nil || is(o.m[kWarnings], '[') || is(o.m[kErrors], '[') ||
		(o.m[kData] != nil && !isFlatProfile(o))
}

func isProblem(o *object) bool {
	return is(o.m[kErrors], '{') || o.m[kTitle] != nil || o.m[kDetail] != nil || o.m[kType] != nil
}

// The profile's properties under the names legacy services use for them.
var (
	keysUserID    = []int{kUserID, kID, kUID}
	keysUserName  = []int{kUserName, kLogin, kLoginName}
	keysEmail     = []int{kEmail, kEmailAddress, kMail}
	keysFirstName = []int{kFirstName, kGivenName}
	keysLastName  = []int{kLastName, kFamilyName, kSurname}
	keysUserType  = []int{kUserType, kAccountType}
)

func isFlatProfile(o *object) bool {
	for _, keys := range [][]int{keysUserID, keysUserName, keysEmail, keysFirstName, keysLastName} {
		if o.get(keys) != nil {
			return true
		}
	}
	return false
}

// profileBox holds a normalized profile in one allocation and its texts in
// one more, the envelope around it for a caller that wants one.
type profileBox struct {
	env  Envelope
	data ProfileData
	strs [4]string
}

func profileData(o *object) *profileBox {
	box := &profileBox{}
	optional := [...]**string{&box.data.UserName, &box.data.Email, &box.data.FirstName, &box.data.LastName}
	var texts [5][]byte
	var ok [5]bool
	n := 0
	for i, keys := range [...][]int{keysUserID, keysUserName, keysEmail, keysFirstName, keysLastName} {
		texts[i], ok[i] = textBytes(o.get(keys))
		n += len(texts[i])
	}
	var all strings.Builder
	all.Grow(n)
	for _, t := range texts {
		all.Write(t)
	}
	s := all.String()
	for i, t := range texts {
		if !ok[i] {
			continue
		}
		if i == 0 {
			box.data.UserID = s[:len(t)]
		} else {
			box.strs[i-1] = s[:len(t)]
			*optional[i-1] = &box.strs[i-1]
		}
		s = s[len(t):]
	}
	box.data.UserType = UserType(enumValue(o.get(keysUserType), 0))
	return box
}

func fromEnvelope(status int, o *object) Normalized {
	env := Envelope{Errors: items(o.m[kErrors], SeverityError), Warnings: items(o.m[kWarnings], SeverityWarning)}
	// Success is derived, not copied: an envelope that says it failed
	// with a 200, or succeeded with a 400, is made consistent.
	env.Success = status < 300 && len(env.Errors) == 0
	if !env.Success {
		if len(env.Errors) == 0 {
			env.Errors = Items{BackendRejectedItem()}
		}
		if status < 300 {
			status = 400
		}
		failed := env
		return Normalized{Status: status, Envelope: &failed}
	}
	if data := o.m[kData]; is(data, '{') {
		var d object
		d.members(data)
		box := profileData(&d)
		box.env = env
		box.env.Data = &box.data
		return Normalized{Status: status, Envelope: &box.env}
	}
	ok := env // a variable of its own, allocated only on this path
	return Normalized{Status: status, Envelope: &ok}
}

// items reads the backend's errors or warnings in any key case; an item
// without code or message gets a generic one, since both are required.
func items(v []byte, defaultSeverity Severity) Items {
	out := Items{}
	if !is(v, '[') {
		return out
	}
	for x, i := jsonscan.NextElement(v, 1); i >= 0; x, i = jsonscan.NextElement(v, i) {
		if !is(x, '{') {
			continue
		}
		var o object
		o.members(x)
		it := Item{Code: CodeUpstreamError, Message: "The backend reported a problem.", Severity: defaultSeverity}
		if t, ok := textBytes(o.m[kCode]); ok {
			it.Code = string(t)
		}
		if t, ok := textBytes(o.m[kMessage]); ok {
			it.Message = string(t)
		}
		if it.Target = str(o.m[kTarget]); it.Target == nil {
			it.Target = target()
		}
		if t, ok := textBytes(o.m[kField]); ok {
			f := fieldName(string(t))
			it.Field = &f
		}
		if m := o.m[kMetadata]; is(m, '{') {
			it.Metadata = metadata(m)
		}
		it.Type = ItemType(enumValue(o.m[kType], int(TypeValidation)))
		it.Severity = Severity(enumValue(o.m[kSeverity], int(defaultSeverity)))
		out = append(out, it)
	}
	return out
}

// metadata reads an item's metadata, its keys as the backend wrote them:
// nil for {}, else the members with text, the last of a key counting.
func metadata(obj []byte) map[string]string {
	var meta map[string]string
	for key, val, i := jsonscan.NextMember(obj, 1); i >= 0; key, val, i = jsonscan.NextMember(obj, i) {
		if meta == nil {
			meta = map[string]string{}
		}
		if t, ok := textBytes(val); ok {
			meta[jsonscan.Unquote(key)] = string(t)
		} else {
			delete(meta, jsonscan.Unquote(key))
		}
	}
	return meta
}

// enumValue reads 0, 1 or 2 (a number or a numeric string), else def.
func enumValue(v []byte, def int) int {
	if t, ok := textBytes(v); ok {
		if n, ok := smallInt(t); ok {
			return n
		}
	}
	return def
}

// fieldName maps an ASP.NET model-state key ("$.userName", "UserName",
// "userName") to the contract's property name; other keys stay as given.
func fieldName(k string) string {
	k = strings.TrimPrefix(strings.TrimPrefix(k, "$"), ".")
	if c := canonicalField(k); c != "" {
		return c
	}
	return k
}

// problemItems turns RFC 7807/9457 problem details into error items: one
// per message of ASP.NET's errors map (Field set), else one for the whole.
func problemItems(o *object) []Item {
	var errs []Item
	if m := o.m[kErrors]; is(m, '{') {
		type member struct {
			field string
			val   []byte
		}
		var fields []member
		for key, val, i := jsonscan.NextMember(m, 1); i >= 0; key, val, i = jsonscan.NextMember(m, i) {
			fields = append(fields, member{jsonscan.Unquote(key), val})
		}
		// sorted for a stable output; of a field given twice, the last counts
		slices.SortStableFunc(fields, func(a, b member) int { return strings.Compare(a.field, b.field) })
		for i, f := range fields {
			if i+1 < len(fields) && fields[i+1].field == f.field {
				continue
			}
			msgs := f.val
			if is(msgs, '"') {
				if t, ok := textBytes(msgs); ok {
					errs = append(errs, NewError(CodeValidationError, string(t), fieldName(f.field), TypeValidation, nil))
				}
				continue
			}
			if !is(msgs, '[') {
				continue
			}
			for msg, j := jsonscan.NextElement(msgs, 1); j >= 0; msg, j = jsonscan.NextElement(msgs, j) {
				if t, ok := textBytes(msg); ok {
					errs = append(errs, NewError(CodeValidationError, string(t), fieldName(f.field), TypeValidation, nil))
				}
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	code := CodeUpstreamError
	if t, ok := textBytes(o.m[kCode]); ok {
		code = string(t)
	}
	msg := msgBackendRejected
	if t, ok := textBytes(o.m[kDetail]); ok {
		msg = string(t)
	} else if t, ok := textBytes(o.m[kTitle]); ok {
		msg = string(t)
	}
	return []Item{NewError(code, msg, "", TypeBusinessRule, nil)}
}

// legacyProblem is the problem details for a backend's 401 or 403. The
// backend's detail is kept when it gave one in JSON; its code too.
func legacyProblem(r LegacyResponse) *Problem {
	code, detail := "InvalidToken", "The backend refused the credentials."
	if r.Status == 403 {
		code, detail = "Forbidden", "The backend refused access."
	}
	var o object
	if parseObject(r.ContentType, bytes.TrimSpace(r.Body), &o) {
		if t, ok := textBytes(o.m[kDetail]); ok {
			detail = string(t)
		} else if errs := items(o.m[kErrors], SeverityError); len(errs) > 0 {
			detail = errs[0].Message
		} else if t, ok := textBytes(o.m[kMessage]); ok {
			detail = string(t)
		}
		if t, ok := textBytes(o.m[kCode]); ok {
			code = string(t)
		}
	}
	if r.Status == 403 && detail == ServiceAccountDetail {
		code = "ServiceAccountForbidden"
	}
	p := NewProblem(r.Status, code, detail, "", "")
	return &p
}
