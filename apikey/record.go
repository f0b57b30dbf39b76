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
	// List returns the records of subject ("" for all), by creation.
	List(ctx context.Context, subject string) ([]Record, error)
	// Revoke marks the record with id revoked at at and returns it;
	// revoking a revoked record keeps its first time. ErrNotFound when
	// unknown.
	Revoke(ctx context.Context, id string, at time.Time) (Record, error)
	// TouchLastUsed records that the keys with these ids were used at the
	// given times (minute precision), never moving a time backwards.
	TouchLastUsed(ctx context.Context, used map[string]time.Time) error
	// Export calls fn with every record, in a consistent snapshot.
	Export(ctx context.Context, fn func(Record) error) error
	// Import stores records all or nothing: a record whose id or hash is
	// taken by a different record fails the whole import with ErrExists;
	// one equal to the stored record is skipped.
	Import(ctx context.Context, rs []Record) error
}
