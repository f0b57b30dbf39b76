package pgstore

import (
	"context"
	"strconv"
)

// Hooks for the external tests of this package.

// APIKeysMigration is migration 3, for the test that docs/storage.md
// prints it as it runs.
const APIKeysMigration = apiKeysMigration

// ProfileTrackingMigration is migration 4, for the same test.
const ProfileTrackingMigration = profileTrackingMigration

// DPoPProofsMigration is migration 5, for the same test.
const DPoPProofsMigration = dpopProofsMigration

// ChannelName is channelName.
var ChannelName = channelName

// LoseNotifications makes s send no notifications, as if every one were
// lost on the way: only the poll can then tell the other nodes.
func LoseNotifications(s *Store) { s.watch.skipNotify.Store(true) }

// PollProfilesFrom is one poll of the changed profiles from cursor ("":
// the first), as the background poll runs it; it returns the next cursor.
func PollProfilesFrom(ctx context.Context, s *Store, cursor string) (string, error) {
	return s.pollProfiles(ctx, s.pool, cursor)
}

// Announce queues the announcements of n writes, as n committed PUTs
// would.
func Announce(s *Store, n int) {
	s.startProfileWatch()
	for i := range n {
		s.announce(strconv.Itoa(i), 1)
	}
}
