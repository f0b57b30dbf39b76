package profile

import (
	"context"
	"fmt"
)

// Exporter is a Store that can list every profile, for backups and moves
// between backends. fn is called once per profile, in user-ID order.
type Exporter interface {
	Export(ctx context.Context, fn func(Profile) error) error
}

// Importer is a Store that can write many profiles at once, all or
// nothing. A profile replaces the one with its user ID; a user name held by
// another profile (ignoring case) fails the whole import with an
// ImportConflict naming the line.
type Importer interface {
	Import(ctx context.Context, profiles []Profile) error
}

// ImportConflict says which profile of an import could not be written.
type ImportConflict struct {
	Index int // 0-based position in the import
	Err   error
}

func (e *ImportConflict) Error() string { return fmt.Sprintf("profile %d: %v", e.Index, e.Err) }
func (e *ImportConflict) Unwrap() error { return e.Err }
