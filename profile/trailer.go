package profile

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
)

// The export trailer: the last line of a complete export, with the count
// and checksum of the lines before it.

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
