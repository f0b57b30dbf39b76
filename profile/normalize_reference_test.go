package profile

// The normalizer as it was before it decoded only the members it reads
// (commit 3ccee31), kept verbatim but for the ref prefix on its names and
// the one marked line in refParseObject, as the reference the equivalence
// test and FuzzNormalizeEquivalent hold Normalize to.

import (
	"bytes"
	"encoding/json"
	"maps"
	"mime"
	"slices"
	"strconv"
	"strings"
)

func refNormalize(r LegacyResponse) Normalized {
	switch {
	case r.Status == 304:
		return Normalized{Status: 304}
	case r.Status == 401 || r.Status == 403:
		return Normalized{Status: r.Status, Problem: refLegacyProblem(r)}
	case r.Status >= 500 || r.Status < 200:
		// a 5xx body may hold stack traces or internals: never passed on
		return refFailed(502, NewError(CodeUpstreamError, "The backend failed to process the request.", "", TypeSystem, nil))
	case r.Status >= 300 && r.Status < 400:
		return refInvalidResponse()
	}

	body := bytes.TrimSpace(r.Body)
	if len(body) == 0 {
		if r.Status < 300 {
			return Normalized{Status: 200, Envelope: &Envelope{Errors: Items{}, Warnings: Items{}, Success: true}}
		}
		return refGenericClientError(r.Status)
	}
	obj, ok := refParseObject(r.ContentType, body)
	if !ok {
		if r.Status < 300 {
			return refInvalidResponse()
		}
		return refGenericClientError(r.Status)
	}
	// The shape is decided by the status first: a profile may well have a
	// "title" or "type" of its own, and only a 4xx is read as a problem.
	switch {
	case refIsEnvelope(obj):
		return refFromEnvelope(r.Status, obj)
	case r.Status < 300 && refIsFlatProfile(obj):
		return Normalized{Status: r.Status, Envelope: &Envelope{Data: refProfileData(obj), Errors: Items{}, Warnings: Items{}, Success: true}}
	case r.Status < 300:
		return refInvalidResponse()
	case refIsProblem(obj):
		return refFailed(r.Status, refProblemItems(obj)...)
	default:
		return refGenericClientError(r.Status)
	}
}

func refFailed(status int, errs ...Item) Normalized {
	env := Failed(errs...)
	return Normalized{Status: status, Envelope: &env}
}

func refInvalidResponse() Normalized {
	return refFailed(502, NewError(CodeUpstreamInvalidResponse, "The backend answered in a form this API does not understand.", "", TypeSystem, nil))
}

// genericClientError keeps a 4xx whose body says nothing usable, with the
// item the contract uses for that status where it has one.
func refGenericClientError(status int) Normalized {
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
	return refFailed(status, it)
}

// object is a JSON object whose keys are looked up in any case or style:
// "userId", "UserId", "user_id" and "user-id" are one key.
type refObject map[string]any

func refFoldKey(k string) string {
	b := make([]byte, 0, len(k))
	for i := 0; i < len(k); i++ {
		switch c := k[i]; {
		case c == '_' || c == '-':
		case 'A' <= c && c <= 'Z':
			b = append(b, c+'a'-'A')
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

func (o refObject) get(names ...string) (any, bool) {
	for _, n := range names {
		if v, ok := o[n]; ok {
			return v, true
		}
	}
	return nil, false
}

// parseObject accepts a JSON object sent as JSON, or under no media type,
// text/plain or text/json, which old backends (and Go's content sniffing)
// label JSON with. Arrays, scalars, invalid JSON, prose and HTML are not
// bodies we use.
func refParseObject(contentType string, body []byte) (refObject, bool) {
	if contentType != "" {
		mt, _, err := mime.ParseMediaType(contentType)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json") && mt != "text/plain" && mt != "text/json") {
			return nil, false
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil || raw == nil || dec.More() {
		return nil, false
	}
	raw = refLastWins(raw, body) // the marked line: see refLastWins
	return refFold(raw), true
}

func refFold(raw map[string]any) refObject {
	o := make(refObject, len(raw))
	for k, v := range raw {
		if m, ok := v.(map[string]any); ok && refFoldKey(k) != "errors" && refFoldKey(k) != "metadata" {
			v = refFold(m)
		}
		o[refFoldKey(k)] = v
	}
	return o
}

// isEnvelope: the legacy envelope's own members. A "data" member alone
// counts only when the object is not itself a profile that happens to
// have a field called data.
func refIsEnvelope(o refObject) bool {
	_, data := o["data"]
	_, success := o["success"]
	_, warnings := o["warnings"].([]any)
	_, errArray := o["errors"].([]any)
	return success || warnings || errArray || (data && !refIsFlatProfile(o))
}

func refIsProblem(o refObject) bool {
	_, errMap := o["errors"].(map[string]any)
	_, title := o["title"]
	_, detail := o["detail"]
	_, typ := o["type"]
	return errMap || title || detail || typ
}

// The profile's properties under the names legacy services use for them.
var (
	refKeysUserID    = []string{"userid", "id", "uid"}
	refKeysUserName  = []string{"username", "login", "loginname"}
	refKeysEmail     = []string{"email", "emailaddress", "mail"}
	refKeysFirstName = []string{"firstname", "givenname"}
	refKeysLastName  = []string{"lastname", "familyname", "surname"}
	refKeysUserType  = []string{"usertype", "accounttype"}
)

func refIsFlatProfile(o refObject) bool {
	for _, keys := range [][]string{refKeysUserID, refKeysUserName, refKeysEmail, refKeysFirstName, refKeysLastName} {
		if _, ok := o.get(keys...); ok {
			return true
		}
	}
	return false
}

func refStr(v any) *string {
	switch x := v.(type) {
	case string:
		if x == "" {
			return nil
		}
		return &x
	case json.Number:
		s := x.String()
		return &s
	}
	return nil
}

func refProfileData(o refObject) *ProfileData {
	d := &ProfileData{}
	get := func(keys []string) *string { v, _ := o.get(keys...); return refStr(v) }
	if id := get(refKeysUserID); id != nil {
		d.UserID = *id
	}
	d.UserName, d.Email, d.FirstName, d.LastName = get(refKeysUserName), get(refKeysEmail), get(refKeysFirstName), get(refKeysLastName)
	if t := get(refKeysUserType); t != nil {
		if n, err := strconv.Atoi(*t); err == nil && n >= 0 && n <= 2 {
			d.UserType = UserType(n)
		}
	}
	return d
}

func refFromEnvelope(status int, o refObject) Normalized {
	env := Envelope{Errors: refItems(o["errors"], SeverityError), Warnings: refItems(o["warnings"], SeverityWarning)}
	if data, ok := o["data"].(refObject); ok && status < 300 {
		env.Data = refProfileData(data)
	}
	// Success is derived, not copied: an envelope that says it failed
	// with a 200, or succeeded with a 400, is made consistent.
	env.Success = status < 300 && len(env.Errors) == 0
	if !env.Success {
		env.Data = nil
		if len(env.Errors) == 0 {
			env.Errors = Items{BackendRejectedItem()}
		}
		if status < 300 {
			status = 400
		}
	}
	return Normalized{Status: status, Envelope: &env}
}

// items reads the backend's errors or warnings in any key case; an item
// without code or message gets a generic one, since both are required.
func refItems(v any, defaultSeverity Severity) Items {
	list, _ := v.([]any)
	out := Items{}
	for _, x := range list {
		o, ok := x.(refObject)
		if !ok {
			if m, isMap := x.(map[string]any); isMap {
				o = refFold(m)
			} else {
				continue
			}
		}
		it := Item{Code: CodeUpstreamError, Message: "The backend reported a problem.", Target: target(), Severity: defaultSeverity}
		if s := refStr(o["code"]); s != nil {
			it.Code = *s
		}
		if s := refStr(o["message"]); s != nil {
			it.Message = *s
		}
		if s := refStr(o["target"]); s != nil {
			it.Target = s
		}
		if s := refStr(o["field"]); s != nil {
			f := refFieldName(*s)
			it.Field = &f
		}
		if m, ok := o["metadata"].(map[string]any); ok && len(m) > 0 {
			it.Metadata = make(map[string]string, len(m))
			for k, mv := range m {
				if s := refStr(mv); s != nil {
					it.Metadata[k] = *s
				}
			}
		}
		it.Type = ItemType(refEnumValue(o["type"], int(TypeValidation)))
		it.Severity = Severity(refEnumValue(o["severity"], int(defaultSeverity)))
		out = append(out, it)
	}
	return out
}

// enumValue reads 0, 1 or 2 (a number or a numeric string), else def.
func refEnumValue(v any, def int) int {
	if s := refStr(v); s != nil {
		if n, err := strconv.Atoi(*s); err == nil && n >= 0 && n <= 2 {
			return n
		}
	}
	return def
}

// fieldName maps an ASP.NET model-state key ("$.userName", "UserName",
// "userName") to the contract's property name; other keys stay as given.
func refFieldName(k string) string {
	k = strings.TrimPrefix(strings.TrimPrefix(k, "$"), ".")
	if c := canonicalField(k); c != "" {
		return c
	}
	return k
}

// problemItems turns RFC 7807/9457 problem details into error items: one
// per message of ASP.NET's errors map (Field set), else one for the whole.
func refProblemItems(o refObject) []Item {
	var errs []Item
	if m, ok := o["errors"].(map[string]any); ok {
		for _, field := range slices.Sorted(maps.Keys(m)) { // stable output
			msgs, _ := m[field].([]any)
			if s, isStr := m[field].(string); isStr {
				msgs = []any{s}
			}
			for _, msg := range msgs {
				if s := refStr(msg); s != nil {
					errs = append(errs, NewError(CodeValidationError, *s, refFieldName(field), TypeValidation, nil))
				}
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	code := CodeUpstreamError
	if s := refStr(o["code"]); s != nil {
		code = *s
	}
	msg := msgBackendRejected
	if s := refStr(o["detail"]); s != nil {
		msg = *s
	} else if s := refStr(o["title"]); s != nil {
		msg = *s
	}
	return []Item{NewError(code, msg, "", TypeBusinessRule, nil)}
}

// legacyProblem is the problem details for a backend's 401 or 403. The
// backend's detail is kept when it gave one in JSON; its code too.
func refLegacyProblem(r LegacyResponse) *Problem {
	code, detail := "InvalidToken", "The backend refused the credentials."
	if r.Status == 403 {
		code, detail = "Forbidden", "The backend refused access."
	}
	if o, ok := refParseObject(r.ContentType, bytes.TrimSpace(r.Body)); ok {
		if s := refStr(o["detail"]); s != nil {
			detail = *s
		} else if errs := refItems(o["errors"], SeverityError); len(errs) > 0 {
			detail = errs[0].Message
		} else if s := refStr(o["message"]); s != nil {
			detail = *s
		}
		if s := refStr(o["code"]); s != nil {
			code = *s
		}
	}
	if r.Status == 403 && detail == ServiceAccountDetail {
		code = "ServiceAccountForbidden"
	}
	p := NewProblem(r.Status, code, detail, "", "")
	return &p
}
