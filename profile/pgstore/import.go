package pgstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// Import: a whole file of profiles written in one transaction.

// errNameRaced: a user name clashed on the write after the import's check:
// a profile outside the import took it meanwhile (the next attempt's check
// finds it), or a row of the import's own users appeared after its locking
// pass (the next attempt locks and clears it).
var errNameRaced = errors.New("a user name was taken during the import")

// Import implements profile.Importer in one transaction on a connection
// of its own (see transferConn):
//
//  1. the profiles are copied, in user-ID order, into a temporary table:
//     no lock on the profiles is taken yet;
//  2. with lock_timeout set to the store's timeout, the existing rows
//     among them are locked in user-ID order, importChunk at a time, and
//     their user names cleared, so that renames within one import never
//     collide whatever their order;
//  3. a user name held by a profile outside the import, or twice inside
//     it, fails the import with an ImportConflict naming the first line;
//  4. every profile is upserted, importChunk rows per statement, in
//     user-ID order (version + 1).
//
// Row locks are held from step 2 to the commit, on the file's rows only.
// Since every import takes its locks in the same order, two imports of
// the same profiles wait for each other instead of deadlocking; a
// deadlock or serialization failure that happens all the same is retried
// up to 5 times, as in Update. Any error rolls everything back.
func (s *Store) Import(ctx context.Context, profiles []profile.Profile) error {
	if err := ctx.Err(); err != nil {
		return s.fail(ctx, err)
	}
	opCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	order := make([]int, len(profiles))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(profiles[a].UserID, profiles[b].UserID) })
	conn, release, err := s.transferConn(opCtx)
	if err != nil {
		return s.fail(ctx, err)
	}
	defer release()
	for attempt := 0; attempt < maxAttempts; attempt++ {
		err = s.inTx(opCtx, conn, func(tx pgx.Tx) error { return s.importTx(opCtx, tx, profiles, order) })
		if !retryable(err) && !errors.Is(err, errNameRaced) {
			break
		}
	}
	var de errDomain
	switch {
	case err == nil:
		// every node drops its cache rather than hear of each profile
		s.startProfileWatch()
		if s.cache != nil {
			s.cache.reset()
		}
		s.announceReset()
		return nil
	case errors.As(err, &de):
		return de.err
	default:
		return s.fail(ctx, fmt.Errorf("import of %d profiles: %w", len(profiles), err))
	}
}

func (s *Store) importTx(ctx context.Context, tx pgx.Tx, profiles []profile.Profile, order []int) error {
	if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", s.timeout.Milliseconds())); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `CREATE TEMPORARY TABLE wp_import (ord int NOT NULL, idx int NOT NULL, user_id text NOT NULL,
		user_name text NOT NULL, email text NOT NULL, first_name text NOT NULL, last_name text NOT NULL, user_type smallint NOT NULL) ON COMMIT DROP`); err != nil {
		return err
	}
	cols := []string{"ord", "idx", "user_id", "user_name", "email", "first_name", "last_name", "user_type"}
	for lo := 0; lo < len(order); lo += importChunk {
		hi := min(lo+importChunk, len(order))
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"wp_import"}, cols, pgx.CopyFromSlice(hi-lo, func(i int) ([]any, error) {
			idx := order[lo+i]
			p := profiles[idx]
			return []any{int32(lo + i), int32(idx), p.UserID, p.UserName, p.Email, p.FirstName, p.LastName, int16(p.UserType)}, nil
		})); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, "CREATE UNIQUE INDEX ON wp_import (ord); ANALYZE wp_import"); err != nil {
		return err
	}
	// step 2: lock the existing rows in user-ID order, clear their names
	for lo := 0; lo < len(order); lo += importChunk {
		if _, err := tx.Exec(ctx, "SELECT count(*) FROM (SELECT 1 FROM wp_import i JOIN "+s.schema+".profiles p ON p.user_id = i.user_id "+
			"WHERE i.ord >= $1 AND i.ord < $2 ORDER BY i.ord FOR UPDATE OF p) locked", lo, lo+importChunk); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE "+s.schema+".profiles p SET user_name = '' FROM wp_import i "+
			"WHERE p.user_id = i.user_id AND i.ord >= $1 AND i.ord < $2 AND p.user_name <> ''", lo, lo+importChunk); err != nil {
			return err
		}
	}
	// step 3: names held outside the import, or twice inside it. The
	// import's own rows are never outside holders: those step 2 locked
	// have no name now, and one another import or a PUT created and
	// committed since (this transaction reads committed rows statement by
	// statement) is its own user's row, which step 4 overwrites; if that
	// clashes on a name, step 4 reports errNameRaced and the next attempt's
	// step 2 locks and clears it.
	var idx int
	err := tx.QueryRow(ctx, "SELECT min(idx) FROM ("+
		"SELECT i.idx FROM wp_import i JOIN "+s.schema+".profiles p ON lower(p.user_name COLLATE \"C\") = lower(i.user_name COLLATE \"C\") "+
		"WHERE i.user_name <> '' AND p.user_name <> '' AND NOT EXISTS (SELECT 1 FROM wp_import o WHERE o.user_id = p.user_id) "+
		"UNION ALL SELECT idx FROM (SELECT idx, row_number() OVER (PARTITION BY lower(user_name COLLATE \"C\") ORDER BY idx) AS n "+
		"FROM wp_import WHERE user_name <> '') d WHERE n > 1) c HAVING count(*) > 0").Scan(&idx)
	switch {
	case err == nil:
		return errDomain{&profile.ImportConflict{Index: idx, Err: profile.ErrUserNameTaken}}
	case !errors.Is(err, pgx.ErrNoRows):
		return err
	}
	// step 4: upsert in user-ID order
	for lo := 0; lo < len(order); lo += importChunk {
		_, err := tx.Exec(ctx, "INSERT INTO "+s.schema+".profiles (user_id, "+columns+") "+
			"SELECT user_id, user_name, email, first_name, last_name, user_type, 1 FROM wp_import WHERE ord >= $1 AND ord < $2 ORDER BY ord "+
			"ON CONFLICT (user_id) DO UPDATE SET user_name=EXCLUDED.user_name, email=EXCLUDED.email, first_name=EXCLUDED.first_name, "+
			"last_name=EXCLUDED.last_name, user_type=EXCLUDED.user_type, version="+s.schema+".profiles.version+1", lo, lo+importChunk)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "profiles_user_name_key" {
			return errNameRaced
		}
		if err != nil {
			return err
		}
	}
	return nil
}
