package apikey

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jsonscan"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// Reading one line of a key import, strictly: an import writes keys that
// let people in, so nothing in it is guessed or repaired.

// CodeKeyInClear refuses an import line that carries a key in the clear
// (a member named key, or any value holding a key of the module's
// shape): a record carries only the key's hash.
const CodeKeyInClear = "KeyInClear"

// MaxIDLen bounds a record's id.
const MaxIDLen = 64

// CheckID is the rule of a record's id: 1 to MaxIDLen ASCII letters,
// digits, "-" and "_" (ids name keys in admin URIs and logs). Generate
// makes ids of 16 lowercase letters and digits; imported keys may bring
// their own.
func CheckID(id string) error {
	if id == "" || len(id) > MaxIDLen {
		return fmt.Errorf("an API key id is 1 to %d characters", MaxIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return errors.New("an API key id holds only letters, digits, - and _")
		}
	}
	return nil
}

// ParseImportLine reads one JSON line of a key import (an ExportLine),
// trimmed. It refuses: anything jsonscan.CheckStrict refuses (invalid
// UTF-8, control characters, a member named twice), a member this format
// does not know (names match exactly), a member named key or any value
// holding a key of the module's shape (CodeKeyInClear), an id that breaks
// CheckID, a hash that is not 64 hex digits, a subject that breaks the
// UserId rule (profile.UserIDProblems), a kind other than user or
// service, a name over MaxNameLen characters, and a time that is not RFC
// 3339 or lies, in UTC, before 1970 or after 9999. id, hash, subject, kind and created are
// required; name, expires, revoked and last_used may be null or absent.
// Messages never quote the line.
func ParseImportLine(line []byte) (Record, []profile.Item) {
	if err := jsonscan.CheckStrict(line); err != nil {
		switch {
		case errors.Is(err, jsonscan.ErrDuplicate):
			return Record{}, lineError(profile.CodeDuplicateProperty, "The line names a member twice.", "")
		case errors.Is(err, jsonscan.ErrControl), errors.Is(err, jsonscan.ErrUTF8), errors.Is(err, jsonscan.ErrSurrogate):
			return Record{}, lineError(profile.CodeInvalidCharacters, "The line is not valid UTF-8 or holds a control character or a lone surrogate.", "")
		}
		return Record{}, lineError(profile.CodeInvalidJSON, "The line is not one key record object.", "")
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(line, &members); err != nil || members == nil {
		return Record{}, lineError(profile.CodeInvalidJSON, "The line is not one key record object.", "")
	}
	names := make([]string, 0, len(members))
	for name := range members {
		names = append(names, name)
	}
	slices.Sort(names)
	var errs []profile.Item
	for _, name := range names {
		raw := members[name]
		var s string
		switch {
		case strings.EqualFold(name, "key"):
			errs = append(errs, lineError(CodeKeyInClear, "A key record never carries the key: give its hash, sha256(key) in hex.", name)...)
		case !slices.Contains(exportFields[:], name):
			// the name is not quoted: it could be a key
			errs = append(errs, lineError(profile.CodeUnknownField, "The line has a member that is not one of "+strings.Join(exportFields[:], ", ")+".", "")...)
		case json.Unmarshal(raw, &s) == nil && holdsKey(s):
			errs = append(errs, lineError(CodeKeyInClear, "The "+name+" holds a key in the clear: a key record carries only the key's hash.", name)...)
		}
	}
	if len(errs) > 0 {
		return Record{}, errs
	}
	var r Record
	str := func(name string, required bool) (string, bool) {
		raw, ok := members[name]
		if !ok || string(raw) == "null" {
			if required {
				errs = append(errs, lineError(profile.CodeRequired, "The "+name+" is required.", name)...)
			}
			return "", false
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			errs = append(errs, lineError(profile.CodeInvalidType, "The "+name+" must be a string.", name)...)
			return "", false
		}
		return s, true
	}
	if id, ok := str("id", true); ok {
		if err := CheckID(id); err != nil {
			errs = append(errs, lineError(profile.CodeInvalidCharacters, "The id is 1 to 64 letters, digits, - and _.", "id")...)
		}
		r.ID = id
	}
	if h, ok := str("hash", true); ok {
		var err error
		if r.Hash, err = ParseHash(h); err != nil {
			errs = append(errs, lineError(profile.CodeInvalidCharacters, "The hash is the SHA-256 of the key in 64 hex digits.", "hash")...)
		}
	}
	if sub, ok := str("subject", true); ok {
		for _, it := range profile.UserIDProblems(sub) {
			errs = append(errs, lineError(it.Code, strings.ReplaceAll(it.Message, "UserId", "The subject"), "subject")...)
		}
		r.Subject = sub
	}
	if k, ok := str("kind", true); ok {
		if r.Kind = Kind(k); !r.Kind.Valid() {
			errs = append(errs, lineError(profile.CodeInvalidType, `The kind is "user" or "service".`, "kind")...)
		}
	}
	if name, ok := str("name", false); ok {
		if utf8.RuneCountInString(name) > MaxNameLen {
			errs = append(errs, lineError(profile.CodeTooLong, fmt.Sprintf("The name is longer than %d characters.", MaxNameLen), "name")...)
		}
		r.Name = name
	}
	for _, f := range []struct {
		name     string
		to       *time.Time
		required bool
	}{{"created", &r.Created, true}, {"expires", &r.Expires, false}, {"revoked", &r.Revoked, false}, {"last_used", &r.LastUsed, false}} {
		if s, ok := str(f.name, f.required); ok {
			t, err := time.Parse(time.RFC3339Nano, s)
			if y := t.UTC().Year(); err != nil || y < 1970 || y > 9999 {
				errs = append(errs, lineError(profile.CodeInvalidType, "The "+f.name+" is an RFC 3339 time from 1970 to 9999, in UTC.", f.name)...)
			}
			*f.to = t
		}
	}
	if len(errs) > 0 {
		return Record{}, errs
	}
	return r.Stored(), nil
}

func lineError(code, message, field string) []profile.Item {
	return []profile.Item{profile.NewError(code, message, field, profile.TypeValidation, nil)}
}

// holdsKey reports whether s holds a key of the module's shape under any
// prefix: a run of key characters (letters, digits, "_", "-") ending in
// <16 lowercase letters and digits>_<43 base64url characters> after at
// least one character of a prefix.
func holdsKey(s string) bool {
	const tail = IDLen + 1 + SecretLen
	for _, tok := range strings.FieldsFunc(s, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-')
	}) {
		if len(tok) <= tail {
			continue
		}
		rest := tok[len(tok)-tail:]
		if rest[IDLen] != '_' || strings.IndexFunc(rest[:IDLen], func(r rune) bool { return !strings.ContainsRune(idAlphabet, r) }) >= 0 {
			continue
		}
		if _, err := base64.RawURLEncoding.Strict().DecodeString(rest[IDLen+1:]); err == nil {
			return true
		}
	}
	return false
}
