package profile

import (
	"net/mail"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The limits of the contract (section 5).
const (
	UserNameMinLength = 3
	UserNameMaxLength = 64
	EmailMaxLength    = 254 // bytes of UTF-8, not characters
	NameMaxLength     = 100
)

// userNameExtra are the punctuation characters a user name may hold beside
// ASCII letters and digits: ASP.NET Core Identity's default
// AllowedUserNameCharacters, which the legacy API uses.
const userNameExtra = "._-@+"

// ValidUserNameRune reports whether r may appear in a user name.
func ValidUserNameRune(r rune) bool {
	return ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9') ||
		strings.ContainsRune(userNameExtra, r)
}

// Validate trims the present fields of r and checks them against the rules
// of the contract. It returns the trimmed request and one error item per
// field problem. Uniqueness of the user name is the store's to check.
func (r UpdateRequest) Validate() (UpdateRequest, []Item) {
	var errs []Item
	trim := func(p *string) *string {
		if p == nil {
			return nil
		}
		s := strings.TrimSpace(*p)
		return &s
	}
	r.UserName, r.Email, r.FirstName, r.LastName = trim(r.UserName), trim(r.Email), trim(r.FirstName), trim(r.LastName)
	if r.UserName != nil {
		errs = append(errs, UserNameProblems(*r.UserName)...)
	}
	if r.Email != nil && *r.Email != "" {
		errs = append(errs, EmailProblems(*r.Email)...)
	}
	if r.FirstName != nil {
		errs = append(errs, NameProblems(FieldFirstName, *r.FirstName)...)
	}
	if r.LastName != nil {
		errs = append(errs, NameProblems(FieldLastName, *r.LastName)...)
	}
	return r, errs
}

func lengthMeta(limitKey string, limit, length int) map[string]string {
	return map[string]string{limitKey: strconv.Itoa(limit), "Length": strconv.Itoa(length)}
}

// UserNameProblems checks a trimmed user name: required, 3 to 64
// characters, letters, digits and . _ - @ + only.
func UserNameProblems(s string) []Item {
	if s == "" {
		return []Item{NewError(CodeRequired, "UserName cannot be empty.", FieldUserName, TypeValidation, nil)}
	}
	var errs []Item
	n := utf8.RuneCountInString(s)
	switch {
	case n < UserNameMinLength:
		errs = append(errs, NewError(CodeTooShort, "UserName must be at least 3 characters long.", FieldUserName, TypeValidation,
			lengthMeta("MinLength", UserNameMinLength, n)))
	case n > UserNameMaxLength:
		errs = append(errs, NewError(CodeTooLong, "UserName must be at most 64 characters long.", FieldUserName, TypeValidation,
			lengthMeta("MaxLength", UserNameMaxLength, n)))
	}
	if strings.IndexFunc(s, func(r rune) bool { return !ValidUserNameRune(r) }) >= 0 {
		errs = append(errs, NewError(CodeInvalidCharacters, "UserName may contain only letters, digits and . _ - @ +.", FieldUserName, TypeValidation,
			map[string]string{"AllowedCharacters": "a-z A-Z 0-9 " + userNameExtra}))
	}
	return errs
}

// EmailProblems checks a trimmed, non-empty email: one plain address
// (local@domain, no display name, no angle brackets) of at most 254 bytes
// of UTF-8. The limit counts bytes, not characters: it is RFC 5321's
// octet limit on a path, and what every backend stores (an address of
// non-ASCII characters is longer in bytes than in characters).
func EmailProblems(s string) []Item {
	if n := len(s); n > EmailMaxLength {
		return []Item{NewError(CodeTooLong, "Email must be at most 254 bytes long (UTF-8).", FieldEmail, TypeValidation,
			lengthMeta("MaxLength", EmailMaxLength, n))}
	}
	if !plainAddress(s) {
		return []Item{NewError(CodeInvalidEmail, "Email must be a single plain email address.", FieldEmail, TypeValidation, nil)}
	}
	return nil
}

func plainAddress(s string) bool {
	a, err := mail.ParseAddress(s)
	// ParseAddress also accepts "Name <a@b>" and quoted local parts; only
	// the bare address, exactly as given, is plain.
	return err == nil && a.Name == "" && a.Address == s && !strings.ContainsFunc(s, unicode.IsSpace)
}

// NameProblems checks a trimmed first or last name: at most 100
// characters, no control characters. Empty clears the name.
func NameProblems(field, s string) []Item {
	var errs []Item
	if n := utf8.RuneCountInString(s); n > NameMaxLength {
		errs = append(errs, NewError(CodeTooLong, field+" must be at most 100 characters long.", field, TypeValidation,
			lengthMeta("MaxLength", NameMaxLength, n)))
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		errs = append(errs, NewError(CodeInvalidCharacters, field+" must not contain control characters.", field, TypeValidation, nil))
	}
	return errs
}
