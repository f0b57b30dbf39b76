package jwtauth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Source is where signing keys come from: a file read once (FileSource)
// or a URL fetched in the background (URLSource). The verifier only asks
// for the current set and, for a token naming an unknown kid, for a
// refresh; the admin view asks for the status. Keeping it this small lets
// the remote source's inside be replaced (cache, stale-if-error) without
// touching verification. Only this package implements it.
type Source interface {
	// Status is what the admin endpoint shows of the source: nothing secret.
	Status() SourceStatus
	// current returns the keys in force, or nil if none was ever loaded.
	current() *keySet
	// refreshForUnknownKid may fetch the set again, rate-limited; it
	// reports whether the set in force is newer than when it was called.
	refreshForUnknownKid(ctx context.Context, kid string) bool
}

// FileSource is a key set read once from a local file.
type FileSource struct {
	path     string
	set      *keySet
	loadedAt time.Time
}

// LoadFile reads a JWKS, a single JWK or PEM public keys from path. A file
// that cannot be read or holds no usable key is an error; keys that are
// skipped, and kids that several keys share, are logged.
func LoadFile(path string, logger *zap.Logger) (*FileSource, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	ks, skipped, err := parseKeySet(data)
	logSkipped(logger, path, skipped)
	if err != nil {
		return nil, err
	}
	logDuplicateKids(logger, path, ks, "")
	return &FileSource{path: path, set: ks, loadedAt: time.Now()}, nil
}

// Status implements Source.
func (f *FileSource) Status() SourceStatus {
	t := f.loadedAt.UTC()
	return SourceStatus{File: f.path, Keys: f.set.status(), LastGood: &t}
}

func (f *FileSource) current() *keySet                                  { return f.set }
func (f *FileSource) refreshForUnknownKid(context.Context, string) bool { return false }

// maxSkippedLogged bounds the warnings one document's skipped keys cause;
// the rest are counted in one more line.
const maxSkippedLogged = 10

// logSkipped warns about the keys a document had that were left out. The
// source is a file path or an already redacted URL; kids and reasons come
// from the document, so they are escaped and bounded.
func logSkipped(logger *zap.Logger, source string, skipped []skippedKey) {
	for i, s := range skipped {
		if i == maxSkippedLogged {
			logger.Warn("skipping more keys of unsupported type", zap.String("source", source),
				zap.Int("count", len(skipped)-i))
			return
		}
		logger.Warn("skipping key of unsupported type", zap.String("source", source),
			zap.Int("index", s.index), zap.String("kid", logKid(s.kid)), zap.String("reason", logText(s.why, maxLoggedText)))
	}
}

// logSkippedOnce is logSkipped for a source read again and again: it
// warns only when the skipped keys differ from prev (what the previous
// load of the same source warned about), so a provider that keeps
// publishing an encryption key beside its signing keys is logged once per
// change of its set, not on every fetch. It returns what to pass as prev
// next time.
func logSkippedOnce(logger *zap.Logger, source string, skipped []skippedKey, prev string) string {
	h := sha256.New() // kids and reasons come from the document: keep a digest only
	for _, k := range skipped {
		fmt.Fprintf(h, "%d\x00%s\x00%s\x00", k.index, k.kid, k.why)
	}
	cur := ""
	if len(skipped) > 0 {
		cur = string(h.Sum(nil))
	}
	if cur != prev {
		logSkipped(logger, source, skipped)
	}
	return cur
}

// logDuplicateKids warns once per kid that several keys of the set share,
// and only when the set of such kids differs from prev (what the previous
// load of the same source warned about): a provider that keeps publishing
// the same duplicates is not logged again on every refresh. It returns
// what to pass as prev next time. The keys all stay in force: a token
// naming that kid is tried against each.
func logDuplicateKids(logger *zap.Logger, source string, ks *keySet, prev string) string {
	dups := ks.duplicateKids()
	names := make([]string, len(dups))
	for i, d := range dups {
		names[i] = d.kid
	}
	slices.Sort(names)
	for i, n := range names {
		names[i] = strconv.Quote(n)
	}
	cur := strings.Join(names, ",")
	if cur == prev {
		return cur
	}
	for _, d := range dups {
		logger.Warn("duplicate kid: several keys of the set share it", zap.String("source", source),
			zap.String("kid", logKid(d.kid)), zap.Int("keys", d.count))
	}
	return cur
}

// SourceStatus is what the admin endpoint shows of a source.
type SourceStatus struct {
	URL         string      `json:"url,omitempty"`
	File        string      `json:"file,omitempty"`
	JWKSURI     string      `json:"jwks_uri,omitempty"`
	Keys        []KeyStatus `json:"keys"`
	LastGood    *time.Time  `json:"last_good_fetch"`
	LastError   string      `json:"last_error,omitempty"`
	NextRefresh *time.Time  `json:"next_refresh,omitempty"`
	Stale       bool        `json:"stale"`
}

// KeyStatus names one key of a set: never its material.
type KeyStatus struct {
	Kid string `json:"kid"`
	Alg string `json:"alg,omitempty"`
	Kty string `json:"kty"`
}
