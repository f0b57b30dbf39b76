package caddymodule

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sync"

	"github.com/caddyserver/caddy/v2"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// maxImportBytes caps one import's body: 256 MiB.
const maxImportBytes = 256 << 20

// liveStores are the stores of the handlers provisioned now, by name, so
// that the admin endpoint can reach them; a reload's overlap holds a store
// twice, hence the counts.
var liveStores = &storeRegistry{stores: map[string]*liveStore{}}

type storeRegistry struct {
	mu     sync.Mutex
	stores map[string]*liveStore
}

type liveStore struct {
	store profile.Store
	refs  int
}

func (r *storeRegistry) add(name string, s profile.Store) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.stores[name]; ok {
		e.refs++
		return
	}
	r.stores[name] = &liveStore{store: s, refs: 1}
}

func (r *storeRegistry) remove(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.stores[name]; ok {
		if e.refs--; e.refs <= 0 {
			delete(r.stores, name)
		}
	}
}

// pick returns the store named, or the only one when name is empty.
func (r *storeRegistry) pick(name string) (profile.Store, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if name != "" {
		if e, ok := r.stores[name]; ok {
			return e.store, nil
		}
		return nil, caddy.APIError{HTTPStatus: http.StatusNotFound, Message: "no store " + name + "; stores: " + r.namesLocked()}
	}
	switch len(r.stores) {
	case 0:
		return nil, caddy.APIError{HTTPStatus: http.StatusNotFound, Message: "no workspace_profile store is in use (upstream mode has none)"}
	case 1:
		for _, e := range r.stores {
			return e.store, nil
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
//	GET   every profile as JSON lines (the envelope's Data form), streamed
//	POST  JSON lines in the same form: each line checked with the rules of
//	      a PUT, then all written in one transaction, or none; the answer
//	      reports the refused lines, at most profile.MaxImportLineReports
//	      of them, then says it stopped checking
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

func exportProfiles(w http.ResponseWriter, r *http.Request, store profile.Store) error {
	ex, ok := store.(profile.Exporter)
	if !ok {
		return caddy.APIError{HTTPStatus: http.StatusNotImplemented, Message: "this store cannot export"}
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	return ex.Export(r.Context(), func(p profile.Profile) error { return enc.Encode(p.Data()) })
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

// importProfiles reads the body line by line (profile.ReadImport), so that
// memory and the answer stay small whatever the file holds: only the
// accepted profiles of a file without a refused line are kept.
func importProfiles(w http.ResponseWriter, r *http.Request, store profile.Store) error {
	im, ok := store.(profile.Importer)
	if !ok {
		return caddy.APIError{HTTPStatus: http.StatusNotImplemented, Message: "this store cannot import"}
	}
	file, err := profile.ReadImport(r.Body, maxImportBytes)
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
