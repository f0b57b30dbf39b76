package profile

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"unicode/utf8"
)

// UpdateRequest is the bound body of a PUT. A nil field was absent or null
// and leaves the stored value unchanged; a pointer to "" clears it.
type UpdateRequest struct {
	UserName  *string
	Email     *string
	FirstName *string
	LastName  *string
}

// field returns the slot of a canonical property name, or nil.
func (r *UpdateRequest) field(canonical string) **string {
	switch canonical {
	case FieldUserName:
		return &r.UserName
	case FieldEmail:
		return &r.Email
	case FieldFirstName:
		return &r.FirstName
	case FieldLastName:
		return &r.LastName
	}
	return nil
}

// canonicalField maps a property name, matched case-insensitively as
// ASP.NET Core's System.Text.Json binding does, to its canonical spelling.
func canonicalField(name string) string {
	for _, f := range [...]string{FieldUserName, FieldEmail, FieldFirstName, FieldLastName} {
		if strings.EqualFold(name, f) {
			return f
		}
	}
	return ""
}

// BindUpdate parses a PUT body. It reports every problem it can find at
// once: errs holds one item per duplicate or mistyped property (with Field
// set), or a single InvalidJson item when the body is not one JSON object;
// warnings holds one UnknownField per property the contract does not have.
func BindUpdate(body []byte) (req UpdateRequest, warnings, errs []Item) {
	invalid := func(msg string) (UpdateRequest, []Item, []Item) {
		return UpdateRequest{}, nil, []Item{NewError(CodeInvalidJSON, msg, "", TypeValidation, nil)}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return invalid("The request body is empty.")
	}
	// encoding/json would silently turn invalid UTF-8 into U+FFFD.
	if !utf8.Valid(body) {
		return invalid("The request body is not valid UTF-8.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return invalid("The request body must be a JSON object.")
	}
	seen := make(map[string]bool, 4)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return invalid("The request body is not valid JSON.")
		}
		name := tok.(string) // inside an object, the decoder only yields string keys
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return invalid("The request body is not valid JSON.")
		}
		folded := strings.ToLower(name)
		canonical := canonicalField(name)
		if seen[folded] {
			errs = append(errs, NewError(CodeDuplicateProperty,
				"The property '"+name+"' appears more than once.", orName(canonical, name), TypeValidation, nil))
			continue
		}
		seen[folded] = true
		if canonical == "" {
			warnings = append(warnings, NewWarning(CodeUnknownField,
				"The property '"+name+"' is not part of the profile and was ignored.", name))
			continue
		}
		switch raw[0] {
		case 'n': // null: leave unchanged
		case '"':
			var s string
			_ = json.Unmarshal(raw, &s) // the decoder already checked the literal
			*req.field(canonical) = &s
		default:
			errs = append(errs, NewError(CodeInvalidType,
				"The property '"+canonical+"' must be a string or null.", canonical, TypeValidation, nil))
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return invalid("The request body is not valid JSON.")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return invalid("The request body has data after the JSON object.")
	}
	return req, warnings, errs
}

func orName(canonical, name string) string {
	if canonical != "" {
		return canonical
	}
	return name
}
