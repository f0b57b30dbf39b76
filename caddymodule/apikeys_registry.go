package caddymodule

import (
	"errors"
	"sort"
	"sync"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
)

// keyStore is an API-key store some route of a running config uses, as
// the admin endpoint and the subcommand reach it: its name (for
// ?store=), the store, the keyring every route on it verifies with (one
// per open store, shared across routes and reloads, so that a revocation
// made here is forgotten by every route at once), and the prefix of the
// keys made for it (the routes sharing a store agree on it).
type keyStore struct {
	Name    string
	Store   apikey.Store
	Keyring *apikey.Keyring
	Prefix  string

	// key names the open store (the storage pool's key: a reload that
	// changes a PostgreSQL pool's options opens another pool under the
	// same Name); "" is Name.
	key string
	// seq orders the stores registered under one Name: the newest is the
	// one a name finds.
	seq uint64
	// stop ends the watch of another node's changes (PostgreSQL), nil
	// when there is none.
	stop func()
}

func (ks *keyStore) id() string {
	if ks.key != "" {
		return ks.key
	}
	return ks.Name
}

// liveKeyStores holds the key stores in use, by id; the provisioning
// of a route with api_keys adds its store, the last Cleanup using it
// removes it.
var liveKeyStores = struct {
	sync.Mutex
	byID map[string]*keyStore
	uses map[string]int
	seq  uint64
}{byID: map[string]*keyStore{}, uses: map[string]int{}}

// useKeyStore registers ks, or counts one more use of the store already
// registered under its id and returns that one.
func useKeyStore(ks *keyStore) *keyStore {
	liveKeyStores.Lock()
	defer liveKeyStores.Unlock()
	id := ks.id()
	if cur, ok := liveKeyStores.byID[id]; ok {
		liveKeyStores.uses[id]++
		return cur
	}
	liveKeyStores.seq++
	ks.seq = liveKeyStores.seq
	liveKeyStores.byID[id] = ks
	liveKeyStores.uses[id] = 1
	return ks
}

// releaseKeyStore gives back one use of ks; the last one removes it and
// reports true, so that the caller stops its watch and closes its keyring.
func releaseKeyStore(ks *keyStore) (last bool) {
	liveKeyStores.Lock()
	defer liveKeyStores.Unlock()
	id := ks.id()
	if liveKeyStores.uses[id]--; liveKeyStores.uses[id] > 0 {
		return false
	}
	delete(liveKeyStores.uses, id)
	delete(liveKeyStores.byID, id)
	return true
}

// Errors of findKeyStore, answered by the admin endpoint as 404 and 400.
var (
	errNoKeyStore    = errors.New("no route of the running config has api_keys, or no store by that name")
	errWhichKeyStore = errors.New("several API-key stores are in use: name one with ?store=")
)

// findKeyStore is the newest store named name, or of the only name in
// use when name is "".
func findKeyStore(name string) (*keyStore, error) {
	liveKeyStores.Lock()
	defer liveKeyStores.Unlock()
	var found *keyStore
	for _, ks := range liveKeyStores.byID {
		switch {
		case name != "" && ks.Name != name:
		case found == nil, ks.seq > found.seq && ks.Name == found.Name:
			found = ks
		case ks.Name != found.Name:
			return nil, errWhichKeyStore
		}
	}
	if found == nil {
		return nil, errNoKeyStore
	}
	return found, nil
}

// keyStoreNames lists the names of the stores in use, sorted, once each.
func keyStoreNames() []string {
	liveKeyStores.Lock()
	defer liveKeyStores.Unlock()
	seen := map[string]bool{}
	names := make([]string, 0, len(liveKeyStores.byID))
	for _, ks := range liveKeyStores.byID {
		if !seen[ks.Name] {
			seen[ks.Name] = true
			names = append(names, ks.Name)
		}
	}
	sort.Strings(names)
	return names
}
