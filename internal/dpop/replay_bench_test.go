package dpop

import (
	"crypto/sha256"
	"encoding/binary"
	"strconv"
	"testing"
	"time"
)

// BenchmarkReplayCacheUse is the replay cache's cost per proof in the
// steady state of a busy process: 64 keys take turns, 1,000 proofs a
// second of iat, on a cache of 10,000 that is full and forgets.
func BenchmarkReplayCacheUse(b *testing.B) {
	c := NewReplayCache(10_000)
	c.SetWindow(90 * time.Second)
	thumbs := make([]string, 64)
	for i := range thumbs {
		thumbs[i] = "thumb-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		var key [sha256.Size]byte
		binary.BigEndian.PutUint64(key[:], uint64(i))
		iat := 1_700_000_000 + float64(i/1000)
		c.use(thumbs[i%len(thumbs)], key, iat, iat)
	}
}
