package caddymodule

// A minimal line format for key exports and imports, standing in for the
// domain's (apikey/transfer*.go) until it is merged: on the merge,
// writeKeyExport and readKeyImport (admin_apikeys_transfer.go) are pointed
// at the domain's functions and this file is deleted.
//
// One JSON object a line, {"id","hash","subject","kind","name","created",
// "expires","revoked","last_used"} (hash: 64 hex digits; times RFC 3339 or
// null), then the profile exports' trailer line,
// {"_export":{"count":N,"sha256":"<hex of every byte before it>"}}.

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
	"strings"
	"time"
	"unicode/utf8"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jsonscan"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// keyLine is one record of an export.
type keyLine struct {
	ID       string      `json:"id"`
	Hash     string      `json:"hash"`
	Subject  string      `json:"subject"`
	Kind     apikey.Kind `json:"kind"`
	Name     string      `json:"name"`
	Created  *time.Time  `json:"created"`
	Expires  *time.Time  `json:"expires"`
	Revoked  *time.Time  `json:"revoked"`
	LastUsed *time.Time  `json:"last_used"`
}

// trailerLine is the export trailer in its one accepted form.
func trailerLine(count int64, sum hash.Hash) []byte {
	b, _ := json.Marshal(struct {
		Export profile.ExportTrailer `json:"_export"`
	}{profile.ExportTrailer{Count: count, SHA256: hex.EncodeToString(sum.Sum(nil))}})
	return b
}

func minimalKeyExport(ctx context.Context, w io.Writer, s apikey.Store) (int64, error) {
	sum := sha256.New()
	var n int64
	var buf bytes.Buffer
	err := s.Export(ctx, func(r apikey.Record) error {
		buf.Reset()
		if err := json.NewEncoder(&buf).Encode(keyLine{ID: r.ID, Hash: r.Hash.String(), Subject: r.Subject, Kind: r.Kind, Name: r.Name,
			Created: timeOrNull(r.Created), Expires: timeOrNull(r.Expires), Revoked: timeOrNull(r.Revoked), LastUsed: timeOrNull(r.LastUsed)}); err != nil {
			return err
		}
		sum.Write(buf.Bytes())
		n++
		_, err := w.Write(buf.Bytes())
		return err
	})
	if err != nil {
		return n, err
	}
	_, err = w.Write(append(trailerLine(n, sum), '\n'))
	return n, err
}

// maxKeyLineBytes bounds one line of a key import.
const maxKeyLineBytes = 4 << 10

func minimalKeyImport(r io.Reader, maxBytes int64, requireTrailer bool) ([]apikey.Record, error) {
	lr := &io.LimitedReader{R: r, N: maxBytes + 1}
	br := bufio.NewReaderSize(lr, maxKeyLineBytes+2)
	sum := sha256.New()
	var recs []apikey.Record
	var trailer []byte
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		if lr.N <= 0 {
			return nil, errKeyImportTooLarge
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("line %d is longer than %d bytes", n, maxKeyLineBytes)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		trimmed := bytes.TrimSpace(line)
		switch {
		case len(trimmed) == 0:
		case trailer != nil:
			return nil, fmt.Errorf("line %d follows the export's trailer line", n)
		case bytes.HasPrefix(trimmed, []byte(`{"_export":`)):
			if !bytes.Equal(trimmed, trailerLine(int64(len(recs)), sum)) {
				return nil, fmt.Errorf("line %d: the export trailer does not match the lines before it: the file was cut or altered", n)
			}
			trailer = trimmed
		default:
			sum.Write(line)
			rec, lerr := parseKeyLine(trimmed)
			if lerr != nil {
				return nil, fmt.Errorf("line %d: %v", n, lerr)
			}
			recs = append(recs, rec)
		}
		if err != nil { // io.EOF
			break
		}
	}
	if requireTrailer && trailer == nil {
		return nil, errors.New("the file does not end with an export's trailer line: it may be cut short (import a hand-written file with ?verify=off)")
	}
	return recs, nil
}

// parseKeyLine reads one record line strictly.
func parseKeyLine(line []byte) (apikey.Record, error) {
	var rec apikey.Record
	if err := jsonscan.CheckStrict(line); err != nil {
		return rec, err
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(line, &members); err != nil || members == nil {
		return rec, errors.New("not a JSON object")
	}
	if _, ok := members["key"]; ok {
		return rec, errors.New("the line carries a key in the clear; an import carries only key hashes")
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var l keyLine
	if err := dec.Decode(&l); err != nil {
		return rec, fmt.Errorf("not a key record: %v", err)
	}
	h, err := apikey.ParseHash(l.Hash)
	if err != nil {
		return rec, err
	}
	switch {
	case l.ID == "" || len(l.ID) > maxKeyIDLen || strings.ContainsAny(l.ID, "/ ") || !utf8.ValidString(l.ID):
		return rec, errors.New("id must be 1 to 255 characters without / or spaces")
	case len(profile.UserIDProblems(l.Subject)) > 0:
		return rec, errors.New("subject breaks the UserId rule")
	case !l.Kind.Valid():
		return rec, errors.New(`kind must be "user" or "service"`)
	case utf8.RuneCountInString(l.Name) > apikey.MaxNameLen:
		return rec, errors.New("name is longer than 100 characters")
	case l.Created == nil:
		return rec, errors.New("created is required")
	}
	val := func(t *time.Time) time.Time {
		if t == nil {
			return time.Time{}
		}
		return t.UTC()
	}
	return apikey.Record{ID: l.ID, Hash: h, Subject: l.Subject, Kind: l.Kind, Name: l.Name, Created: val(l.Created),
		Expires: val(l.Expires), Revoked: val(l.Revoked), LastUsed: val(l.LastUsed)}, nil
}
