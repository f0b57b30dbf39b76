package pgstore

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/workspace-edge/caddy-workspace-profile/internal/pglisten"
)

// How a node hears that another changed a key: the store's one listening
// connection (NOTIFY after each write) and a poll of the table, in case a
// notification is lost.

// ListenerApplicationName is the application_name of the listening
// connection, by which pg_stat_activity shows it.
const ListenerApplicationName = "workspace_profile_listener"

// concernAPIKeys is the channel's concern for the API keys.
const concernAPIKeys = "api_keys"

// watchState is the store's listener and its key watchers.
type watchState struct {
	mu       sync.Mutex
	closed   bool
	started  bool // the key watch: the subscription and the poll
	live     bool // the key watch's subscription has listened
	listener *pglisten.Listener
	watchers map[int]keyWatcher
	nextID   int
	unsub    func()
	stopPoll context.CancelFunc
	pollDone chan struct{}

	skipNotify atomic.Bool // a test's lost notifications
	poll       PollHealth
}

// PollHealth is the state of the poll of changed keys, for metrics and
// admin views.
type PollHealth struct {
	// Started: a watch started the poll.
	Started bool
	// LastOK is the start of the last poll that succeeded: everything
	// committed before it was in that poll's snapshot.
	LastOK time.Time
	// Failures counts the polls that failed; LastError is the last
	// failure (naming no host, user or database).
	Failures  uint64
	LastError string
	// Polls counts the polls that succeeded; Caught the changes they
	// reported that no notification had (for the profile cache: the
	// stale entries they dropped).
	Polls, Caught uint64
}

// KeyPollHealth is the state of the poll of changed keys.
func (s *Store) KeyPollHealth() PollHealth {
	s.watch.mu.Lock()
	defer s.watch.mu.Unlock()
	h := s.watch.poll
	h.Started = s.watch.started
	return h
}

type keyWatcher struct {
	onChange func(id string)
	onReset  func()
}

// channelName is the channel of concern for schema: the schema is part of
// it, so that two schemas in one database never hear each other; a name
// longer than PostgreSQL's 63 bytes keeps a hash of the schema instead of
// its tail.
func channelName(schema, concern string) string {
	name := schema + "." + concern
	if len(name) <= 63 {
		return name
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(schema))
	keep := 63 - len(concern) - 1 - 9
	for keep > 0 && !utf8.RuneStart(schema[keep]) {
		keep--
	}
	return fmt.Sprintf("%s~%08x.%s", schema[:keep], h.Sum32(), concern)
}

// listener is the store's listening connection, made on first use.
func (s *Store) listener() *pglisten.Listener {
	s.watch.mu.Lock()
	defer s.watch.mu.Unlock()
	if s.watch.listener == nil {
		s.watch.listener = pglisten.New(pglisten.Config{ConnConfig: s.listenConfig, ApplicationName: ListenerApplicationName,
			Timeout: s.timeout, Describe: describe})
	}
	return s.watch.listener
}

// Listen subscribes to the notifications of one concern of this store
// (a channel of the store's listening connection, named after the schema
// and the concern): onNotify with each payload, onReset when notifications
// may have been missed (the connection was down) and once it is listening.
// Both run on the listener's goroutine and must return quickly.
func (s *Store) Listen(concern string, onNotify func(payload string), onReset func()) (stop func()) {
	s.watch.mu.Lock()
	closed := s.watch.closed
	s.watch.mu.Unlock()
	if closed {
		return func() {}
	}
	return s.listener().Subscribe(channelName(s.schemaName, concern), onNotify, onReset)
}

// ListenerHealth is the state of the store's listening connection.
func (s *Store) ListenerHealth() pglisten.Health {
	s.watch.mu.Lock()
	l := s.watch.listener
	s.watch.mu.Unlock()
	if l == nil {
		return pglisten.Health{}
	}
	return l.Health()
}

// notify sends payloads on the concern's channel. It is called after
// the write committed, never inside the writing transaction: PostgreSQL
// takes a database-wide lock from a notifying transaction's commit until
// its end, so that notifying inside every write would serialise all of
// them; and a notification sent this way can never announce a write that
// rolled back, or arrive before the write is visible. It runs on a
// context of its own: a caller that hung up after the commit must not
// cost the other nodes the news. A failure is left to the poll.
func (s *Store) notify(ctx context.Context, concern string, payloads []string) error {
	return s.notifyWithin(context.WithoutCancel(ctx), concern, payloads)
}

// notifyWithin is notify bounded by ctx as well as by the store's
// timeout.
func (s *Store) notifyWithin(ctx context.Context, concern string, payloads []string) error {
	if len(payloads) == 0 || s.watch.skipNotify.Load() {
		return nil
	}
	nctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	_, err := s.pool.Exec(nctx, notifySQL, channelName(s.schemaName, concern), payloads)
	return err
}

// notifySQL sends the payloads $2 on the channel $1, in one statement.
const notifySQL = "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p"

// WatchAPIKeys calls onChange with the id of each key created, revoked or
// imported, on this node or another, and onReset when changes may have
// been missed (the listening connection was down; also when the watch
// starts listening): the keyring then drops what it caches. Changes reach it by
// notification, normally within milliseconds; should notifications be
// lost without the connection failing, the poll (Options.Poll) brings
// them within the poll interval. An id may be reported more than once.
// Callbacks must return quickly. stop ends the watch; the store's
// subscription and its poll, once started, run until Close.
func (s *Store) WatchAPIKeys(onChange func(id string), onReset func()) (stop func()) {
	w := &s.watch
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return func() {}
	}
	id := w.nextID
	w.nextID++
	if w.watchers == nil {
		w.watchers = map[int]keyWatcher{}
	}
	w.watchers[id] = keyWatcher{onChange: onChange, onReset: onReset}
	start, live := !w.started, w.live
	if start {
		w.started = true
		var pctx context.Context
		pctx, w.stopPoll = context.WithCancel(context.Background())
		w.pollDone = make(chan struct{})
		go s.pollChanges(pctx, w.pollDone, s.pollKeys())
	}
	w.mu.Unlock()
	if live && onReset != nil {
		onReset() // the others had theirs when the connection started listening
	}
	if start {
		unsub := s.Listen(concernAPIKeys, s.keyChanged, s.keysReset)
		w.mu.Lock()
		closed := w.closed
		if !closed {
			w.unsub = unsub
		}
		w.mu.Unlock()
		if closed {
			unsub()
		}
	}
	return func() {
		w.mu.Lock()
		delete(w.watchers, id)
		w.mu.Unlock()
	}
}

func (s *Store) watchers() []keyWatcher {
	s.watch.mu.Lock()
	defer s.watch.mu.Unlock()
	out := make([]keyWatcher, 0, len(s.watch.watchers))
	for _, w := range s.watch.watchers {
		out = append(out, w)
	}
	return out
}

func (s *Store) keyChanged(id string) {
	for _, w := range s.watchers() {
		if w.onChange != nil {
			w.onChange(id)
		}
	}
}

func (s *Store) keysReset() {
	s.watch.mu.Lock()
	s.watch.live = true
	s.watch.mu.Unlock()
	for _, w := range s.watchers() {
		if w.onReset != nil {
			w.onReset()
		}
	}
}

// pollKeys is one poll of the keys changed since cursor, reported as
// notifications would be.
//
// Which changes are "since its last read" is decided by transaction ids,
// not by changed_at. A write's changed_at is its transaction's start
// (or any time taken before its commit), and a transaction can commit
// long after that (a commit waiting for a synchronous standby, a slow
// import), so a poll comparing times could pass over a change that
// commits after the poll but carries an earlier time, whatever margin it
// allows. Instead each write stores its transaction id (changed_xid,
// pg_current_xact_id()), and each poll keeps the snapshot it read with
// as the cursor of the next (see changedRows). The cursor is kept across
// failures, so a poll after an outage reports everything changed during
// it.
func (s *Store) pollKeys() func(ctx context.Context, db querier, cursor string) (string, error) {
	return func(ctx context.Context, db querier, cursor string) (string, error) {
		start := time.Now()
		next, changes, err := s.changedRows(ctx, db, "api_keys", "id", "changed_xid", cursor, 0)
		s.watch.mu.Lock()
		if err != nil && ctx.Err() == nil {
			s.watch.poll.Failures++
			s.watch.poll.LastError = describe(err)
		} else if err == nil {
			s.watch.poll.Polls++
			s.watch.poll.LastOK = start
		}
		s.watch.mu.Unlock()
		if err != nil {
			return "", err
		}
		for _, c := range changes {
			s.keyChanged(c.id)
		}
		return next, nil
	}
}

// pollChanges calls step every interval until ctx ends, each time with
// the cursor of its last success ("" before the first) and the poll's
// connection of its own (pollConn), and closes done.
func (s *Store) pollChanges(ctx context.Context, done chan struct{}, step func(ctx context.Context, db querier, cursor string) (string, error)) {
	defer close(done)
	db := &pollConn{cfg: s.connConfig, timeout: s.timeout}
	defer db.drop()
	cursor := ""
	t := time.NewTicker(s.poll)
	defer t.Stop()
	for {
		if next, err := step(ctx, db, cursor); err == nil {
			cursor = next
		} else {
			db.drop()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// changedRow is a row changed since a poll's cursor: its id and a number
// (its changed_xid, or its version).
type changedRow struct {
	id string
	n  uint64
}

// changedRows returns the id and number columns of table's rows changed
// by the transactions that the snapshot cursor (a pg_snapshot, as text)
// did not see, at most limit + 1 of them when limit > 0, and the snapshot
// that read them, the next cursor. With an empty cursor it returns no
// rows, only the snapshot.
//
// A transaction the cursor did not see was running at that snapshot (its
// id ≥ the snapshot's xmin) or began after it (≥ its xmax ≥ xmin): so
// the rows are those with changed_xid ≥ xmin, by the index, that the
// cursor did not see. Those committed before it are never read twice,
// however long another transaction holds xmin back (a transaction that
// wrote anywhere on the server and stays open), so a poll reports each
// change once and a backlog of old ones never fills its limit.
func (s *Store) changedRows(ctx context.Context, db querier, table, idCol, numCol, cursor string, limit int) (next string, rows []changedRow, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if cursor == "" {
		err = db.QueryRow(ctx, "SELECT pg_current_snapshot()::text").Scan(&next)
		return next, nil, err
	}
	lim := ""
	if limit > 0 {
		lim = " LIMIT " + strconv.Itoa(limit+1)
	}
	var ids, nums []string
	// one snapshot for the rows and the next cursor; both arrays in one order
	err = db.QueryRow(ctx, "SELECT pg_current_snapshot()::text, "+
		"coalesce(array_agg(t.id ORDER BY t.id) FILTER (WHERE t.id IS NOT NULL), '{}'), "+
		"coalesce(array_agg(t.n ORDER BY t.id) FILTER (WHERE t.id IS NOT NULL), '{}') "+
		"FROM (SELECT 1) one LEFT JOIN (SELECT "+idCol+" AS id, "+numCol+"::text AS n FROM "+s.schema+"."+table+
		" WHERE changed_xid >= pg_snapshot_xmin($1::text::pg_snapshot) AND NOT pg_visible_in_snapshot(changed_xid, $1::text::pg_snapshot)"+lim+") t ON true",
		cursor).Scan(&next, &ids, &nums)
	if err != nil || len(ids) != len(nums) {
		return next, nil, err
	}
	rows = make([]changedRow, 0, len(ids))
	for i, id := range ids {
		n, _ := strconv.ParseUint(nums[i], 10, 64)
		rows = append(rows, changedRow{id, n})
	}
	return next, rows, nil
}

// stopWatching ends the poll and the listening connection, and waits for
// their goroutines.
func (s *Store) stopWatching() {
	w := &s.watch
	w.mu.Lock()
	w.closed = true
	l, unsub, stopPoll, done := w.listener, w.unsub, w.stopPoll, w.pollDone
	w.mu.Unlock()
	if unsub != nil {
		unsub()
	}
	if stopPoll != nil {
		stopPoll()
		<-done
	}
	if l != nil {
		l.Close()
	}
}
