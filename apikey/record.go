package apikey

import (
	"context"
	"errors"
	"time"
)

// Kind is what a key's owner is.
type Kind string

const (
	// KindUser: the key acts as its owner.
	KindUser Kind = "user"
	// KindService: a service account's key, refused on the route with the
	// workspace API's documented 403.
	KindService Kind = "service"
)

// Valid reports whether k is one of the kinds.
func (k Kind) Valid() bool { return k == KindUser || k == KindService }

// MaxNameLen bounds a key's name, in characters.
const MaxNameLen = 100

// Record is a stored key: never the key, only its hash.
//
// Its times are in UTC at microsecond precision (StoredTime), the
// precision of PostgreSQL's timestamptz: every store keeps them so, and a
// record read back equals the one written once its times are so
// truncated. Zero times stay zero.
type Record struct {
	ID      string
	Hash    Hash
	Subject string
	Kind    Kind
	Name    string
	Created time.Time
	// Expires is zero for a key that does not expire.
	Expires time.Time
	// Revoked is zero for a key in force.
	Revoked time.Time
	// LastUsed is at minute precision, zero when never used.
	LastUsed time.Time
}

// StoredTime is t as a record holds it: UTC, truncated to the
// microsecond; the zero time stays zero.
func StoredTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// Stored is r with its times as a record holds them (StoredTime).
func (r Record) Stored() Record {
	r.Created, r.Expires = StoredTime(r.Created), StoredTime(r.Expires)
	r.Revoked, r.LastUsed = StoredTime(r.Revoked), StoredTime(r.LastUsed)
	return r
}

// Equal reports whether a and b hold the same stored fields, times
// compared as instants.
func (a Record) Equal(b Record) bool {
	return a.ID == b.ID && a.Hash == b.Hash && a.Subject == b.Subject && a.Kind == b.Kind &&
		a.Name == b.Name && a.Created.Equal(b.Created) && a.Expires.Equal(b.Expires) &&
		a.Revoked.Equal(b.Revoked) && a.LastUsed.Equal(b.LastUsed)
}

// Usable reports whether the record lets its key in at now: not revoked,
// not expired.
func (r Record) Usable(now time.Time) bool {
	return r.Revoked.IsZero() && (r.Expires.IsZero() || now.Before(r.Expires))
}

// Errors of a Store.
var (
	// ErrNotFound: no record with that hash or id.
	ErrNotFound = errors.New("api key not found")
	// ErrExists: a record with that id or hash is already stored.
	ErrExists = errors.New("api key already exists")
	// ErrUnavailable: the store cannot answer now (wrapped with the cause).
	ErrUnavailable = errors.New("api key store unavailable")
)

// Store keeps key records. Implementations are safe for concurrent use.
type Store interface {
	// Lookup returns the record whose hash is h, or ErrNotFound.
	Lookup(ctx context.Context, h Hash) (Record, error)
	// Create stores a new record; ErrExists when its id or hash is taken.
	Create(ctx context.Context, r Record) error
	// List returns the records of subject ("" for all), by creation
	// time, then id.
	List(ctx context.Context, subject string) ([]Record, error)
	// Revoke marks the record with id revoked at at and returns it;
	// revoking a revoked record keeps its first time and succeeds.
	// ErrNotFound when unknown.
	Revoke(ctx context.Context, id string, at time.Time) (Record, error)
	// TouchLastUsed records that the keys with these ids were used at the
	// given times (minute precision), never moving a time backwards;
	// unknown ids are ignored. All in one write.
	TouchLastUsed(ctx context.Context, used map[string]time.Time) error
	// Export calls fn with every record, in a consistent snapshot, in the
	// order of List.
	Export(ctx context.Context, fn func(Record) error) error
	// Import stores records all or nothing: a record whose id or hash is
	// taken by a different record fails the whole import with ErrExists;
	// one equal to the stored record is skipped.
	Import(ctx context.Context, rs []Record) error
}
