package profile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"hash"
	"io"
)

// Writing an export: one JSON line per profile, then the trailer.

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
func (e *ExportWriter) Write(p Profile) error { return e.WriteValue(p.Data()) }

// WriteValue writes v as one JSON line (encoding/json's encoding), for
// exports of other records in the same form (package apikey's).
func (e *ExportWriter) WriteValue(v any) error {
	e.buf.Reset()
	if err := json.NewEncoder(&e.buf).Encode(v); err != nil { // one line and its "\n"
		return err
	}
	e.sum.Write(e.buf.Bytes())
	e.count++
	_, err := e.w.Write(e.buf.Bytes())
	return err
}

// Count is the number of lines written.
func (e *ExportWriter) Count() int64 { return e.count }

// Close writes the trailer line.
func (e *ExportWriter) Close() error {
	t := ExportTrailer{Count: e.count, SHA256: hex.EncodeToString(e.sum.Sum(nil))}
	_, err := e.w.Write(append(t.line(), '\n'))
	return err
}
