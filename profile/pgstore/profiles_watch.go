package pgstore

import (
	"context"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// How a node's profile cache hears of the writes of every node: each
// write announces "<version> <sent, unix µs> <user>" on the profiles
// channel once it has committed, and a poll reads the rows changed since
// its last read (by changed_xid, stamped by migration 4's trigger), in
// case a notification is lost. Both invalidate by version (cache.go), so
// an announcement heard twice, or by the node that wrote, costs nothing.

// concernProfiles is the channel's concern for the profiles.
const concernProfiles = "profiles"

// notifyQueue is how many announcements may wait for the notifier; more
// are dropped (counted), left to the poll.
const notifyQueue = 4096

// notifyBatch is the most announcements one notifying statement sends.
const notifyBatch = 512

// profileWatch is the store's subscription, poll and notifier for
// profiles, started by the first Get or Update (startProfileWatch).
type profileWatch struct {
	once     sync.Once
	mu       sync.Mutex
	closed   bool
	poll     PollHealth
	unsub    func()
	stop     context.CancelFunc
	pollDone chan struct{}
	sentDone chan struct{}
	queue    chan string

	lastPollOK                     atomic.Int64 // unix ns of the start of the last poll that succeeded
	notifications, lagSum, lastLag atomic.Int64
	dropped                        atomic.Uint64
}

// startProfileWatch starts, once, the notifier and, with a cache, the
// subscription and the poll.
func (s *Store) startProfileWatch() {
	w := &s.profiles
	w.once.Do(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.closed {
			return
		}
		var ctx context.Context
		ctx, w.stop = context.WithCancel(context.Background())
		w.queue = make(chan string, notifyQueue)
		w.sentDone = make(chan struct{})
		go s.sendAnnouncements(ctx, w.sentDone)
		if s.cache == nil {
			return
		}
		w.pollDone = make(chan struct{})
		go s.pollChanges(ctx, w.pollDone, s.pollProfiles)
		w.unsub = s.Listen(concernProfiles, s.heardProfile, s.cache.reset)
	})
}

// stopProfileWatch ends the subscription and the poll, sends the
// announcements still queued, and waits for them.
func (s *Store) stopProfileWatch() {
	w := &s.profiles
	w.once.Do(func() {}) // a watch not started never starts
	w.mu.Lock()
	w.closed = true
	unsub, stop := w.unsub, w.stop
	w.mu.Unlock()
	if unsub != nil {
		unsub()
	}
	if stop != nil {
		stop()
		if w.pollDone != nil {
			<-w.pollDone
		}
		<-w.sentDone
	}
}

// announce queues the announcement of a committed write of user's
// profile at version. It never waits: a full queue drops it, and the
// poll brings the change to the other nodes instead.
func (s *Store) announce(user string, version uint64) {
	s.queueAnnouncement(formatAnnouncement(user, version, time.Now()))
}

// formatAnnouncement is the payload announcing user's profile at
// version, sent at sent: "<version> <unix µs> <user>" (the user last,
// since it may hold spaces).
func formatAnnouncement(user string, version uint64, sent time.Time) string {
	return strconv.FormatUint(version, 10) + " " + strconv.FormatInt(sent.UnixMicro(), 10) + " " + user
}

// parseAnnouncement reads formatAnnouncement's payload; ok is false for
// any other.
func parseAnnouncement(payload string) (user string, version uint64, sent time.Time, ok bool) {
	v, rest, ok1 := strings.Cut(payload, " ")
	at, user, ok2 := strings.Cut(rest, " ")
	version, err1 := strconv.ParseUint(v, 10, 64)
	micros, err2 := strconv.ParseInt(at, 10, 64)
	if !ok1 || !ok2 || err1 != nil || err2 != nil || user == "" {
		return "", 0, time.Time{}, false
	}
	return user, version, time.UnixMicro(micros), true
}

// resetAnnouncement asks every node to drop its cache (after an import:
// cheaper than announcing each of its profiles).
const resetAnnouncement = "*"

// announceReset queues the announcement that every cache must be dropped.
func (s *Store) announceReset() { s.queueAnnouncement(resetAnnouncement) }

func (s *Store) queueAnnouncement(payload string) {
	w := &s.profiles
	if w.queue == nil || s.watch.skipNotify.Load() {
		return
	}
	select {
	case w.queue <- payload:
	default:
		w.dropped.Add(1)
	}
}

// sendAnnouncements sends the queued announcements, as many as are
// waiting in one statement, so that a burst of writes costs a few round
// trips on one connection and none on the writers' paths. When ctx ends
// the batch in flight goes on (within the store's timeout), and what is
// left is sent for a second at most, then counted as dropped.
func (s *Store) sendAnnouncements(ctx context.Context, done chan struct{}) {
	defer close(done)
	queue := s.profiles.queue
	batch := make([]string, 0, notifyBatch)
	for {
		// an end is seen before more of the queue, which select alone
		// would pick as often, each pick a batch with its own timeout
		if ctx.Err() != nil {
			s.flushAnnouncements(queue, batch)
			return
		}
		select {
		case p := <-queue:
			s.sendBatch(context.WithoutCancel(ctx), takeQueued(queue, append(batch[:0], p)))
		case <-ctx.Done():
		}
	}
}

// flushAnnouncements sends what is left in queue, for a second at most:
// what it cannot send then is counted as dropped.
func (s *Store) flushAnnouncements(queue chan string, batch []string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if batch = takeQueued(queue, batch[:0]); len(batch) == 0 {
			return
		}
		s.sendBatch(ctx, batch)
	}
	s.profiles.dropped.Add(uint64(len(queue)))
}

// takeQueued appends to batch what queue holds, up to notifyBatch,
// without waiting.
func takeQueued(queue chan string, batch []string) []string {
	for len(batch) < notifyBatch {
		select {
		case p := <-queue:
			batch = append(batch, p)
		default:
			return batch
		}
	}
	return batch
}

// sendBatch sends batch within ctx and the store's timeout. A batch that
// fails is counted as dropped; the poll brings its changes.
func (s *Store) sendBatch(ctx context.Context, batch []string) {
	if err := s.notifyWithin(ctx, concernProfiles, batch); err != nil {
		s.profiles.dropped.Add(uint64(len(batch)))
	}
}

// maxNotificationLag is the most lag one notification counts for: its
// sent time is the sender's word, and one forged by hand (centuries ago)
// must not swamp the mean; the sum, which exports as a counter, saturates
// rather than wrap to a negative figure.
const maxNotificationLag = time.Hour

// addSaturating adds d ≥ 0 to a, which stays at its largest figure
// rather than wrap.
func addSaturating(a *atomic.Int64, d int64) {
	for {
		old := a.Load()
		sum := old + d
		if sum < old {
			sum = math.MaxInt64
		}
		if a.CompareAndSwap(old, sum) {
			return
		}
	}
}

// heardProfile applies one announcement, from this node or another. The
// reset announcement, and a payload this build did not write (a NOTIFY by
// hand), drop the cache: whatever it meant, nothing cached can be vouched
// for.
func (s *Store) heardProfile(payload string) {
	user, version, sent, ok := parseAnnouncement(payload)
	if !ok {
		s.cache.reset()
		return
	}
	w := &s.profiles
	lag := min(max(time.Since(sent), 0), maxNotificationLag)
	w.notifications.Add(1)
	addSaturating(&w.lagSum, int64(lag))
	w.lastLag.Store(int64(lag))
	s.cache.invalidate(user, version)
}

// pollProfiles is one poll: the profiles changed since cursor invalidate
// the cache; more of them than the cache holds reset it.
func (s *Store) pollProfiles(ctx context.Context, db querier, cursor string) (string, error) {
	// the poll vouches from before it asks: its snapshot is no older, and
	// its answer may arrive much later (a slow network, a busy server)
	start := time.Now()
	limit := s.cache.capacity()
	next, rows, err := s.changedRows(ctx, db, "profiles", "user_id", "version", cursor, limit)
	w := &s.profiles
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			w.poll.Failures++
			w.poll.LastError = describe(err)
		}
		return "", err
	}
	caught := 0
	if len(rows) > limit {
		s.cache.reset()
		caught = len(rows)
	} else {
		for _, r := range rows {
			if s.cache.invalidate(r.id, r.n) {
				caught++
			}
		}
	}
	w.poll.Polls++
	w.poll.Caught += uint64(caught)
	w.poll.LastOK = start
	w.lastPollOK.Store(start.UnixNano())
	return next, nil
}

// vouchSlack is how late a poll may start before the cache stops vouching
// for its entries.
const vouchSlack = time.Second

// vouched tells whether the cache may serve reads: the last poll that
// succeeded started at most the poll interval and vouchSlack ago, so that
// any change not yet heard of is at most that old (a poll's snapshot is
// taken after it starts, however late its answer arrives). Otherwise every read goes to the
// database. The listening connection alone cannot vouch: while the
// network drops its packets silently it still looks connected, until its
// next ping fails, and hears nothing; the poll, on the pool, fails at
// once (within the store's timeout) and so stops vouching in time.
func (s *Store) vouched() bool {
	last := s.profiles.lastPollOK.Load()
	return last != 0 && time.Since(time.Unix(0, last)) <= s.poll+vouchSlack
}

// CacheStats is the state of the profile cache.
func (s *Store) CacheStats() CacheStats {
	w := &s.profiles
	st := CacheStats{
		Notifications:        uint64(w.notifications.Load()),
		NotificationLagSum:   time.Duration(w.lagSum.Load()),
		LastNotificationLag:  time.Duration(w.lastLag.Load()),
		NotificationsDropped: w.dropped.Load(),
	}
	w.mu.Lock()
	st.Poll = w.poll
	st.Poll.Started = w.pollDone != nil
	w.mu.Unlock()
	if c := s.cache; c != nil {
		st.Enabled, st.Size, st.Capacity, st.Vouched = true, c.len(), c.capacity(), s.vouched()
		st.Hits, st.Misses, st.Evictions, st.Invalidations = c.hits.Load(), c.misses.Load(), c.evictions.Load(), c.invalidations.Load()
	}
	return st
}
