package caddymodule

import (
	"bufio"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// maxImportBytes caps one import's body: 256 MiB.
const maxImportBytes = 256 << 20

type storeRegistry struct {
	mu     sync.Mutex
	stores map[string][]profile.Store // registration order, newest last
}

func (r *storeRegistry) add(name string, s profile.Store) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stores[name] = append(r.stores[name], s)
}

// remove takes back one registration of s under name.
func (r *storeRegistry) remove(name string, s profile.Store) {
	r.mu.Lock()
	defer r.mu.Unlock()
	list := r.stores[name]
	for i := len(list) - 1; i >= 0; i-- {
		if list[i] == s {
			list = slices.Delete(list, i, i+1)
			break
		}
	}
	if len(list) == 0 {
		delete(r.stores, name)
		return
	}
	r.stores[name] = list
}

// pick returns the store named, or the only one when name is empty.
func (r *storeRegistry) pick(name string) (profile.Store, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if name != "" {
		if list, ok := r.stores[name]; ok {
			return list[len(list)-1], nil
		}
		return nil, caddy.APIError{HTTPStatus: http.StatusNotFound, Message: "no store " + name + "; stores: " + r.namesLocked()}
	}
	switch len(r.stores) {
	case 0:
		return nil, caddy.APIError{HTTPStatus: http.StatusNotFound, Message: "no workspace_profile store is in use (upstream mode has none)"}
	case 1:
		for _, list := range r.stores {
			return list[len(list)-1], nil
		}
	}
	return nil, caddy.APIError{HTTPStatus: http.StatusBadRequest, Message: "several stores are in use; name one with ?store=: " + r.namesLocked()}
}

func (r *storeRegistry) namesLocked() string {
	names := make([]string, 0, len(r.stores))
	for n := range r.stores {
		names = append(names, n)
	}
	slices.Sort(names)
	b, _ := json.Marshal(names)
	return string(b)
}

// serveProfiles is /workspace-profile/profiles on the admin endpoint:
//
//	GET   every profile as JSON lines (the envelope's Data form), streamed,
//	      then the trailer line {"_export":{"count":N,"sha256":"<hex>"}}
//	      (profile.ExportTrailer); see exportProfiles
//	POST  JSON lines in the same form: each line checked with the rules of
//	      a PUT, then all written in one transaction, or none; the answer
//	      reports the refused lines, at most profile.MaxImportLineReports
//	      of them, then says it stopped checking. The file must end with an
//	      export's trailer, matching, unless ?verify=off; see importProfiles
func serveProfiles(w http.ResponseWriter, r *http.Request) error {
	store, err := liveStores.pick(r.URL.Query().Get("store"))
	if err != nil {
		return err
	}
	switch r.Method {
	case http.MethodGet:
		return exportProfiles(w, r, store)
	case http.MethodPost:
		return importProfiles(w, r, store)
	}
	return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Message: "GET or POST"}
}

// exportStallNanos is the export stall timeout: an export whose client
// has taken no bytes for this long is aborted; each chunk written extends
// the deadline. Default 30 s. (Atomic for the test that a stalled client
// blocks no write however long it stalls, which lengthens it.)
var exportStallNanos atomic.Int64

func init() { exportStallNanos.Store(int64(30 * time.Second)) }

func exportStallTimeout() time.Duration { return time.Duration(exportStallNanos.Load()) }

// The admin endpoint's deadlines for profile transfers.
const (
	// importReadTimeout replaces the 10 s Caddy's admin server gives a
	// request to arrive: an import of maxImportBytes must arrive within
	// it (about 450 KB/s).
	importReadTimeout = 10 * time.Minute
	// exportChunk is how much of an export is buffered between writes to
	// the client (and deadline extensions).
	exportChunk = 64 << 10
)

// deadlineWriter extends the response's write deadline before each write,
// so that a client that stops reading fails the write after
// exportStallTimeout, and counts what it passed on.
type deadlineWriter struct {
	w    http.ResponseWriter
	rc   *http.ResponseController
	sent int64
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	_ = d.rc.SetWriteDeadline(time.Now().Add(exportStallTimeout())) // unsupported: no deadline
	n, err := d.w.Write(p)
	d.sent += int64(n)
	return n, err
}

// exportProfiles streams the store's export (a consistent snapshot on
// every backend) and ends it with the trailer line. An export is complete
// or visibly broken: when it fails before any byte was passed to the
// connection, the answer is 503; after, the handler aborts the connection
// (http.ErrAbortHandler), so the client sees a body cut short (no final
// chunk), never a clean end nor an error object as the last line. A client
// that takes no bytes for exportStallTimeout is cut off the same way. The
// cause is logged, not sent.
func exportProfiles(w http.ResponseWriter, r *http.Request, store profile.Store) error {
	ex, ok := store.(profile.Exporter)
	if !ok {
		return caddy.APIError{HTTPStatus: http.StatusNotImplemented, Message: "this store cannot export"}
	}
	dw := &deadlineWriter{w: w, rc: http.NewResponseController(w)}
	bw := bufio.NewWriterSize(dw, exportChunk)
	ew := profile.NewExportWriter(bw)
	w.Header().Set("Content-Type", "application/x-ndjson")
	err := ex.Export(r.Context(), ew.Write)
	if err == nil {
		err = ew.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		return nil
	}
	log := caddy.Log().Named("admin.api.workspace_profile")
	if dw.sent == 0 {
		log.Error("export failed before its first byte", zap.Error(err))
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Message: "the store failed; nothing was exported"}
	}
	log.Error("export failed after it began: connection aborted", zap.Int64("profiles_sent", ew.Count()), zap.Error(err))
	panic(http.ErrAbortHandler)
}

// importReport is the answer to an import. Truncated and Unchecked are
// left out of a report that has all refused lines.
type importReport struct {
	Imported int                  `json:"imported"`
	Errors   []profile.LineReport `json:"errors"`
	Success  bool                 `json:"success"`
	// Truncated: checking stopped at the profile.MaxImportLineReports-th
	// refused line; Unchecked lines (not blank) came after it.
	Truncated bool `json:"truncated,omitempty"`
	Unchecked int  `json:"unchecked,omitempty"`
}

// importProfiles reads the body line by line (profile.ReadImportWith), so
// that memory and the answer stay small whatever the file holds: only the
// accepted profiles of a file without a refused line are kept. The file
// must end with an export's trailer that matches the lines before it,
// unless the query says verify=off (for hand-written files; a trailer that
// is present is checked anyway). The request may take importReadTimeout to
// arrive, not the 10 s Caddy's admin server gives other requests.
func importProfiles(w http.ResponseWriter, r *http.Request, store profile.Store) error {
	im, ok := store.(profile.Importer)
	if !ok {
		return caddy.APIError{HTTPStatus: http.StatusNotImplemented, Message: "this store cannot import"}
	}
	verify := true
	switch v := r.URL.Query().Get("verify"); v {
	case "", "on":
	case "off":
		verify = false
	default:
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Message: "verify is on (the default) or off, not " + strconv.Quote(v)}
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(importReadTimeout)) // unsupported: Caddy's 10 s
	file, err := profile.ReadImportWith(r.Body, profile.ImportOptions{MaxBytes: maxImportBytes, RequireTrailer: verify})
	switch {
	case errors.Is(err, profile.ErrImportTooLarge):
		return caddy.APIError{HTTPStatus: http.StatusRequestEntityTooLarge, Err: err}
	case err != nil:
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	}
	report := importReport{Errors: file.Refused, Truncated: file.Truncated, Unchecked: file.Unchecked}
	if len(report.Errors) == 0 {
		err := im.Import(r.Context(), file.Profiles)
		var conflict *profile.ImportConflict
		switch {
		case errors.As(err, &conflict):
			report.Errors = append(report.Errors, profile.LineReport{Line: file.Lines[conflict.Index], Errors: profile.Items{profile.UserNameTakenItem()}})
		case err != nil:
			caddy.Log().Named("admin.api.workspace_profile").Error("import failed; nothing was written", zap.Error(err))
			return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Message: "the store failed; nothing was written"}
		default:
			report.Imported, report.Success = len(file.Profiles), true
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if !report.Success {
		w.WriteHeader(http.StatusBadRequest)
	}
	return json.NewEncoder(w).Encode(report)
}
