package boltstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// Export: every profile, read from a snapshot copy of the file.

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
