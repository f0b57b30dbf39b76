// Package boltstore is the embedded profile.Store: one bbolt file, one
// writer transaction per update, the user-name index kept in the same
// transaction as the profile so the two can never disagree.
package boltstore

import (
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
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
	db      *bolt.DB
	writers atomic.Int32 // updates in progress, to choose between Update and Batch
}

// batchDelay is how long the first update of a batch waits for others to
// join it before the commit. An update with no other in progress commits
// at once, without waiting.
const batchDelay = time.Millisecond

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
	if db != nil {
		db.MaxBatchDelay = batchDelay
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
		// the API-key buckets came later without changing the others: a
		// file of schema 1 gains them here, and SchemaVersion stays 1
		for _, b := range [][]byte{bucketProfiles, bucketUserNames, bucketKeys, bucketKeyIDs} {
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
	r, err := decodeRecord(v)
	if err != nil {
		return profile.Profile{}, unavailable(fmt.Errorf("corrupt record: %v", err))
	}
	return profile.Profile{UserID: userID, UserName: r.UserName, Email: r.Email, FirstName: r.FirstName,
		LastName: r.LastName, UserType: r.UserType, Version: r.Version}, nil
}

// errDomain carries fn's own error out of the bolt transaction untouched.
type errDomain struct{ err error }

func (e errDomain) Error() string { return e.err.Error() }
func (e errDomain) Unwrap() error { return e.err }

// Close implements profile.Store.
func (s *Store) Close() error { return s.db.Close() }

// Interface guards
var (
	_ profile.Store    = (*Store)(nil)
	_ profile.Exporter = (*Store)(nil)
	_ profile.Importer = (*Store)(nil)
)
