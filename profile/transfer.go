package profile

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jsonscan"
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
	// Trailer is the file's export trailer, checked; nil when the file has
	// none or anything was refused.
	Trailer *ExportTrailer
}

// ReadImport is ReadImportWith without requiring the trailer: the form of
// a hand-written file. A trailer, when the file has one, is still checked.
func ReadImport(r io.Reader, maxBytes int64) (*ImportFile, error) {
	return ReadImportWith(r, ImportOptions{MaxBytes: maxBytes})
}

// ImportOptions say how ReadImportWith reads a file.
type ImportOptions struct {
	// MaxBytes caps the file; more is ErrImportTooLarge.
	MaxBytes int64
	// RequireTrailer refuses a file that does not end with an export's
	// trailer line (see ExportWriter), as a truncated file does not.
	RequireTrailer bool
}

// ReadImportWith reads an import, JSON lines as an export writes them,
// from r and checks each line with ParseImportLine and against the lines
// before it (a user ID or user name seen twice). Lines are numbered from
// 1, blank ones included; blank lines are skipped. Its memory does not
// grow with the refused lines: a line over MaxImportLineBytes is refused
// as TooLong without being held whole, and after MaxImportLineReports
// refused lines it stops checking and only counts the lines left. It
// returns ErrImportTooLarge when r holds more than opt.MaxBytes, and r's
// own errors.
//
// The export's trailer line (see ExportWriter), when the file has one, is
// checked whether or not opt.RequireTrailer is set: it must be the last
// line that is not blank, and its count and sha256 must be those of the
// lines before it, byte for byte; otherwise it is refused with
// CodeExportTrailer on its line. With opt.RequireTrailer, a file without
// one is refused with CodeExportTrailer on the line after its last.
func ReadImportWith(r io.Reader, opt ImportOptions) (*ImportFile, error) {
	lr := &io.LimitedReader{R: r, N: opt.MaxBytes + 1}
	// The buffer holds a whole line of MaxImportLineBytes and its "\r\n".
	br := bufio.NewReaderSize(lr, MaxImportLineBytes+2)
	f := &ImportFile{Refused: []LineReport{}}
	var set importSet
	refuse := func(n int, errs []Item) {
		f.Refused = append(f.Refused, LineReport{Line: n, Errors: errs})
		f.Profiles, f.Lines = nil, nil
		f.Truncated = len(f.Refused) >= MaxImportLineReports
	}
	sum := sha256.New() // of every byte before the trailer line
	var count int64     // lines before the trailer line, not blank
	var trailer *ExportTrailer
	for n := 1; ; n++ {
		// line is valid until the next read; a line that does not fit the
		// buffer is hashed and skipped in pieces, counting its length.
		line, err := br.ReadSlice('\n')
		last, length, tooLong := line, len(line), false
		if errors.Is(err, bufio.ErrBufferFull) {
			tooLong = true
			sum.Write(line)
			for errors.Is(err, bufio.ErrBufferFull) {
				last, err = br.ReadSlice('\n')
				length += len(last)
				sum.Write(last)
			}
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
		isTrailer := !tooLong && bytes.HasPrefix(trimmed, trailerPrefix)
		if !tooLong && !isTrailer && trailer == nil {
			sum.Write(line)
		}
		blank := !tooLong && len(trimmed) == 0
		if !blank && !isTrailer {
			count++
		}
		switch {
		case blank:
		case f.Truncated:
			f.Unchecked++
		case trailer != nil:
			refuse(n, []Item{NewError(CodeExportTrailer, "A line follows the export's trailer line.", "", TypeValidation, nil)})
		case isTrailer:
			t, errs := checkTrailer(trimmed, count, sum.Sum(nil))
			if len(errs) > 0 {
				refuse(n, errs)
			}
			trailer = &t // a trailer, even refused: what follows is refused
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
			if opt.RequireTrailer && trailer == nil && !f.Truncated {
				if len(line) > 0 { // the line after the last
					n++
				}
				refuse(n, []Item{NewError(CodeExportTrailer, "The file does not end with an export's trailer line: it may be cut short. "+
					"Import a hand-written file with verification off.", "", TypeValidation, nil)})
			}
			f.Trailer = trailer
			if len(f.Refused) > 0 {
				f.Trailer = nil
			}
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

// CodeExportTrailer refuses an import whose export trailer line is
// missing (when required), malformed, not last, or does not match the
// lines before it.
const CodeExportTrailer = "ExportTrailer"

// ExportTrailer is the last line of every complete export:
//
//	{"_export":{"count":N,"sha256":"<hex>"}}
//
// count is the number of profile lines before it, and sha256 the SHA-256,
// in lower-case hex, of every byte before it: the profile lines with their
// "\n" line endings, exactly as sent. An export that fails after its first
// byte never writes one (the connection is aborted instead), so a file
// that ends without it, or whose count or checksum does not match, was cut
// short or altered: ReadImportWith refuses it. The trailer is written and
// read in exactly this form (keys in this order, no spaces).
type ExportTrailer struct {
	Count  int64  `json:"count"`
	SHA256 string `json:"sha256"`
}

var trailerPrefix = []byte(`{"_export":`)

func (t ExportTrailer) line() []byte {
	b, _ := json.Marshal(struct {
		Export ExportTrailer `json:"_export"`
	}{t})
	return b
}

// checkTrailer parses the trimmed trailer line and compares it with the
// count and checksum of the lines before it.
func checkTrailer(line []byte, count int64, sum []byte) (ExportTrailer, []Item) {
	var raw struct {
		Export *ExportTrailer `json:"_export"`
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil || dec.More() || raw.Export == nil || !bytes.Equal(raw.Export.line(), line) {
		return ExportTrailer{}, []Item{NewError(CodeExportTrailer, `The export trailer line is not {"_export":{"count":N,"sha256":"<hex>"}}.`, "", TypeValidation, nil)}
	}
	t := *raw.Export
	var errs []Item
	if t.Count != count {
		errs = append(errs, NewError(CodeExportTrailer, fmt.Sprintf("The export trailer counts %d lines; the file has %d before it.", t.Count, count), "", TypeValidation,
			map[string]string{"Count": strconv.FormatInt(t.Count, 10), "Lines": strconv.FormatInt(count, 10)}))
	}
	if t.SHA256 != hex.EncodeToString(sum) {
		errs = append(errs, NewError(CodeExportTrailer, "The checksum of the lines before the export trailer does not match it: the file was altered.", "", TypeValidation, nil))
	}
	return t, errs
}

// ExportWriter writes an export: one JSON line per profile, in the
// envelope's Data form, then the ExportTrailer line at Close. Write the
// profiles with Write, then call Close once, only if every profile was
// written: an export that fails must not end with a trailer.
type ExportWriter struct {
	w     io.Writer
	sum   hash.Hash
	count int64
	buf   bytes.Buffer
}

// NewExportWriter returns an ExportWriter on w.
func NewExportWriter(w io.Writer) *ExportWriter {
	return &ExportWriter{w: w, sum: sha256.New()}
}

// Write writes the line of p.
func (e *ExportWriter) Write(p Profile) error {
	e.buf.Reset()
	if err := json.NewEncoder(&e.buf).Encode(p.Data()); err != nil { // one line and its "\n"
		return err
	}
	e.sum.Write(e.buf.Bytes())
	e.count++
	_, err := e.w.Write(e.buf.Bytes())
	return err
}

// Count is the number of profiles written.
func (e *ExportWriter) Count() int64 { return e.count }

// Close writes the trailer line.
func (e *ExportWriter) Close() error {
	t := ExportTrailer{Count: e.count, SHA256: hex.EncodeToString(e.sum.Sum(nil))}
	_, err := e.w.Write(append(t.line(), '\n'))
	return err
}
