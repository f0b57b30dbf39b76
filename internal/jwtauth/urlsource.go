package jwtauth

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Remote key set defaults and limits: the refresh bounds RefreshOptions
// falls back to, the time one fetch may take, the size and key count a
// fetched set may have, and the backoff while the first fetch fails.
const (
	defaultMinRefresh   = 30 * time.Second
	defaultMaxRefresh   = 15 * time.Minute
	defaultMaxStale     = 24 * time.Hour
	defaultFetchTimeout = 10 * time.Second
	maxKeySetBytes      = 1 << 20
	maxKeysPerSet       = 100
	firstBackoff        = time.Second
	maxFirstBackoff     = 8 * time.Second
)

// RefreshOptions tune a remote key source; zero values take the defaults.
// The caller checks with CheckRefreshOrder that MinRefresh <= MaxRefresh <=
// MaxStale once the defaults are in; nothing here adjusts them.
type RefreshOptions struct {
	// MinRefresh is the shortest time between two scheduled fetches of the
	// set (Cache-Control max-age is raised to it; a failed fetch is retried
	// after it). Fetches for unknown kids have their own budget
	// (unknownKidSpacing, unknownKidBurst). Default 30s.
	MinRefresh time.Duration
	// MaxRefresh is the longest time the set is kept without a fetch.
	// Default 15m.
	MaxRefresh time.Duration
	// MaxStale is how long the last good set keeps serving while fetches
	// fail. Default 24h.
	MaxStale time.Duration
}

func (o RefreshOptions) withDefaults() RefreshOptions {
	if o.MinRefresh <= 0 {
		o.MinRefresh = defaultMinRefresh
	}
	if o.MaxRefresh <= 0 {
		o.MaxRefresh = defaultMaxRefresh
	}
	if o.MaxStale <= 0 {
		o.MaxStale = defaultMaxStale
	}
	return o
}

// CheckRefreshOrder refuses options that contradict each other once the
// defaults fill the unset ones: max_refresh shorter than min_refresh, or
// max_stale shorter than max_refresh (the set would go stale between two
// scheduled fetches). The error names both options and says which value is
// a default.
func CheckRefreshOrder(minRefresh, maxRefresh, maxStale time.Duration) error {
	show := func(set, def time.Duration) string {
		if set > 0 {
			return shortDuration(set)
		}
		return shortDuration(def) + " (the default)"
	}
	o := RefreshOptions{MinRefresh: minRefresh, MaxRefresh: maxRefresh, MaxStale: maxStale}.withDefaults()
	if o.MaxRefresh < o.MinRefresh {
		return fmt.Errorf("max_refresh: %s is shorter than min_refresh %s",
			show(maxRefresh, defaultMaxRefresh), show(minRefresh, defaultMinRefresh))
	}
	if o.MaxStale < o.MaxRefresh {
		return fmt.Errorf("max_stale: %s is shorter than max_refresh %s",
			show(maxStale, defaultMaxStale), show(maxRefresh, defaultMaxRefresh))
	}
	return nil
}

// shortDuration writes d as in a config: 15m, 1h, 1h30m, not 15m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// URLSource is a key set fetched from a JWKS URL. The glue keeps one per
// URL in the process, shared by every handler and config generation that
// names it, so a reload neither refetches nor loses it.
//
// The first fetch runs in the background with a backoff from 1s, so Caddy
// starts while the provider is down and the route answers KeysUnavailable
// until it is back. Then the set is refreshed when its Cache-Control
// max-age says, kept within [minRefresh, maxRefresh]; a token naming an
// unknown kid triggers a fetch within the unknown-kid budget (at most one
// 4s after any fetch, 12 at once, one more per 50s). When fetches fail the
// last good set keeps serving for at most maxStale.
//
// The options and the logger are those of the config that loaded the source
// last (see Reconfigure), so they are atomic: a reload swaps them while
// the source runs.
type URLSource struct {
	url      string
	issuer   string // discovery mode: url is the issuer's discovery document
	opts     atomic.Pointer[RefreshOptions]
	logger   atomic.Pointer[zap.Logger]
	wake     chan struct{} // the options changed: run recomputes its wait
	client   *http.Client
	now      func() time.Time // the wall clock: shown, never used for ages
	mono     func() time.Duration
	epoch    time.Time // time.Now() when made: carries a monotonic reading
	timeout  time.Duration
	observer Observer // nil: nobody counts

	set atomic.Pointer[keySet]
	// introspection: the discovery document's introspection_endpoint
	introspection atomic.Pointer[string]
	// lastGood is the monotonic reading (see elapsed) of the last good
	// fetch, when hasGood; lastGoodWall is its wall time, for the admin
	// view only.
	lastGood     atomic.Int64
	lastGoodWall atomic.Int64
	hasGood      atomic.Bool

	mu          sync.Mutex    // serializes fetches; guards the fields below
	jwksURI     string        // discovery mode: read from the document
	lastAttempt time.Duration // monotonic reading of the last fetch
	attempted   bool
	nextRefresh time.Time
	lastError   string
	dupKids     string // the duplicate kids last warned about, joined
	skipped     string // a digest of the skipped keys last warned about
	generation  atomic.Uint64
	// the unknown-kid budget: credit is the refill time banked (a fetch
	// costs unknownKidRefill, at most unknownKidBurst of them banked), as
	// of the monotonic reading creditAt
	credit    time.Duration
	creditAt  time.Duration
	creditSet bool
	// kidTimer is the pending deferred unknown-kid fetch, nil when none;
	// afterFunc makes it (time.AfterFunc; tests inject their own)
	kidTimer  interface{ Stop() bool }
	afterFunc func(time.Duration, func()) interface{ Stop() bool }

	life   context.Context // ends when the source is closed; nil until Start
	cancel context.CancelFunc
	done   chan struct{}
}

// URLOptions are what a URLSource is made with besides its URL.
type URLOptions struct {
	// Issuer, when set, makes the source a discovery source: its URL is
	// the issuer's discovery document (DiscoveryURL), which must name it.
	Issuer   string
	Refresh  RefreshOptions
	Logger   *zap.Logger // nil: no logs
	Observer Observer    // nil: nobody counts
	// Now is the source's wall clock, shown in the admin view; nil is
	// time.Now. Tests inject one.
	Now func() time.Time
	// Mono is the source's monotonic clock: the time elapsed since some
	// fixed point. Every age (of the set against max_stale, of the last
	// fetch against the unknown-kid budget) is measured on it, so a wall-clock jump
	// neither ages the keys early nor keeps them past max_stale. Nil:
	// Now().Sub(the time the source was made), which for time.Now is the
	// runtime's monotonic clock (both readings carry one). Tests that model
	// a wall jump inject it (jwtauthtest.Clock.Mono).
	Mono func() time.Duration
	// FetchTimeout bounds one fetch (connect to end of body); 0 is 10s.
	FetchTimeout time.Duration
	// TLSClientConfig is the fetches' TLS configuration; nil is the
	// system's roots.
	TLSClientConfig *tls.Config
}

// NewURLSource makes a source for rawURL; it fetches nothing until Start
// (a test may drive it without).
func NewURLSource(rawURL string, o URLOptions) *URLSource {
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = defaultFetchTimeout
	}
	s := &URLSource{
		url:      rawURL,
		issuer:   o.Issuer,
		wake:     make(chan struct{}, 1),
		client:   newKeySetClient(o.FetchTimeout, o.TLSClientConfig),
		now:      o.Now,
		mono:     o.Mono,
		epoch:    time.Now(),
		timeout:  o.FetchTimeout,
		observer: o.Observer,
		afterFunc: func(d time.Duration, f func()) interface{ Stop() bool } {
			return time.AfterFunc(d, f)
		},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	s.logger.Store(o.Logger)
	s.opts.Store(new(o.Refresh.withDefaults()))
	return s
}

// elapsed is the source's monotonic clock reading.
func (s *URLSource) elapsed() time.Duration {
	if s.mono != nil {
		return s.mono()
	}
	return s.now().Sub(s.epoch)
}

// options are the source's options in force, defaults applied.
func (s *URLSource) options() RefreshOptions { return *s.opts.Load() }

// log is the logger of the config that loaded the source last.
func (s *URLSource) log() *zap.Logger { return s.logger.Load() }

// Reconfigure gives a running source the options and logger of the newest
// config that uses it. On a reload the new config is provisioned before the
// old one is cleaned up, so a changed min_refresh, max_refresh or max_stale
// takes effect with the reload; when two handlers of one config name the
// same URL with different options, the one provisioned last wins.
func (s *URLSource) Reconfigure(opts RefreshOptions, logger *zap.Logger) {
	if logger == nil {
		logger = zap.NewNop()
	}
	s.logger.Store(logger)
	s.setOptions(opts)
}

// setOptions replaces the options and wakes the run loop, so that a shorter
// max_refresh cuts the wait in progress. max_stale and min_refresh are read
// on every use and need no wake.
func (s *URLSource) setOptions(opts RefreshOptions) {
	s.opts.Store(new(opts.withDefaults()))
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Start runs the source's goroutine. A shared source outlives the config
// that created it, so its context is its own, ended by Close when the
// last user releases it, never by one config's unload.
func (s *URLSource) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.life, s.cancel, s.done = ctx, cancel, make(chan struct{})
	go func() {
		defer close(s.done)
		s.run(ctx)
	}()
}

// Close stops the goroutine and waits for it, and drops a pending
// deferred unknown-kid fetch.
func (s *URLSource) Close() error {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	s.mu.Lock()
	if s.kidTimer != nil {
		s.kidTimer.Stop()
		s.kidTimer = nil
	}
	s.mu.Unlock()
	s.client.CloseIdleConnections()
	return nil
}

// current returns the set in force, or nil when none was ever loaded or the
// last good one is older than maxStale.
func (s *URLSource) current() *keySet {
	ks := s.set.Load()
	if ks == nil {
		return nil
	}
	if age, ok := s.SinceLastGood(); !ok || age > s.options().MaxStale {
		return nil
	}
	return ks
}

// run fetches until ctx ends; it is the source's only goroutine.
func (s *URLSource) run(ctx context.Context) {
	backoff := firstBackoff
	for {
		wait, err := s.refresh(ctx)
		if err != nil && ctx.Err() != nil {
			return
		}
		if err != nil && s.set.Load() == nil {
			wait, backoff = backoff, min(backoff*2, maxFirstBackoff)
			s.mu.Lock()
			s.nextRefresh = s.now().Add(wait) // what the admin view shows
			s.mu.Unlock()
		} else if err == nil {
			backoff = firstBackoff
		}
		if !s.sleep(ctx, wait, err == nil) {
			return
		}
	}
}

// sleep waits before the next fetch, and reports false when ctx ended. When
// a reload changes the options meanwhile, a wait longer than the new bound
// (max_refresh after a good fetch, min_refresh after a failed one) is cut to
// it, counted from when the wait began.
func (s *URLSource) sleep(ctx context.Context, wait time.Duration, fetched bool) bool {
	start := time.Now()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
			return true
		case <-s.wake:
			o := s.options()
			bound := o.MaxRefresh
			if !fetched {
				bound = o.MinRefresh
			}
			if bound < wait {
				wait = bound
				left := max(wait-time.Since(start), 0)
				timer.Reset(left)
				s.mu.Lock()
				s.nextRefresh = s.now().Add(left)
				s.mu.Unlock()
			}
		}
	}
}

// refresh fetches now and says how long to wait before the next fetch.
func (s *URLSource) refresh(ctx context.Context) (time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	maxAge, err := s.fetchLocked(ctx)
	o := s.options()
	wait := o.MinRefresh // after a failure, try again soon
	switch {
	case err == nil && maxAge < 0: // the provider says nothing: max_refresh
		wait = o.MaxRefresh
	case err == nil:
		wait = min(max(maxAge, o.MinRefresh), o.MaxRefresh)
	}
	s.nextRefresh = s.now().Add(wait)
	return wait, err
}
