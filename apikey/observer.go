package apikey

import "time"

// Observer is told what a Keyring does, so that the glue can count it
// (Prometheus, in caddymodule) without this package importing a metrics
// library. It is never told a key, a hash or an id. Its methods are
// called on the request path and must not block. A nil Observer is
// allowed.
type Observer interface {
	// Verified is told the outcome of each Verify.
	Verified(o Outcome)
	// CacheLookup is told of each lookup of a presentable key in the
	// keyring's caches.
	CacheLookup(l Lookup)
	// StoreRead is told of each read of the store the keyring made or
	// could not make (ReadBusy), and how long it took.
	StoreRead(r Read, took time.Duration)
}

// Outcome is what Verify answered.
type Outcome uint8

const (
	// OutcomeValidUser: a usable key of kind user.
	OutcomeValidUser Outcome = iota
	// OutcomeValidService: a usable key of kind service.
	OutcomeValidService
	// OutcomeInvalid: ErrInvalid (unknown, revoked, expired, malformed).
	OutcomeInvalid
	// OutcomeUnavailable: the store could not answer (ErrUnavailable).
	OutcomeUnavailable
)

func (o Outcome) String() string {
	switch o {
	case OutcomeValidUser:
		return "valid_user"
	case OutcomeValidService:
		return "valid_service"
	case OutcomeInvalid:
		return "invalid"
	}
	return "unavailable"
}

// Lookup is what the keyring's caches held for a presented key.
type Lookup uint8

const (
	// LookupHit: a record read within MaxAge (usable or not).
	LookupHit Lookup = iota
	// LookupNegativeHit: a hash the store did not know within NegativeTTL.
	LookupNegativeHit
	// LookupMiss: nothing; the store is read (or a read in progress for
	// the same hash is waited for).
	LookupMiss
)

func (l Lookup) String() string {
	switch l {
	case LookupHit:
		return "hit"
	case LookupNegativeHit:
		return "negative_hit"
	}
	return "miss"
}

// Read is what one read of the store brought.
type Read uint8

const (
	// ReadFound: the store holds a record with the hash.
	ReadFound Read = iota
	// ReadNotFound: it does not.
	ReadNotFound
	// ReadFailed: the store failed or timed out.
	ReadFailed
	// ReadBusy: no read slot (MaxReads) freed within Timeout; no read.
	ReadBusy
)

func (r Read) String() string {
	switch r {
	case ReadFound:
		return "found"
	case ReadNotFound:
		return "not_found"
	case ReadFailed:
		return "failed"
	}
	return "busy"
}
