package introspect

import "time"

// Observer is told what the introspector does, so that the glue can count
// it (Prometheus, in caddymodule) without this package importing a
// metrics library. Its methods are called on the request path and must
// not block. A nil Observer is allowed.
type Observer interface {
	// Called is told of each call to the endpoint: its result and how
	// long it took.
	Called(result Result, took time.Duration)
	// CacheLookup is told of each lookup in the answer cache: a hit on a
	// positive (active) answer, a hit on a negative one (a cached
	// refusal: active false, or refused whatever the rules), or a miss.
	CacheLookup(result CacheResult)
}

// CacheResult is what one lookup in the answer cache found.
type CacheResult uint8

const (
	// CacheMiss: no answer cached, or it had expired; the endpoint is
	// asked (or a call in progress joined).
	CacheMiss CacheResult = iota
	// CacheHitPositive: an active answer, whose claims the route's rules
	// then check.
	CacheHitPositive
	// CacheHitNegative: a cached refusal (active was not true, or the
	// answer was refused whatever the rules), kept for negative_ttl.
	CacheHitNegative
)

func (r CacheResult) String() string {
	switch r {
	case CacheHitPositive:
		return "hit_positive"
	case CacheHitNegative:
		return "hit_negative"
	}
	return "miss"
}

// Result is what one call to the endpoint brought.
type Result uint8

const (
	// ResultActive: an active answer (whatever the claim rules then say).
	ResultActive Result = iota
	// ResultInactive: active was not true, or the answer was refused
	// whatever the rules (a refresh token, members named twice).
	ResultInactive
	// ResultFailed: no usable answer (transport, status, body, timeout).
	ResultFailed
	// ResultFailFast: no call was made, the endpoint failing lately.
	ResultFailFast
	// ResultBusy: no call slot freed within the timeout.
	ResultBusy
)

func (r Result) String() string {
	switch r {
	case ResultActive:
		return "active"
	case ResultInactive:
		return "inactive"
	case ResultFailed:
		return "failed"
	case ResultFailFast:
		return "fail_fast"
	}
	return "busy"
}
