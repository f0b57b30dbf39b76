package profile

import (
	"context"
	"errors"
)

// Identity is what a verified token says about its caller. The HTTP layer
// fills it from the claims; Service uses it to find the profile and, with
// CreateMissing, to create one.
type Identity struct {
	UserID string
	// The claims a new profile is made from (create_missing).
	PreferredUserName string
	Email             string
	GivenName         string
	FamilyName        string
	UserType          UserType
}

// Service is the behaviour of GET and PUT on a Store.
type Service struct {
	Store Store
	// CreateMissing creates an unknown caller's profile from its claims
	// instead of answering ErrNotFound.
	CreateMissing bool
}

// Get returns the caller's profile, creating it when CreateMissing is on.
func (s Service) Get(ctx context.Context, id Identity) (Profile, error) {
	p, err := s.Store.Get(ctx, id.UserID)
	if !errors.Is(err, ErrNotFound) || !s.CreateMissing {
		return p, err
	}
	var changed bool
	return s.updateTracking(ctx, id, "", UpdateRequest{}, &changed)
}

// PutResult is the outcome of a successful Put.
type PutResult struct {
	Profile Profile
	Changed bool
}

// Put applies a validated request to the caller's profile in one atomic
// read-modify-write. ifMatch is the If-Match header ("" when absent).
func (s Service) Put(ctx context.Context, id Identity, ifMatch string, req UpdateRequest) (PutResult, error) {
	var changed bool
	p, err := s.updateTracking(ctx, id, ifMatch, req, &changed)
	return PutResult{Profile: p, Changed: changed}, err
}

// updateTracking runs the read-modify-write. A profile created from claims
// tries the claimed user name, then the subject, then none: a claim that is
// invalid or already taken must not keep the account from being created.
func (s Service) updateTracking(ctx context.Context, id Identity, ifMatch string, req UpdateRequest, changed *bool) (Profile, error) {
	var lastErr error
	for _, seedName := range s.seedNames(id) {
		p, err := s.Store.Update(ctx, id.UserID, func(cur Profile, exists bool) (Profile, bool, error) {
			*changed = false
			if ifMatch != "" && (!exists || !MatchETag(ifMatch, cur.ETag(), false)) {
				return cur, false, ErrPreconditionFailed
			}
			created := false
			if !exists {
				if !s.CreateMissing {
					return cur, false, ErrNotFound
				}
				cur = newFromClaims(id, seedName)
				created = true
			}
			next, ch := Apply(cur, req)
			*changed = ch
			return next, ch || created, nil
		})
		// Only a seeded name can be the culprit when the request names none.
		if errors.Is(err, ErrUserNameTaken) && req.UserName == nil {
			lastErr = err
			continue
		}
		return p, err
	}
	return Profile{}, lastErr
}

func (s Service) seedNames(id Identity) []string {
	if !s.CreateMissing {
		return []string{""}
	}
	var names []string
	for _, n := range []string{id.PreferredUserName, id.UserID} {
		if n != "" && UserNameProblems(n) == nil {
			names = append(names, n)
		}
	}
	return append(names, "")
}

// newFromClaims builds a new profile from the token's claims, keeping only
// the claims that pass the same rules as a PUT.
func newFromClaims(id Identity, userName string) Profile {
	p := Profile{UserID: id.UserID, UserName: userName, UserType: id.UserType}
	if EmailProblems(id.Email) == nil && id.Email != "" {
		p.Email = id.Email
	}
	if NameProblems(FieldFirstName, id.GivenName) == nil {
		p.FirstName = id.GivenName
	}
	if NameProblems(FieldLastName, id.FamilyName) == nil {
		p.LastName = id.FamilyName
	}
	return p
}

// Apply sets the present fields of a validated request on cur and reports
// whether anything changed.
func Apply(cur Profile, req UpdateRequest) (Profile, bool) {
	changed := false
	set := func(dst *string, v *string) {
		if v != nil && *v != *dst {
			*dst = *v
			changed = true
		}
	}
	set(&cur.UserName, req.UserName)
	set(&cur.Email, req.Email)
	set(&cur.FirstName, req.FirstName)
	set(&cur.LastName, req.LastName)
	return cur, changed
}
