package apikey

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestKeyringSprayOfUnknownKeysReadsEachOnceWithinNegativeTTL(t *testing.T) {
	s, clk := newCountingStore(), newClock()
	k := NewKeyring(s, Options{Now: clk.Now, NegativeTTL: 5 * time.Second})
	defer k.Close()
	ctx := context.Background()
	keys := make([]string, 10000)
	for i := range keys {
		keys[i], _, _ = Generate(DefaultPrefix)
	}
	spray := func() int64 {
		before := s.reads.Load()
		for _, key := range keys {
			if _, err := k.Verify(ctx, key); !errors.Is(err, ErrInvalid) {
				t.Fatalf("unknown key: %v", err)
			}
		}
		return s.reads.Load() - before
	}
	if n := spray(); n > int64(len(keys)) {
		t.Fatalf("first spray: %d reads for %d keys", n, len(keys))
	}
	clk.Add(4 * time.Second)
	if n := spray(); n != 0 {
		t.Fatalf("the same keys again within NegativeTTL: %d reads, want 0", n)
	}
	clk.Add(time.Second)
	if n := spray(); n != int64(len(keys)) {
		t.Fatalf("after NegativeTTL: %d reads, want %d", n, len(keys))
	}
}

func TestKeyringOneReadForManyConcurrentRequestsWithOneNewKey(t *testing.T) {
	s, obs := newCountingStore(), newCounter()
	key, rec := addKey(t, s, "u1", KindUser, time.Now())
	k := NewKeyring(s, Options{Observer: obs})
	defer k.Close()
	gate := make(chan struct{})
	s.setGate(gate)
	var wg sync.WaitGroup
	errs := make([]error, 100)
	for i := range errs {
		wg.Go(func() {
			var r Record
			r, errs[i] = k.Verify(context.Background(), key)
			if errs[i] == nil && r.ID != rec.ID {
				errs[i] = errors.New("another record")
			}
		})
	}
	eventually(t, "100 requests waiting", func() bool { return obs.lookup(LookupMiss) == 100 })
	close(gate)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := s.reads.Load(); n != 1 {
		t.Fatalf("%d store reads for 100 concurrent requests with one key, want 1", n)
	}
}

func TestKeyringBoundsStoreReadsInProgress(t *testing.T) {
	s := newCountingStore()
	k := NewKeyring(s, Options{MaxReads: 3, Timeout: 10 * time.Second})
	defer k.Close()
	gate := make(chan struct{})
	s.setGate(gate)
	var wg sync.WaitGroup
	for range 20 {
		key, _, _ := Generate(DefaultPrefix)
		wg.Go(func() {
			if _, err := k.Verify(context.Background(), key); !errors.Is(err, ErrInvalid) {
				t.Errorf("unknown key: %v", err)
			}
		})
	}
	eventually(t, "3 reads in progress", func() bool { return s.inFlight.Load() == 3 })
	time.Sleep(20 * time.Millisecond) // no fourth joins
	if n := s.maxInFlight.Load(); n != 3 {
		t.Fatalf("%d reads at once, MaxReads 3", n)
	}
	close(gate)
	wg.Wait()
	if n := s.maxInFlight.Load(); n > 3 || s.reads.Load() != 20 {
		t.Fatalf("%d reads at once (MaxReads 3), %d reads for 20 keys", n, s.reads.Load())
	}
}

func TestKeyringUnavailableWhenNoReadSlotFreesWithinTimeout(t *testing.T) {
	s, obs := newCountingStore(), newCounter()
	k := NewKeyring(s, Options{MaxReads: 1, Timeout: 50 * time.Millisecond, Observer: obs})
	defer k.Close()
	gate := make(chan struct{})
	s.stubborn = true // a read that holds its slot past Timeout
	s.setGate(gate)
	slow, _, _ := Generate(DefaultPrefix)
	done := make(chan error, 1)
	go func() { _, err := k.Verify(context.Background(), slow); done <- err }()
	eventually(t, "the slot taken", func() bool { return s.inFlight.Load() == 1 })
	other, _, _ := Generate(DefaultPrefix)
	start := time.Now()
	_, err := k.Verify(context.Background(), other)
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalid) {
		t.Fatalf("no read slot: %v, want ErrUnavailable", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("waited %v for a slot, Timeout 50ms", took)
	}
	close(gate)
	<-done
	obs.mu.Lock()
	busy, unavailable := obs.reads[ReadBusy], obs.outcomes[OutcomeUnavailable]
	obs.mu.Unlock()
	if busy != 1 || unavailable != 1 {
		t.Fatalf("observer told %d busy reads, %d unavailable outcomes; want 1, 1", busy, unavailable)
	}
	// the busy answer was not cached
	if _, err := k.Verify(context.Background(), other); !errors.Is(err, ErrInvalid) {
		t.Fatalf("once the store answers: %v, want ErrInvalid", err)
	}
}

func TestKeyringNeverCachesAStoreError(t *testing.T) {
	s := newCountingStore()
	key, _ := addKey(t, s, "u1", KindUser, time.Now())
	unknown, _, _ := Generate(DefaultPrefix)
	k := NewKeyring(s, Options{})
	defer k.Close()
	s.setFail(errors.New("connection refused"))
	for _, kk := range []string{key, unknown} {
		if _, err := k.Verify(context.Background(), kk); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalid) {
			t.Fatalf("store down: %v, want ErrUnavailable", err)
		}
	}
	s.setFail(nil)
	if _, err := k.Verify(context.Background(), key); err != nil {
		t.Fatalf("store back: %v", err)
	}
	if _, err := k.Verify(context.Background(), unknown); !errors.Is(err, ErrInvalid) {
		t.Fatalf("store back, unknown key: %v", err)
	}
	if n := s.reads.Load(); n != 4 {
		t.Fatalf("%d reads, want 4: the failures were cached", n)
	}
}

func TestKeyringRefusesARevokedKeyRightAfterForget(t *testing.T) {
	s := newCountingStore()
	key, rec := addKey(t, s, "u1", KindUser, time.Now())
	k := NewKeyring(s, Options{MaxAge: time.Hour})
	defer k.Close()
	ctx := context.Background()
	if _, err := k.Verify(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Revoke(ctx, rec.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	// the record is trusted for MaxAge: the revocation is not seen ...
	if _, err := k.Verify(ctx, key); err != nil {
		t.Fatalf("cached record: %v", err)
	}
	// ... until it is forgotten
	k.Forget(rec.ID)
	if _, err := k.Verify(ctx, key); !errors.Is(err, ErrInvalid) {
		t.Fatalf("revoked key after Forget: %v, want ErrInvalid", err)
	}
	if n := s.reads.Load(); n != 2 {
		t.Fatalf("%d reads, want 2", n)
	}
}

func TestKeyringDoesNotCacheAReadBegunBeforeForget(t *testing.T) {
	s := newCountingStore()
	key, rec := addKey(t, s, "u1", KindUser, time.Now())
	k := NewKeyring(s, Options{MaxAge: time.Hour})
	defer k.Close()
	ctx := context.Background()
	gate := make(chan struct{})
	s.setGate(gate)
	done := make(chan error, 1)
	go func() { _, err := k.Verify(ctx, key); done <- err }()
	eventually(t, "the read in progress", func() bool { return s.inFlight.Load() == 1 })
	// revoked and forgotten while the read (which saw it in force) runs
	if _, err := s.Revoke(ctx, rec.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	k.Forget(rec.ID)
	close(gate)
	<-done
	s.setGate(nil)
	if _, err := k.Verify(ctx, key); !errors.Is(err, ErrInvalid) {
		t.Fatalf("after Forget during a read: %v, want ErrInvalid", err)
	}
}

func TestKeyringTrustsARecordForMaxAgeAndCachesItUnusable(t *testing.T) {
	s, clk := newCountingStore(), newClock()
	key, rec := addKey(t, s, "u1", KindUser, clk.Now())
	k := NewKeyring(s, Options{Now: clk.Now, MaxAge: 30 * time.Second})
	defer k.Close()
	ctx := context.Background()
	if _, err := k.Verify(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Revoke(ctx, rec.ID, clk.Now()); err != nil {
		t.Fatal(err)
	}
	clk.Add(30*time.Second - time.Nanosecond)
	if _, err := k.Verify(ctx, key); err != nil || s.reads.Load() != 1 {
		t.Fatalf("within MaxAge: %v after %d reads, want the cached record", err, s.reads.Load())
	}
	clk.Add(time.Nanosecond)
	if _, err := k.Verify(ctx, key); !errors.Is(err, ErrInvalid) || s.reads.Load() != 2 {
		t.Fatalf("at MaxAge: %v after %d reads, want ErrInvalid from a second read", err, s.reads.Load())
	}
	// the revoked record is held as found: no read per request
	for range 10 {
		if _, err := k.Verify(ctx, key); !errors.Is(err, ErrInvalid) {
			t.Fatal(err)
		}
	}
	if n := s.reads.Load(); n != 2 {
		t.Fatalf("%d reads for a cached revoked record, want 2", n)
	}
}

func TestKeyringHonoursExpiryOfACachedRecord(t *testing.T) {
	s, clk := newCountingStore(), newClock()
	key, id, _ := Generate(DefaultPrefix)
	if err := s.Create(context.Background(), Record{ID: id, Hash: HashKey(key), Subject: "u1", Kind: KindService,
		Created: clk.Now(), Expires: clk.Now().Add(10 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	k := NewKeyring(s, Options{Now: clk.Now, MaxAge: time.Hour})
	defer k.Close()
	if r, err := k.Verify(context.Background(), key); err != nil || r.Kind != KindService {
		t.Fatalf("before expiry: %+v %v", r, err)
	}
	clk.Add(10 * time.Second)
	if _, err := k.Verify(context.Background(), key); !errors.Is(err, ErrInvalid) {
		t.Fatalf("at expiry: %v, want ErrInvalid", err)
	}
}

func TestKeyringForgetAllDropsUnknownHashesToo(t *testing.T) {
	s := newCountingStore()
	k := NewKeyring(s, Options{NegativeTTL: time.Hour})
	defer k.Close()
	ctx := context.Background()
	key, id, _ := Generate(DefaultPrefix)
	if _, err := k.Verify(ctx, key); !errors.Is(err, ErrInvalid) {
		t.Fatal(err)
	}
	// imported by hash after it was tried
	if err := s.Import(ctx, []Record{{ID: id, Hash: HashKey(key), Subject: "u1", Kind: KindUser, Created: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Verify(ctx, key); !errors.Is(err, ErrInvalid) {
		t.Fatalf("within NegativeTTL: %v, want the cached ErrInvalid", err)
	}
	k.ForgetAll()
	if _, err := k.Verify(ctx, key); err != nil {
		t.Fatalf("after ForgetAll: %v", err)
	}
}

func TestKeyringWritesLastUsedOnceAMinuteNotPerRequest(t *testing.T) {
	s, clk := newCountingStore(), newClock()
	key, rec := addKey(t, s, "u1", KindUser, clk.Now())
	k := NewKeyring(s, Options{Now: clk.Now, FlushEvery: 2 * time.Millisecond})
	defer k.Close()
	ctx := context.Background()
	use := func(n int) {
		for range n {
			if _, err := k.Verify(ctx, key); err != nil {
				t.Fatal(err)
			}
		}
	}
	use(1000)
	eventually(t, "the first write", func() bool { return s.writesOf(rec.ID) == 1 })
	use(1000)
	time.Sleep(30 * time.Millisecond) // many flush rounds
	if n := s.writesOf(rec.ID); n != 1 {
		t.Fatalf("%d writes within one minute, want 1", n)
	}
	got, _ := s.Lookup(ctx, rec.Hash)
	if want := clk.Now().Truncate(time.Minute); !got.LastUsed.Equal(want) {
		t.Fatalf("last used %v, want %v (minute precision)", got.LastUsed, want)
	}
	clk.Add(time.Minute)
	use(1000)
	eventually(t, "the next minute's write", func() bool { return s.writesOf(rec.ID) == 2 })
	got, _ = s.Lookup(ctx, rec.Hash)
	if want := clk.Now().Truncate(time.Minute); !got.LastUsed.Equal(want) {
		t.Fatalf("last used %v, want %v", got.LastUsed, want)
	}
}

func TestKeyringCloseWritesLastUsedTimesNotYetWritten(t *testing.T) {
	s, clk := newCountingStore(), newClock()
	key, rec := addKey(t, s, "u1", KindUser, clk.Now())
	k := NewKeyring(s, Options{Now: clk.Now, FlushEvery: time.Hour})
	if _, err := k.Verify(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	if n := s.writesOf(rec.ID); n != 0 {
		t.Fatalf("%d writes before the flush", n)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Lookup(context.Background(), rec.Hash)
	if !got.LastUsed.Equal(clk.Now().Truncate(time.Minute)) || s.writesOf(rec.ID) != 1 {
		t.Fatalf("after Close: last used %v, %d writes", got.LastUsed, s.writesOf(rec.ID))
	}
	// used after Close: still verified, no goroutine started (TestMain's goleak)
	clk.Add(time.Minute)
	if _, err := k.Verify(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestKeyringTellsItsObserverOutcomesWithoutTheKey(t *testing.T) {
	s, obs := newCountingStore(), newCounter()
	user, _ := addKey(t, s, "u1", KindUser, time.Now())
	service, _ := addKey(t, s, "svc", KindService, time.Now())
	unknown, _, _ := Generate(DefaultPrefix)
	k := NewKeyring(s, Options{Observer: obs})
	defer k.Close()
	for _, key := range []string{user, user, service, unknown, unknown, "bad key"} {
		_, _ = k.Verify(context.Background(), key)
	}
	s.setFail(errors.New("down"))
	other, _, _ := Generate(DefaultPrefix)
	_, _ = k.Verify(context.Background(), other)
	obs.mu.Lock()
	defer obs.mu.Unlock()
	want := map[Outcome]int{OutcomeValidUser: 2, OutcomeValidService: 1, OutcomeInvalid: 3, OutcomeUnavailable: 1}
	for o, n := range want {
		if obs.outcomes[o] != n {
			t.Errorf("%v: %d, want %d", o, obs.outcomes[o], n)
		}
	}
	if obs.lookups[LookupHit] != 1 || obs.lookups[LookupNegativeHit] != 1 || obs.lookups[LookupMiss] != 4 {
		t.Errorf("lookups %v", obs.lookups)
	}
	if obs.reads[ReadFound] != 2 || obs.reads[ReadNotFound] != 1 || obs.reads[ReadFailed] != 1 {
		t.Errorf("reads %v", obs.reads)
	}
}

// A key created on another node is announced by its id, which this
// keyring has never seen: forgetting that id must let the key in at once
// even if a client tried it a moment before it existed.
func TestKeyringForgetOfANewIDLetsTheKeyInAtOnce(t *testing.T) {
	s := newCountingStore()
	k := NewKeyring(s, Options{NegativeTTL: time.Hour})
	defer k.Close()
	ctx := context.Background()
	key, id, _ := Generate(DefaultPrefix)
	if _, err := k.Verify(ctx, key); !errors.Is(err, ErrInvalid) {
		t.Fatal(err)
	}
	if err := s.Create(ctx, Record{ID: id, Hash: HashKey(key), Subject: "u1", Kind: KindUser, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	k.Forget(id)
	if _, err := k.Verify(ctx, key); err != nil {
		t.Fatalf("after Forget of the new id: %v", err)
	}
}
