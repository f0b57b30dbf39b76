package jwtauth

import "time"

// What a URLSource reports about itself: the admin view's status, the
// keys in force and the time since the last good fetch.

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
