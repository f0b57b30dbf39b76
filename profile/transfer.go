package profile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Exporter is a Store that can list every profile, for backups and moves
// between backends. fn is called once per profile, in user-ID order.
type Exporter interface {
	Export(ctx context.Context, fn func(Profile) error) error
}

// Importer is a Store that can write many profiles at once, all or
// nothing. A profile replaces the one with its user ID; a user name held by
// another profile (ignoring case) fails the whole import with an
// ImportConflict naming the line.
type Importer interface {
	Import(ctx context.Context, profiles []Profile) error
}

// ImportConflict says which profile of an import could not be written.
type ImportConflict struct {
	Index int // 0-based position in the import
	Err   error
}

func (e *ImportConflict) Error() string { return fmt.Sprintf("profile %d: %v", e.Index, e.Err) }
func (e *ImportConflict) Unwrap() error { return e.Err }

// LineReport is what an import says about one line it refused.
type LineReport struct {
	Line   int   `json:"line"`
	Errors Items `json:"errors"`
}

// ParseImportLine reads one JSON line of an import: a profile in its wire
// form (the envelope's Data, as an export writes it), checked with the
// rules of a PUT. UserId is required; a null or absent UserName is allowed
// (profiles created from claims may have none).
func ParseImportLine(line []byte) (Profile, []Item) {
	var raw struct {
		UserID    *string `json:"UserId"`
		UserName  *string `json:"UserName"`
		Email     *string `json:"Email"`
		FirstName *string `json:"FirstName"`
		LastName  *string `json:"LastName"`
		UserType  *int    `json:"UserType"`
	}
	dec := json.NewDecoder(strings.NewReader(string(line)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil || dec.More() {
		return Profile{}, []Item{NewError(CodeInvalidJSON, "The line is not one profile object.", "", TypeValidation, nil)}
	}
	var errs []Item
	p := Profile{}
	if raw.UserID == nil || strings.TrimSpace(*raw.UserID) == "" {
		errs = append(errs, NewError(CodeRequired, "UserId is required.", "UserId", TypeValidation, nil))
	} else {
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

// CheckImportSet finds what no store could accept in one import: a user ID
// or a user name (ignoring case) that appears twice. It reports by index.
func CheckImportSet(profiles []Profile) map[int][]Item {
	out := map[int][]Item{}
	ids, names := map[string]int{}, map[string]int{}
	for i, p := range profiles {
		if j, dup := ids[p.UserID]; dup {
			out[i] = append(out[i], NewError(CodeDuplicateProperty, fmt.Sprintf("UserId also appears on line %d.", j+1), "UserId", TypeValidation, nil))
		}
		ids[p.UserID] = i
		if p.UserName == "" {
			continue
		}
		key := NormalizeUserName(p.UserName)
		if j, dup := names[key]; dup {
			out[i] = append(out[i], NewError(CodeUserNameTaken, fmt.Sprintf("The user name also appears on line %d.", j+1), FieldUserName, TypeBusinessRule, nil))
		}
		names[key] = i
	}
	return out
}

// ErrImportTooLarge is returned for an import over the admin endpoint's cap.
var ErrImportTooLarge = errors.New("import too large")
