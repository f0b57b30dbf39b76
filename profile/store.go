package profile

import "context"

// Store keeps profiles by user ID with a case-insensitive unique index of
// user names. Implementations must make Update one atomic read-modify-write:
// concurrent updates of one profile never lose a write, and two profiles
// never end up with the same user name (ignoring case).
type Store interface {
	// Get returns the profile of userID, or ErrNotFound.
	Get(ctx context.Context, userID string) (Profile, error)

	// Update runs fn on the current profile of userID inside one
	// transaction and stores what it returns. When the profile does not
	// exist, fn gets exists=false and a zero Profile; if it returns
	// ErrNotFound (or any error), nothing is written and the error is
	// returned as is. When fn reports changed=false, nothing is written
	// and the current profile is returned. A user name held by another
	// profile yields ErrUserNameTaken. The stored Version is incremented by
	// the store on every write; fn's Version is ignored.
	Update(ctx context.Context, userID string, fn UpdateFunc) (Profile, error)

	// Close releases the store's resources.
	Close() error
}

// UpdateFunc computes the next profile from the current one.
type UpdateFunc func(cur Profile, exists bool) (next Profile, changed bool, err error)

// NormalizeUserName is the key of the user-name index: user names are ASCII
// (see ValidUserNameRune), so lower-casing ASCII is the whole fold.
func NormalizeUserName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
