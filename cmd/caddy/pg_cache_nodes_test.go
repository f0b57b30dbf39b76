package main

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/workspace-edge/caddy-workspace-profile/internal/pgtest"
)

// These tests run three Caddy processes of this command on one PostgreSQL
// schema, each with its own profile cache, and check across them what
// docs/operations.md promises of several nodes: how soon a write on one is
// read on the others, with notifications and without, and that the
// database alone decides If-Match and user-name uniqueness.

// pgNodesStorage is the storage line of the nodes of one test, with the
// options given, and its schema, the test's own.
func pgNodesStorage(t testing.TB, dsn, options string) (storage, schema string) {
	schema = pgSchema(t, dsn)
	return fmt.Sprintf("storage postgres {env.PROFILE_TEST_PG_DSN} schema %s %s", schema, options), schema
}

// writeEverywhere PUTs FirstName v on nodes[0] and waits until every node
// serves it (bound from the write), so that each node's cache holds it.
func writeEverywhere(t testing.TB, nodes []node, tok, v string, bound time.Duration) {
	t.Helper()
	written := time.Now()
	if st, body := put(t, nodes[0].url, tok, fmt.Sprintf(`{"FirstName":%q}`, v)); st != 200 {
		t.Fatalf("PUT: %d %s", st, body)
	}
	for _, n := range nodes {
		waitFirstName(t, n, tok, v, written, bound)
	}
}

// warmNodes opens every node's store on tok's profile (written "v0" on
// nodes[0], read on each), waits until each store listens, and reads the
// profile again on each: a store fills its cache only with what it reads
// while it can vouch for the cache, which its first read cannot. Every
// node's cache then holds the profile.
func warmNodes(t testing.TB, nodes []node, tok string) {
	t.Helper()
	writeEverywhere(t, nodes, tok, "v0", 5*time.Second)
	waitListening(t, nodes, 1)
	// a read fills the cache only while a recent poll vouches for it, and
	// on a loaded machine a poll can be late: read until one is stored
	deadline := time.Now().Add(5 * time.Second)
	for i, n := range nodes {
		for {
			if st, v := firstName(t, n, tok); st != 200 || v != "v0" {
				t.Fatalf("node %d: %d %q", i, st, v)
			}
			if nodeMetric(t, n, "pg_cache_entries") >= 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d caches no profile after reading one while listening", i)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// writeAndWaitOthers PUTs FirstName v on nodes[w] and waits until the
// other nodes serve it, within bound from the PUT's answer; it returns
// the longest wait.
func writeAndWaitOthers(t testing.TB, nodes []node, w int, tok, v string, bound time.Duration) time.Duration {
	t.Helper()
	if st, body := put(t, nodes[w].url, tok, fmt.Sprintf(`{"FirstName":%q}`, v)); st != 200 {
		t.Fatalf("PUT on node %d: %d %s", w, st, body)
	}
	acked := time.Now()
	var worst time.Duration
	for i, n := range nodes {
		if i != w {
			worst = max(worst, waitFirstName(t, n, tok, v, acked, bound))
		}
	}
	return worst
}

// TestPgCacheWriteReadOnOtherNodesWithinOneSecond: while notifications
// flow, a PUT on one node is read on the two others within 1 s of its
// answer, round after round from each node in turn, the readers having
// cached the value before.
func TestPgCacheWriteReadOnOtherNodesWithinOneSecond(t *testing.T) {
	dsn := pgDSN(t)
	s := newSigner(t)
	storage, _ := pgNodesStorage(t, dsn, "")
	nodes := startNodes(t, s, 3, storage)
	tok := s.token(t, "read-everywhere")
	warmNodes(t, nodes, tok)
	var worst time.Duration
	const rounds = 9
	for round := 1; round <= rounds; round++ {
		worst = max(worst, writeAndWaitOthers(t, nodes, round%3, tok, fmt.Sprintf("v%d", round), time.Second))
	}
	t.Logf("%d writes, each read on the two other nodes at most %v after its answer", rounds, worst.Round(time.Millisecond))
}

// TestPgCachePollBoundsStalenessWithoutNotifications: the nodes poll every
// 300ms and listen through a TCP proxy. With the proxy stalled (the
// listening connections look alive and carry nothing), and then with the
// listening connections ended by the server again and again, a PUT on one
// node is still read on the two others within poll + 1 s, and the polls
// are what caught the stale entries.
func TestPgCachePollBoundsStalenessWithoutNotifications(t *testing.T) {
	dsn := pgDSN(t)
	proxy, proxied := pgtest.NewProxyFor(t, dsn)
	s := newSigner(t)
	const poll = 300 * time.Millisecond
	storage, schema := pgNodesStorage(t, dsn, fmt.Sprintf("poll %v listen_dsn %s", poll, proxied))
	nodes := startNodes(t, s, 3, storage)
	tok := s.token(t, "poll-bound")
	warmNodes(t, nodes, tok)
	caught := func() float64 {
		sum := 0.0
		for _, n := range nodes {
			sum += nodeMetric(t, n, "pg_poll_caught_total")
		}
		return sum
	}

	// stalled: no notification reaches any node
	proxy.Stall()
	before := caught()
	var worst time.Duration
	const rounds = 3
	for round := 1; round <= rounds; round++ {
		worst = max(worst, writeAndWaitOthers(t, nodes, round%3, tok, fmt.Sprintf("stalled %d", round), poll+time.Second))
	}
	// each write left a stale entry on the two other nodes, which only a
	// poll could drop
	if got := caught() - before; got < 2*rounds {
		t.Errorf("the polls caught %v stale entries over %d writes that no notification announced, want %d", got, rounds, 2*rounds)
	}
	t.Logf("listening connections stalled: %d writes, each read on the other nodes at most %v after its answer (poll %v)",
		rounds, worst.Round(time.Millisecond), poll)
	proxy.Resume()

	// ended: the server terminates the listening connections, and the
	// write follows at once, while they reconnect
	worst = 0
	for round := 1; round <= rounds; round++ {
		connects := make([]float64, len(nodes))
		for i, n := range nodes {
			connects[i] = nodeMetric(t, n, "pg_listener_connects_total")
		}
		if ended := killListeners(t, dsn, schema); ended != len(nodes) {
			t.Fatalf("ended %d listening connections, want one per node (%d)", ended, len(nodes))
		}
		worst = max(worst, writeAndWaitOthers(t, nodes, round%3, tok, fmt.Sprintf("ended %d", round), poll+time.Second))
		for i, n := range nodes {
			waitListening(t, []node{n}, connects[i]+1)
		}
	}
	t.Logf("listening connections ended: %d writes, each read on the other nodes at most %v after its answer (poll %v)",
		rounds, worst.Round(time.Millisecond), poll)
}

// TestPgCacheNodeRestartedUnderLoad: one of three nodes is killed
// (SIGKILL) while the two others take PUTs and GETs, and started again on
// the same schema while the load goes on. The others never answer an
// error; once the load stops every node, the restarted one included,
// serves each profile's last acknowledged value within 1 s; and once the
// restarted node has cached the profiles, a write on another node reaches
// it within 1 s.
func TestPgCacheNodeRestartedUnderLoad(t *testing.T) {
	dsn := pgDSN(t)
	s := newSigner(t)
	storage, _ := pgNodesStorage(t, dsn, "")
	nodes := startNodes(t, s, 3, storage)
	const users = 6
	toks := make([]string, users)
	for i := range toks {
		toks[i] = s.token(t, fmt.Sprintf("restart-%d", i))
	}
	var (
		acked [users]atomic.Int64 // the last counter answered 200
		stop  atomic.Bool
		wg    sync.WaitGroup
		ops   atomic.Int64
	)
	check := func(what string, status int, body string) {
		ops.Add(1)
		if status != 200 {
			t.Errorf("%s: %d %s", what, status, body)
		}
	}
	for i := range users {
		wg.Add(2)
		go func() { // writes counter values to user i, through nodes 0 and 1
			defer wg.Done()
			for c := int64(1); !stop.Load(); c++ {
				st, body := put(t, nodes[c%2].url, toks[i], fmt.Sprintf(`{"FirstName":"c%d"}`, c))
				check(fmt.Sprintf("PUT c%d of user %d on node %d", c, i, c%2), st, body)
				if st == 200 {
					acked[i].Store(c)
				}
			}
		}()
		go func() { // reads user i's profile on nodes 0 and 1
			defer wg.Done()
			for n := 0; !stop.Load(); n++ {
				st, _, body := send(t, "GET", nodes[n%2].url, toks[i], "")
				check(fmt.Sprintf("GET of user %d on node %d", i, n%2), st, body)
			}
		}()
	}
	// the node to be killed has the profiles in its cache
	for i := range users {
		if st, _, body := send(t, "GET", nodes[2].url, toks[i], ""); st != 200 {
			t.Fatalf("GET on node 2: %d %s", st, body)
		}
	}
	time.Sleep(500 * time.Millisecond) // load before the kill
	if err := nodes[2].proc.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = nodes[2].proc.cmd.Wait()
	client.CloseIdleConnections()      // the killed node's, whose port may come back
	time.Sleep(500 * time.Millisecond) // load while it is down
	nodes[2] = startNode(t, s, storage)
	for i := range users { // it serves while the load goes on
		if st, _, body := send(t, "GET", nodes[2].url, toks[i], ""); st != 200 {
			t.Errorf("GET on the restarted node: %d %s", st, body)
		}
	}
	time.Sleep(500 * time.Millisecond) // load after the restart
	stop.Store(true)
	wg.Wait()
	stopped := time.Now()
	for i := range users {
		if acked[i].Load() == 0 {
			t.Fatalf("user %d: no write acknowledged; the load did not run", i)
		}
		for _, n := range nodes {
			waitFirstName(t, n, toks[i], fmt.Sprintf("c%d", acked[i].Load()), stopped, time.Second)
		}
	}
	// the restarted node caches what it reads now that it listens, and a
	// write on another node reaches that cache
	waitListening(t, nodes[2:], 1)
	for i := range users {
		firstName(t, nodes[2], toks[i])
	}
	if entries := nodeMetric(t, nodes[2], "pg_cache_entries"); entries != users {
		t.Errorf("the restarted node caches %v profiles after reading %d while listening", entries, users)
	}
	for i := range users {
		writeAndWaitOthers(t, nodes, 0, toks[i], "after the restart", time.Second)
	}
	t.Logf("%d requests on nodes 0 and 1 across the kill and restart of node 2; it serves the %d last values", ops.Load(), users)
}

// TestPgIfMatchRacesAcrossThreeNodes: round after round, the three nodes
// each PUT one profile with the same If-Match at once: exactly one 200,
// the two others 412 PreconditionFailed, and the profile's version counts
// the rounds exactly.
func TestPgIfMatchRacesAcrossThreeNodes(t *testing.T) {
	dsn := pgDSN(t)
	s := newSigner(t)
	storage, schema := pgNodesStorage(t, dsn, "")
	nodes := startNodes(t, s, 3, storage)
	tok := s.token(t, "if-match-race")
	st, hdr, body := send(t, "PUT", nodes[0].url, tok, `{"FirstName":"start"}`)
	if st != 200 || hdr.Get("ETag") == "" {
		t.Fatalf("PUT: %d %s", st, body)
	}
	etag := hdr.Get("ETag")
	const rounds = 20
	for round := range rounds {
		type answer struct {
			status int
			etag   string
			body   string
		}
		answers := make([]answer, len(nodes))
		var wg sync.WaitGroup
		for i, n := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, hdr, body := send(t, "PUT", n.url, tok, fmt.Sprintf(`{"FirstName":"r%d-n%d"}`, round, i), "If-Match", etag)
				answers[i] = answer{status: st, body: body}
				if hdr != nil {
					answers[i].etag = hdr.Get("ETag")
				}
			}()
		}
		wg.Wait()
		wins := 0
		for i, a := range answers {
			switch {
			case a.status == 200:
				wins++
				etag = a.etag
			case a.status != 412 || !strings.Contains(a.body, "PreconditionFailed"):
				t.Errorf("round %d, node %d: %d %s", round, i, a.status, a.body)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d PUTs with one If-Match succeeded, want 1: %+v", round, wins, answers)
		}
	}
	if v := queryInt(t, dsn, "SELECT version FROM "+pgx.Identifier{schema}.Sanitize()+".profiles WHERE user_id = $1", "if-match-race"); v != 1+rounds {
		t.Fatalf("version %d after %d rounds, want %d", v, rounds, 1+rounds)
	}
}

// TestPgUserNameRaceAcrossNodes: round after round, two users on two
// nodes PUT the same new user name at once: exactly one gets it (200), the
// other 400 UserNameTaken, and the database holds the name once.
func TestPgUserNameRaceAcrossNodes(t *testing.T) {
	dsn := pgDSN(t)
	s := newSigner(t)
	storage, schema := pgNodesStorage(t, dsn, "")
	nodes := startNodes(t, s, 3, storage)
	toks := []string{s.token(t, "name-racer-a"), s.token(t, "name-racer-b")}
	const rounds = 15
	for round := range rounds {
		name := fmt.Sprintf("Contested-%d", round)
		statuses, bodies := make([]int, 2), make([]string, 2)
		var wg sync.WaitGroup
		for i, tok := range toks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				statuses[i], bodies[i] = put(t, nodes[(round+i)%3].url, tok, fmt.Sprintf(`{"UserName":%q}`, name))
			}()
		}
		wg.Wait()
		wins := 0
		for i := range toks {
			switch {
			case statuses[i] == 200:
				wins++
			case statuses[i] != 400 || !strings.Contains(bodies[i], "UserNameTaken"):
				t.Errorf("round %d, user %d: %d %s", round, i, statuses[i], bodies[i])
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d of two users got the user name %q, want 1", round, wins, name)
		}
		if n := queryInt(t, dsn, "SELECT count(*) FROM "+pgx.Identifier{schema}.Sanitize()+".profiles WHERE lower(user_name) = lower($1)", name); n != 1 {
			t.Fatalf("round %d: %d profiles hold %q", round, n, name)
		}
	}
}

// TestPgCacheCutOffNodeStopsServingItsCache: a node whose pool and
// listening connection both go through a proxy that silently stalls (no
// reset, no refusal: its listener still looks connected) while another
// node changes a profile it caches. Within poll + 1 s of its last good
// poll it stops answering from its cache: from then on it answers 503,
// never the profile it cached.
func TestPgCacheCutOffNodeStopsServingItsCache(t *testing.T) {
	dsn := pgDSN(t)
	px, proxied := pgtest.NewProxyFor(t, dsn)
	s := newSigner(t)
	schema := pgSchema(t, dsn)
	const poll = 300 * time.Millisecond
	other := startNode(t, s, fmt.Sprintf("storage postgres {env.PROFILE_TEST_PG_DSN} schema %s poll 300ms", schema))
	cut := startNode(t, s, fmt.Sprintf("storage postgres %s schema %s poll 300ms timeout 1s listen_dsn %s", proxied, schema, proxied))
	tok := s.token(t, "cut-off")
	warmNodes(t, []node{other, cut}, tok)
	px.Stall()
	stalled := time.Now()
	if st, b := put(t, other.url, tok, `{"FirstName":"v1"}`); st != 200 {
		t.Fatalf("PUT on the other node: %d %s", st, b)
	}
	// the bound, and the store's timeout for a read already in flight
	bound := poll + time.Second + time.Second
	last := 0
	for time.Since(stalled) < bound+3*time.Second {
		st, v := firstName(t, cut, tok)
		if st == 200 && v == "v0" && time.Since(stalled) > bound {
			t.Fatalf("%v after the stall the cut-off node still serves its stale cache", time.Since(stalled))
		}
		last = st
		time.Sleep(100 * time.Millisecond)
	}
	if last != 503 {
		t.Fatalf("the cut-off node answers %d, want 503", last)
	}
	if v := nodeMetric(t, cut, "pg_cache_vouched"); v != 0 {
		t.Fatalf("pg_cache_vouched = %v on the cut-off node", v)
	}
}
