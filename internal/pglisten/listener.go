// Package pglisten keeps one PostgreSQL connection LISTENing on the
// channels its subscribers ask for, outside any pool, reconnecting with
// backoff whenever it fails.
//
// A notification may be missed while the connection is down, so each
// subscriber's onReset is called every time its channel is listened to
// again (and the first time): the subscriber then drops or catches up
// whatever it keeps. A connection can also stop receiving without any
// error; callers that must not miss a change poll as well (see
// profile/pgstore).
package pglisten

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// Config tunes a Listener; zero values take the defaults.
type Config struct {
	// ConnConfig is copied for each connection; its context watcher is
	// replaced by a deadline one, so that a wait for notifications can be
	// interrupted without sending the server a cancel request (which
	// could cancel the LISTEN that follows).
	ConnConfig *pgx.ConnConfig
	// ApplicationName is the connection's application_name, by which
	// pg_stat_activity shows it.
	ApplicationName string
	// MinBackoff is the wait after a failure, doubled after each failed
	// attempt up to MaxBackoff. Default: 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds a connection attempt, the LISTEN statements and a
	// ping. Default: 5s.
	Timeout time.Duration
	// PingInterval is how long the connection may stay silent before a
	// query checks it. Default: 30s.
	PingInterval time.Duration
	// Describe turns an error into the text Health keeps (the caller's
	// scrubbing of hosts and users). Default: err.Error().
	Describe func(error) string
}

// Health is the listener's state, for metrics and admin views.
type Health struct {
	// Started: a subscription started the listener.
	Started bool
	// Connected: the connection is up and listening.
	Connected bool
	// ConnectedSince is when the current connection started listening.
	ConnectedSince time.Time
	// PID is the server process of the current connection (0 when down).
	PID uint32
	// LastError and LastErrorAt are the last failure, if any.
	LastError   string
	LastErrorAt time.Time
	// Connects counts the connections that started listening.
	Connects uint64
	// Notifications counts the notifications received.
	Notifications uint64
}

type sub struct {
	channel  string
	onNotify func(payload string)
	onReset  func()
	live     bool // onReset was called for the current connection
}

// Listener is one listening connection shared by its subscribers.
type Listener struct {
	cfg    Config
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu         sync.Mutex
	subs       map[int]*sub
	nextID     int
	started    bool
	closed     bool
	pending    bool               // subscriptions changed since the last sync
	waitCancel context.CancelFunc // interrupts the wait for notifications
	health     Health

	notifications atomic.Uint64
}

// New makes a listener; it connects on the first Subscribe.
func New(cfg Config) *Listener {
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(5*time.Second, cfg.MinBackoff)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 30 * time.Second
	}
	if cfg.Describe == nil {
		cfg.Describe = func(err error) string { return err.Error() }
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Listener{cfg: cfg, ctx: ctx, cancel: cancel, done: make(chan struct{}), subs: map[int]*sub{}}
}

// Subscribe calls onNotify with the payload of each notification on
// channel (the name as pg_notify takes it, up to 63 bytes), and onReset
// once the channel is listened to and again after each reconnection:
// notifications sent meanwhile are lost. Both are called from the
// listener's goroutine, one at a time, and must return quickly.
// unsubscribe stops them; it does not wait for a call in progress.
func (l *Listener) Subscribe(channel string, onNotify func(payload string), onReset func()) (unsubscribe func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return func() {}
	}
	id := l.nextID
	l.nextID++
	l.subs[id] = &sub{channel: channel, onNotify: onNotify, onReset: onReset}
	l.changedLocked()
	if !l.started {
		l.started = true
		l.health.Started = true
		go l.run()
	}
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if _, ok := l.subs[id]; ok {
			delete(l.subs, id)
			l.changedLocked()
		}
	}
}

func (l *Listener) changedLocked() {
	l.pending = true
	if l.waitCancel != nil {
		l.waitCancel()
	}
}

// Health returns the listener's state.
func (l *Listener) Health() Health {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.health
	h.Notifications = l.notifications.Load()
	return h
}

// Close stops the listener and waits for its goroutine to end.
func (l *Listener) Close() {
	l.mu.Lock()
	l.closed = true
	started := l.started
	l.mu.Unlock()
	l.cancel()
	if started {
		<-l.done
	}
}

func (l *Listener) run() {
	defer close(l.done)
	defer func() {
		l.mu.Lock()
		l.health.Connected, l.health.PID = false, 0
		l.mu.Unlock()
	}()
	backoff := l.cfg.MinBackoff
	for {
		listened, err := l.session()
		if l.ctx.Err() != nil {
			return
		}
		if listened {
			backoff = l.cfg.MinBackoff
		}
		l.mu.Lock()
		l.health.Connected, l.health.PID = false, 0
		l.health.LastError, l.health.LastErrorAt = l.cfg.Describe(err), time.Now()
		for _, s := range l.subs {
			s.live = false
		}
		l.mu.Unlock()
		t := time.NewTimer(backoff)
		select {
		case <-l.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, l.cfg.MaxBackoff)
	}
}

// session connects, listens and delivers until the connection fails;
// listened reports whether it got as far as listening.
func (l *Listener) session() (listened bool, err error) {
	cfg := l.cfg.ConnConfig.Copy()
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	if l.cfg.ApplicationName != "" {
		cfg.RuntimeParams["application_name"] = l.cfg.ApplicationName
	}
	cctx, cancel := context.WithTimeout(l.ctx, l.cfg.Timeout)
	conn, err := pgx.ConnectConfig(cctx, cfg)
	cancel()
	if err != nil {
		return false, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = conn.Close(cctx)
		cancel()
	}()
	listening := map[string]bool{}
	first := true
	for {
		l.mu.Lock()
		pending := l.pending || first
		l.pending = false
		l.mu.Unlock()
		if pending {
			if err := l.sync(conn, listening); err != nil {
				return !first, err
			}
			if first {
				first = false
				l.mu.Lock()
				l.health.Connected, l.health.ConnectedSince, l.health.PID = true, time.Now(), conn.PgConn().PID()
				l.health.Connects++
				l.mu.Unlock()
			}
			l.resetNew(listening)
		}
		if err := l.wait(conn); err != nil {
			return true, err
		}
	}
}

// sync LISTENs to the channels subscribed and UNLISTENs the others.
func (l *Listener) sync(conn *pgx.Conn, listening map[string]bool) error {
	l.mu.Lock()
	want := map[string]bool{}
	for _, s := range l.subs {
		want[s.channel] = true
	}
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.Timeout)
	defer cancel()
	for ch := range want {
		if !listening[ch] {
			if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
				return err
			}
			listening[ch] = true
		}
	}
	for ch := range listening {
		if !want[ch] {
			if _, err := conn.Exec(ctx, "UNLISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
				return err
			}
			delete(listening, ch)
		}
	}
	return nil
}

// resetNew calls onReset of the subscribers whose channel is now listened
// to and that have not been told yet on this connection.
func (l *Listener) resetNew(listening map[string]bool) {
	var calls []func()
	l.mu.Lock()
	for _, s := range l.subs {
		if !s.live && listening[s.channel] {
			s.live = true
			if s.onReset != nil {
				calls = append(calls, s.onReset)
			}
		}
	}
	l.mu.Unlock()
	for _, f := range calls {
		f()
	}
}

// wait delivers the notifications that arrive until the subscriptions
// change, the connection has been silent for PingInterval (then it is
// pinged), or it fails.
func (l *Listener) wait(conn *pgx.Conn) error {
	l.mu.Lock()
	if l.pending {
		l.mu.Unlock()
		return nil
	}
	wctx, cancel := context.WithTimeout(l.ctx, l.cfg.PingInterval)
	l.waitCancel = cancel
	l.mu.Unlock()
	n, err := conn.WaitForNotification(wctx)
	l.mu.Lock()
	l.waitCancel = nil
	l.mu.Unlock()
	cancel()
	if n != nil {
		l.deliver(n)
	}
	switch {
	case err == nil:
		return nil
	case l.ctx.Err() != nil:
		return l.ctx.Err()
	case conn.IsClosed() || wctx.Err() == nil:
		return err
	case errors.Is(wctx.Err(), context.DeadlineExceeded):
		pctx, cancel := context.WithTimeout(l.ctx, l.cfg.Timeout)
		defer cancel()
		_, err := conn.Exec(pctx, "SELECT 1")
		return err
	}
	return nil // interrupted: the subscriptions changed
}

func (l *Listener) deliver(n *pgconn.Notification) {
	l.notifications.Add(1)
	var calls []func(string)
	l.mu.Lock()
	for _, s := range l.subs {
		if s.channel == n.Channel && s.onNotify != nil {
			calls = append(calls, s.onNotify)
		}
	}
	l.mu.Unlock()
	for _, f := range calls {
		f(n.Payload)
	}
}
