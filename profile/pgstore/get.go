package pgstore

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// Reading one profile's row, with the columns and the scan that the
// other queries of a profile share.

const columns = "user_name, email, first_name, last_name, user_type, version"

func scanProfile(row pgx.Row, userID string) (profile.Profile, error) {
	p := profile.Profile{UserID: userID}
	var ut int16
	var version int64
	err := row.Scan(&p.UserName, &p.Email, &p.FirstName, &p.LastName, &ut, &version)
	p.UserType, p.Version = profile.UserType(ut), uint64(version)
	return p, err
}

// Get implements profile.Store: from the node's cache when it holds the
// profile and can vouch for it (cache.go), else from the database, the
// answer then filling the cache.
func (s *Store) Get(ctx context.Context, userID string) (profile.Profile, error) {
	if err := ctx.Err(); err != nil {
		return profile.Profile{}, s.fail(ctx, err)
	}
	s.startProfileWatch()
	var fill *cacheFill
	switch {
	case s.cache == nil:
	case s.vouched():
		if p, ok := s.cache.get(userID); ok {
			return p, nil
		}
		fill = s.cache.begin(userID)
	default:
		s.cache.misses.Add(1)
	}
	p, err := s.read(ctx, userID)
	if fill != nil {
		s.cache.finish(fill, p, err == nil)
	}
	return p, err
}

// read reads userID's row from the database.
func (s *Store) read(ctx context.Context, userID string) (profile.Profile, error) {
	opCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	p, err := scanProfile(s.pool.QueryRow(opCtx, "SELECT "+columns+" FROM "+s.schema+".profiles WHERE user_id = $1", userID), userID)
	if errors.Is(err, pgx.ErrNoRows) {
		return profile.Profile{}, profile.ErrNotFound
	}
	if err != nil {
		return profile.Profile{}, s.fail(ctx, err)
	}
	return p, nil
}
