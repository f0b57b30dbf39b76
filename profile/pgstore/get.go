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

// Get implements profile.Store.
func (s *Store) Get(ctx context.Context, userID string) (profile.Profile, error) {
	if err := ctx.Err(); err != nil {
		return profile.Profile{}, s.fail(ctx, err)
	}
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
