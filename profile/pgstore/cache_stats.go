package pgstore

import "time"

// What a node's profile cache tells metrics and admin views.

// CacheStats is the state of the store's per-node profile cache.
type CacheStats struct {
	// Enabled: the store caches profiles (Options.Cache is not negative).
	Enabled bool
	// Size is how many profiles it holds; Capacity the most it holds.
	Size, Capacity int
	// Vouched: the cache is in use, the listening connection being up or
	// the last poll recent enough; when false every read goes to the
	// database.
	Vouched bool
	// Hits and Misses count the reads served from the cache and those
	// that read the database (reads while not vouched included);
	// Evictions the entries dropped to make room; Invalidations the
	// entries dropped because a write on some node made them stale.
	Hits, Misses, Evictions, Invalidations uint64
	// Notifications counts the profile notifications received;
	// NotificationLagSum their total delay from the writing node's
	// sending to this node's receiving (clocks of two nodes: their
	// difference is part of it), LastNotificationLag the last one's.
	Notifications       uint64
	NotificationLagSum  time.Duration
	LastNotificationLag time.Duration
	// NotificationsDropped counts the notifications this node did not
	// send (its queue full, or the database refused): the poll brings
	// those changes to the other nodes instead.
	NotificationsDropped uint64
	// Poll is the poll of changed profiles; its Caught counts the cache
	// entries it found stale (a notification was lost or late).
	Poll PollHealth
}

// CacheStats is the state of the profile cache of the store once open
// (zero before).
func (l *Lazy) CacheStats() CacheStats {
	l.mu.Lock()
	s := l.store
	l.mu.Unlock()
	if s == nil {
		return CacheStats{}
	}
	return s.CacheStats()
}
