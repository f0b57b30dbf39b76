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
// per store, shared across routes and reloads, so that a revocation made
// here is forgotten by every route at once), and the prefix of the keys
// made for it (the routes sharing a store agree on it).
type keyStore struct {
	Name    string
	Store   apikey.Store
	Keyring *apikey.Keyring
	Prefix  string
}

// liveKeyStores holds the key stores in use, by name; the provisioning
// of a route with api_keys adds its store, the last Cleanup using it
// removes it.
var liveKeyStores = struct {
	sync.Mutex
	byName map[string]*keyStore
	uses   map[string]int
}{byName: map[string]*keyStore{}, uses: map[string]int{}}

// useKeyStore registers ks, or counts one more use of the store already
// registered under its name and returns that one.
func useKeyStore(ks *keyStore) *keyStore {
	liveKeyStores.Lock()
	defer liveKeyStores.Unlock()
	if cur, ok := liveKeyStores.byName[ks.Name]; ok {
		liveKeyStores.uses[ks.Name]++
		return cur
	}
	liveKeyStores.byName[ks.Name] = ks
	liveKeyStores.uses[ks.Name] = 1
	return ks
}

// releaseKeyStore gives back one use of the store named name; the last
// one removes it and reports true, so that the caller closes its keyring.
func releaseKeyStore(name string) (last bool) {
	liveKeyStores.Lock()
	defer liveKeyStores.Unlock()
	if liveKeyStores.uses[name]--; liveKeyStores.uses[name] > 0 {
		return false
	}
	delete(liveKeyStores.uses, name)
	delete(liveKeyStores.byName, name)
	return true
}

// Errors of findKeyStore, answered by the admin endpoint as 404 and 400.
var (
	errNoKeyStore    = errors.New("no route of the running config has api_keys, or no store by that name")
	errWhichKeyStore = errors.New("several API-key stores are in use: name one with ?store=")
)

// findKeyStore is the store named name, or the only one when name is "".
func findKeyStore(name string) (*keyStore, error) {
	liveKeyStores.Lock()
	defer liveKeyStores.Unlock()
	if name != "" {
		if ks, ok := liveKeyStores.byName[name]; ok {
			return ks, nil
		}
		return nil, errNoKeyStore
	}
	switch len(liveKeyStores.byName) {
	case 0:
		return nil, errNoKeyStore
	case 1:
		for _, ks := range liveKeyStores.byName {
			return ks, nil
		}
	}
	return nil, errWhichKeyStore
}

// keyStoreNames lists the stores in use, sorted.
func keyStoreNames() []string {
	liveKeyStores.Lock()
	defer liveKeyStores.Unlock()
	names := make([]string, 0, len(liveKeyStores.byName))
	for n := range liveKeyStores.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
