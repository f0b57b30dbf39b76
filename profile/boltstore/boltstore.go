// Package boltstore is the embedded profile.Store: one bbolt file, one
// writer transaction per update, the user-name index kept in the same
// transaction as the profile so the two can never disagree.
package boltstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
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
	r, err := decodeRecord(v)
	if err != nil {
		return profile.Profile{}, unavailable(fmt.Errorf("corrupt record: %v", err))
	}
	return profile.Profile{UserID: userID, UserName: r.UserName, Email: r.Email, FirstName: r.FirstName,
		LastName: r.LastName, UserType: r.UserType, Version: r.Version}, nil
}

// Deadlines. bbolt ignores contexts and a transaction may wait for the
// writer lock (one writer at a time) or for a remap of the file (which
// waits for every read transaction). So Update and Import run their
// transaction in a goroutine and return when ctx is done, with an error
// that wraps both profile.ErrUnavailable (503 StorageUnavailable on the
// route) and ctx.Err() (Get, a read, waits for neither; see Get). The
// abandoned transaction finishes later on its own: a write whose transaction had not begun when
// the caller gave up is rolled back (nothing written); a write that had
// begun commits or not as a whole (bbolt transactions are atomic), so, as
// with a timeout in any database, a caller that got 503 may find its
// write committed. fn of an Update never runs after Update returned.

// call is one transaction run on behalf of a caller that may give up.
type call struct {
	mu        sync.Mutex // held while fn runs; taken to abandon
	abandoned bool
}

// begin is called first inside the transaction: it reports whether the
// caller still waits and, if so, keeps the call from being abandoned
// until end.
func (c *call) begin(ctx context.Context) error {
	c.mu.Lock()
	if c.abandoned {
		c.mu.Unlock()
		return unavailable(fmt.Errorf("the caller gave up: %w", context.Cause(ctx)))
	}
	return nil
}

func (c *call) end() { c.mu.Unlock() }

// run runs tx (a whole bbolt transaction, which calls c.begin and c.end
// around the caller's code) in a goroutine and waits for it or for ctx.
func run(ctx context.Context, tx func(c *call) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", profile.ErrUnavailable, err)
	}
	c := &call{}
	done := make(chan error, 1)
	go func() { done <- tx(c) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		c.mu.Lock() // waits for a running fn; after this none runs
		c.abandoned = true
		c.mu.Unlock()
		select {
		case err := <-done: // it finished meanwhile: its answer stands
			return err
		default:
			return fmt.Errorf("%w: %w", profile.ErrUnavailable, ctx.Err())
		}
	}
}

// Get implements profile.Store. Unlike a write, a read runs in the
// caller's goroutine: a bbolt read transaction never waits for the writer
// (each reads its own consistent view); it waits only while the file is
// remapped, which no long read holds up since exports read from a
// snapshot. That saves a goroutine and two channels on the route's hottest
// path. A context that is already done is refused before the store is
// touched.
func (s *Store) Get(ctx context.Context, userID string) (profile.Profile, error) {
	if err := ctx.Err(); err != nil {
		return profile.Profile{}, fmt.Errorf("%w: %w", profile.ErrUnavailable, err)
	}
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
// read, fn and the write are atomic; any error rolls everything back. It
// is bounded by ctx (see Deadlines).
//
// Concurrent updates share one commit, and so one fsync (group commit,
// bbolt's Batch): each is acknowledged only once the commit holding it is
// durable. When one update of a batch fails (UserNameTaken, a stale
// If-Match), bbolt rolls the batch back, commits the others without it and
// runs the failed one again alone, so its error is its own and the others
// are unaffected. An update with no other in progress commits alone at
// once (db.Update), so a lone client pays no batching delay. fn may
// therefore run more than once; it only computes
// the next profile from the current one, so each run stands alone, and
// only the run that committed gives the answer.
func (s *Store) Update(ctx context.Context, userID string, fn profile.UpdateFunc) (profile.Profile, error) {
	var out profile.Profile // written by the run that commits, read after run returns
	commit := s.db.Batch
	if s.writers.Add(1) == 1 {
		commit = s.db.Update // alone: nobody to share a commit with, no delay
	}
	defer s.writers.Add(-1)
	err := run(ctx, func(c *call) error {
		return commit(func(tx *bolt.Tx) error {
			if err := c.begin(ctx); err != nil {
				return err
			}
			defer c.end()
			p, err := s.update(tx, userID, fn)
			out = p
			return err
		})
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

// update is Update's transaction.
func (s *Store) update(tx *bolt.Tx, userID string, fn profile.UpdateFunc) (profile.Profile, error) {
	var out profile.Profile
	err := func() error {
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
	}()
	return out, err
}

// Export implements profile.Exporter from a snapshot: a read transaction
// copies the file (tx.WriteTo, at disk speed) to a temporary file in the
// OS temp dir, the transaction ends, and fn is called from the copy,
// opened read-only as a bbolt file of its own, which is removed after
// (on Unix as soon as it is open). So a consumer that is slow or stalled
// (a client that stopped reading) never holds a transaction of the store:
// writers, and bbolt's remap when the file grows, which waits for every
// read transaction, never wait for it. The export is the consistent state
// of one moment, in user-ID order; the copy needs as much temporary disk
// as the file. ctx is checked between profiles.
func (s *Store) Export(ctx context.Context, fn func(profile.Profile) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", profile.ErrUnavailable, err)
	}
	f, err := os.CreateTemp("", "workspace-profile-export-*.db")
	if err != nil {
		return unavailable(fmt.Errorf("export snapshot: %v", err))
	}
	name := f.Name()
	defer os.Remove(name)
	err = run(ctx, func(*call) error {
		return s.db.View(func(tx *bolt.Tx) error {
			_, err := tx.WriteTo(f)
			return err
		})
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if errors.Is(err, profile.ErrUnavailable) {
			return err
		}
		return unavailable(fmt.Errorf("export snapshot: %v", err))
	}
	snap, err := bolt.Open(name, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return unavailable(fmt.Errorf("export snapshot: %v", err))
	}
	defer snap.Close()
	if runtime.GOOS != "windows" {
		_ = os.Remove(name) // the open file stays readable
	}
	return snap.View(func(tx *bolt.Tx) error {
		n := 0
		return tx.Bucket(bucketProfiles).ForEach(func(k, v []byte) error {
			if n++; n%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("%w: %w", profile.ErrUnavailable, err)
				}
			}
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
// import never collide; any conflict rolls everything back. It is bounded
// by ctx (see Deadlines): an import whose caller gave up before its
// transaction began writes nothing.
func (s *Store) Import(ctx context.Context, profiles []profile.Profile) error {
	err := run(ctx, func(c *call) error {
		return s.db.Update(func(tx *bolt.Tx) error {
			if err := c.begin(ctx); err != nil {
				return err
			}
			c.end() // no caller code runs inside
			return s.importTx(tx, profiles)
		})
	})
	var de errDomain
	switch {
	case err == nil:
		return nil
	case errors.As(err, &de):
		return de.err
	case errors.Is(err, profile.ErrUnavailable):
		return err
	default:
		return unavailable(err)
	}
}

// importTx is Import's transaction.
func (s *Store) importTx(tx *bolt.Tx, profiles []profile.Profile) error {
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
}

// Close implements profile.Store.
func (s *Store) Close() error { return s.db.Close() }

// Interface guards
var (
	_ profile.Store    = (*Store)(nil)
	_ profile.Exporter = (*Store)(nil)
	_ profile.Importer = (*Store)(nil)
)
