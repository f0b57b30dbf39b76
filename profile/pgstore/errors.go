package pgstore

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"regexp"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// fail is what an operation returns for err, ctx being the caller's
// context:
//
//   - when the caller gave up (ctx cancelled), ctx.Err() itself, that is
//     context.Canceled: a client that hung up is not a store failure, and
//     errors.Is(err, profile.ErrUnavailable) is false;
//   - otherwise an error that errors.Is profile.ErrUnavailable (and
//     context.DeadlineExceeded after a timeout, and errors.As a
//     *pgconn.PgError the server sent), whose text is "profile store
//     unavailable: <cause>", the cause naming no user, database, host
//     or port (see describe).
func (s *Store) fail(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	return unavailable(err)
}

// storeError is ErrUnavailable with a cause fit for logs.
type storeError struct {
	cause   string
	wrapped []error
}

// Error names the first wrapped error: profile.ErrUnavailable, or
// apikey.ErrUnavailable for the key store (see keyFail).
func (e *storeError) Error() string   { return e.wrapped[0].Error() + ": " + e.cause }
func (e *storeError) Unwrap() []error { return e.wrapped }

func unavailable(err error) error {
	e := &storeError{cause: describe(err), wrapped: []error{profile.ErrUnavailable}}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		e.wrapped = append(e.wrapped, pgErr)
	}
	if isTimeout(err) {
		e.wrapped = append(e.wrapped, context.DeadlineExceeded)
	}
	return e
}

func isTimeout(err error) bool {
	var netErr net.Error
	return errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) || (errors.As(err, &netErr) && netErr.Timeout())
}

// describe says what went wrong without the details pgx and net put in
// their messages: "failed to connect to `user=... database=...`:
// host:port (host): dial error: dial tcp host:port: connect: connection
// refused" becomes "cannot connect: connection refused". Errors the server
// sent keep their message and SQLSTATE, but not their detail (which may
// quote row values); during a connection attempt only the SQLSTATE is
// kept, since the server names the user or database there.
func describe(err error) string {
	var connErr *pgconn.ConnectError
	connecting := errors.As(err, &connErr)
	prefix := ""
	if connecting {
		prefix = "cannot connect: "
	}
	var pgErr *pgconn.PgError
	var errno syscall.Errno
	var dnsErr *net.DNSError
	var tlsErr *tls.CertificateVerificationError
	var recErr tls.RecordHeaderError
	var opErr *net.OpError
	switch {
	case errors.As(err, &pgErr) && connecting:
		return prefix + "the server refused the session (SQLSTATE " + pgErr.Code + ")"
	case errors.As(err, &pgErr):
		return pgErr.Severity + ": " + pgErr.Message + " (SQLSTATE " + pgErr.Code + ")"
	case isTimeout(err):
		return prefix + "timeout"
	case errors.As(err, &errno):
		return prefix + errno.Error()
	case errors.As(err, &dnsErr):
		return prefix + "host name lookup failed"
	case errors.As(err, &tlsErr), errors.As(err, &recErr):
		return prefix + "TLS handshake failed"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return prefix + "connection closed by the server"
	case errors.Is(err, net.ErrClosed):
		return prefix + "connection closed"
	case errors.As(err, &opErr):
		return prefix + "network error (" + opErr.Op + ")"
	case connecting:
		return "cannot connect"
	}
	return scrub(err.Error())
}

// scrub removes what looks like a connection detail from a message no
// case of describe recognized.
var scrubRE = regexp.MustCompile("`?(user|database|host|port)=[^ `]*`?|\\[?[0-9a-fA-F:.]*\\]?:[0-9]{1,5}\\b|\\([0-9a-fA-F:.]+\\)")

func scrub(s string) string { return scrubRE.ReplaceAllString(s, "…") }

// keyFail is fail for the API-key store: the same error, but one that
// errors.Is apikey.ErrUnavailable instead of profile.ErrUnavailable.
func (s *Store) keyFail(ctx context.Context, err error) error {
	return asKeyError(s.fail(ctx, err))
}

func asKeyError(err error) error {
	var se *storeError
	if !errors.As(err, &se) {
		return err
	}
	wrapped := append([]error{apikey.ErrUnavailable}, se.wrapped[1:]...)
	return &storeError{cause: se.cause, wrapped: wrapped}
}

// retryable: serialization failure, deadlock.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}
