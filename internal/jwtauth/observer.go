package jwtauth

// Observer is told what the core does, so that the glue can count it
// (Prometheus, in caddymodule) without the core importing a metrics
// library. Its methods are called on the request path and must not block.
// A nil Observer is allowed: nothing is told.
type Observer interface {
	// KeySetFetched is called after each fetch of a remote key set.
	KeySetFetched(ok bool)
	// TokenCacheLookup is called for each lookup in the verified-token
	// cache, when the cache is on.
	TokenCacheLookup(hit bool)
}
