package pgstore

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// Writing one profile: a transaction that holds its row lock.

// errRaced: another node inserted the same new profile first; try again,
// this time finding (and locking) its row.
var errRaced = errors.New("concurrent insert")

// Update implements profile.Store: one transaction with the row locked
// (SELECT ... FOR UPDATE), fn, then the write. A new profile is inserted
// with ON CONFLICT DO NOTHING, so a node that loses the race retries with
// the winner's row. Serialization failures and deadlocks are retried a few
// times; a user-name collision is ErrUserNameTaken; nothing is ever half
// written, since every error rolls the transaction back.
func (s *Store) Update(ctx context.Context, userID string, fn profile.UpdateFunc) (profile.Profile, error) {
	if err := ctx.Err(); err != nil {
		return profile.Profile{}, s.fail(ctx, err)
	}
	opCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var out profile.Profile
	var err error
	for attempt := 0; attempt < maxAttempts; attempt++ {
		err = s.inTx(opCtx, s.pool, func(tx pgx.Tx) error {
			var txErr error
			out, txErr = s.updateTx(opCtx, tx, userID, fn)
			return txErr
		})
		if !errors.Is(err, errRaced) && !retryable(err) {
			break
		}
	}
	var de errDomain
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return out, nil
	case errors.As(err, &de):
		return profile.Profile{}, de.err
	case errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "profiles_user_name_key":
		return profile.Profile{}, profile.ErrUserNameTaken
	default:
		return profile.Profile{}, s.fail(ctx, err)
	}
}

func (s *Store) updateTx(ctx context.Context, tx pgx.Tx, userID string, fn profile.UpdateFunc) (profile.Profile, error) {
	cur, err := scanProfile(tx.QueryRow(ctx, "SELECT "+columns+" FROM "+s.schema+".profiles WHERE user_id = $1 FOR UPDATE", userID), userID)
	exists := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return profile.Profile{}, err
	}
	if !exists {
		cur = profile.Profile{}
	}
	next, changed, err := fn(cur, exists)
	if err != nil {
		return profile.Profile{}, errDomain{err}
	}
	if !changed {
		return cur, nil
	}
	next.UserID, next.Version = userID, cur.Version+1
	if exists {
		_, err = tx.Exec(ctx, "UPDATE "+s.schema+".profiles SET user_name=$2, email=$3, first_name=$4, last_name=$5, user_type=$6, version=$7 WHERE user_id=$1",
			userID, next.UserName, next.Email, next.FirstName, next.LastName, int16(next.UserType), int64(next.Version))
		return next, err
	}
	tag, err := tx.Exec(ctx, "INSERT INTO "+s.schema+".profiles (user_id, "+columns+") VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (user_id) DO NOTHING",
		userID, next.UserName, next.Email, next.FirstName, next.LastName, int16(next.UserType), int64(next.Version))
	if err != nil {
		return profile.Profile{}, err
	}
	if tag.RowsAffected() == 0 {
		return profile.Profile{}, errRaced
	}
	return next, nil
}
