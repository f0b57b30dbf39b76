package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/workspace-edge/caddy-workspace-profile/internal/pgtest"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
	"github.com/workspace-edge/caddy-workspace-profile/profile/pgstore"
)

// cacheNode is a store with a profile cache on a shared schema, as one
// Caddy node has it, its DSN given (a proxy's, to cut it).
func cacheNode(t *testing.T, dsn, schema string, poll time.Duration) *pgstore.Store {
	t.Helper()
	return cacheNodeWith(t, dsn, pgstore.Options{Schema: schema, Timeout: 2 * time.Second, Poll: poll})
}

// cacheNodeWith is cacheNode with options of its own.
func cacheNodeWith(t *testing.T, dsn string, opts pgstore.Options) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(context.Background(), dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// openTx is a transaction of another session that has run sql; it is
// rolled back, and its connection closed, at the test's end.
func openTx(t *testing.T, sql string) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(ctx) })
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	if _, err := tx.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
	return tx
}

// setFirst is an update setting the first name.
func setFirst(name string) profile.UpdateFunc {
	return func(cur profile.Profile, _ bool) (profile.Profile, bool, error) {
		cur.FirstName = name
		return cur, true, nil
	}
}

// ifVersion is setFirst under an If-Match on version.
func ifVersion(version uint64, name string) profile.UpdateFunc {
	return func(cur profile.Profile, exists bool) (profile.Profile, bool, error) {
		if !exists || cur.Version != version {
			return cur, false, profile.ErrPreconditionFailed
		}
		cur.FirstName = name
		return cur, true, nil
	}
}

func mustUpdate(t *testing.T, s *pgstore.Store, user string, fn profile.UpdateFunc) profile.Profile {
	t.Helper()
	p, err := s.Update(context.Background(), user, fn)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// warm reads user on s until the read is a cache hit (the cache vouched
// for once its listener listens or its first poll ends).
func warm(t *testing.T, s *pgstore.Store, user string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		before := s.CacheStats().Hits
		if _, err := s.Get(context.Background(), user); err != nil {
			t.Fatal(err)
		}
		if s.CacheStats().Hits > before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never became a cache hit: %+v", user, s.CacheStats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// seesName waits until s reads user's first name as want, and returns
// how long that took.
func seesName(t *testing.T, s *pgstore.Store, user, want string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		p, err := s.Get(context.Background(), user)
		if err == nil && p.FirstName == want {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s still reads %q (%v) after %v, want %q; cache %+v", user, p.FirstName, err, within, want, s.CacheStats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCacheSeesOtherNodesWriteByNotification: with a poll too slow to
// matter, a write on A reaches B's cache by notification within a
// second, and B's next reads are hits again.
func TestCacheSeesOtherNodesWriteByNotification(t *testing.T) {
	schema := freshSchema(t)
	a, b := cacheNode(t, dsn(t), schema, time.Minute), cacheNode(t, dsn(t), schema, time.Minute)
	mustUpdate(t, a, "u1", setFirst("one"))
	warm(t, b, "u1")
	waitListening(t, b)
	mustUpdate(t, a, "u1", setFirst("two"))
	took := seesName(t, b, "u1", "two", time.Second)
	t.Logf("B read A's write after %v", took)
	st := b.CacheStats()
	if st.Invalidations == 0 || st.Notifications == 0 || st.Poll.Caught != 0 {
		t.Fatalf("B's cache: %+v", st)
	}
	warm(t, b, "u1")
}

// TestCachePollBringsLostNotifications: A's notifications are lost and
// B's listener hears nothing; B's poll brings the write within its
// interval and a second, and counts what it caught.
func TestCachePollBringsLostNotifications(t *testing.T) {
	schema := freshSchema(t)
	const poll = 300 * time.Millisecond
	a, b := cacheNode(t, dsn(t), schema, poll), cacheNode(t, dsn(t), schema, poll)
	mustUpdate(t, a, "u1", setFirst("one"))
	warm(t, b, "u1")
	pgstore.LoseNotifications(a)
	mustUpdate(t, a, "u1", setFirst("two"))
	took := seesName(t, b, "u1", "two", poll+time.Second)
	t.Logf("B read A's write after %v with notifications lost", took)
	if st := b.CacheStats(); st.Poll.Caught == 0 || st.Poll.Polls == 0 {
		t.Fatalf("B's poll: %+v", st.Poll)
	}
}

// TestCacheDroppedWhenListenerReconnects: B's listening connection is
// killed and a write lands before it listens again; with a poll too slow
// to help, B drops its cache on reconnecting and reads the write.
func TestCacheDroppedWhenListenerReconnects(t *testing.T) {
	schema := freshSchema(t)
	a, b := cacheNode(t, dsn(t), schema, time.Minute), cacheNode(t, dsn(t), schema, time.Minute)
	mustUpdate(t, a, "u1", setFirst("one"))
	warm(t, b, "u1")
	waitListening(t, b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	pid := b.ListenerHealth().PID
	if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, a, "u1", setFirst("two"))
	took := seesName(t, b, "u1", "two", 5*time.Second)
	t.Logf("B read the write made while its listener was down after %v", took)
	if h := b.ListenerHealth(); h.Connects < 2 || h.PID == pid {
		t.Fatalf("B's listener did not reconnect: %+v", h)
	}
}

// TestCacheNotVouchedReadsDatabase: once B can reach the database
// neither by its listener nor by its poll, it stops answering from its
// cache (whose entries it cannot vouch for) and reads the database, here
// unreachable: ErrUnavailable, not the cached profile.
func TestCacheNotVouchedReadsDatabase(t *testing.T) {
	schema := freshSchema(t)
	const poll = 200 * time.Millisecond
	a := cacheNode(t, dsn(t), schema, poll)
	mustUpdate(t, a, "u1", setFirst("one"))
	px, proxied := pgtest.NewProxyFor(t, dsn(t))
	b := cacheNode(t, proxied, schema, poll)
	warm(t, b, "u1")
	px.Cut()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := b.Get(context.Background(), "u1")
		if errors.Is(err, profile.ErrUnavailable) {
			break
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("B still answers from its cache with the database cut: %v %+v", err, b.CacheStats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := b.CacheStats(); st.Vouched {
		t.Fatalf("B vouches for its cache with the database cut: %+v", st)
	}
}

// TestOwnWriteReadAtOnce: a node reads its own write at once, from its
// cache, whatever its poll and notifications do.
func TestOwnWriteReadAtOnce(t *testing.T) {
	a := cacheNode(t, dsn(t), freshSchema(t), time.Minute)
	mustUpdate(t, a, "u1", setFirst("one"))
	warm(t, a, "u1")
	pgstore.LoseNotifications(a)
	for i := range 20 {
		want := fmt.Sprint("n", i)
		mustUpdate(t, a, "u1", setFirst(want))
		hits := a.CacheStats().Hits
		p, err := a.Get(context.Background(), "u1")
		if err != nil || p.FirstName != want || p.Version != uint64(i+2) {
			t.Fatalf("write %d read back as %+v, %v", i, p, err)
		}
		if a.CacheStats().Hits != hits+1 {
			t.Fatalf("write %d was not read from the cache", i)
		}
	}
}

// TestStaleGuessNeverDecidesIfMatch: B's cache holds version 1 while
// the database holds 2 (A's notifications lost, polls a minute apart).
// An If-Match on 2 succeeds on B (the cached refusal is checked against
// the database), and an If-Match on 1 fails (the write's version check).
func TestStaleGuessNeverDecidesIfMatch(t *testing.T) {
	schema := freshSchema(t)
	a, b := cacheNode(t, dsn(t), schema, time.Minute), cacheNode(t, dsn(t), schema, time.Minute)
	mustUpdate(t, a, "u1", setFirst("one"))
	warm(t, b, "u1")
	waitListening(t, b)
	pgstore.LoseNotifications(a)
	mustUpdate(t, a, "u1", setFirst("two"))
	if p, _ := b.Get(context.Background(), "u1"); p.Version != 1 {
		t.Fatalf("the test needs B's cache stale, it reads %+v", p)
	}
	if _, err := b.Update(context.Background(), "u1", ifVersion(1, "stale")); !errors.Is(err, profile.ErrPreconditionFailed) {
		t.Fatalf("If-Match on the stale version: %v", err)
	}
	p, err := b.Update(context.Background(), "u1", ifVersion(2, "three"))
	if err != nil || p.Version != 3 || p.FirstName != "three" {
		t.Fatalf("If-Match on the database's version: %+v, %v", p, err)
	}
}

// oneWinner fails unless exactly one of a round's concurrent writes
// succeeded and every other failed with lost.
func oneWinner(t *testing.T, round int, errs []error, lost error) {
	t.Helper()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, lost):
			t.Fatalf("round %d: %v", round, err)
		}
	}
	if won != 1 {
		t.Fatalf("round %d: %d winners", round, won)
	}
}

// TestIfMatchRacesAcrossNodesHaveOneWinner: three nodes update one
// profile at once, each under an If-Match on the version it read; each
// round exactly one wins, and no update is lost.
func TestIfMatchRacesAcrossNodesHaveOneWinner(t *testing.T) {
	schema := freshSchema(t)
	nodes := []*pgstore.Store{cacheNode(t, dsn(t), schema, time.Second), cacheNode(t, dsn(t), schema, time.Second), cacheNode(t, dsn(t), schema, time.Second)}
	mustUpdate(t, nodes[0], "u1", setFirst("start"))
	const rounds = 30
	for round := range rounds {
		version := uint64(round + 1)
		var wg sync.WaitGroup
		results := make([]error, 3*len(nodes))
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, results[i] = nodes[i%len(nodes)].Update(context.Background(), "u1", ifVersion(version, fmt.Sprint("r", round, "n", i)))
			}()
		}
		wg.Wait()
		oneWinner(t, round, results, profile.ErrPreconditionFailed)
	}
	p, err := nodes[2].Update(context.Background(), "u1", ifVersion(rounds+1, "end"))
	if err != nil || p.Version != rounds+2 {
		t.Fatalf("after %d rounds: %+v, %v", rounds, p, err)
	}
}

// TestCachedNodesNeverHoldANameTwice: many nodes give one user name to
// different users at once; the database lets exactly one have it.
func TestCachedNodesNeverHoldANameTwice(t *testing.T) {
	schema := freshSchema(t)
	a, b := cacheNode(t, dsn(t), schema, time.Second), cacheNode(t, dsn(t), schema, time.Second)
	for round := range 10 {
		name := fmt.Sprint("name", round)
		var wg sync.WaitGroup
		errs := make([]error, 6)
		for i := range errs {
			s := a
			if i%2 == 1 {
				s = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = s.Update(context.Background(), fmt.Sprint("r", round, "u", i), func(cur profile.Profile, _ bool) (profile.Profile, bool, error) {
					cur.UserName = name
					return cur, true, nil
				})
			}()
		}
		wg.Wait()
		oneWinner(t, round, errs, profile.ErrUserNameTaken)
	}
}

// TestImportDropsOtherNodesCaches: an import announces that every cache
// must be dropped, and B reads the imported profile within a second.
func TestImportDropsOtherNodesCaches(t *testing.T) {
	schema := freshSchema(t)
	a, b := cacheNode(t, dsn(t), schema, time.Minute), cacheNode(t, dsn(t), schema, time.Minute)
	mustUpdate(t, a, "u1", setFirst("one"))
	warm(t, b, "u1")
	waitListening(t, b)
	if err := a.Import(context.Background(), []profile.Profile{{UserID: "u1", FirstName: "imported"}}); err != nil {
		t.Fatal(err)
	}
	took := seesName(t, b, "u1", "imported", time.Second)
	t.Logf("B read the import after %v", took)
}

// TestStoreWithoutCache: Options.Cache negative turns the cache off;
// every read goes to the database, so another node's write is read at
// once even with every notification lost.
func TestStoreWithoutCache(t *testing.T) {
	schema := freshSchema(t)
	a := cacheNode(t, dsn(t), schema, time.Minute)
	b, err := pgstore.Open(context.Background(), dsn(t), pgstore.Options{Schema: schema, Cache: -1, Poll: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pgstore.LoseNotifications(a)
	for i := range 5 {
		mustUpdate(t, a, "u1", setFirst(fmt.Sprint("n", i)))
		if p, err := b.Get(context.Background(), "u1"); err != nil || p.FirstName != fmt.Sprint("n", i) {
			t.Fatalf("write %d read as %+v, %v", i, p, err)
		}
	}
	if st := b.CacheStats(); st.Enabled || st.Hits != 0 || st.Poll.Started {
		t.Fatalf("a store without cache: %+v", st)
	}
}

// waitPollRan waits until a poll of schema's changed profiles has run on
// the server since since (its answer may still be on its way).
func waitPollRan(t *testing.T, schema string, since time.Time) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle' AND state_change > $1 "+
			"AND query LIKE '%pg_visible_in_snapshot%' AND strpos(query, $2) > 0", since, schema+`".profiles`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no poll of the profiles ran")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLatePollAnswerVouchesFromItsStart: B's poll reads the database,
// then its answer is held on the network while A writes. The poll did not
// see the write, so the time it vouches for B's cache from (the bound of
// B's staleness) must be before the write, not when the answer arrived.
func TestLatePollAnswerVouchesFromItsStart(t *testing.T) {
	schema := freshSchema(t)
	ctx := context.Background()
	a := cacheNode(t, dsn(t), schema, time.Minute)
	pgstore.LoseNotifications(a)
	mustUpdate(t, a, "u1", setFirst("one"))
	px, proxied := pgtest.NewProxyFor(t, dsn(t))
	// one connection, which has the poll's statement prepared before the
	// hold: the poll held is one round trip, its snapshot taken before A's
	// write
	b := cacheNodeWith(t, proxied, pgstore.Options{Schema: schema, Timeout: 10 * time.Second, Poll: time.Minute, MaxConns: 1})
	warm(t, b, "u1")
	cursor := ""
	for range 2 {
		var err error
		if cursor, err = pgstore.PollProfilesFrom(ctx, b, cursor); err != nil {
			t.Fatal(err)
		}
	}
	held := time.Now()
	px.HoldReplies()
	polled := make(chan error, 1)
	go func() {
		_, err := pgstore.PollProfilesFrom(ctx, b, cursor)
		polled <- err
	}()
	waitPollRan(t, schema, held)
	mustUpdate(t, a, "u1", setFirst("two"))
	committed := time.Now()
	px.Resume()
	if err := <-polled; err != nil {
		t.Fatal(err)
	}
	st := b.CacheStats()
	if st.Poll.Caught != 0 {
		t.Fatalf("the held poll saw the later write: %+v", st.Poll)
	}
	if !st.Poll.LastOK.Before(committed) {
		t.Fatalf("a poll that did not see the write committed at %v vouches from %v", committed, st.Poll.LastOK)
	}
}

// TestForgedNotificationTimesKeepLagSane: a database user who may NOTIFY
// sends announcements dated centuries ago and far in the future. They
// only drop cache entries; the lag figures count each at most an hour,
// never wrap to a negative sum, and a date in the future counts as none.
func TestForgedNotificationTimesKeepLagSane(t *testing.T) {
	schema := freshSchema(t)
	ctx := context.Background()
	b := cacheNode(t, dsn(t), schema, time.Minute)
	pgstore.LoseNotifications(b) // it hears only the forged ones
	mustUpdate(t, b, "u1", setFirst("one"))
	waitListening(t, b)
	warm(t, b, "u1")
	conn, err := pgx.Connect(ctx, dsn(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// distinct payloads: PostgreSQL folds equal ones of a transaction
	forged := []string{"7 -9000000000000000 u1", "8 -9000000000000000 u1", "9 -9000000000000000 u1", "10 9000000000000000 u1"}
	if _, err := conn.Exec(ctx, "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", pgstore.ChannelName(schema, "profiles"), forged); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.CacheStats().Notifications < uint64(len(forged)) {
		if time.Now().After(deadline) {
			t.Fatalf("the forged notifications never arrived: %+v", b.CacheStats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	st := b.CacheStats()
	if st.NotificationLagSum != 3*time.Hour || st.LastNotificationLag != 0 || st.Notifications != 4 || st.Size != 0 {
		t.Fatalf("after forged notification times: %+v", st)
	}
}

// TestLongTransactionKeepsCacheWarm: a transaction that wrote and stays
// open (anywhere on the server) holds every snapshot's xmin back, so
// each poll finds again the rows changed since; more of them than the
// cache holds must not drop the cache at every poll, since no poll after
// the one that reported them finds anything new.
func TestLongTransactionKeepsCacheWarm(t *testing.T) {
	schema := freshSchema(t)
	ctx := context.Background()
	const poll = 100 * time.Millisecond
	b := cacheNodeWith(t, dsn(t), pgstore.Options{Schema: schema, Timeout: 2 * time.Second, Poll: poll, Cache: 20})
	mustUpdate(t, b, "u1", setFirst("one"))
	openTx(t, "SELECT pg_current_xact_id()")
	for i := range 30 {
		mustUpdate(t, b, fmt.Sprint("other", i), setFirst("x"))
	}
	waitPolls := func(n uint64) {
		for want := b.CacheStats().Poll.Polls + n; b.CacheStats().Poll.Polls < want; {
			time.Sleep(poll / 4)
		}
	}
	waitPolls(2) // one poll started after the writes, and found them
	warm(t, b, "u1")
	st := b.CacheStats()
	waitPolls(3)
	if _, err := b.Get(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	if after := b.CacheStats(); after.Hits != st.Hits+1 || after.Invalidations != st.Invalidations {
		t.Fatalf("the cache was dropped by polls that found nothing new: before %+v, after %+v", st, after)
	}
}

// TestCloseWithAnnouncementsQueuedOnStalledDatabase: announcements are
// queued while the database is silently unreachable; Close gives the
// queue a second, not the store's timeout for each batch of it, and the
// pool its timeout.
func TestCloseWithAnnouncementsQueuedOnStalledDatabase(t *testing.T) {
	px, proxied := pgtest.NewProxyFor(t, dsn(t))
	const timeout = time.Second
	s, err := pgstore.Open(context.Background(), proxied, pgstore.Options{Schema: freshSchema(t), Timeout: timeout, Poll: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	px.Stall()
	pgstore.Announce(s, 4096)
	start := time.Now()
	_ = s.Close()
	// a batch in flight (the timeout, and the second pgx gives a stalled
	// connection after it), the rest (a second), the pool (the timeout),
	// and two seconds of slack; each further batch would add two seconds
	if took := time.Since(start); took > 2*timeout+4*time.Second {
		t.Fatalf("Close took %v", took)
	}
	if st := s.CacheStats(); st.NotificationsDropped != 4096 {
		t.Fatalf("%d of 4096 announcements counted as dropped", st.NotificationsDropped)
	}
}

// TestCacheServesWhilePoolIsExhausted: every pooled connection waits on
// a row lock another session holds; the polls, on connections of their
// own, go on vouching for the cache, so a cached profile of another user
// is still read at once.
func TestCacheServesWhilePoolIsExhausted(t *testing.T) {
	schema := freshSchema(t)
	const poll = 200 * time.Millisecond
	s := cacheNodeWith(t, dsn(t), pgstore.Options{Schema: schema, MaxConns: 2, Timeout: 10 * time.Second, Poll: poll})
	mustUpdate(t, s, "locked", setFirst("one"))
	mustUpdate(t, s, "other", setFirst("one"))
	warm(t, s, "other")
	ctx := context.Background()
	tx := openTx(t, "SELECT 1 FROM "+pgx.Identifier{schema}.Sanitize()+".profiles WHERE user_id = 'locked' FOR UPDATE")
	var wg sync.WaitGroup
	for range 4 { // more writers than the pool has connections
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = s.Update(ctx, "locked", setFirst("two"))
		}()
	}
	defer wg.Wait()
	defer tx.Rollback(ctx)               // releases the writers before waiting for them
	time.Sleep(2 * (poll + time.Second)) // several polls while the pool is held
	start := time.Now()
	p, err := s.Get(ctx, "other")
	if err != nil || p.FirstName != "one" || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("a cached profile with the pool exhausted: %+v, %v, after %v; cache %+v", p, err, time.Since(start), s.CacheStats())
	}
	if st := s.CacheStats(); !st.Vouched {
		t.Fatalf("the cache stopped vouching while the pool was exhausted: %+v", st)
	}
}
