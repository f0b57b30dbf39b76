package jwtauth

import (
	"crypto/sha256"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// tokenCache remembers tokens that verified, so that a token pays for its
// signature check once and not on every request of its lifetime. It is
// keyed by the SHA-256 of the token (the token itself is never stored) and
// holds only what a hit needs: the payload, the expiry, the header's alg
// and kid, and the key that verified it. Failures are never cached.
type tokenCache struct {
	lru *lru.Cache[[sha256.Size]byte, cachedToken]
}

type cachedToken struct {
	payload    []byte
	exp        float64 // the token's exp, unix seconds
	alg        string  // the token's header alg
	kid        string  // the token's header kid, "" when it names none
	thumbprint string  // the verifying key's material (RFC 7638)
}

func newTokenCache(size int) *tokenCache {
	c, _ := lru.New[[sha256.Size]byte, cachedToken](size) // errors only for size <= 0
	return &tokenCache{lru: c}
}

// lookup returns the payload of a cached token that a miss would still
// accept: not past exp plus leeway, and its key still one a miss would try
// for it (keyStillTried). A stale entry is removed, and the caller then
// verifies the token as a miss does, so a refused hit gets exactly a
// miss's answer.
func (c *tokenCache) lookup(key [sha256.Size]byte, now time.Time, leeway time.Duration, sources []Source) ([]byte, bool) {
	e, ok := c.lru.Get(key)
	if !ok {
		return nil, false
	}
	if float64(now.UnixNano())/1e9 > e.exp+leeway.Seconds() || !keyStillTried(&e, sources) {
		c.lru.Remove(key)
		return nil, false
	}
	return e.payload, true
}

func (c *tokenCache) add(key [sha256.Size]byte, e cachedToken) { c.lru.Add(key, e) }

// keyStillTried reports whether a miss would try the key that verified the
// cached token: among the first maxCandidateKeys keys the sources' sets in
// force offer for the token's alg and kid (candidates, in the same order)
// is one of the same material. The same material and the same alg verify
// the same signature, so this answers as a miss would without checking it
// again, by comparing kids, algs and the thumbprints the sets already
// hold. A key that leaves its set, is republished under another kid or
// with another alg, or falls behind the keys a kid-less token may try,
// takes its tokens with it.
func keyStillTried(e *cachedToken, sources []Source) bool {
	n := 0
	for _, s := range sources {
		ks := s.current()
		if ks == nil {
			continue
		}
		for i := range ks.keys {
			k := &ks.keys[i]
			if !k.admits(e.alg, e.kid) {
				continue
			}
			if k.thumbprint == e.thumbprint {
				return true
			}
			if n++; n == maxCandidateKeys {
				return false
			}
		}
	}
	return false
}
