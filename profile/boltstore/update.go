package boltstore

import (
	"context"
	"encoding/json"
	"errors"

	bolt "go.etcd.io/bbolt"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// Writing one profile: one writer transaction, commits shared by
// concurrent updates.

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
