package introspect

import (
	"crypto/sha256"
	"time"

	"go.uber.org/zap"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
)

// After failFastAfter failures in a row, calls fail at once for an
// interval that starts at minFailFast and doubles with each failure after
// it, up to maxFailFast; a success ends it. An endpoint that is down then
// costs each request nothing, instead of a timeout, and is still asked
// again once per interval.
const (
	failFastAfter = 3
	minFailFast   = time.Second
	maxFailFast   = 30 * time.Second
)

// health is what the introspector knows of the endpoint; guarded by mu.
type health struct {
	failures    int
	interval    time.Duration
	until       time.Time // fail fast before this
	lastGood    time.Time
	lastError   string
	lastErrorAt time.Time
}

func (in *Introspector) failed(now time.Time, key [sha256.Size]byte, err error) {
	text := errorText(err)
	in.mu.Lock()
	h := &in.health
	h.failures++
	h.lastError, h.lastErrorAt = text, now
	if h.failures >= failFastAfter {
		h.interval = min(max(2*h.interval, minFailFast), maxFailFast)
		h.until = now.Add(h.interval)
	}
	interval := h.interval
	in.mu.Unlock()
	in.cfg.Logger.Warn("introspection call failed", zap.String("endpoint", jwtauth.RedactURL(in.cfg.Endpoint)),
		zap.String("token_sha256", hashPrefix(key)), zap.String("error", text), zap.Duration("failing_fast_for", interval))
}

func (in *Introspector) succeeded(now time.Time) {
	in.mu.Lock()
	in.health = health{lastGood: now, lastError: in.health.lastError, lastErrorAt: in.health.lastErrorAt}
	in.mu.Unlock()
}

// Status is what an admin view shows of an introspector: never a secret,
// a key or a token.
type Status struct {
	Endpoint         string     `json:"endpoint"`
	ClientID         string     `json:"client_id"`
	AuthMethod       string     `json:"auth_method"`
	Response         string     `json:"response"`
	LastGood         *time.Time `json:"last_good_call"`
	LastError        string     `json:"last_error,omitempty"`
	LastErrorAt      *time.Time `json:"last_error_at,omitempty"`
	FailingFastUntil *time.Time `json:"failing_fast_until,omitempty"`
	CachedAnswers    int        `json:"cached_answers"`
}

// Status reports the endpoint (redacted), the client, the last good call,
// the last error and whether calls are failing fast.
func (in *Introspector) Status() Status {
	in.mu.Lock()
	h := in.health
	in.mu.Unlock()
	s := Status{Endpoint: jwtauth.RedactURL(in.cfg.Endpoint), ClientID: in.cfg.ClientID, AuthMethod: in.cfg.AuthMethod,
		Response: ResponseJSON, LastError: h.lastError, CachedAnswers: in.cache.Len()}
	if in.cfg.Response == ResponseJWT {
		s.Response = ResponseJWT
	}
	at := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		t = t.UTC()
		return &t
	}
	s.LastGood, s.LastErrorAt = at(h.lastGood), at(h.lastErrorAt)
	if in.cfg.Now().Before(h.until) {
		s.FailingFastUntil = at(h.until)
	}
	return s
}

// PendingStatus is the Status of an introspector not built yet, whose
// endpoint is still to be read (from a discovery document): what cfg
// says of the client and the answers' form, with no endpoint, no call and
// nothing cached.
func PendingStatus(cfg Config) Status {
	cfg = cfg.withDefaults()
	s := Status{ClientID: cfg.ClientID, AuthMethod: cfg.AuthMethod, Response: ResponseJSON}
	if cfg.Response == ResponseJWT {
		s.Response = ResponseJWT
	}
	return s
}
