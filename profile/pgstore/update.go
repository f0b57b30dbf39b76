package pgstore

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// Writing one profile: a compare-and-set on its version, one statement,
// with a locking transaction to fall back on.

// errRaced: another write committed between this one's read and its
// write (or inserted the same new profile first); try again with the
// row as it now is.
var errRaced = errors.New("concurrent write")

// optimisticAttempts is how many compare-and-set writes an Update tries
// before it falls back to the locking transaction, which always makes
// progress however many nodes write the profile at once.
const optimisticAttempts = 3

// Update implements profile.Store. fn runs on the current profile, and
// its result is written by one statement that commits only if the row is
// still the one fn saw: an UPDATE ... WHERE version = <the version read>,
// or, for a new profile, an INSERT ... ON CONFLICT DO NOTHING. When the
// row changed meanwhile, fn runs again on the new row. So a write costs
// two round trips (read, write), or one when the node's cache holds the
// profile: the cached row is only a guess, which the write's version
// check confirms; fn's refusal (a failed If-Match) or "no change" on a
// guess is never trusted, fn then runs again on the row read from the
// database. The database alone decides If-Match and the uniqueness of
// user names (a unique index): no update is lost and no name held twice,
// whatever a cache holds.
//
// After optimisticAttempts lost races, one transaction locks the row
// (SELECT ... FOR UPDATE) and writes it. Serialization failures and
// deadlocks are retried a few times; a user-name collision is
// ErrUserNameTaken; nothing is ever half written. Each committed write is
// kept in this node's cache (it reads its own writes at once) and
// announced to the others (profiles_watch.go).
func (s *Store) Update(ctx context.Context, userID string, fn profile.UpdateFunc) (profile.Profile, error) {
	if err := ctx.Err(); err != nil {
		return profile.Profile{}, s.fail(ctx, err)
	}
	s.startProfileWatch()
	opCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var fill *cacheFill
	var guess profile.Profile
	guessed := false
	if s.cache != nil {
		fill = s.cache.begin(userID)
		if s.vouched() {
			guess, guessed = s.cache.peek(userID)
		}
	}
	out, written, tried, err := s.updateOptimistic(opCtx, userID, fn, guess, guessed)
	if errors.Is(err, errRaced) || retryable(err) {
		for attempt := tried; attempt < maxAttempts; attempt++ {
			err = s.inTx(opCtx, s.pool, func(tx pgx.Tx) error {
				var txErr error
				out, written, txErr = s.updateTx(opCtx, tx, userID, fn)
				return txErr
			})
			if !errors.Is(err, errRaced) && !retryable(err) {
				break
			}
		}
	}
	if fill != nil {
		s.cache.finish(fill, out, err == nil)
	}
	var de errDomain
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		if written {
			s.announce(userID, out.Version)
		}
		return out, nil
	case errors.As(err, &de):
		return profile.Profile{}, de.err
	case errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "profiles_user_name_key":
		return profile.Profile{}, profile.ErrUserNameTaken
	default:
		return profile.Profile{}, s.fail(ctx, err)
	}
}

// updateOptimistic is Update's compare-and-set attempts, the first on
// guess when guessed, and how many it made; errRaced when each lost its
// race, or the last one's error when it is retryable (a serialization
// failure or a deadlock, which count among the maxAttempts of Update).
func (s *Store) updateOptimistic(ctx context.Context, userID string, fn profile.UpdateFunc, guess profile.Profile, guessed bool) (out profile.Profile, written bool, tried int, err error) {
	var attempt int
	for attempt = 0; attempt < optimisticAttempts; attempt++ {
		cur, exists := guess, guessed
		if !guessed {
			cur, err = scanProfile(s.pool.QueryRow(ctx, "SELECT "+columns+" FROM "+s.schema+".profiles WHERE user_id = $1", userID), userID)
			exists = err == nil
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return profile.Profile{}, false, attempt + 1, err
			}
			if !exists {
				cur = profile.Profile{}
			}
		}
		onGuess := guessed
		guessed = false
		next, changed, ferr := fn(cur, exists)
		switch {
		case onGuess && (ferr != nil || !changed):
			attempt-- // not a race: the guess is checked against the database
			continue
		case ferr != nil:
			return profile.Profile{}, false, attempt + 1, errDomain{ferr}
		case !changed:
			return cur, false, attempt + 1, nil
		}
		next.UserID, next.Version = userID, cur.Version+1
		ok, err := s.write(ctx, next, exists, cur.Version)
		switch {
		case retryable(err):
			continue
		case err != nil:
			return profile.Profile{}, false, attempt + 1, err
		case ok:
			return next, true, attempt + 1, nil
		}
	}
	return profile.Profile{}, false, attempt, errRaced
}

// write writes next in one statement if the row is still at version was
// (exists) or still absent (!exists); ok is false when it is not.
func (s *Store) write(ctx context.Context, next profile.Profile, exists bool, was uint64) (ok bool, err error) {
	var tag pgconn.CommandTag
	if exists {
		tag, err = s.pool.Exec(ctx, "UPDATE "+s.schema+".profiles SET user_name=$2, email=$3, first_name=$4, last_name=$5, user_type=$6, version=$7 WHERE user_id=$1 AND version=$8",
			next.UserID, next.UserName, next.Email, next.FirstName, next.LastName, int16(next.UserType), int64(next.Version), int64(was))
	} else {
		tag, err = s.pool.Exec(ctx, "INSERT INTO "+s.schema+".profiles (user_id, "+columns+") VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (user_id) DO NOTHING",
			next.UserID, next.UserName, next.Email, next.FirstName, next.LastName, int16(next.UserType), int64(next.Version))
	}
	return err == nil && tag.RowsAffected() == 1, err
}

// updateTx is the locking fallback: the row locked, fn, the write.
func (s *Store) updateTx(ctx context.Context, tx pgx.Tx, userID string, fn profile.UpdateFunc) (profile.Profile, bool, error) {
	cur, err := scanProfile(tx.QueryRow(ctx, "SELECT "+columns+" FROM "+s.schema+".profiles WHERE user_id = $1 FOR UPDATE", userID), userID)
	exists := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return profile.Profile{}, false, err
	}
	if !exists {
		cur = profile.Profile{}
	}
	next, changed, err := fn(cur, exists)
	if err != nil {
		return profile.Profile{}, false, errDomain{err}
	}
	if !changed {
		return cur, false, nil
	}
	next.UserID, next.Version = userID, cur.Version+1
	tag, err := tx.Exec(ctx, "INSERT INTO "+s.schema+".profiles (user_id, "+columns+") VALUES ($1,$2,$3,$4,$5,$6,$7) "+
		"ON CONFLICT (user_id) DO UPDATE SET user_name=$2, email=$3, first_name=$4, last_name=$5, user_type=$6, version=$7 "+
		"WHERE "+s.schema+".profiles.version = $8",
		userID, next.UserName, next.Email, next.FirstName, next.LastName, int16(next.UserType), int64(next.Version), int64(cur.Version))
	if err != nil {
		return profile.Profile{}, false, err
	}
	if tag.RowsAffected() == 0 {
		return profile.Profile{}, false, errRaced // a new profile another node inserted first
	}
	return next, true, nil
}
