package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
	"github.com/workspace-edge/caddy-workspace-profile/profile/boltstore"
	"github.com/workspace-edge/caddy-workspace-profile/profile/pgstore"
)

// The key stores a config names, as the workspace-profile-keys command
// finds them without provisioning the config (which would open every
// store, start listeners and take the bolt file's lock for good): the
// adapted JSON is walked for workspace_profile handlers with api_keys, and
// each one's store read from its "store" object or, without one, from
// the handler's own "storage" (bolt in Caddy's data directory when that is
// absent too), with the JSON fields of the storage modules.

// keyStoreSpec is one key store of a config.
type keyStoreSpec struct {
	// Name is the store's name for --store: bolt:<file>,
	// postgres:<schema>@<hash of the DSN>, memory.
	Name    string
	Backend string
	Path    string // bolt: the file, resolved
	DSN     string // postgres: never printed
	Schema  string
	Prefix  string
}

// findKeyStoreSpecs lists the key stores of the adapted config cfg, each
// once, sorted by name.
func findKeyStoreSpecs(cfg []byte) ([]keyStoreSpec, error) {
	var root any
	if err := json.Unmarshal(cfg, &root); err != nil {
		return nil, fmt.Errorf("reading the adapted config: %w", err)
	}
	byName := map[string]keyStoreSpec{}
	var walkErr error
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			if v["handler"] == "workspace_profile" {
				if spec, ok, err := handlerKeyStore(v); err != nil && walkErr == nil {
					walkErr = err
				} else if ok {
					if _, seen := byName[spec.Name]; !seen {
						byName[spec.Name] = spec
					}
				}
			}
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(root)
	if walkErr != nil {
		return nil, walkErr
	}
	specs := make([]keyStoreSpec, 0, len(byName))
	for _, s := range byName {
		specs = append(specs, s)
	}
	slices.SortFunc(specs, func(a, b keyStoreSpec) int { return strings.Compare(a.Name, b.Name) })
	return specs, nil
}

// handlerKeyStore reads the key store of one workspace_profile handler;
// ok is false when the handler has no api_keys.
func handlerKeyStore(h map[string]any) (keyStoreSpec, bool, error) {
	raw, ok := h["api_keys"]
	if !ok || raw == nil {
		return keyStoreSpec{}, false, nil
	}
	ak, isObj := raw.(map[string]any)
	if !isObj {
		return keyStoreSpec{}, false, errors.New("a workspace_profile handler's api_keys is not an object")
	}
	store, hasStore := ak["store"].(map[string]any)
	if !hasStore {
		if _, upstream := h["upstream"]; upstream {
			return keyStoreSpec{}, false, errors.New("a workspace_profile handler in upstream mode has api_keys without a store")
		}
		store, hasStore = h["storage"].(map[string]any)
		if !hasStore {
			store = map[string]any{"backend": "bolt"}
		}
	}
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	spec := keyStoreSpec{Backend: str(store, "backend"), Prefix: str(ak, "prefix")}
	if spec.Prefix == "" {
		spec.Prefix = apikey.DefaultPrefix
	}
	repl := caddy.NewReplacer()
	switch spec.Backend {
	case "bolt":
		path := repl.ReplaceKnown(str(store, "path"), "")
		if path == "" {
			path = filepath.Join(caddy.AppDataDir(), DefaultBoltFile)
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return spec, false, err
		}
		spec.Path = resolveBoltPath(abs)
		spec.Name = "bolt:" + spec.Path
	case "postgres":
		spec.DSN, spec.Schema = repl.ReplaceKnown(str(store, "dsn"), ""), str(store, "schema")
		if spec.DSN == "" {
			return spec, false, errors.New("a postgres key store without a dsn")
		}
		sum := sha256.Sum256([]byte(spec.DSN + "\x00" + spec.Schema))
		schema := spec.Schema
		if schema == "" {
			schema = "workspace_profile"
		}
		spec.Name = "postgres:" + schema + "@" + hex.EncodeToString(sum[:])[:8]
	case "memory":
		spec.Name = "memory"
	default:
		return spec, false, fmt.Errorf("a key store of unknown backend %q", spec.Backend)
	}
	return spec, true, nil
}

// chooseKeyStoreSpec is the store named name, or the only one.
func chooseKeyStoreSpec(specs []keyStoreSpec, name string) (keyStoreSpec, error) {
	names := make([]string, 0, len(specs))
	for _, s := range specs {
		if name != "" && s.Name == name {
			return s, nil
		}
		names = append(names, s.Name)
	}
	switch {
	case len(specs) == 0:
		return keyStoreSpec{}, errors.New("no workspace_profile handler of the config has api_keys")
	case name != "":
		return keyStoreSpec{}, fmt.Errorf("the config has no key store %q; its key stores: %s", name, strings.Join(names, ", "))
	case len(specs) > 1:
		return keyStoreSpec{}, fmt.Errorf("the config has several key stores; name one with --store: %s", strings.Join(names, ", "))
	}
	return specs[0], nil
}

// keyStoreOwner is a profile store that keeps API keys too (bolt and
// PostgreSQL stores do, in the same file or database).
type keyStoreOwner interface {
	APIKeys() apikey.Store
	Close() error
}

// openKeyStoreSpec opens the store of spec directly, and returns it with
// the function that closes it.
func openKeyStoreSpec(ctx context.Context, spec keyStoreSpec) (apikey.Store, func() error, error) {
	var owner any
	switch spec.Backend {
	case "memory":
		return nil, nil, errors.New("the memory key store lives inside a running Caddy and is lost with it: " +
			"there is nothing to open; use the admin endpoint of the running Caddy")
	case "bolt":
		if _, err := os.Stat(spec.Path); err != nil {
			return nil, nil, fmt.Errorf("no bolt file at %s (has Caddy run with this config?): %w", spec.Path, err)
		}
		s, err := boltstore.Open(spec.Path, time.Second)
		if errors.Is(err, boltstore.ErrLocked) {
			return nil, nil, fmt.Errorf("the bolt file %s is held by another process, most likely the Caddy that serves it: "+
				"stop it first, or manage keys through its admin endpoint", spec.Path)
		}
		if err != nil {
			return nil, nil, err
		}
		owner = s
	case "postgres":
		s, err := pgstore.Open(ctx, spec.DSN, pgstore.Options{Schema: spec.Schema})
		if err != nil {
			return nil, nil, fmt.Errorf("opening the PostgreSQL store %s: %w", spec.Name, err)
		}
		owner = s
	}
	o, ok := owner.(keyStoreOwner)
	if !ok {
		if c, isCloser := owner.(interface{ Close() error }); isCloser {
			_ = c.Close()
		}
		return nil, nil, fmt.Errorf("the %s store of this build keeps no API keys", spec.Backend)
	}
	return o.APIKeys(), o.Close, nil
}
