package boltstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
)

// API keys in the profiles' file: two buckets, the record by the key's
// hash (the lookup of every request) and the hash by the key's id (for
// revocation and last-used times), written together in one transaction
// so that they never disagree.

var (
	bucketKeys   = []byte("apikeys")    // SHA-256 of the key (32 bytes) -> keyRecord (JSON)
	bucketKeyIDs = []byte("apikey_ids") // key id -> SHA-256 of the key
)

// keyRecord is the stored form of an apikey.Record, the hash being the
// bucket key. Times are Unix microseconds, absent for the zero time (so
// that the Unix epoch itself stays a time).
type keyRecord struct {
	ID       string      `json:"id"`
	Subject  string      `json:"s"`
	Kind     apikey.Kind `json:"k"`
	Name     string      `json:"n,omitempty"`
	Created  *int64      `json:"c,omitempty"`
	Expires  *int64      `json:"e,omitempty"`
	Revoked  *int64      `json:"r,omitempty"`
	LastUsed *int64      `json:"u,omitempty"`
}

func micros(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	n := t.UnixMicro()
	return &n
}

func fromMicros(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return time.UnixMicro(*n).UTC()
}

func encodeKey(r apikey.Record) ([]byte, error) {
	return json.Marshal(keyRecord{ID: r.ID, Subject: r.Subject, Kind: r.Kind, Name: r.Name, Created: micros(r.Created),
		Expires: micros(r.Expires), Revoked: micros(r.Revoked), LastUsed: micros(r.LastUsed)})
}

func decodeKey(h, v []byte) (apikey.Record, error) {
	var k keyRecord
	if err := json.Unmarshal(v, &k); err != nil || len(h) != len(apikey.Hash{}) {
		return apikey.Record{}, keyUnavailable(fmt.Errorf("corrupt key record: %v", err))
	}
	r := apikey.Record{ID: k.ID, Subject: k.Subject, Kind: k.Kind, Name: k.Name, Created: fromMicros(k.Created),
		Expires: fromMicros(k.Expires), Revoked: fromMicros(k.Revoked), LastUsed: fromMicros(k.LastUsed)}
	copy(r.Hash[:], h)
	return r, nil
}

func keyUnavailable(err error) error {
	return fmt.Errorf("%w: %v", apikey.ErrUnavailable, err)
}

// keyStore is the apikey.Store of a bolt file.
type keyStore struct{ s *Store }

// APIKeys returns the API-key store kept in the same file as the
// profiles; it lives as long as s (s.Close closes both).
func (s *Store) APIKeys() apikey.Store { return keyStore{s} }

// Lookup implements apikey.Store, in the caller's goroutine as Get does.
func (k keyStore) Lookup(ctx context.Context, h apikey.Hash) (apikey.Record, error) {
	if err := ctx.Err(); err != nil {
		return apikey.Record{}, keyUnavailable(err)
	}
	var r apikey.Record
	err := k.s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketKeys).Get(h[:])
		if v == nil {
			return apikey.ErrNotFound
		}
		var err error
		r, err = decodeKey(h[:], v)
		return err
	})
	return r, keyError(err)
}

// keyError maps an error of a transaction to the errors of apikey.Store.
func keyError(err error) error {
	var de errDomain
	switch {
	case err == nil:
		return nil
	case errors.As(err, &de):
		return de.err
	case errors.Is(err, apikey.ErrNotFound), errors.Is(err, apikey.ErrUnavailable):
		return err
	default: // bolt's own, and run's profile.ErrUnavailable
		return keyUnavailable(err)
	}
}

// update runs fn in one write transaction bounded by ctx (see Deadlines).
func (k keyStore) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	return keyError(run(ctx, func(c *call) error {
		return k.s.db.Update(func(tx *bolt.Tx) error {
			if err := c.begin(ctx); err != nil {
				return err
			}
			defer c.end()
			return fn(tx)
		})
	}))
}

// Create implements apikey.Store.
func (k keyStore) Create(ctx context.Context, r apikey.Record) error {
	r = r.Stored()
	return k.update(ctx, func(tx *bolt.Tx) error {
		keys, ids := tx.Bucket(bucketKeys), tx.Bucket(bucketKeyIDs)
		if keys.Get(r.Hash[:]) != nil || ids.Get([]byte(r.ID)) != nil {
			return errDomain{apikey.ErrExists}
		}
		return putKey(keys, ids, r)
	})
}

func putKey(keys, ids *bolt.Bucket, r apikey.Record) error {
	v, err := encodeKey(r)
	if err != nil {
		return err
	}
	if err := keys.Put(r.Hash[:], v); err != nil {
		return err
	}
	return ids.Put([]byte(r.ID), r.Hash[:])
}

// byID reads the record with id in tx; ErrNotFound when there is none.
func byID(tx *bolt.Tx, id string) (apikey.Record, error) {
	h := tx.Bucket(bucketKeyIDs).Get([]byte(id))
	if h == nil {
		return apikey.Record{}, errDomain{apikey.ErrNotFound}
	}
	v := tx.Bucket(bucketKeys).Get(h)
	if v == nil {
		return apikey.Record{}, keyUnavailable(errors.New("key id index names a missing record"))
	}
	return decodeKey(h, v)
}

// Revoke implements apikey.Store.
func (k keyStore) Revoke(ctx context.Context, id string, at time.Time) (apikey.Record, error) {
	var out apikey.Record
	err := k.update(ctx, func(tx *bolt.Tx) error {
		r, err := byID(tx, id)
		if err != nil {
			return err
		}
		out = r
		if !r.Revoked.IsZero() {
			return nil
		}
		out.Revoked = apikey.StoredTime(at)
		return putKey(tx.Bucket(bucketKeys), tx.Bucket(bucketKeyIDs), out)
	})
	if err != nil {
		return apikey.Record{}, err
	}
	return out, nil
}

// TouchLastUsed implements apikey.Store in one transaction.
func (k keyStore) TouchLastUsed(ctx context.Context, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	return k.update(ctx, func(tx *bolt.Tx) error {
		for id, at := range used {
			r, err := byID(tx, id)
			if errors.Is(err, apikey.ErrNotFound) {
				continue // revoked and deleted meanwhile, or never stored
			}
			if err != nil {
				return err
			}
			if at = apikey.StoredTime(at); !at.After(r.LastUsed) {
				continue
			}
			r.LastUsed = at
			if err := putKey(tx.Bucket(bucketKeys), tx.Bucket(bucketKeyIDs), r); err != nil {
				return err
			}
		}
		return nil
	})
}

// List implements apikey.Store: a scan of every record (a file holds
// keys by the thousand, not the million).
func (k keyStore) List(ctx context.Context, subject string) ([]apikey.Record, error) {
	return k.read(ctx, subject)
}

// Export implements apikey.Store: every record read in one read
// transaction, then handed to fn after it ended, so that a slow consumer
// never holds the transaction (which would hold up a remap of the file).
func (k keyStore) Export(ctx context.Context, fn func(apikey.Record) error) error {
	rs, err := k.read(ctx, "")
	if err != nil {
		return err
	}
	for _, r := range rs {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// read returns the records of subject ("" for all) in List's order.
func (k keyStore) read(ctx context.Context, subject string) ([]apikey.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, keyUnavailable(err)
	}
	out := []apikey.Record{}
	err := k.s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKeys).ForEach(func(h, v []byte) error {
			r, err := decodeKey(h, v)
			if err == nil && (subject == "" || r.Subject == subject) {
				out = append(out, r)
			}
			return err
		})
	})
	if err != nil {
		return nil, keyError(err)
	}
	slices.SortFunc(out, func(a, b apikey.Record) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Import implements apikey.Store in one write transaction: any clash
// (an id or hash held by a different record, or named twice in rs)
// rolls everything back.
func (k keyStore) Import(ctx context.Context, rs []apikey.Record) error {
	return k.update(ctx, func(tx *bolt.Tx) error {
		keys, ids := tx.Bucket(bucketKeys), tx.Bucket(bucketKeyIDs)
		seenID, seenHash := make(map[string]bool, len(rs)), make(map[apikey.Hash]bool, len(rs))
		for _, r := range rs {
			r = r.Stored()
			if seenID[r.ID] || seenHash[r.Hash] {
				return errDomain{apikey.ErrExists}
			}
			seenID[r.ID], seenHash[r.Hash] = true, true
			held, byHash := ids.Get([]byte(r.ID)), keys.Get(r.Hash[:])
			switch {
			case held == nil && byHash == nil:
				if err := putKey(keys, ids, r); err != nil {
					return err
				}
			case held != nil && byHash != nil && bytes.Equal(held, r.Hash[:]):
				cur, err := decodeKey(held, byHash)
				if err != nil {
					return err
				}
				if !cur.Equal(r) {
					return errDomain{apikey.ErrExists}
				}
			default:
				return errDomain{apikey.ErrExists}
			}
		}
		return nil
	})
}

// Interface guards
var _ apikey.Store = keyStore{}
