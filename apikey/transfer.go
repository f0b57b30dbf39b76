package apikey

import (
	"context"
	"io"
	"time"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// Exporting key records: one JSON line per record, then the trailer of
// the profile exports (profile.ExportTrailer), so that a backup of keys
// is checked, written and restored as one of profiles is. The key itself
// never appears: a record carries the SHA-256 of the key, in hex.

// ExportLine is the JSON line of a record in an export and an import:
//
//	{"id":"…","hash":"<64 hex>","subject":"…","kind":"user","name":"…",
//	 "created":"<RFC 3339>","expires":null,"revoked":null,"last_used":null}
//
// (one line). Times are UTC, at most microsecond precision; a time a
// record does not have is null.
type ExportLine struct {
	ID       string  `json:"id"`
	Hash     string  `json:"hash"`
	Subject  string  `json:"subject"`
	Kind     Kind    `json:"kind"`
	Name     string  `json:"name"`
	Created  string  `json:"created"`
	Expires  *string `json:"expires"`
	Revoked  *string `json:"revoked"`
	LastUsed *string `json:"last_used"`
}

// exportFields are the members of an ExportLine, in its order.
var exportFields = [...]string{"id", "hash", "subject", "kind", "name", "created", "expires", "revoked", "last_used"}

// Line is the export line of r, its times as a store keeps them.
func (r Record) Line() ExportLine {
	r = r.Stored()
	return ExportLine{ID: r.ID, Hash: r.Hash.String(), Subject: r.Subject, Kind: r.Kind, Name: r.Name,
		Created: formatTime(r.Created), Expires: optionalTime(r.Expires), Revoked: optionalTime(r.Revoked),
		LastUsed: optionalTime(r.LastUsed)}
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func optionalTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := formatTime(t)
	return &s
}

// ExportWriter writes an export of key records: one line per record,
// then the trailer at Close. Call Close once, only if every record was
// written: an export that fails must not end with a trailer.
type ExportWriter struct{ w *profile.ExportWriter }

// NewExportWriter returns an ExportWriter on w.
func NewExportWriter(w io.Writer) *ExportWriter {
	return &ExportWriter{profile.NewExportWriter(w)}
}

// Write writes the line of r.
func (e *ExportWriter) Write(r Record) error { return e.w.WriteValue(r.Line()) }

// Count is the number of records written.
func (e *ExportWriter) Count() int64 { return e.w.Count() }

// Close writes the trailer line.
func (e *ExportWriter) Close() error { return e.w.Close() }

// Export writes every record of s to w, in s's consistent snapshot, then
// the trailer; on any error it returns without writing the trailer.
func Export(ctx context.Context, s Store, w io.Writer) (count int64, err error) {
	e := NewExportWriter(w)
	if err := s.Export(ctx, e.Write); err != nil {
		return e.Count(), err
	}
	return e.Count(), e.Close()
}
