package jwtauth

import (
	"crypto/sha256"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// tokenCache remembers tokens that verified, so that a token pays for its
// signature check once and not on every request of its lifetime. It is
// keyed by the SHA-256 of the token (the token itself is never stored) and
// holds only what a hit needs: the payload, the expiry and the key that
// verified it. Failures are never cached.
type tokenCache struct {
	lru *lru.Cache[[sha256.Size]byte, cachedToken]
}

type cachedToken struct {
	payload    []byte
	exp        float64 // the token's exp, unix seconds
	thumbprint string  // the verifying key
}

func newTokenCache(size int) *tokenCache {
	c, _ := lru.New[[sha256.Size]byte, cachedToken](size) // errors only for size <= 0
	return &tokenCache{lru: c}
}

// lookup returns the payload of a cached token that is still valid: not
// past exp plus leeway, and its key still in one of the sources' sets (a
// key that leaves the set takes its tokens with it). A stale entry is
// removed.
func (c *tokenCache) lookup(key [sha256.Size]byte, now time.Time, leeway time.Duration, sources []Source) ([]byte, bool) {
	e, ok := c.lru.Get(key)
	if !ok {
		return nil, false
	}
	if float64(now.UnixNano())/1e9 > e.exp+leeway.Seconds() || !keyInForce(e.thumbprint, sources) {
		c.lru.Remove(key)
		return nil, false
	}
	return e.payload, true
}

func (c *tokenCache) add(key [sha256.Size]byte, e cachedToken) { c.lru.Add(key, e) }

func keyInForce(thumbprint string, sources []Source) bool {
	for _, s := range sources {
		if ks := s.current(); ks != nil && ks.has(thumbprint) {
			return true
		}
	}
	return false
}
