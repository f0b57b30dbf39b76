// Package boltstore is the embedded profile.Store: one bbolt file, one
// writer transaction per update, the user-name index kept in the same
// transaction as the profile so the two can never disagree.
package boltstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// SchemaVersion is the layout this code writes. A file written by a newer
// layout is refused rather than misread.
const SchemaVersion = 1

var (
	bucketMeta      = []byte("meta")
	bucketProfiles  = []byte("profiles")  // user ID -> record (JSON)
	bucketUserNames = []byte("usernames") // normalized user name -> user ID
	keySchema       = []byte("schema")
)

// ErrLocked is returned by Open when another process holds the file.
var ErrLocked = errors.New("bolt file is locked by another process")

// Store is a profile.Store in a bbolt file.
type Store struct {
	db *bolt.DB
}

// record is the stored form of a profile; the user ID is the key.
type record struct {
	UserName  string           `json:"u,omitempty"`
	Email     string           `json:"e,omitempty"`
	FirstName string           `json:"f,omitempty"`
	LastName  string           `json:"l,omitempty"`
	UserType  profile.UserType `json:"t,omitempty"`
	Version   uint64           `json:"v"`
}

// Open opens or creates the file at path, waiting at most timeout for the
// file lock, and creates or checks the schema.
func Open(path string, timeout time.Duration) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s", ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("opening bolt file %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if v := meta.Get(keySchema); v != nil {
			n, err := strconv.Atoi(string(v))
			if err != nil || n > SchemaVersion {
				return fmt.Errorf("schema version %q is newer than this build understands (%d)", v, SchemaVersion)
			}
		}
		if err := meta.Put(keySchema, []byte(strconv.Itoa(SchemaVersion))); err != nil {
			return err
		}
		for _, b := range [][]byte{bucketProfiles, bucketUserNames} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("preparing bolt file %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

func unavailable(err error) error {
	return fmt.Errorf("%w: %v", profile.ErrUnavailable, err)
}

func decode(userID string, v []byte) (profile.Profile, error) {
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return profile.Profile{}, unavailable(fmt.Errorf("corrupt record: %v", err))
	}
	return profile.Profile{UserID: userID, UserName: r.UserName, Email: r.Email, FirstName: r.FirstName,
		LastName: r.LastName, UserType: r.UserType, Version: r.Version}, nil
}

// Get implements profile.Store.
func (s *Store) Get(_ context.Context, userID string) (profile.Profile, error) {
	var p profile.Profile
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketProfiles).Get([]byte(userID))
		if v == nil {
			return profile.ErrNotFound
		}
		var err error
		p, err = decode(userID, v)
		return err
	})
	if err != nil && !errors.Is(err, profile.ErrNotFound) && !errors.Is(err, profile.ErrUnavailable) {
		err = unavailable(err)
	}
	return p, err
}

// errDomain carries fn's own error out of the bolt transaction untouched.
type errDomain struct{ err error }

func (e errDomain) Error() string { return e.err.Error() }
func (e errDomain) Unwrap() error { return e.err }

// Update implements profile.Store. bbolt runs one writer at a time, so the
// read, fn and the write are atomic; any error rolls everything back.
func (s *Store) Update(_ context.Context, userID string, fn profile.UpdateFunc) (profile.Profile, error) {
	var out profile.Profile
	err := s.db.Update(func(tx *bolt.Tx) error {
		profiles, names := tx.Bucket(bucketProfiles), tx.Bucket(bucketUserNames)
		var cur profile.Profile
		v := profiles.Get([]byte(userID))
		exists := v != nil
		if exists {
			var err error
			if cur, err = decode(userID, v); err != nil {
				return err
			}
		}
		next, changed, err := fn(cur, exists)
		if err != nil {
			return errDomain{err}
		}
		if !changed {
			out = cur
			return nil
		}
		newKey := []byte(profile.NormalizeUserName(next.UserName))
		if next.UserName != "" {
			if owner := names.Get(newKey); owner != nil && string(owner) != userID {
				return errDomain{profile.ErrUserNameTaken}
			}
		}
		if exists && cur.UserName != "" {
			if err := names.Delete([]byte(profile.NormalizeUserName(cur.UserName))); err != nil {
				return err
			}
		}
		if next.UserName != "" {
			if err := names.Put(newKey, []byte(userID)); err != nil {
				return err
			}
		}
		next.UserID, next.Version = userID, cur.Version+1
		buf, err := json.Marshal(record{UserName: next.UserName, Email: next.Email, FirstName: next.FirstName,
			LastName: next.LastName, UserType: next.UserType, Version: next.Version})
		if err != nil {
			return err
		}
		out = next
		return profiles.Put([]byte(userID), buf)
	})
	var de errDomain
	switch {
	case err == nil:
		return out, nil
	case errors.As(err, &de):
		return profile.Profile{}, de.err
	case errors.Is(err, profile.ErrUnavailable):
		return profile.Profile{}, err
	default:
		return profile.Profile{}, unavailable(err)
	}
}

// Export implements profile.Exporter, from one read transaction.
func (s *Store) Export(_ context.Context, fn func(profile.Profile) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketProfiles).ForEach(func(k, v []byte) error {
			p, err := decode(string(k), v)
			if err != nil {
				return err
			}
			return fn(p)
		})
	})
}

// Import implements profile.Importer in one write transaction: the names
// of the profiles being replaced are released first, so renames within one
// import never collide; any conflict rolls everything back.
func (s *Store) Import(_ context.Context, profiles []profile.Profile) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		bp, names := tx.Bucket(bucketProfiles), tx.Bucket(bucketUserNames)
		versions := make([]uint64, len(profiles))
		for i, p := range profiles {
			if v := bp.Get([]byte(p.UserID)); v != nil {
				cur, err := decode(p.UserID, v)
				if err != nil {
					return err
				}
				versions[i] = cur.Version
				if cur.UserName != "" {
					if err := names.Delete([]byte(profile.NormalizeUserName(cur.UserName))); err != nil {
						return err
					}
				}
			}
		}
		for i, p := range profiles {
			if p.UserName != "" {
				key := []byte(profile.NormalizeUserName(p.UserName))
				if owner := names.Get(key); owner != nil && string(owner) != p.UserID {
					return errDomain{&profile.ImportConflict{Index: i, Err: profile.ErrUserNameTaken}}
				}
				if err := names.Put(key, []byte(p.UserID)); err != nil {
					return err
				}
			}
			buf, err := json.Marshal(record{UserName: p.UserName, Email: p.Email, FirstName: p.FirstName,
				LastName: p.LastName, UserType: p.UserType, Version: versions[i] + 1})
			if err != nil {
				return err
			}
			if err := bp.Put([]byte(p.UserID), buf); err != nil {
				return err
			}
		}
		return nil
	})
	var de errDomain
	switch {
	case err == nil:
		return nil
	case errors.As(err, &de):
		return de.err
	default:
		return unavailable(err)
	}
}

// Close implements profile.Store.
func (s *Store) Close() error { return s.db.Close() }

// Interface guards
var (
	_ profile.Store    = (*Store)(nil)
	_ profile.Exporter = (*Store)(nil)
	_ profile.Importer = (*Store)(nil)
)
