package caddymodule

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
	"github.com/workspace-edge/caddy-workspace-profile/profile/memstore"
)

// keyBackend is a store the API-key tests run on: its name, the
// arguments of a `storage` line or of `api_keys { store ... }` naming a
// store of this test's own, and whether it outlives a config reload.
type keyBackend struct {
	name       string
	args       func(t *testing.T) string
	persistent bool
}

// keyStoreBackends are the key stores every API-key test runs over;
// adding a backend here runs them all on it.
var keyStoreBackends = []keyBackend{
	{name: "memory", args: func(*testing.T) string { return "memory" }},
	{name: "bolt", args: func(t *testing.T) string { return "bolt " + filepath.Join(t.TempDir(), "p.db") }, persistent: true},
	{name: "postgres", args: func(t *testing.T) string { return strings.TrimPrefix(pgStorage(t), "storage ") }, persistent: true},
}

// liveKeyStore is the only key store the running config uses.
func liveKeyStore(t *testing.T) *keyStore {
	t.Helper()
	ks, err := findKeyStore("")
	if err != nil {
		t.Fatalf("key store: %v (in use: %v)", err, keyStoreNames())
	}
	return ks
}

// issueKey makes a key of subject and kind in ks's store, as the admin
// endpoint does (mod, when not nil, changes the record first), and
// returns the key and its record.
func issueKey(t *testing.T, ks *keyStore, subject string, kind apikey.Kind, mod func(*apikey.Record)) (string, apikey.Record) {
	t.Helper()
	key, id, err := apikey.Generate(ks.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	rec := apikey.Record{ID: id, Hash: apikey.HashKey(key), Subject: subject, Kind: kind, Name: "test", Created: time.Now().UTC().Truncate(time.Second)}
	if mod != nil {
		mod(&rec)
	}
	if err := ks.Store.Create(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	return key, rec
}

// revokeKey revokes the key of id as the admin endpoint does: in the
// store, then in the keyring.
func revokeKey(t *testing.T, ks *keyStore, id string) {
	t.Helper()
	if _, err := ks.Store.Revoke(context.Background(), id, time.Now()); err != nil {
		t.Fatal(err)
	}
	ks.Keyring.Forget(id)
}

// seenRequest is a request as a backend received it.
type seenRequest struct {
	method, uri string
	header      http.Header
	body        []byte
}

// keyBackendServer is a legacy backend that answers every request with a
// flat profile of the identity it is given and records every request
// whole, so that a test sees how many arrived and all they carried.
type keyBackendServer struct {
	addr string
	mu   sync.Mutex
	seen []seenRequest
	n    atomic.Int64
}

func newKeyBackendServer(t *testing.T) *keyBackendServer {
	b := &keyBackendServer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.seen = append(b.seen, seenRequest{r.Method, r.RequestURI, r.Header.Clone(), body})
		b.mu.Unlock()
		b.n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"UserId":"`+r.Header.Get("X-Workspace-User-Id")+`","UserName":"owner","Email":"owner@example.com"}`)
	}))
	t.Cleanup(srv.Close)
	b.addr = strings.TrimPrefix(srv.URL, "http://")
	return b
}

func (b *keyBackendServer) requests() []seenRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]seenRequest(nil), b.seen...)
}

// sharedKeys are the key stores of the test_keys storage, by name: they
// outlive a config, as a bolt file or a database does.
var sharedKeys sync.Map // name -> *apikey.Memory

// sharedKeyStorage is a test storage (`storage test_keys <name>`) whose
// API keys live as long as the process, so that a reload test sees
// whether the route keeps a store's keyring; its profiles are in memory.
type sharedKeyStorage struct {
	Name     string `json:"name,omitempty"`
	profiles *memstore.Store
	keys     *apikey.Memory
}

func init() { caddy.RegisterModule(sharedKeyStorage{}) }

func (sharedKeyStorage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.workspace_profile.storage.test_keys", New: func() caddy.Module { return new(sharedKeyStorage) }}
}

func (s *sharedKeyStorage) Provision(caddy.Context) error {
	s.profiles = memstore.New()
	if s.Name == "down" {
		s.keys = nil
		return nil
	}
	m, _ := sharedKeys.LoadOrStore(s.Name, apikey.NewMemory())
	s.keys = m.(*apikey.Memory)
	return nil
}

func (s *sharedKeyStorage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if !d.NextArg() {
		return d.ArgErr()
	}
	s.Name = d.Val()
	return nil
}

func (s *sharedKeyStorage) ProfileStore() profile.Store { return s.profiles }
func (s *sharedKeyStorage) StoreName() string           { return "test_keys:" + s.Name }
func (s *sharedKeyStorage) APIKeyStore() (apikey.Store, error) {
	if s.keys == nil {
		return downKeys{}, nil
	}
	return s.keys, nil
}

// downKeys is a key store that cannot answer.
type downKeys struct{ apikey.Store }

func (downKeys) Lookup(context.Context, apikey.Hash) (apikey.Record, error) {
	return apikey.Record{}, fmt.Errorf("%w: connection refused", apikey.ErrUnavailable)
}
