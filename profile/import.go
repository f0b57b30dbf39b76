package profile

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
)

// Reading an import file: its lines checked one by one and against each
// other, within the limits of an import, and its export trailer checked.

// LineReport is what an import says about one line it refused.
type LineReport struct {
	Line   int   `json:"line"`
	Errors Items `json:"errors"`
}

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
