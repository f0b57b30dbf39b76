package apikey

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Memory is a Store in memory, for a route on the memory profile store
// and for tests: it is lost when Caddy stops.
type Memory struct {
	mu     sync.RWMutex
	byHash map[Hash]*Record
	byID   map[string]*Record
}

// NewMemory makes an empty memory store.
func NewMemory() *Memory {
	return &Memory{byHash: map[Hash]*Record{}, byID: map[string]*Record{}}
}

// Lookup implements Store.
func (m *Memory) Lookup(_ context.Context, h Hash) (Record, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if r, ok := m.byHash[h]; ok {
		return *r, nil
	}
	return Record{}, ErrNotFound
}

// Create implements Store.
func (m *Memory) Create(_ context.Context, r Record) error {
	r = r.Stored()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byHash[r.Hash] != nil || m.byID[r.ID] != nil {
		return ErrExists
	}
	m.put(r)
	return nil
}

func (m *Memory) put(r Record) {
	p := &r
	m.byHash[r.Hash], m.byID[r.ID] = p, p
}

// List implements Store.
func (m *Memory) List(_ context.Context, subject string) ([]Record, error) {
	m.mu.RLock()
	out := []Record{}
	for _, r := range m.byID {
		if subject == "" || r.Subject == subject {
			out = append(out, *r)
		}
	}
	m.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Revoke implements Store.
func (m *Memory) Revoke(_ context.Context, id string, at time.Time) (Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.byID[id]
	if r == nil {
		return Record{}, ErrNotFound
	}
	if r.Revoked.IsZero() {
		r.Revoked = StoredTime(at)
	}
	return *r, nil
}

// TouchLastUsed implements Store.
func (m *Memory) TouchLastUsed(_ context.Context, used map[string]time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, at := range used {
		if r := m.byID[id]; r != nil && at.After(r.LastUsed) {
			r.LastUsed = StoredTime(at)
		}
	}
	return nil
}

// Export implements Store.
func (m *Memory) Export(ctx context.Context, fn func(Record) error) error {
	rs, _ := m.List(ctx, "")
	for _, r := range rs {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// Import implements Store.
func (m *Memory) Import(_ context.Context, rs []Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	add := make([]Record, 0, len(rs))
	seenID, seenHash := map[string]bool{}, map[Hash]bool{}
	for _, r := range rs {
		r = r.Stored()
		if seenID[r.ID] || seenHash[r.Hash] {
			return ErrExists
		}
		seenID[r.ID], seenHash[r.Hash] = true, true
		a, b := m.byID[r.ID], m.byHash[r.Hash]
		switch {
		case a == nil && b == nil:
			add = append(add, r)
		case a != nil && a == b && a.Equal(r):
		default:
			return ErrExists
		}
	}
	for _, r := range add {
		m.put(r)
	}
	return nil
}

// Interface guards
var _ Store = (*Memory)(nil)
