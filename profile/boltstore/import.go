package boltstore

import (
	"context"
	"encoding/json"
	"errors"

	bolt "go.etcd.io/bbolt"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// Import: a whole file of profiles written in one transaction.

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
