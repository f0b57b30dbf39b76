package apikey

import (
	"fmt"
	"io"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// Reading a key import file: its lines checked one by one and against
// each other, within the limits of an import, and the export trailer
// checked, by profile.ScanImport, the reader of profile imports.

// The limits of a key import, whatever the file holds.
const (
	// MaxImportLineBytes is the longest line of a key import, its line
	// ending excluded (a record's line is well under 1 KiB).
	MaxImportLineBytes = 4 << 10
	// MaxImportRecords is the most records one import carries.
	MaxImportRecords = 100000
)

// ImportOptions say how ReadImport reads a file.
type ImportOptions struct {
	// MaxBytes caps the file; more is profile.ErrImportTooLarge.
	MaxBytes int64
	// RequireTrailer refuses a file that does not end with an export's
	// trailer line.
	RequireTrailer bool
	// MaxRecords caps the records; 0 means MaxImportRecords, and more is
	// not allowed.
	MaxRecords int
}

// ImportFile is a key import read and checked line by line.
type ImportFile struct {
	// Records are the accepted lines in file order, ready for
	// Store.Import; nil as soon as any line is refused, since then
	// nothing is written.
	Records []Record
	// Lines holds the file's line number of each of Records.
	Lines []int
	// ImportScan says which lines were refused, and the trailer.
	profile.ImportScan
}

// ReadImport reads a key import, JSON lines as an export writes them
// (ExportLine), from r: each line is checked by ParseImportLine and
// against the lines before it (an id or a hash seen twice), at most
// MaxImportLineBytes a line and opt.MaxRecords records; the trailer as
// profile.ScanImport says. It returns profile.ErrImportTooLarge when r
// holds more than opt.MaxBytes, and r's own errors; refused lines are
// reported in the file's Refused, by line number.
func ReadImport(r io.Reader, opt ImportOptions) (*ImportFile, error) {
	f := &ImportFile{}
	ids, hashes := map[string]int{}, map[Hash]int{}
	records, maxRecords := 0, opt.MaxRecords
	if maxRecords <= 0 || maxRecords > MaxImportRecords {
		maxRecords = MaxImportRecords
	}
	scan, err := profile.ScanImport(r, profile.ImportOptions{MaxBytes: opt.MaxBytes, RequireTrailer: opt.RequireTrailer,
		MaxLineBytes: MaxImportLineBytes}, func(n int, line []byte) []profile.Item {
		if records++; records > maxRecords {
			return lineError(profile.CodeTooLong, fmt.Sprintf("An import carries at most %d key records.", maxRecords), "")
		}
		rec, errs := ParseImportLine(line)
		if len(errs) > 0 {
			return errs
		}
		if j, dup := ids[rec.ID]; dup {
			errs = append(errs, lineError(profile.CodeDuplicateProperty, fmt.Sprintf("The id also appears on line %d.", j), "id")...)
		}
		if j, dup := hashes[rec.Hash]; dup {
			errs = append(errs, lineError(profile.CodeDuplicateProperty, fmt.Sprintf("The hash also appears on line %d.", j), "hash")...)
		}
		ids[rec.ID], hashes[rec.Hash] = n, n
		if len(errs) == 0 {
			f.Records, f.Lines = append(f.Records, rec), append(f.Lines, n)
		}
		return errs
	})
	if err != nil {
		return nil, err
	}
	f.ImportScan = *scan
	if len(f.Refused) > 0 {
		f.Records, f.Lines = nil, nil
	}
	return f, nil
}
