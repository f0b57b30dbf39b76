package caddymodule

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
)

// maxKeyImportBytes caps one key import's body: 64 MiB, some 200 000
// records (a variable for the test of the cap).
var maxKeyImportBytes int64 = 64 << 20

// The line format of key exports and imports is the domain's
// (apikey/transfer*.go). The handlers below reach it through these two
// functions only, so that it can be swapped in one place; until it is,
// admin_apikeys_lines.go holds a minimal one of the same shape.
var (
	// writeKeyExport writes every record of s to w as JSON lines (the
	// hash, never a key), then the export trailer; it returns how many
	// records it wrote. On an error it writes no trailer.
	writeKeyExport = minimalKeyExport
	// readKeyImport reads an import of at most maxBytes from r (more:
	// an error wrapping errKeyImportTooLarge) and returns its records,
	// or an error that says which line is refused and why. With
	// requireTrailer, a file without a matching trailer is refused.
	readKeyImport = minimalKeyImport
)

// errKeyImportTooLarge: a key import over maxKeyImportBytes (413).
var errKeyImportTooLarge = errors.New("the import is larger than its cap")

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
	auditLog().Info("API keys imported", zap.Int("records", len(recs)), zap.String("store", ks.Name), zap.String("remote_addr", r.RemoteAddr))
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(keyImportReport{Imported: len(recs), Success: true})
}

// Interface guard: the adapters' shapes.
var (
	_ func(context.Context, io.Writer, apikey.Store) (int64, error) = writeKeyExport
	_ func(io.Reader, int64, bool) ([]apikey.Record, error)         = readKeyImport
)
