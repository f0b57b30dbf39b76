package pgstore

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// Export: every profile, streamed from one consistent snapshot.

// Export implements profile.Exporter, streaming rows in user-ID order.
//
// It reads one consistent snapshot: a read-only REPEATABLE READ
// transaction on a connection of its own (see transferConn), without the
// statement_timeout, so that a large export is never cut off midway.
// ExportTimeout bounds it instead, from start to end, however slowly the
// caller reads. Any failure midway (the timeout, the connection, the
// server) is returned: an export that returns nil is complete.
func (s *Store) Export(ctx context.Context, fn func(profile.Profile) error) error {
	return s.readSnapshot(ctx, "SELECT user_id, "+columns+" FROM "+s.schema+".profiles ORDER BY user_id", s.fail, func(rows pgx.Rows) error {
		var id string
		p := profile.Profile{}
		var ut int16
		var version int64
		if err := rows.Scan(&id, &p.UserName, &p.Email, &p.FirstName, &p.LastName, &ut, &version); err != nil {
			return err
		}
		p.UserID, p.UserType, p.Version = id, profile.UserType(ut), uint64(version)
		return callerErr(fn(p))
	})
}

// callerError is an error of the caller's function in readSnapshot,
// returned to it as is rather than as a store failure.
type callerError struct{ err error }

func (e callerError) Error() string { return e.err.Error() }

func callerErr(err error) error {
	if err == nil {
		return nil
	}
	return callerError{err}
}

// readSnapshot runs query in the consistent snapshot an export reads
// (see Export) and calls each with every row. A callerError from each is
// returned unwrapped, as is; any other failure (a scan among them) as
// fail makes it.
func (s *Store) readSnapshot(ctx context.Context, query string, fail func(context.Context, error) error, each func(pgx.Rows) error) error {
	if err := ctx.Err(); err != nil {
		return fail(ctx, err)
	}
	opCtx, cancel := context.WithTimeout(ctx, s.exportTimeout)
	defer cancel()
	conn, release, err := s.transferConn(opCtx)
	if err != nil {
		return fail(ctx, err)
	}
	defer release()
	var callers callerError
	err = s.inTx(opCtx, txBeginner{conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(opCtx, "SET LOCAL statement_timeout = 0"); err != nil {
			return err
		}
		rows, err := tx.Query(opCtx, query)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := each(rows); err != nil {
				errors.As(err, &callers)
				return err
			}
		}
		return rows.Err()
	})
	switch {
	case err == nil:
		return nil
	case callers.err != nil:
		return callers.err
	default:
		return fail(ctx, err)
	}
}

// txBeginner begins transactions with options on one connection.
type txBeginner struct {
	conn *pgx.Conn
	opts pgx.TxOptions
}

func (b txBeginner) Begin(ctx context.Context) (pgx.Tx, error) { return b.conn.BeginTx(ctx, b.opts) }
