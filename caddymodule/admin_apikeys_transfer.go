package caddymodule

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// maxKeyImportBytes caps one key import's body: 64 MiB, some 200 000
// records (a variable for the test of the cap).
var maxKeyImportBytes int64 = 64 << 20

// The line format of key exports and imports is the domain's
// (apikey/transfer.go, apikey/importfile.go); the handlers reach it
// through these two functions.
var (
	// writeKeyExport writes every record of s to w as JSON lines (the
	// hash, never a key), then the export trailer; it returns how many
	// records it wrote. On an error it writes no trailer.
	writeKeyExport = func(ctx context.Context, w io.Writer, s apikey.Store) (int64, error) { return apikey.Export(ctx, s, w) }
	// readKeyImport reads an import of at most maxBytes from r (more:
	// an error wrapping errKeyImportTooLarge) and returns its records,
	// or an error that says which lines are refused and why. With
	// requireTrailer, a file without a matching trailer is refused.
	readKeyImport = readKeyImportLines
)

// errKeyImportTooLarge: a key import over maxKeyImportBytes (413).
var errKeyImportTooLarge = errors.New("the import is larger than its cap")

// readKeyImportLines is readKeyImport: the refused lines (at most the
// first three, by number, code and message: never a line's content, which
// may hold a key) make one error for Caddy's admin error body.
func readKeyImportLines(r io.Reader, maxBytes int64, requireTrailer bool) ([]apikey.Record, error) {
	f, err := apikey.ReadImport(r, apikey.ImportOptions{MaxBytes: maxBytes, RequireTrailer: requireTrailer})
	switch {
	case errors.Is(err, profile.ErrImportTooLarge):
		return nil, fmt.Errorf("%w: %v", errKeyImportTooLarge, err)
	case err != nil:
		return nil, err
	case len(f.Refused) == 0:
		return f.Records, nil
	}
	var b strings.Builder
	for i, lr := range f.Refused {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more refused lines", len(f.Refused)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "line %d:", lr.Line)
		for _, it := range lr.Errors {
			fmt.Fprintf(&b, " %s (%s)", it.Message, it.Code)
		}
	}
	return nil, errors.New(b.String())
}

// exportAPIKeys streams the key store's export like the profiles' export
// (exportProfiles): 503 when it fails before its first byte, an aborted
// connection (no trailer, no clean end) after; a client that takes no
// bytes for exportStallTimeout is cut off.
func exportAPIKeys(w http.ResponseWriter, r *http.Request, ks *keyStore) error {
	dw := &deadlineWriter{w: w, rc: http.NewResponseController(w)}
	bw := bufio.NewWriterSize(dw, exportChunk)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	n, err := writeKeyExport(r.Context(), bw, ks.Store)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		return nil
	}
	log := auditLog()
	if dw.sent == 0 {
		log.Error("API-key export failed before its first byte", zap.String("store", ks.Name), zap.Error(err))
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Message: "the API-key store failed; nothing was exported"}
	}
	log.Error("API-key export failed after it began: connection aborted", zap.String("store", ks.Name), zap.Int64("keys_sent", n), zap.Error(err))
	panic(http.ErrAbortHandler)
}

// keyImportReport is the answer to a key import that was written.
type keyImportReport struct {
	Imported int  `json:"imported"`
	Success  bool `json:"success"`
}

// importAPIKeys reads the whole file first (readKeyImport), then hands
// its records to the store's Import, which writes all or none: a refused
// line, a file cut short, or a record clashing with a stored one leaves
// the store as it was. verify is on (the default: the file must end with
// a matching export trailer) or off (hand-written files).
func importAPIKeys(w http.ResponseWriter, r *http.Request, ks *keyStore, verify string) error {
	require := true
	switch verify {
	case "", "on":
	case "off":
		require = false
	default:
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Message: "verify is on (the default) or off, not " + strconv.Quote(cut(verify, 40))}
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(importReadTimeout)) // unsupported: Caddy's 10 s
	recs, err := readKeyImport(r.Body, maxKeyImportBytes, require)
	switch {
	case errors.Is(err, errKeyImportTooLarge):
		return caddy.APIError{HTTPStatus: http.StatusRequestEntityTooLarge, Err: err}
	case err != nil:
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Message: err.Error() + "; nothing was imported"}
	}
	switch err := ks.Store.Import(r.Context(), recs); {
	case errors.Is(err, apikey.ErrExists):
		return caddy.APIError{HTTPStatus: http.StatusConflict, Message: "a record's id or hash is taken by a different stored record (or named twice in the file); nothing was imported"}
	case err != nil:
		return storeFailed("import", err)
	}
	// keys imported by hash may have been tried, and answered unknown,
	// a moment ago: this node must not keep refusing them
	ks.Keyring.ForgetAll()
	auditLog().Info("API keys imported", zap.Int("records", len(recs)), zap.String("store", ks.Name), zap.String("remote_addr", r.RemoteAddr))
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(keyImportReport{Imported: len(recs), Success: true})
}

// Interface guard: the adapters' shapes.
var (
	_ func(context.Context, io.Writer, apikey.Store) (int64, error) = writeKeyExport
	_ func(io.Reader, int64, bool) ([]apikey.Record, error)         = readKeyImport
)
