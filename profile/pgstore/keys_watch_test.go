package pgstore_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
	"github.com/workspace-edge/caddy-workspace-profile/profile/pgstore"
)

// node is a store on a shared schema, as one Caddy node has it.
func node(t *testing.T, schema string, poll time.Duration) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(context.Background(), dsn(t), pgstore.Options{Schema: schema, Timeout: 3 * time.Second, Poll: poll})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// watch records what a store's key watch reports.
type watch struct {
	mu      sync.Mutex
	changed map[string]time.Time
	resets  int
	signal  chan struct{}
}

func startWatch(t *testing.T, s *pgstore.Store) *watch {
	w := &watch{changed: map[string]time.Time{}, signal: make(chan struct{}, 1)}
	stop := s.WatchAPIKeys(func(id string) {
		w.mu.Lock()
		if _, ok := w.changed[id]; !ok {
			w.changed[id] = time.Now()
		}
		w.mu.Unlock()
		w.poke()
	}, func() {
		w.mu.Lock()
		w.resets++
		w.mu.Unlock()
		w.poke()
	})
	t.Cleanup(stop)
	w.waitResets(t, 1, 5*time.Second) // listening
	return w
}

func (w *watch) poke() {
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

func (w *watch) until(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(within)
	for {
		w.mu.Lock()
		ok := cond()
		w.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-w.signal:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("not within %v: %s", within, what)
		}
	}
}

func (w *watch) waitResets(t *testing.T, n int, within time.Duration) {
	t.Helper()
	w.until(t, within, "onReset called", func() bool { return w.resets >= n })
}

// seen waits for id and returns when it was reported.
func (w *watch) seen(t *testing.T, id string, within time.Duration) time.Time {
	t.Helper()
	w.until(t, within, "change of "+id+" reported", func() bool { _, ok := w.changed[id]; return ok })
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changed[id]
}

func (w *watch) forget(id string) {
	w.mu.Lock()
	delete(w.changed, id)
	w.mu.Unlock()
}

func (w *watch) has(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.changed[id]
	return ok
}

func createKey(t *testing.T, s *pgstore.Store) apikey.Record {
	t.Helper()
	r := newRecord(t, "alice", time.Now())
	if err := s.APIKeys().Create(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRevocationReachesOtherNodeByNotification: a revoke on node A is
// reported to node B's watcher in well under a second, by NOTIFY alone
// (B polls once a minute).
func TestRevocationReachesOtherNodeByNotification(t *testing.T) {
	schema := freshSchema(t)
	a, b := node(t, schema, time.Minute), node(t, schema, time.Minute)
	w := startWatch(t, b)
	r := createKey(t, a)
	w.seen(t, r.ID, time.Second) // a new key is announced too
	w.forget(r.ID)
	start := time.Now()
	if _, err := a.APIKeys().Revoke(context.Background(), r.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if took := w.seen(t, r.ID, time.Second).Sub(start); took > 500*time.Millisecond {
		t.Fatalf("revocation reached the other node after %v", took)
	} else {
		t.Logf("revocation reached the other node after %v", took)
	}
	if h := b.ListenerHealth(); !h.Connected || h.Notifications < 2 || h.PID == 0 {
		t.Fatalf("listener health %+v", h)
	}
}

// TestKilledListenerReconnectsAndCatchesUp: B's listening connection is
// terminated by the server; B reconnects (onReset again), and a revoke
// made while it was down is reported within 5 s.
func TestKilledListenerReconnectsAndCatchesUp(t *testing.T) {
	schema := freshSchema(t)
	a, b := node(t, schema, time.Second), node(t, schema, time.Second)
	w := startWatch(t, b)
	r := createKey(t, a)
	w.seen(t, r.ID, time.Second)
	time.Sleep(time.Second) // the creation's own reports by the poll are over
	w.forget(r.ID)
	pid := b.ListenerHealth().PID
	conn, err := pgx.Connect(context.Background(), dsn(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var app string
	if err := conn.QueryRow(context.Background(), "SELECT application_name FROM pg_stat_activity WHERE pid = $1", pid).Scan(&app); err != nil || app != pgstore.ListenerApplicationName {
		t.Fatalf("listener pid %d: application_name %q, %v", pid, app, err)
	}
	var killed bool
	if err := conn.QueryRow(context.Background(), "SELECT pg_terminate_backend($1)", pid).Scan(&killed); err != nil || !killed {
		t.Fatalf("pg_terminate_backend: %v %v", killed, err)
	}
	start := time.Now()
	// the revoke follows the kill at once, before the listener's first
	// reconnection attempt (100 ms later)
	if _, err := a.APIKeys().Revoke(context.Background(), r.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	w.waitResets(t, 2, 5*time.Second)
	took := w.seen(t, r.ID, 5*time.Second).Sub(start)
	t.Logf("revoke during the outage reported after %v", took)
	h := b.ListenerHealth()
	if !h.Connected || h.Connects != 2 || h.PID == pid || h.LastError == "" {
		t.Fatalf("listener health after reconnecting: %+v", h)
	}
}

// TestPollCatchesLostNotifications: node A's notifications are lost while
// B's listening connection stays up and hears nothing; B's poll still
// reports the revoke within its interval plus a second.
func TestPollCatchesLostNotifications(t *testing.T) {
	schema := freshSchema(t)
	const poll = 500 * time.Millisecond
	a, b := node(t, schema, time.Minute), node(t, schema, poll)
	pgstore.LoseNotifications(a)
	w := startWatch(t, b)
	r := createKey(t, a)
	w.seen(t, r.ID, poll+time.Second)
	time.Sleep(poll) // the creation's own reports are over
	w.forget(r.ID)
	start := time.Now()
	if _, err := a.APIKeys().Revoke(context.Background(), r.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	took := w.seen(t, r.ID, poll+time.Second).Sub(start)
	t.Logf("revoke reported by the poll after %v", took)
	if h := b.ListenerHealth(); !h.Connected || h.Notifications != 0 || h.Connects != 1 {
		t.Fatalf("listener health %+v: want connected and silent", h)
	}
	if h := b.KeyPollHealth(); !h.Started || h.LastOK.IsZero() || h.Failures != 0 {
		t.Fatalf("poll health %+v", h)
	}
}

// TestNotifyFollowsCommit: a watcher that reads the key when told sees
// the committed revocation; an import that rolls back announces nothing.
func TestNotifyFollowsCommit(t *testing.T) {
	schema := freshSchema(t)
	a, b := node(t, schema, time.Minute), node(t, schema, time.Minute)
	r := createKey(t, a)
	read := make(chan apikey.Record, 4)
	stop := b.WatchAPIKeys(func(id string) {
		if id == r.ID {
			go func() {
				got, _ := b.APIKeys().Lookup(context.Background(), r.Hash)
				read <- got
			}()
		}
	}, nil)
	defer stop()
	waitListening(t, b)
	if _, err := a.APIKeys().Revoke(context.Background(), r.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-read:
		if got.Revoked.IsZero() {
			t.Fatalf("the watcher read %+v on notification: not yet revoked", got)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no notification")
	}

	w := startWatch(t, b)
	fresh := newRecord(t, "bob", time.Now())
	clash := r
	clash.Name = "changed"
	if err := a.APIKeys().Import(context.Background(), []apikey.Record{fresh, clash}); err == nil {
		t.Fatal("import of a changed record succeeded")
	}
	time.Sleep(time.Second)
	if w.has(fresh.ID) {
		t.Fatal("an import that rolled back announced its key")
	}
	if err := a.APIKeys().Import(context.Background(), []apikey.Record{fresh}); err != nil {
		t.Fatal(err)
	}
	w.seen(t, fresh.ID, time.Second)
}

func waitListening(t *testing.T, s *pgstore.Store) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !s.ListenerHealth().Connected {
		if time.Now().After(deadline) {
			t.Fatal("the listener did not connect")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSchemasDoNotHearEachOther: two schemas in one database have
// channels of their own, also for names at PostgreSQL's 63-byte limit.
func TestSchemasDoNotHearEachOther(t *testing.T) {
	x, y := node(t, freshSchema(t), time.Minute), node(t, freshSchema(t), time.Minute)
	wx, wy := startWatch(t, x), startWatch(t, y)
	ry := createKey(t, y)
	wy.seen(t, ry.ID, time.Second)
	rx := createKey(t, x)
	wx.seen(t, rx.ID, time.Second)
	time.Sleep(200 * time.Millisecond)
	if wx.has(ry.ID) || wy.has(rx.ID) {
		t.Fatal("a schema heard the other's key")
	}
	long := strings.Repeat("s", 60)
	c1, c2 := pgstore.ChannelName(long+"a", "api_keys"), pgstore.ChannelName(long+"b", "api_keys")
	if len(c1) > 63 || len(c2) > 63 || c1 == c2 || !strings.HasSuffix(c1, ".api_keys") {
		t.Fatalf("channel names %q, %q", c1, c2)
	}
	if c := pgstore.ChannelName("workspace_profile", "api_keys"); c != "workspace_profile.api_keys" {
		t.Fatalf("channel name %q", c)
	}
}

// TestWatchStopsWithStore: Close ends the listener and the poll; no
// goroutine is left.
func TestWatchStopsWithStore(t *testing.T) {
	schema := freshSchema(t)
	dsn(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s, err := pgstore.Open(context.Background(), dsn(t), pgstore.Options{Schema: schema, Timeout: 3 * time.Second, Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := s.WatchAPIKeys(func(string) {}, func() {})
	waitListening(t, s)
	time.Sleep(120 * time.Millisecond)
	stop()
	_ = s.Close()
	if h := s.ListenerHealth(); h.Connected {
		t.Fatalf("listener still connected after Close: %+v", h)
	}
}

// TestKeyUseIsNotAChange: recording a key's last use neither notifies
// nor shows in the poll, so that using a key does not make every node
// drop it from its cache.
func TestKeyUseIsNotAChange(t *testing.T) {
	schema := freshSchema(t)
	const poll = 200 * time.Millisecond
	a, b := node(t, schema, poll), node(t, schema, poll)
	w := startWatch(t, b)
	r := createKey(t, a)
	w.seen(t, r.ID, time.Second)
	time.Sleep(2 * poll)
	w.forget(r.ID)
	if err := a.APIKeys().TouchLastUsed(context.Background(), map[string]time.Time{r.ID: time.Now().Truncate(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * poll)
	if w.has(r.ID) {
		t.Fatal("a key's use was reported as a change")
	}
}

// TestPollTellsAChangeOnce: a transaction left open anywhere holds the
// poll's cursor back, so the same changed rows come back poll after poll;
// each change is told once, not once a poll (every keyring would drop its
// answers every poll, the unknown keys of a spray among them).
func TestPollTellsAChangeOnce(t *testing.T) {
	schema := freshSchema(t)
	const poll = 100 * time.Millisecond
	open, err := pgx.Connect(context.Background(), dsn(t))
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close(context.Background())
	tx, err := open.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(context.Background(), "SELECT pg_current_xact_id()"); err != nil {
		t.Fatal(err)
	}
	a := node(t, schema, poll)
	var mu sync.Mutex
	told := map[string]int{}
	stop := a.WatchAPIKeys(func(id string) { mu.Lock(); told[id]++; mu.Unlock() }, func() {})
	defer stop()
	// the first poll only takes the snapshot the next ones start from
	for a.KeyPollHealth().Polls == 0 {
		time.Sleep(poll / 10)
	}
	r := createKey(t, a)
	time.Sleep(10 * poll)
	mu.Lock()
	defer mu.Unlock()
	// once by notification, once by the first poll that reads the row
	if n := told[r.ID]; n < 1 || n > 2 {
		t.Fatalf("the creation was told %d times over 10 polls, want 1 or 2", n)
	}
}
