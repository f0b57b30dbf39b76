package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// The API keys on Caddy's admin endpoint (see docs/operations.md,
// "Managing API keys"):
//
//	POST   /workspace-profile/api-keys            create; the key is in this answer only
//	GET    /workspace-profile/api-keys[?subject=] list, without keys or hashes
//	DELETE /workspace-profile/api-keys/<id>       revoke, at once on this node
//	GET    /workspace-profile/api-keys/export     JSON lines of records (hashes), trailer
//	POST   /workspace-profile/api-keys/import     the same, all or nothing
//
// each with ?store=<name> where several key stores are in use. Errors are
// Caddy's admin error body, {"error":"..."}. A key never travels in a URI
// (Caddy logs admin URIs): a `key` query parameter is refused.
const apiKeysPath = "/workspace-profile/api-keys"

// maxKeyIDLen bounds the id of a key in a path: ids of keys made here are
// apikey.IDLen long; imported ones are kept as their export names them.
const maxKeyIDLen = 255

// createAttempts is how many fresh keys a create tries when a made id is
// taken (1 in 36^16 per key in the store: a retry is a formality).
const createAttempts = 4

// auditLog is where every create and revoke writes its line: the key's
// id, subject, kind, store and the caller's address, never the key nor
// its hash.
func auditLog() *zap.Logger { return caddy.Log().Named("admin.api.workspace_profile") }

// serveAPIKeys is /workspace-profile/api-keys: POST creates, GET lists.
func serveAPIKeys(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodPost:
		q, err := keyQuery(r, "store")
		if err != nil {
			return err
		}
		ks, err := pickKeyStore(q.Get("store"))
		if err != nil {
			return err
		}
		return createAPIKey(w, r, ks)
	case http.MethodGet:
		q, err := keyQuery(r, "store", "subject")
		if err != nil {
			return err
		}
		ks, err := pickKeyStore(q.Get("store"))
		if err != nil {
			return err
		}
		return listAPIKeys(w, r, ks, q)
	}
	w.Header().Set("Allow", "GET, POST")
	return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Message: "GET or POST"}
}

// serveAPIKey is everything under /workspace-profile/api-keys/: the
// export, the import, and DELETE of one key by its id.
func serveAPIKey(w http.ResponseWriter, r *http.Request) error {
	rest := strings.TrimPrefix(r.URL.Path, apiKeysPath+"/")
	allow := func(method string) error {
		if r.Method == method {
			return nil
		}
		w.Header().Set("Allow", method)
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Message: method + " only"}
	}
	var params []string
	switch rest {
	case "export":
		params = []string{"store"}
	case "import":
		params = []string{"store", "verify"}
	default:
		params = []string{"store"}
		if rest == "" || len(rest) > maxKeyIDLen || strings.Contains(rest, "/") {
			return caddy.APIError{HTTPStatus: http.StatusNotFound, Message: "no such API-key resource; revoke a key with DELETE " + apiKeysPath + "/<id>"}
		}
	}
	var err error
	switch rest {
	case "export":
		err = allow(http.MethodGet)
	case "import":
		err = allow(http.MethodPost)
	default:
		err = allow(http.MethodDelete)
	}
	if err != nil {
		return err
	}
	q, err := keyQuery(r, params...)
	if err != nil {
		return err
	}
	ks, err := pickKeyStore(q.Get("store"))
	if err != nil {
		return err
	}
	switch rest {
	case "export":
		return exportAPIKeys(w, r, ks)
	case "import":
		return importAPIKeys(w, r, ks, q.Get("verify"))
	}
	return revokeAPIKey(w, r, ks, rest)
}

// keyQuery reads r's query: only the parameters allowed, each once. A
// `key` parameter is refused by name: a key must never travel in a URI,
// which Caddy's admin endpoint logs.
func keyQuery(r *http.Request, allowed ...string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusBadRequest, Message: "the query string does not parse"}
	}
	for name, vs := range q {
		switch {
		case name == "key" || name == "api_key":
			return nil, caddy.APIError{HTTPStatus: http.StatusBadRequest, Message: "an API key must never be sent in a URI (Caddy logs admin URIs); " +
				"keys are named by their id; if that was a real key, revoke it"}
		case !slices.Contains(allowed, name):
			return nil, caddy.APIError{HTTPStatus: http.StatusBadRequest, Message: fmt.Sprintf("unknown query parameter %s; this request takes %s",
				strconv.Quote(cut(name, 40)), strings.Join(allowed, ", "))}
		case len(vs) > 1:
			return nil, caddy.APIError{HTTPStatus: http.StatusBadRequest, Message: "query parameter " + name + " is given more than once"}
		}
	}
	return q, nil
}

// cut shortens s to at most n bytes for a message.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// pickKeyStore is findKeyStore answered as the admin endpoint answers:
// 404 when there is none (by that name), 400 when several are in use and
// none is named; both list the names in use.
func pickKeyStore(name string) (*keyStore, error) {
	ks, err := findKeyStore(name)
	if err == nil {
		return ks, nil
	}
	names, _ := json.Marshal(keyStoreNames())
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, errNoKeyStore):
		status = http.StatusNotFound
	case errors.Is(err, errWhichKeyStore):
		status = http.StatusBadRequest
	}
	return nil, caddy.APIError{HTTPStatus: status, Message: err.Error() + "; key stores in use: " + string(names)}
}

// storeFailed answers a store error: 503, the cause logged, not sent.
func storeFailed(op string, err error) error {
	auditLog().Error("API-key store failed", zap.String("op", op), zap.Error(err))
	return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Message: "the API-key store failed; nothing was changed"}
}

// createdKey is the answer to a create: the only time the key is shown.
type createdKey struct {
	ID      string      `json:"id"`
	Key     string      `json:"key"`
	Subject string      `json:"subject"`
	Kind    apikey.Kind `json:"kind"`
	Name    string      `json:"name"`
	Created time.Time   `json:"created"`
	Expires *time.Time  `json:"expires"`
}

// listedKey is a key as listed: never the key, never its hash.
type listedKey struct {
	ID       string      `json:"id"`
	Subject  string      `json:"subject"`
	Kind     apikey.Kind `json:"kind"`
	Name     string      `json:"name"`
	Created  *time.Time  `json:"created"`
	Expires  *time.Time  `json:"expires"`
	Revoked  *time.Time  `json:"revoked"`
	LastUsed *time.Time  `json:"last_used"`
}

// timeOrNull is t in UTC, or nil (JSON null) for the zero time.
func timeOrNull(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func createAPIKey(w http.ResponseWriter, r *http.Request, ks *keyStore) error {
	now := time.Now().UTC()
	req, err := apikey.ReadCreateRequest(r.Body, now)
	switch {
	case errors.Is(err, apikey.ErrRequestTooLarge):
		return caddy.APIError{HTTPStatus: http.StatusRequestEntityTooLarge, Err: err}
	case err != nil:
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	}
	key, rec, err := makeKey(r.Context(), ks.Store, ks.Prefix, req, now)
	if err != nil {
		return storeFailed("create", err)
	}
	auditLog().Info("API key created", zap.String("key_id", rec.ID), zap.String("subject", rec.Subject),
		zap.String("kind", string(rec.Kind)), zap.String("store", ks.Name), zap.String("remote_addr", r.RemoteAddr))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", apiKeysPath+"/"+rec.ID)
	w.WriteHeader(http.StatusCreated)
	return json.NewEncoder(w).Encode(createdKey{ID: rec.ID, Key: key, Subject: rec.Subject, Kind: rec.Kind, Name: rec.Name,
		Created: rec.Created, Expires: timeOrNull(rec.Expires)})
}

// makeKey makes a key for req under prefix (default apikey.DefaultPrefix)
// and stores its record, with a fresh key when the id made is taken.
func makeKey(ctx context.Context, store apikey.Store, prefix string, req apikey.CreateRequest, now time.Time) (string, apikey.Record, error) {
	if prefix == "" {
		prefix = apikey.DefaultPrefix
	}
	rec := apikey.Record{Subject: req.Subject, Kind: req.Kind, Name: req.Name, Created: now.UTC().Truncate(time.Second), Expires: req.Expires}
	for attempt := 1; ; attempt++ {
		key, id, err := apikey.Generate(prefix)
		if err != nil {
			return "", rec, err
		}
		rec.ID, rec.Hash = id, apikey.HashKey(key)
		err = store.Create(ctx, rec)
		if err == nil {
			return key, rec, nil
		}
		if !errors.Is(err, apikey.ErrExists) || attempt == createAttempts {
			return "", rec, err
		}
	}
}

func listAPIKeys(w http.ResponseWriter, r *http.Request, ks *keyStore, q url.Values) error {
	subject, filter := q["subject"]
	if filter {
		if items := profile.UserIDProblems(subject[0]); len(items) > 0 {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Message: "subject: " + strings.ReplaceAll(items[0].Message, "UserId", "subject")}
		}
	}
	who := ""
	if filter {
		who = subject[0]
	}
	recs, err := ks.Store.List(r.Context(), who)
	if err != nil {
		return storeFailed("list", err)
	}
	out := make([]listedKey, 0, len(recs))
	for _, rec := range recs {
		out = append(out, listedKey{ID: rec.ID, Subject: rec.Subject, Kind: rec.Kind, Name: rec.Name, Created: timeOrNull(rec.Created),
			Expires: timeOrNull(rec.Expires), Revoked: timeOrNull(rec.Revoked), LastUsed: timeOrNull(rec.LastUsed)})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(out)
}

// revokeAPIKey revokes the key with id in the store, then drops it from
// the store's keyring so that this node refuses it from now on (other
// nodes on a PostgreSQL store hear of it by notification).
func revokeAPIKey(w http.ResponseWriter, r *http.Request, ks *keyStore, id string) error {
	prefix := ks.Prefix
	if prefix == "" {
		prefix = apikey.DefaultPrefix
	}
	if keyID, made := apikey.ParseMade(prefix, id); made {
		// the key itself was put in the path, which Caddy has logged
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Message: "that is a key, not a key id; it has now been in a URI, which Caddy logs: " +
			"revoke it by its id, DELETE " + apiKeysPath + "/" + keyID}
	}
	rec, err := ks.Store.Revoke(r.Context(), id, time.Now().UTC().Truncate(time.Second))
	switch {
	case errors.Is(err, apikey.ErrNotFound):
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Message: "no API key with that id in store " + ks.Name}
	case err != nil:
		return storeFailed("revoke", err)
	}
	if ks.Keyring != nil {
		ks.Keyring.Forget(rec.ID)
	}
	auditLog().Info("API key revoked", zap.String("key_id", rec.ID), zap.String("subject", rec.Subject),
		zap.String("kind", string(rec.Kind)), zap.String("store", ks.Name), zap.String("remote_addr", r.RemoteAddr),
		zap.Time("revoked", rec.Revoked))
	w.WriteHeader(http.StatusNoContent)
	return nil
}
