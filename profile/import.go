package profile

import (
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
	// ImportScan says which lines were refused, and the trailer.
	ImportScan
}

// ReadImport is ReadImportWith without requiring the trailer: the form of
// a hand-written file. A trailer, when the file has one, is still checked.
func ReadImport(r io.Reader, maxBytes int64) (*ImportFile, error) {
	return ReadImportWith(r, ImportOptions{MaxBytes: maxBytes})
}

// ReadImportWith reads an import, JSON lines as an export writes them,
// from r with ScanImport and checks each line with ParseImportLine and
// against the lines before it (a user ID or user name seen twice).
func ReadImportWith(r io.Reader, opt ImportOptions) (*ImportFile, error) {
	f := &ImportFile{}
	var set importSet
	scan, err := ScanImport(r, opt, func(n int, line []byte) []Item {
		p, errs := ParseImportLine(line)
		if len(errs) == 0 {
			errs = set.add(p, n)
		}
		if len(errs) == 0 {
			f.Profiles, f.Lines = append(f.Profiles, p), append(f.Lines, n)
		}
		return errs
	})
	if err != nil {
		return nil, err
	}
	f.ImportScan = *scan
	if len(f.Refused) > 0 {
		f.Profiles, f.Lines = nil, nil
	}
	return f, nil
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
