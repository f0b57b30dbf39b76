package profile

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jsonscan"
)

// UpdateRequest is the bound body of a PUT. A nil field was absent or null
// and leaves the stored value unchanged; a pointer to "" clears it.
type UpdateRequest struct {
	UserName  *string
	Email     *string
	FirstName *string
	LastName  *string
}

// CanonicalJSON is the request as a legacy backend gets it: the known
// properties that were present, in their canonical spelling, already
// validated and trimmed, so that the backend never binds a field the
// contract does not have. Map keys are sorted: the body is canonical.
func (r UpdateRequest) CanonicalJSON() []byte {
	m := make(map[string]string, 4)
	for name, v := range map[string]*string{FieldUserName: r.UserName, FieldEmail: r.Email,
		FieldFirstName: r.FirstName, FieldLastName: r.LastName} {
		if v != nil {
			m[name] = *v
		}
	}
	b, _ := json.Marshal(m) // a map of strings always marshals
	return b
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
// ASP.NET Core's System.Text.Json binding does, to its canonical spelling:
// a name that strings.EqualFold (Unicode simple folding) equates with a
// property is that property, so "U\u017ferName" (LONG S) is UserName.
func canonicalField(name string) string {
	return knownFields[propertyKey(name)]
}

// knownFields are the canonical property names by their fold key.
var knownFields = func() map[string]string {
	m := map[string]string{}
	for _, f := range [...]string{FieldUserName, FieldEmail, FieldFirstName, FieldLastName} {
		m[propertyKey(f)] = f
	}
	return m
}()

// propertyKey returns a key such that propertyKey(a) == propertyKey(b)
// exactly when strings.EqualFold(a, b): every rune is replaced by the
// smallest rune of its simple-folding orbit (as encoding/json folds names).
// Property matching and duplicate detection both use it, so a name that
// binds to a property is also a duplicate of it. s must be valid UTF-8.
func propertyKey(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		b.WriteRune(simpleFoldMin(r))
	}
	return b.String()
}

// simpleFoldMin is the smallest rune of r's simple-folding orbit.
func simpleFoldMin(r rune) rune {
	lo := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		lo = min(lo, f)
	}
	return lo
}

// maxQuoted is the most bytes of a caller's input that a message quotes.
const maxQuoted = 64

// quote returns s for a message, cut to maxQuoted bytes on a rune boundary
// with "..." when longer, so that no answer echoes an attacker-sized name.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
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
	// ... and an escaped lone surrogate ("\ud800" without its low half, or a
	// low half alone) into U+FFFD as well: refused the same way (RFC 8259
	// section 8.2, RFC 7493 section 2.1).
	if jsonscan.HasLoneSurrogate(body) {
		return invalid("The request body holds an escaped lone surrogate (\\uD800-\\uDFFF).")
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
		folded := propertyKey(name)
		canonical := knownFields[folded]
		if seen[folded] {
			errs = append(errs, NewError(CodeDuplicateProperty,
				"The property '"+quote(name)+"' appears more than once.", orName(canonical, name), TypeValidation, nil))
			continue
		}
		seen[folded] = true
		if canonical == "" {
			warnings = append(warnings, NewWarning(CodeUnknownField,
				"The property '"+quote(name)+"' is not part of the profile and was ignored.", name))
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
