package profile

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
)

// Scanning a file of export lines: its limits and its export trailer,
// whatever the lines hold (profiles, or API-key records in package
// apikey), so that every import of the module reads files alike.

// ImportOptions say how ReadImportWith and ScanImport read a file.
type ImportOptions struct {
	// MaxBytes caps the file; more is ErrImportTooLarge.
	MaxBytes int64
	// RequireTrailer refuses a file that does not end with an export's
	// trailer line (see ExportWriter), as a truncated file does not.
	RequireTrailer bool
	// MaxLineBytes is the longest line read, its line ending excluded;
	// 0 means MaxImportLineBytes, and more is not allowed.
	MaxLineBytes int
}

// ImportScan is what ScanImport says about a file, apart from what its
// line checker kept.
type ImportScan struct {
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

// ScanImport reads JSON lines as an export writes them from r and hands
// each line to check, trimmed, with its number: check returns the line's
// problems, none to accept it. Lines are numbered from 1, blank ones
// included; blank lines are skipped. Its memory does not grow with the
// refused lines: a line over opt.MaxLineBytes is refused as TooLong
// without being held whole (check never sees it), and after
// MaxImportLineReports refused lines it stops checking and only counts the
// lines left. It returns ErrImportTooLarge when r holds more than
// opt.MaxBytes, and r's own errors.
//
// The export's trailer line (see ExportWriter), when the file has one, is
// checked whether or not opt.RequireTrailer is set: it must be the last
// line that is not blank, and its count and sha256 must be those of the
// lines before it, byte for byte; otherwise it is refused with
// CodeExportTrailer on its line. With opt.RequireTrailer, a file without
// one is refused with CodeExportTrailer on the line after its last.
func ScanImport(r io.Reader, opt ImportOptions, check func(n int, line []byte) []Item) (*ImportScan, error) {
	maxLine := opt.MaxLineBytes
	if maxLine <= 0 || maxLine > MaxImportLineBytes {
		maxLine = MaxImportLineBytes
	}
	lr := &io.LimitedReader{R: r, N: opt.MaxBytes + 1}
	// The buffer holds a whole line of maxLine and its "\r\n".
	br := bufio.NewReaderSize(lr, maxLine+2)
	f := &ImportScan{Refused: []LineReport{}}
	refuse := func(n int, errs []Item) {
		f.Refused = append(f.Refused, LineReport{Line: n, Errors: errs})
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
		tooLong = tooLong || length > maxLine
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
			refuse(n, []Item{NewError(CodeTooLong, fmt.Sprintf("The line is longer than %d bytes.", maxLine), "", TypeValidation,
				lengthMeta("MaxLength", maxLine, length))})
		default:
			if errs := check(n, trimmed); len(errs) > 0 {
				refuse(n, errs)
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
