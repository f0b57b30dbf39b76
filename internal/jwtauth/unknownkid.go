package jwtauth

import (
	"context"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// The unknown-kid budget of a URLSource and the fetches it allows.

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
