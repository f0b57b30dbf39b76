package apikey

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// No goroutine of a keyring outlives the tests (Close stops the flusher).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// countingStore is a real Memory store that counts the reads and writes
// it is asked for; gate, when set, holds every Lookup until it is closed
// (or its context ends, unless stubborn);
// fail, when set, is every Lookup's answer.
type countingStore struct {
	*Memory
	reads, inFlight, maxInFlight atomic.Int64
	mu                           sync.Mutex
	gate                         chan struct{}
	fail                         error
	stubborn                     bool // the gate ignores the context
	touches                      []map[string]time.Time
}

func newCountingStore() *countingStore { return &countingStore{Memory: NewMemory()} }

func (c *countingStore) Lookup(ctx context.Context, h Hash) (Record, error) {
	c.reads.Add(1)
	n := c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	for {
		m := c.maxInFlight.Load()
		if n <= m || c.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	c.mu.Lock()
	gate, fail, stubborn := c.gate, c.fail, c.stubborn
	c.mu.Unlock()
	// the answer is read first and delivered late, as by a slow network
	r, err := c.Memory.Lookup(ctx, h)
	if gate != nil && stubborn {
		<-gate
	} else if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return Record{}, ctx.Err()
		}
	}
	if fail != nil {
		return Record{}, fail
	}
	return r, err
}

func (c *countingStore) TouchLastUsed(ctx context.Context, used map[string]time.Time) error {
	c.mu.Lock()
	cp := make(map[string]time.Time, len(used))
	for id, at := range used {
		cp[id] = at
	}
	c.touches = append(c.touches, cp)
	c.mu.Unlock()
	return c.Memory.TouchLastUsed(ctx, used)
}

// writesOf counts the TouchLastUsed calls that named id.
func (c *countingStore) writesOf(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, m := range c.touches {
		if _, ok := m[id]; ok {
			n++
		}
	}
	return n
}

func (c *countingStore) setGate(g chan struct{}) { c.mu.Lock(); c.gate = g; c.mu.Unlock() }
func (c *countingStore) setFail(err error)       { c.mu.Lock(); c.fail = err; c.mu.Unlock() }

// clock is a fake clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 12, 5, 12, 0, 30, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// counter is an Observer that counts what it is told.
type counter struct {
	mu       sync.Mutex
	outcomes map[Outcome]int
	lookups  map[Lookup]int
	reads    map[Read]int
}

func newCounter() *counter {
	return &counter{outcomes: map[Outcome]int{}, lookups: map[Lookup]int{}, reads: map[Read]int{}}
}

func (c *counter) Verified(o Outcome)                { c.mu.Lock(); c.outcomes[o]++; c.mu.Unlock() }
func (c *counter) CacheLookup(l Lookup)              { c.mu.Lock(); c.lookups[l]++; c.mu.Unlock() }
func (c *counter) StoreRead(r Read, _ time.Duration) { c.mu.Lock(); c.reads[r]++; c.mu.Unlock() }

func (c *counter) lookup(l Lookup) int { c.mu.Lock(); defer c.mu.Unlock(); return c.lookups[l] }

// addKey stores a new key of kind for subject and returns it with its
// record.
func addKey(t *testing.T, s Store, subject string, kind Kind, created time.Time) (string, Record) {
	t.Helper()
	key, id, err := Generate(DefaultPrefix)
	if err != nil {
		t.Fatal(err)
	}
	r := Record{ID: id, Hash: HashKey(key), Subject: subject, Kind: kind, Created: created}
	if err := s.Create(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return key, r.Stored()
}

// eventually polls cond for up to 5s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not within 5s", what)
}
