package profile

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
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
// (profiles created from claims may have none). As in a PUT, names match
// case-insensitively (Unicode simple folding), and invalid UTF-8 or a name
// that appears twice (also UserName beside username) refuses the line.
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

// CheckImportSet finds what no store could accept in one import: a user ID
// or a user name (ignoring case) that appears twice. It reports by index,
// and its messages name positions from 1.
func CheckImportSet(profiles []Profile) map[int][]Item {
	out := map[int][]Item{}
	var set importSet
	for i, p := range profiles {
		if errs := set.add(p, i+1); len(errs) > 0 {
			out[i] = errs
		}
	}
	return out
}

// importSet remembers the user IDs and user names of an import's accepted
// lines, by line number, to refuse one that appears twice.
type importSet struct {
	ids, names map[string]int
}

// add checks p, of line n, against the lines added before; p is added
// either way, so that a third copy names the last one seen.
func (s *importSet) add(p Profile, n int) []Item {
	if s.ids == nil {
		s.ids, s.names = map[string]int{}, map[string]int{}
	}
	var errs []Item
	if j, dup := s.ids[p.UserID]; dup {
		errs = append(errs, NewError(CodeDuplicateProperty, fmt.Sprintf("UserId also appears on line %d.", j), "UserId", TypeValidation, nil))
	}
	s.ids[p.UserID] = n
	if p.UserName == "" {
		return errs
	}
	key := NormalizeUserName(p.UserName)
	if j, dup := s.names[key]; dup {
		errs = append(errs, NewError(CodeUserNameTaken, fmt.Sprintf("The user name also appears on line %d.", j), FieldUserName, TypeBusinessRule, nil))
	}
	s.names[key] = n
	return errs
}

// ImportFile is an import file read and checked line by line.
type ImportFile struct {
	// Profiles are the accepted lines in file order, ready for
	// Importer.Import; nil as soon as any line is refused, since then
	// nothing is written.
	Profiles []Profile
	// Lines holds the file's line number of each of Profiles.
	Lines []int
	// Refused reports the refused lines in line order, at most
	// MaxImportLineReports of them; never nil.
	Refused []LineReport
	// Truncated says checking stopped at the MaxImportLineReports-th
	// refused line; Unchecked counts the non-blank lines after it.
	Truncated bool
	Unchecked int
}

// ReadImport reads an import, JSON lines as an export writes them, from r
// and checks each line with ParseImportLine and against the lines before
// it (a user ID or user name seen twice). Lines are numbered from 1, blank
// ones included; blank lines are skipped. Its memory does not grow with
// the refused lines: a line over MaxImportLineBytes is refused as TooLong
// without being held whole, and after MaxImportLineReports refused lines
// it stops checking and only counts the lines left. It returns
// ErrImportTooLarge when r holds more than maxBytes, and r's own errors.
func ReadImport(r io.Reader, maxBytes int64) (*ImportFile, error) {
	lr := &io.LimitedReader{R: r, N: maxBytes + 1}
	// The buffer holds a whole line of MaxImportLineBytes and its "\r\n".
	br := bufio.NewReaderSize(lr, MaxImportLineBytes+2)
	f := &ImportFile{Refused: []LineReport{}}
	var set importSet
	refuse := func(n int, errs []Item) {
		f.Refused = append(f.Refused, LineReport{Line: n, Errors: errs})
		f.Profiles, f.Lines = nil, nil
		f.Truncated = len(f.Refused) >= MaxImportLineReports
	}
	for n := 1; ; n++ {
		// line is valid until the next read; a line that does not fit the
		// buffer is skipped in pieces, counting its length.
		line, err := br.ReadSlice('\n')
		last, length, tooLong := line, len(line), false
		for errors.Is(err, bufio.ErrBufferFull) {
			tooLong = true
			last, err = br.ReadSlice('\n')
			length += len(last)
		}
		if lr.N <= 0 {
			return nil, ErrImportTooLarge
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if bytes.HasSuffix(last, []byte("\n")) { // the line ending is not the line's
			length--
			if bytes.HasSuffix(last, []byte("\r\n")) {
				length--
			}
		}
		tooLong = tooLong || length > MaxImportLineBytes
		var trimmed []byte
		if !tooLong {
			trimmed = bytes.TrimSpace(line)
		}
		switch {
		case !tooLong && len(trimmed) == 0: // blank
		case f.Truncated:
			f.Unchecked++
		case tooLong:
			refuse(n, []Item{NewError(CodeTooLong, fmt.Sprintf("The line is longer than %d bytes.", MaxImportLineBytes), "", TypeValidation,
				lengthMeta("MaxLength", MaxImportLineBytes, length))})
		default:
			p, errs := ParseImportLine(trimmed)
			if len(errs) == 0 {
				errs = set.add(p, n)
			}
			switch {
			case len(errs) > 0:
				refuse(n, errs)
			case len(f.Refused) == 0:
				f.Profiles, f.Lines = append(f.Profiles, p), append(f.Lines, n)
			}
		}
		if err != nil { // io.EOF
			return f, nil
		}
	}
}

// ErrImportTooLarge is returned for an import over its cap.
var ErrImportTooLarge = errors.New("import too large")

// The limits of an import, whatever the file holds.
const (
	// MaxImportLineBytes is the longest line an import reads, its line
	// ending excluded: 64 KiB, as a PUT's default max_body. A longer line is
	// refused (TooLong) without being held in memory whole.
	MaxImportLineBytes = 64 << 10
	// MaxImportLineReports is how many refused lines an import reports, in
	// detail; after that many it stops checking and only counts the lines
	// left.
	MaxImportLineReports = 100
)
