package boltstore

import (
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// Reading one profile.

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
