package pgstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// pollConn is a poll's connection of its own, outside the pool, made at
// its first query and again after a failure. A pool exhausted by requests
// (all of them waiting on one row lock, say) must not hold back the polls:
// the profile cache vouches for its entries only while they succeed, so
// a poll waiting for a pooled connection would send every read of a
// cached profile to that same exhausted pool.
type pollConn struct {
	cfg     *pgx.ConnConfig
	timeout time.Duration
	conn    *pgx.Conn
}

// querier is what a poll reads with: a pollConn, or the pool.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// QueryRow runs sql on the connection, connecting first when there is
// none; a failure to connect is the row's error.
func (p *pollConn) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if p.conn == nil {
		cctx, cancel := context.WithTimeout(ctx, p.timeout)
		conn, err := pgx.ConnectConfig(cctx, p.cfg.Copy())
		cancel()
		if err != nil {
			return errRow{err}
		}
		p.conn = conn
	}
	return p.conn.QueryRow(ctx, sql, args...)
}

// drop closes the connection after a failure: the next query connects
// again. The close waits a second at most, since the failure may be a
// network that no longer answers.
func (p *pollConn) drop() {
	if p.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_ = p.conn.Close(ctx)
	cancel()
	p.conn = nil
}

// errRow is a row whose query could not be sent.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }
