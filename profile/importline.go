package profile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jsonscan"
)

// Checking one line of an import: the profile it holds, by the rules of
// a PUT.

// ParseImportLine reads one JSON line of an import: a profile in its wire
// form (the envelope's Data, as an export writes it), checked with the
// rules of a PUT. UserId is required and checked by UserIDProblems; a null
// or absent UserName is allowed (profiles created from claims may have
// none). As in a PUT, names match case-insensitively (Unicode simple
// folding), and invalid UTF-8, an escaped lone surrogate, or a name that appears twice (also UserId
// beside userid, or UserName beside username) refuses the line. Every
// backend gets lines checked by this one function, so that any export
// imports into any backend.
func ParseImportLine(line []byte) (Profile, []Item) {
	var raw struct {
		UserID    *string `json:"UserId"`
		UserName  *string `json:"UserName"`
		Email     *string `json:"Email"`
		FirstName *string `json:"FirstName"`
		LastName  *string `json:"LastName"`
		UserType  *int    `json:"UserType"`
	}
	// encoding/json would silently turn invalid UTF-8 into U+FFFD.
	if !utf8.Valid(line) {
		return Profile{}, []Item{NewError(CodeInvalidJSON, "The line is not valid UTF-8.", "", TypeValidation, nil)}
	}
	// ... and an escaped lone surrogate into U+FFFD too (see BindUpdate).
	if jsonscan.HasLoneSurrogate(line) {
		return Profile{}, []Item{NewError(CodeInvalidJSON, "The line holds an escaped lone surrogate (\\uD800-\\uDFFF).", "", TypeValidation, nil)}
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil || dec.More() {
		return Profile{}, []Item{NewError(CodeInvalidJSON, "The line is not one profile object.", "", TypeValidation, nil)}
	}
	// encoding/json matches names with the fold of a PUT but lets the last
	// of two equal names win; a PUT refuses them, and so does an import.
	if dups := duplicateProperties(line); len(dups) > 0 {
		return Profile{}, dups
	}
	var errs []Item
	p := Profile{}
	if raw.UserID == nil {
		errs = append(errs, NewError(CodeRequired, "UserId is required.", FieldUserID, TypeValidation, nil))
	} else if errs = UserIDProblems(*raw.UserID); len(errs) == 0 {
		p.UserID = *raw.UserID
	}
	get := func(v *string) string {
		if v == nil {
			return ""
		}
		return strings.TrimSpace(*v)
	}
	p.UserName, p.Email, p.FirstName, p.LastName = get(raw.UserName), get(raw.Email), get(raw.FirstName), get(raw.LastName)
	if p.UserName != "" {
		errs = append(errs, UserNameProblems(p.UserName)...)
	}
	if p.Email != "" {
		errs = append(errs, EmailProblems(p.Email)...)
	}
	errs = append(errs, NameProblems(FieldFirstName, p.FirstName)...)
	errs = append(errs, NameProblems(FieldLastName, p.LastName)...)
	if raw.UserType != nil {
		if *raw.UserType < 0 || *raw.UserType > 2 {
			errs = append(errs, NewError(CodeInvalidType, "UserType must be 0, 1 or 2.", "UserType", TypeValidation, nil))
		} else {
			p.UserType = UserType(*raw.UserType)
		}
	}
	return p, errs
}

// FieldUserID is the canonical name of the user ID in an import line.
const FieldUserID = "UserId"

// MaxUserIDBytes is the longest user ID (a token's subject) in bytes of
// UTF-8, which every backend stores as is: bolt keys take 32 KiB and a
// PostgreSQL btree entry about 2.7 KB, so 255 leaves room in both, and is
// longer than the subjects identity providers issue.
const MaxUserIDBytes = 255

// UserIDProblems checks a user ID, from an import line or a token's
// subject: it must be non-empty, at most MaxUserIDBytes bytes, valid UTF-8,
// without leading or trailing white space (an ID is never trimmed into
// another one), and without control characters (C0 with NUL, DEL, C1) or
// U+FFFD (what a decoder makes of invalid UTF-8 or of an escaped lone
// surrogate). Messages never quote the ID.
func UserIDProblems(id string) []Item {
	switch {
	case strings.TrimSpace(id) == "":
		return []Item{NewError(CodeRequired, "UserId is required.", FieldUserID, TypeValidation, nil)}
	case len(id) > MaxUserIDBytes:
		return []Item{NewError(CodeTooLong, fmt.Sprintf("UserId is longer than %d bytes.", MaxUserIDBytes), FieldUserID, TypeValidation,
			lengthMeta("MaxLength", MaxUserIDBytes, len(id)))}
	case !utf8.ValidString(id):
		return []Item{NewError(CodeInvalidCharacters, "UserId is not valid UTF-8.", FieldUserID, TypeValidation, nil)}
	case strings.TrimSpace(id) != id:
		return []Item{NewError(CodeInvalidCharacters, "UserId begins or ends with white space.", FieldUserID, TypeValidation, nil)}
	case strings.ContainsFunc(id, func(r rune) bool { return unicode.IsControl(r) || r == utf8.RuneError }):
		return []Item{NewError(CodeInvalidCharacters, "UserId contains a control character or U+FFFD.", FieldUserID, TypeValidation, nil)}
	}
	return nil
}

// duplicateProperties reports each property name of the JSON object line
// that repeats an earlier one, folded as a PUT folds them (propertyKey).
// line is one valid JSON object whose names are all import fields.
func duplicateProperties(line []byte) []Item {
	dec := json.NewDecoder(bytes.NewReader(line))
	if _, err := dec.Token(); err != nil {
		return nil
	}
	var errs []Item
	seen := make(map[string]bool, 6)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return errs
		}
		name, _ := tok.(string)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return errs
		}
		key := propertyKey(name)
		if seen[key] {
			errs = append(errs, NewError(CodeDuplicateProperty, "The property '"+quote(name)+"' appears more than once.",
				orName(importFields[key], name), TypeValidation, nil))
		}
		seen[key] = true
	}
	return errs
}

// importFields are the canonical names of an import line's properties by
// their fold key.
var importFields = func() map[string]string {
	m := map[string]string{}
	for _, f := range [...]string{"UserId", FieldUserName, FieldEmail, FieldFirstName, FieldLastName, "UserType"} {
		m[propertyKey(f)] = f
	}
	return m
}()
