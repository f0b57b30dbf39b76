package pgstore

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// LazyOptions tune OpenLazy; zero values take the defaults.
type LazyOptions struct {
	// Delay is how long the first attempt to connect and migrate waits,
	// unless a call comes first. Default: 1s. It keeps a config that is
	// only validated (caddy validate, caddy adapt --validate: provisioned,
	// then closed at once) from connecting to the database, and so from
	// migrating it.
	Delay time.Duration
	// MinBackoff is the wait after the first failed attempt, doubled after
	// each failure up to MaxBackoff. Default: 1s and 15s. Calls may start
	// an attempt sooner, but never sooner than MinBackoff after the last.
	MinBackoff, MaxBackoff time.Duration
	// OnOpen is called once, when the store is open (connected and
	// migrated), with the number of attempts it took.
	OnOpen func(attempts int)
	// OnFail is called after each failed attempt with its error (which
	// names no DSN, user, host or port) and the wait before the next.
	OnFail func(err error, attempt int, retryIn time.Duration)
}

// Lazy is a Store that connects and migrates in the background, so that a
// node can start while its database is down: until the store is open,
// every call fails at once with an error that errors.Is
// profile.ErrUnavailable (the route's 503 StorageUnavailable), and the
// connection and the migrations are retried with backoff until they
// succeed or Close is called. Once open it is the Store Open returns, and
// a later outage is the pool's to survive (each call gets a connection,
// new connections are made as needed).
type Lazy struct {
	dsn   string
	opts  Options
	lo    LazyOptions
	ctx   context.Context
	stop  context.CancelFunc
	done  chan struct{} // closed when run has returned
	kick  chan struct{} // a call asks for an attempt now
	ready chan struct{} // closed once store is set

	mu         sync.Mutex
	store      *Store
	attempting chan struct{} // non-nil while an attempt runs (or is asked for); closed at its end
	lastErr    error
	lastEnd    time.Time
	attempts   int
}

// OpenLazy returns a Lazy store for dsn at once; only a DSN that does not
// parse is an error (ErrBadDSN).
func OpenLazy(dsn string, opts Options, lo LazyOptions) (*Lazy, error) {
	if _, err := pgxpool.ParseConfig(dsn); err != nil {
		return nil, ErrBadDSN
	}
	if opts.ListenDSN != "" {
		if _, err := pgx.ParseConfig(opts.ListenDSN); err != nil {
			return nil, ErrBadDSN
		}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = defaultTimeout
	}
	if lo.Delay <= 0 {
		lo.Delay = time.Second
	}
	if lo.MinBackoff <= 0 {
		lo.MinBackoff = time.Second
	}
	if lo.MaxBackoff < lo.MinBackoff {
		lo.MaxBackoff = max(15*time.Second, lo.MinBackoff)
	}
	ctx, stop := context.WithCancel(context.Background())
	l := &Lazy{dsn: dsn, opts: opts, lo: lo, ctx: ctx, stop: stop, done: make(chan struct{}),
		kick: make(chan struct{}, 1), ready: make(chan struct{}), lastErr: errors.New("not connected yet")}
	go l.run()
	return l, nil
}

// run makes the attempts: after Delay or a call's kick, then with backoff.
func (l *Lazy) run() {
	defer close(l.done)
	wait, backoff := l.lo.Delay, l.lo.MinBackoff
	for {
		timer := time.NewTimer(wait)
		select {
		case <-l.ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		case <-l.kick:
			timer.Stop()
		}
		l.mu.Lock()
		if l.attempting == nil {
			l.attempting = make(chan struct{})
		}
		l.attempts++
		n := l.attempts
		l.mu.Unlock()

		s, err := Open(l.ctx, l.dsn, l.opts)

		l.mu.Lock()
		if err == nil {
			l.store = s
			close(l.ready)
		} else {
			l.lastErr = err
		}
		l.lastEnd = time.Now()
		close(l.attempting)
		l.attempting = nil
		select { // a kick during the attempt had its answer
		case <-l.kick:
		default:
		}
		l.mu.Unlock()
		if err == nil {
			if l.lo.OnOpen != nil {
				l.lo.OnOpen(n)
			}
			return
		}
		if l.ctx.Err() != nil {
			return
		}
		if l.lo.OnFail != nil {
			l.lo.OnFail(err, n, backoff)
		}
		wait, backoff = backoff, min(2*backoff, l.lo.MaxBackoff)
	}
}

// open is the store once it is open; before, it asks for an attempt (at
// most one each MinBackoff), waits for one in progress within the
// store's timeout, and fails with ErrUnavailable.
func (l *Lazy) open(ctx context.Context) (*Store, error) {
	select {
	case <-l.ready:
		return l.store, nil
	default:
	}
	if err := ctx.Err(); err != nil {
		return nil, l.failNotOpen(ctx, err)
	}
	l.mu.Lock()
	att := l.attempting
	if att == nil && l.ctx.Err() == nil && (l.attempts == 0 || time.Since(l.lastEnd) >= l.lo.MinBackoff) {
		att = make(chan struct{})
		l.attempting = att
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
	l.mu.Unlock()
	if att != nil {
		wait, cancel := context.WithTimeout(ctx, l.opts.Timeout)
		defer cancel()
		select {
		case <-l.ready:
			return l.store, nil
		case <-att:
			select {
			case <-l.ready:
				return l.store, nil
			default:
			}
		case <-l.done: // closed
		case <-wait.Done():
			if ctx.Err() != nil {
				return nil, l.failNotOpen(ctx, ctx.Err())
			}
		}
	}
	l.mu.Lock()
	err := l.lastErr
	l.mu.Unlock()
	return nil, l.failNotOpen(ctx, err)
}

// failNotOpen is fail for a store not open yet: context.Canceled for a
// caller that hung up, else ErrUnavailable saying why.
func (l *Lazy) failNotOpen(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	e := &storeError{cause: "not open yet: " + err.Error(), wrapped: []error{profile.ErrUnavailable}}
	if isTimeout(err) {
		e.wrapped = append(e.wrapped, context.DeadlineExceeded)
	}
	return e
}

// Ready is closed once the store is open.
func (l *Lazy) Ready() <-chan struct{} { return l.ready }

// Get implements profile.Store.
func (l *Lazy) Get(ctx context.Context, userID string) (profile.Profile, error) {
	s, err := l.open(ctx)
	if err != nil {
		return profile.Profile{}, err
	}
	return s.Get(ctx, userID)
}

// Update implements profile.Store.
func (l *Lazy) Update(ctx context.Context, userID string, fn profile.UpdateFunc) (profile.Profile, error) {
	s, err := l.open(ctx)
	if err != nil {
		return profile.Profile{}, err
	}
	return s.Update(ctx, userID, fn)
}

// Export implements profile.Exporter.
func (l *Lazy) Export(ctx context.Context, fn func(profile.Profile) error) error {
	s, err := l.open(ctx)
	if err != nil {
		return err
	}
	return s.Export(ctx, fn)
}

// Import implements profile.Importer.
func (l *Lazy) Import(ctx context.Context, profiles []profile.Profile) error {
	s, err := l.open(ctx)
	if err != nil {
		return err
	}
	return s.Import(ctx, profiles)
}

// Close stops the attempts (one in progress is cancelled: its migration
// transaction rolls back) and closes the store if it was open.
func (l *Lazy) Close() error {
	l.stop()
	<-l.done
	l.mu.Lock()
	s := l.store
	l.mu.Unlock()
	if s != nil {
		return s.Close()
	}
	return nil
}

// Interface guards
var (
	_ profile.Store    = (*Lazy)(nil)
	_ profile.Exporter = (*Lazy)(nil)
	_ profile.Importer = (*Lazy)(nil)
)
