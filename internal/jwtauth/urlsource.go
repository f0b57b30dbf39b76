package jwtauth

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Remote key set defaults (CONTRACT section 3).
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

// The budget of fetches for tokens naming an unknown kid (a provider that
// rotates signs with its new key at once). Such a fetch runs at most
// unknownKidSpacing after the last fetch of any kind, so a key published
// after any fetch is in force within 5s (4s plus the fetch itself, which
// may have begun just before the key appeared); and it takes one of a bucket of
// unknownKidBurst, refilled one per unknownKidRefill, so that a flood of
// forged kids costs at most 12 fetches at once and 12 per 10 minutes after
// that (at most 24 in any 10 minutes). The budget is separate from
// min_refresh, which spaces the scheduled fetches only.
const (
	unknownKidSpacing = 4 * time.Second
	unknownKidBurst   = 12
	unknownKidRefill  = 50 * time.Second
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

// newKeySetClient is an HTTP client with a timeout that follows at most
// three redirects and never from https down to plain http (not even to a
// loopback host, which a configured URL may name).
func newKeySetClient(timeout time.Duration, tlsConfig *tls.Config) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute,
			TLSClientConfig: tlsConfig, ForceAttemptHTTP2: true},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("too many redirects")
			}
			for _, prev := range via {
				if prev.URL.Scheme == "https" && req.URL.Scheme != "https" {
					return errors.New("redirect from https to plain http refused")
				}
			}
			return CheckKeySetURL(req.URL)
		},
	}
}

// CheckKeySetURL allows https, and plain http only to a loopback host
// (a provider on the same machine, or a test).
func CheckKeySetURL(u *url.URL) error {
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if host == "localhost" {
			return nil
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("plain http is allowed only to a loopback host, not %q", host)
	}
	return fmt.Errorf("scheme %q is not https", u.Scheme)
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

// refreshForUnknownKid fetches when the unknown-kid budget allows (see
// unknownKidSpacing). Concurrent callers queue on the lock and share the
// fetch that ran while they waited.
//
// When the budget says "not before d" and d is at most unknownKidSpacing
// (a fetch ran moments ago, the provider has just rotated), one deferred
// fetch is scheduled at that time on a started source, so the next request
// after it verifies even if none arrives to trigger it; it spends the same
// budget.
//
// The fetch is everyone's, not the triggering request's: it runs detached
// from ctx (keeping its values, not its cancellation) with its own timeout,
// so a client that hangs up neither aborts it for the callers queued behind
// nor spends the budget on a failed attempt. It ends early only when the
// source itself is destroyed.
func (s *URLSource) refreshForUnknownKid(ctx context.Context, kid string) bool {
	gen := s.generation.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.generation.Load() != gen {
		return true
	}
	if wait := s.unknownKidWaitLocked(); wait > 0 {
		if wait <= unknownKidSpacing {
			s.deferUnknownKidFetchLocked(wait)
		}
		return false
	}
	s.credit -= unknownKidRefill
	if c := s.log().Check(zapcore.DebugLevel, "refreshing key set for unknown kid"); c != nil {
		c.Write(zap.String("url", RedactURL(s.url)), zap.String("kid", logKid(kid)))
	}
	fetchCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	if s.life != nil {
		defer context.AfterFunc(s.life, cancel)()
	}
	_, err := s.fetchLocked(fetchCtx)
	return err == nil
}

// unknownKidWaitLocked brings the budget's credit up to now and says how
// long until an unknown-kid fetch may run: 0 when it may run now.
func (s *URLSource) unknownKidWaitLocked() time.Duration {
	now := s.elapsed()
	const full = unknownKidBurst * unknownKidRefill
	if !s.creditSet {
		s.credit, s.creditAt, s.creditSet = full, now, true
	}
	if now > s.creditAt {
		s.credit = min(s.credit+now-s.creditAt, full)
		s.creditAt = now
	}
	var wait time.Duration
	if s.attempted {
		wait = s.lastAttempt + unknownKidSpacing - now
	}
	return max(wait, unknownKidRefill-s.credit, 0)
}

// deferUnknownKidFetchLocked schedules one fetch in wait, unless one is
// pending already or the source is not started (tests that drive a source
// by hand schedule nothing behind their back).
func (s *URLSource) deferUnknownKidFetchLocked(wait time.Duration) {
	if s.life == nil || s.life.Err() != nil || s.kidTimer != nil {
		return
	}
	s.kidTimer = s.afterFunc(wait, s.deferredUnknownKidFetch)
}

// deferredUnknownKidFetch is the fetch deferUnknownKidFetchLocked
// scheduled. It asks the budget again: a fetch that ran meanwhile may have
// made it needless, and then the next unknown kid asks anew.
func (s *URLSource) deferredUnknownKidFetch() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kidTimer = nil
	if s.life == nil || s.life.Err() != nil || s.unknownKidWaitLocked() > 0 {
		return
	}
	s.credit -= unknownKidRefill
	if c := s.log().Check(zapcore.DebugLevel, "refreshing key set for an unknown kid seen moments ago"); c != nil {
		c.Write(zap.String("url", RedactURL(s.url)))
	}
	ctx, cancel := context.WithTimeout(s.life, s.timeout)
	defer cancel()
	_, _ = s.fetchLocked(ctx)
}

// fetchLocked downloads and parses the set; on success it replaces the set
// in force and returns the document's max-age (-1 when it gives none). The
// caller holds mu, so only one fetch runs at a time.
func (s *URLSource) fetchLocked(ctx context.Context) (time.Duration, error) {
	s.lastAttempt, s.attempted = s.elapsed(), true
	// this fetch gets any key published before it: a deferred unknown-kid
	// fetch pending is needless now
	if s.kidTimer != nil {
		s.kidTimer.Stop()
		s.kidTimer = nil
	}
	ks, maxAge, err := s.download(ctx)
	if err != nil {
		// URLs in errors are redacted where they are made (get); the rest
		// may quote the provider's document, so it is bounded
		s.lastError = logText(err.Error(), maxLoggedText)
		if s.observer != nil {
			s.observer.KeySetFetched(false)
		}
		s.log().Warn("fetching key set failed", zap.String("url", RedactURL(s.url)), zap.String("error", s.lastError),
			zap.Bool("serving_previous_keys", s.current() != nil))
		return 0, err
	}
	s.lastError = ""
	s.set.Store(ks)
	s.lastGoodWall.Store(s.now().UnixNano())
	s.lastGood.Store(int64(s.elapsed()))
	s.hasGood.Store(true)
	s.generation.Add(1)
	if s.observer != nil {
		s.observer.KeySetFetched(true)
	}
	s.log().Info("key set loaded", zap.String("url", RedactURL(s.url)), zap.Strings("kids", logKids(ks.kids())))
	return maxAge, nil
}

func (s *URLSource) download(ctx context.Context) (*keySet, time.Duration, error) {
	target := s.url
	if s.issuer != "" {
		if err := s.discover(ctx); err != nil {
			return nil, 0, err
		}
		target = s.jwksURI
	}
	body, hdr, err := s.get(ctx, target, "application/jwk-set+json, application/json")
	if err != nil {
		return nil, 0, err
	}
	ks, skipped, err := parseKeySet(body)
	s.skipped = logSkippedOnce(s.log(), RedactURL(s.url), skipped, s.skipped)
	if err != nil {
		return nil, 0, err
	}
	if len(ks.keys) > maxKeysPerSet {
		return nil, 0, fmt.Errorf("key set has %d keys, more than %d", len(ks.keys), maxKeysPerSet)
	}
	s.dupKids = logDuplicateKids(s.log(), RedactURL(s.url), ks, s.dupKids)
	return ks, cacheMaxAge(hdr.Get("Cache-Control")), nil
}

// get fetches one document with the source's client and size cap. Its
// errors name target redacted (see RedactURL), never in clear.
func (s *URLSource) get(ctx context.Context, target, accept string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, nil, redactURLError(err)
	}
	req.Header.Set("Accept", accept)
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, nil, redactURLError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("%s: status %d", RedactURL(target), resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxKeySetBytes+1))
	if err != nil {
		return nil, nil, err
	}
	if len(body) > maxKeySetBytes {
		return nil, nil, fmt.Errorf("%s: document larger than %d bytes", RedactURL(target), maxKeySetBytes)
	}
	return body, resp.Header, nil
}

// discover reads jwks_uri from the issuer's OpenID Connect discovery
// document, and checks that the document speaks for that issuer and that
// jwks_uri is https (or loopback http). It is read again on every fetch, so
// a provider that moves its key set is followed.
func (s *URLSource) discover(ctx context.Context) error {
	body, _, err := s.get(ctx, s.url, "application/json")
	if err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("discovery document is not JSON: %w", err)
	}
	if doc.Issuer != s.issuer {
		return fmt.Errorf("discovery document names issuer %q, not %q", doc.Issuer, s.issuer)
	}
	u, err := url.Parse(doc.JWKSURI)
	if err != nil || u.Host == "" {
		return fmt.Errorf("discovery document has no usable jwks_uri")
	}
	if err := CheckKeySetURL(u); err != nil {
		return fmt.Errorf("discovery jwks_uri: %w", err)
	}
	s.jwksURI = doc.JWKSURI
	return nil
}

// DiscoveryURL is where an issuer publishes its OpenID configuration.
func DiscoveryURL(issuer string) string {
	return strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
}

// cacheMaxAge reads max-age from a Cache-Control header: -1 when it gives
// none; no-store and no-cache mean "as soon as allowed" (0, which becomes
// min_refresh).
func cacheMaxAge(cc string) time.Duration {
	age := time.Duration(-1)
	for part := range strings.SplitSeq(cc, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch strings.ToLower(name) {
		case "no-store", "no-cache":
			return 0
		case "max-age", "s-maxage":
			if n, err := strconv.Atoi(strings.Trim(val, `"`)); err == nil && n >= 0 {
				age = time.Duration(n) * time.Second
			}
		}
	}
	return age
}

// Status implements Source.
func (s *URLSource) Status() SourceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := SourceStatus{URL: RedactURL(s.url), LastError: s.lastError, Keys: []KeyStatus{}}
	if s.jwksURI != "" {
		st.JWKSURI = RedactURL(s.jwksURI)
	}
	if ks := s.set.Load(); ks != nil {
		st.Keys = ks.status()
		t := time.Unix(0, s.lastGoodWall.Load()).UTC()
		st.LastGood = &t
		st.Stale = s.current() == nil
	}
	if !s.nextRefresh.IsZero() {
		t := s.nextRefresh.UTC()
		st.NextRefresh = &t
	}
	return st
}

// KeysInForce is how many keys the source verifies with now: 0 when none
// was ever loaded or the set is older than max_stale.
func (s *URLSource) KeysInForce() int {
	if ks := s.current(); ks != nil {
		return len(ks.keys)
	}
	return 0
}

// SinceLastGood is the time since the last good fetch, on the monotonic
// clock; ok is false when there was none.
func (s *URLSource) SinceLastGood() (d time.Duration, ok bool) {
	if !s.hasGood.Load() {
		return 0, false
	}
	return s.elapsed() - time.Duration(s.lastGood.Load()), true
}
