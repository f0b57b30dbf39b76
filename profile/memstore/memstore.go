// Package memstore is an in-memory profile.Store for tests and local
// experiments. Its data lives as long as the process (or the Caddy config
// that holds it) and is gone after.
package memstore

import (
	"context"
	"slices"
	"sync"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// Store is a profile.Store in a map guarded by one mutex, which is what
// makes each Update atomic.
type Store struct {
	mu        sync.Mutex
	profiles  map[string]profile.Profile
	userNames map[string]string // normalized user name -> user ID
	closed    bool
}

// New returns an empty store.
func New() *Store {
	return &Store{profiles: map[string]profile.Profile{}, userNames: map[string]string{}}
}

// Get implements profile.Store.
func (s *Store) Get(_ context.Context, userID string) (profile.Profile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return profile.Profile{}, profile.ErrUnavailable
	}
	p, ok := s.profiles[userID]
	if !ok {
		return profile.Profile{}, profile.ErrNotFound
	}
	return p, nil
}

// Update implements profile.Store.
func (s *Store) Update(_ context.Context, userID string, fn profile.UpdateFunc) (profile.Profile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return profile.Profile{}, profile.ErrUnavailable
	}
	cur, exists := s.profiles[userID]
	next, changed, err := fn(cur, exists)
	if err != nil {
		return cur, err
	}
	if !changed {
		return cur, nil
	}
	newKey := profile.NormalizeUserName(next.UserName)
	if next.UserName != "" {
		if owner, ok := s.userNames[newKey]; ok && owner != userID {
			return cur, profile.ErrUserNameTaken
		}
	}
	if exists && cur.UserName != "" {
		delete(s.userNames, profile.NormalizeUserName(cur.UserName))
	}
	if next.UserName != "" {
		s.userNames[newKey] = userID
	}
	next.UserID = userID
	next.Version = cur.Version + 1
	s.profiles[userID] = next
	return next, nil
}

// Export implements profile.Exporter.
func (s *Store) Export(_ context.Context, fn func(profile.Profile) error) error {
	s.mu.Lock()
	ids := make([]string, 0, len(s.profiles))
	for id := range s.profiles {
		ids = append(ids, id)
	}
	snapshot := make([]profile.Profile, 0, len(ids))
	slices.Sort(ids)
	for _, id := range ids {
		snapshot = append(snapshot, s.profiles[id])
	}
	s.mu.Unlock()
	for _, p := range snapshot {
		if err := fn(p); err != nil {
			return err
		}
	}
	return nil
}

// Import implements profile.Importer: checked whole under the lock, then
// written, so nothing is written when any profile conflicts.
func (s *Store) Import(_ context.Context, profiles []profile.Profile) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return profile.ErrUnavailable
	}
	incoming := map[string]bool{}
	for _, p := range profiles {
		incoming[p.UserID] = true
	}
	for i, p := range profiles {
		if p.UserName == "" {
			continue
		}
		if owner, ok := s.userNames[profile.NormalizeUserName(p.UserName)]; ok && owner != p.UserID && !incoming[owner] {
			return &profile.ImportConflict{Index: i, Err: profile.ErrUserNameTaken}
		}
	}
	for _, p := range profiles {
		if cur, ok := s.profiles[p.UserID]; ok {
			if cur.UserName != "" {
				delete(s.userNames, profile.NormalizeUserName(cur.UserName))
			}
			p.Version = cur.Version + 1
		} else {
			p.Version = 1
		}
		s.profiles[p.UserID] = p
	}
	for _, p := range profiles {
		if p.UserName != "" {
			s.userNames[profile.NormalizeUserName(p.UserName)] = p.UserID
		}
	}
	return nil
}

// Close implements profile.Store; later calls fail with ErrUnavailable.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// Interface guards
var (
	_ profile.Store    = (*Store)(nil)
	_ profile.Exporter = (*Store)(nil)
	_ profile.Importer = (*Store)(nil)
)
