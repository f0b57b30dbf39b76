// Package profile is the domain of the workspace account profile route: the
// profile itself, the PUT request with its binding and validation rules, the
// envelope and problem-details bodies the route answers with, and the Store
// interface the backends implement. It knows nothing of Caddy, so it can be
// read and tested without a web server.
package profile

import (
	"errors"
	"hash/fnv"
	"strconv"
)

// UserType is the workspace account kind, as the legacy API numbers it.
type UserType int

// The account kinds. Service accounts (2 by default) are refused by the edge.
const (
	UserTypeUser           UserType = 0
	UserTypeAdmin          UserType = 1
	UserTypeServiceAccount UserType = 2
)

// Profile is one workspace account's profile. Empty optional fields (Email,
// FirstName, LastName) are "not set" and appear as null on the wire.
type Profile struct {
	UserID    string
	UserName  string
	Email     string
	FirstName string
	LastName  string
	UserType  UserType
	// Version counts the writes of this profile; it is what the ETag names.
	Version uint64
}

// ETag is the strong entity tag of this version of the profile, quoted as
// it goes in the header. The user ID is hashed in so that a tag copied from
// another account never matches.
func (p Profile) ETag() string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(p.UserID))
	b := make([]byte, 0, 40)
	b = append(b, '"')
	b = strconv.AppendUint(b, p.Version, 10)
	b = append(b, '-')
	b = strconv.AppendUint(b, h.Sum64(), 36)
	b = append(b, '"')
	return string(b)
}

// Sentinel errors of the domain. Backends wrap their own failures in
// ErrUnavailable so that the caller can tell "the store is down" from a rule.
var (
	ErrNotFound           = errors.New("profile not found")
	ErrUserNameTaken      = errors.New("user name taken")
	ErrPreconditionFailed = errors.New("precondition failed")
	ErrUnavailable        = errors.New("profile store unavailable")
)
