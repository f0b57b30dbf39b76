package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// keySource is where signing keys come from. The verifier only asks for
// the current set and, for a token naming an unknown kid, for a refresh.
// Keeping it this small lets the remote source's inside be replaced (cache,
// stale-if-error, metrics) without touching verification.
type keySource interface {
	// current returns the keys in force, or nil if none was ever loaded.
	current() *keySet
	// refreshForUnknownKid may fetch the set again, rate-limited; it
	// reports whether the set in force is newer than when it was called.
	refreshForUnknownKid(ctx context.Context, kid string) bool
}

// fileSource is a key set read once from a local file at provision.
type fileSource struct{ set *keySet }

func loadFileSource(path string, logger *zap.Logger) (*fileSource, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	ks, skipped, err := parseKeySet(data)
	logSkipped(logger, path, skipped)
	if err != nil {
		return nil, err
	}
	return &fileSource{set: ks}, nil
}

func (f *fileSource) current() *keySet                                  { return f.set }
func (f *fileSource) refreshForUnknownKid(context.Context, string) bool { return false }

func logSkipped(logger *zap.Logger, source string, skipped []skippedKey) {
	for _, s := range skipped {
		logger.Warn("skipping key of unsupported type", zap.String("source", source),
			zap.Int("index", s.index), zap.String("kid", s.kid), zap.String("reason", s.why))
	}
}

// Remote key set defaults (CONTRACT section 3).
const (
	defaultMinRefresh   = 30 * time.Second
	defaultMaxRefresh   = 15 * time.Minute
	defaultFetchTimeout = 10 * time.Second
	maxKeySetBytes      = 1 << 20
	firstBackoff        = time.Second
	maxFirstBackoff     = 8 * time.Second
)

// urlSource is a key set fetched from a JWKS URL: first in the background
// with a backoff from 1s (so Caddy starts while the provider is down and
// the route answers KeysUnavailable until it is back), then refreshed every
// maxRefresh, and on demand for an unknown kid at most once per minRefresh.
// When a refresh fails, the last good set keeps serving.
type urlSource struct {
	url        string
	client     *http.Client
	logger     *zap.Logger
	minRefresh time.Duration
	maxRefresh time.Duration
	now        func() time.Time

	set atomic.Pointer[keySet]

	mu          sync.Mutex // serializes fetches; guards lastAttempt
	lastAttempt time.Time
	generation  atomic.Uint64
}

func newURLSource(rawURL string, logger *zap.Logger) *urlSource {
	return &urlSource{
		url:        rawURL,
		client:     newKeySetClient(defaultFetchTimeout),
		logger:     logger,
		minRefresh: defaultMinRefresh,
		maxRefresh: defaultMaxRefresh,
		now:        time.Now,
	}
}

// newKeySetClient is an HTTP client with a timeout that follows at most
// three redirects and never from https down to plain http.
func newKeySetClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("too many redirects")
			}
			return checkKeySetURL(req.URL)
		},
	}
}

// checkKeySetURL allows https, and plain http only to a loopback host
// (a provider on the same machine, or a test).
func checkKeySetURL(u *url.URL) error {
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

func (s *urlSource) current() *keySet { return s.set.Load() }

// run fetches until ctx ends; it is the source's only goroutine.
func (s *urlSource) run(ctx context.Context) {
	backoff := firstBackoff
	for {
		wait := s.maxRefresh
		if err := s.fetch(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			if s.current() == nil {
				wait, backoff = backoff, min(backoff*2, maxFirstBackoff)
			} else {
				wait = s.minRefresh
			}
		} else {
			backoff = firstBackoff
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// refreshForUnknownKid fetches at most once per minRefresh. Concurrent
// callers queue on the lock and share the fetch that ran while they waited.
func (s *urlSource) refreshForUnknownKid(ctx context.Context, kid string) bool {
	gen := s.generation.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.generation.Load() != gen {
		return true
	}
	if !s.lastAttempt.IsZero() && s.now().Sub(s.lastAttempt) < s.minRefresh {
		return false
	}
	if c := s.logger.Check(zapcore.DebugLevel, "refreshing key set for unknown kid"); c != nil {
		c.Write(zap.String("url", s.url), zap.String("kid", kid))
	}
	return s.fetchLocked(ctx) == nil
}

func (s *urlSource) fetch(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetchLocked(ctx)
}

// fetchLocked downloads and parses the set; on success it replaces the set
// in force. The caller holds mu, so only one fetch runs at a time.
func (s *urlSource) fetchLocked(ctx context.Context) error {
	s.lastAttempt = s.now()
	ks, err := s.download(ctx)
	if err != nil {
		s.logger.Warn("fetching key set failed", zap.String("url", s.url), zap.Error(err),
			zap.Bool("serving_previous_keys", s.current() != nil))
		return err
	}
	s.set.Store(ks)
	s.generation.Add(1)
	s.logger.Info("key set loaded", zap.String("url", s.url), zap.Strings("kids", ks.kids()))
	return nil
}

func (s *urlSource) download(ctx context.Context) (*keySet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxKeySetBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxKeySetBytes {
		return nil, fmt.Errorf("key set larger than %d bytes", maxKeySetBytes)
	}
	ks, skipped, err := parseKeySet(body)
	logSkipped(s.logger, s.url, skipped)
	return ks, err
}
