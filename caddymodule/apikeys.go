package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
	"github.com/workspace-edge/caddy-workspace-profile/internal/authn"
	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// APIKeys is the api_keys option: the route takes API keys, verified
// against a key store of this module's own (docs/api-keys.md).
type APIKeys struct {
	// The key store, a module of namespace http.workspace_profile.storage
	// as the route's storage is ({"backend": "bolt", ...}): the same bolt
	// file or the same PostgreSQL DSN, schema and options as the profile
	// store is the same open store. Default: the route's own storage;
	// required in upstream mode, where there is none.
	StoreRaw json.RawMessage `json:"store,omitempty" caddy:"namespace=http.workspace_profile.storage inline_key=backend"`

	// The header an API key comes in, whatever its value. Not
	// Authorization, DPoP nor an identity header (X-Workspace-*).
	// Default: X-Api-Key.
	Header string `json:"header,omitempty"`

	// The prefix of the keys made for this store; a Bearer or
	// access_token value starting with it is an API key, never sent to
	// introspection. 1 to 32 letters, digits and _, not starting with
	// "ey". Routes sharing a store must agree on it. Default: wsk_.
	Prefix string `json:"prefix,omitempty"`
}

func (k *APIKeys) header() string {
	if k.Header == "" {
		return apikey.DefaultHeader
	}
	return http.CanonicalHeaderKey(k.Header)
}

func (k *APIKeys) prefix() string {
	if k.Prefix == "" {
		return apikey.DefaultPrefix
	}
	return k.Prefix
}

// check checks the option's values, with no I/O.
func (k *APIKeys) check() error {
	if k.Header != "" {
		h := http.CanonicalHeaderKey(k.Header)
		switch {
		case !isHeaderName(k.Header):
			return fmt.Errorf("api_keys: header %q is not a header name", k.Header)
		case h == "Authorization", h == "Dpop", h == "Cookie", h == "Proxy-Authorization", isIdentityHeader(h):
			return fmt.Errorf("api_keys: header %q already has a meaning on the route: name another", k.Header)
		}
	}
	if k.Prefix != "" {
		if err := apikey.CheckPrefix(k.Prefix); err != nil {
			return fmt.Errorf("api_keys: prefix: %w", err)
		}
	}
	return nil
}

// keyStoreBackend is a storage module that keeps API keys too.
type keyStoreBackend interface {
	APIKeyStore() (apikey.Store, error)
}

// apiKeysOf is the key store of an open profile store, when its backend
// keeps keys (`func (s *Store) APIKeys() apikey.Store`).
func apiKeysOf(s profile.Store) (apikey.Store, error) {
	if ks, ok := s.(interface{ APIKeys() apikey.Store }); ok {
		return ks.APIKeys(), nil
	}
	return nil, fmt.Errorf("this store (%T) keeps no API keys in this build", s)
}

// provisionAPIKeys opens the key store (own is the route's storage, nil
// in upstream mode), takes the shared keyring of that store and records
// what Cleanup gives back. It answers the key store's backend (nil
// without api_keys).
func (h *Handler) provisionAPIKeys(ctx caddy.Context, own StorageBackend) (StorageBackend, error) {
	k := h.APIKeys
	if k == nil {
		return nil, nil
	}
	backend := own
	if k.StoreRaw != nil {
		mod, err := ctx.LoadModule(k, "StoreRaw")
		if err != nil {
			return nil, fmt.Errorf("api_keys: store: %w", err)
		}
		b, ok := mod.(StorageBackend)
		if !ok {
			return nil, fmt.Errorf("api_keys: store: module %T is not a storage backend", mod)
		}
		backend = b
	}
	if backend == nil {
		return nil, errors.New("api_keys: store: required in upstream mode")
	}
	kb, ok := backend.(keyStoreBackend)
	if !ok {
		return nil, fmt.Errorf("api_keys: store: %s keeps no API keys", backend.StoreName())
	}
	store, err := kb.APIKeyStore()
	if err != nil {
		return nil, fmt.Errorf("api_keys: store: %w", err)
	}
	fresh := &keyStore{Name: backend.StoreName(), Store: store, Prefix: k.prefix(), key: storeKey(backend),
		Keyring: apikey.NewKeyring(store, apikey.Options{Observer: keyringObserver{}})}
	ks := useKeyStore(fresh)
	if ks != fresh {
		_ = fresh.Keyring.Close() // never used
	} else if w := keyWatcherOf(backend); w != nil {
		// another node's revocation (or creation, or import) reaches
		// this keyring by the store's notifications, or its poll; a lost
		// listening connection drops everything it holds
		ks.stop = w.WatchAPIKeys(ks.Keyring.Forget, ks.Keyring.ForgetAll)
	}
	h.keyStore = ks
	if ks.Prefix != fresh.Prefix {
		return nil, fmt.Errorf("api_keys: prefix %q: the other routes on store %s use %q, and a store's keys have one prefix", fresh.Prefix, ks.Name, ks.Prefix)
	}
	h.keys = &keyVerifier{ring: ks.Keyring, logger: h.logger, errs: h.storeErrors}
	return backend, nil
}

// releaseAPIKeys gives back the use of the key store Provision took; the
// last use closes its keyring (which writes the last-used times).
func (h *Handler) releaseAPIKeys() error {
	ks := h.keyStore
	if ks == nil {
		return nil
	}
	h.keyStore = nil
	if releaseKeyStore(ks) {
		if ks.stop != nil {
			ks.stop()
		}
		return ks.Keyring.Close()
	}
	return nil
}

// keyWatcher is a key store that tells of changes made by other nodes:
// onChange with a key's id, onReset when changes may have been missed.
type keyWatcher interface {
	WatchAPIKeys(onChange func(id string), onReset func()) (stop func())
}

// keyWatcherOf is the watcher of backend's key store, nil when its keys
// change only through this process (bolt, memory).
func keyWatcherOf(backend StorageBackend) keyWatcher {
	if p, ok := backend.(*PostgresStorage); ok && p.store != nil {
		if w, ok := p.store.Store.(keyWatcher); ok {
			return w
		}
	}
	return nil
}

// storeKey names the open store under backend: its storage pool's key,
// which differs when a reload opens another pool for the same name.
func storeKey(backend StorageBackend) string {
	switch b := backend.(type) {
	case *PostgresStorage:
		return "postgres:" + b.key
	case *BoltStorage:
		return "bolt:" + b.key
	}
	return ""
}

// keyVerifier is the route's authn.KeyVerifier over the store's keyring:
// it counts each verification by outcome and logs a store failure (rate
// limited, never the key).
type keyVerifier struct {
	ring   *apikey.Keyring
	logger *zap.Logger
	errs   *errorLog
}

func (v *keyVerifier) VerifyKey(ctx context.Context, key string) (authn.KeyOwner, *jwtauth.Error) {
	rec, err := v.ring.Verify(ctx, key)
	switch {
	case err == nil:
	case errors.Is(err, apikey.ErrInvalid):
		countKeyVerification(keyInvalid)
		return authn.KeyOwner{}, authn.ErrInvalidAPIKey
	default:
		countKeyVerification(keyUnavailable)
		if ctx.Err() == nil {
			v.errs.log(v.logger, fmt.Errorf("API key store: %w", err))
		}
		return authn.KeyOwner{}, authn.ErrKeyStoreUnavailable
	}
	// any kind but user is refused as a service account's: a record of a
	// kind this build does not know lets no one act as its owner
	service := rec.Kind != apikey.KindUser
	if service {
		countKeyVerification(keyServiceRefused)
	} else {
		countKeyVerification(keyValidUser)
	}
	return authn.KeyOwner{ID: rec.ID, Subject: rec.Subject, Service: service}, nil
}

// isHeaderName reports whether s is an HTTP field name (RFC 9110 token).
func isHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
