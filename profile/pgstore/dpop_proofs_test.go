package pgstore_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/workspace-edge/caddy-workspace-profile/internal/pgtest"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
	"github.com/workspace-edge/caddy-workspace-profile/profile/pgstore"
)

// proofHash is the replay key of a made-up proof n.
func proofHash(n int) [sha256.Size]byte { return sha256.Sum256([]byte("proof-" + strconv.Itoa(n))) }

// TestDPoPProofFreshThenReplayed: a proof is fresh once, a replay after,
// on the node that used it and on another node of the same schema; the
// same replay key under another thumbprint is another proof.
func TestDPoPProofFreshThenReplayed(t *testing.T) {
	schema := freshSchema(t)
	a, b := open(t, schema), open(t, schema)
	ctx, exp := context.Background(), time.Now().Add(time.Minute)
	if fresh, err := a.UseDPoPProof(ctx, "jkt-1", proofHash(1), exp); err != nil || !fresh {
		t.Fatalf("first use: fresh %v, %v", fresh, err)
	}
	for name, s := range map[string]*pgstore.Store{"same node": a, "other node": b} {
		if fresh, err := s.UseDPoPProof(ctx, "jkt-1", proofHash(1), exp); err != nil || fresh {
			t.Fatalf("replay on the %s: fresh %v, %v", name, fresh, err)
		}
	}
	if fresh, err := b.UseDPoPProof(ctx, "jkt-2", proofHash(1), exp); err != nil || !fresh {
		t.Fatalf("the same replay key under another key: fresh %v, %v", fresh, err)
	}
}

// TestDPoPProofRaceHasOneWinner: goroutines of two nodes spending one
// proof at once get exactly one fresh answer between them.
func TestDPoPProofRaceHasOneWinner(t *testing.T) {
	schema := freshSchema(t)
	nodes := []*pgstore.Store{open(t, schema), open(t, schema)}
	exp := time.Now().Add(time.Minute)
	for round := range 5 {
		const n = 16
		var wg sync.WaitGroup
		start := make(chan struct{})
		results := make(chan bool, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				fresh, err := nodes[i%2].UseDPoPProof(context.Background(), "racer", proofHash(round), exp)
				if err != nil {
					t.Error(err)
				}
				results <- fresh
			}()
		}
		close(start)
		wg.Wait()
		close(results)
		winners := 0
		for fresh := range results {
			if fresh {
				winners++
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: %d of %d uses were fresh, want exactly 1", round, winners, n)
		}
	}
}

// TestDPoPProofPruneRemovesExpiredOnly: pruning deletes every expired row,
// more than one batch of them, and no row still in its window; a pruned
// proof's row is gone, a live one still refuses its replay. The live
// proofs expired 30 s ago by the using node's clock: a row outlives its
// expiry by DPoPClockSkew, for a node whose clock is behind the
// database's.
func TestDPoPProofPruneRemovesExpiredOnly(t *testing.T) {
	schema := freshSchema(t)
	s := open(t, schema)
	ctx := context.Background()
	const expired, live = pgstore.DPoPPruneBatch*2 + 500, 300
	conn, err := pgx.Connect(ctx, dsn(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	q := pgx.Identifier{schema}.Sanitize() + ".dpop_proofs"
	if _, err := conn.Exec(ctx, "INSERT INTO "+q+" (jkt, proof_hash, expires) "+
		"SELECT 'k'||(g % 7), sha256(('old-'||g)::bytea), now() - interval '1 second' * (1 + g % 100) FROM generate_series(1, $1::int) g", expired); err != nil {
		t.Fatal(err)
	}
	for i := range live {
		if fresh, err := s.UseDPoPProof(ctx, "live", proofHash(i), time.Now().Add(-30*time.Second)); err != nil || !fresh {
			t.Fatalf("live proof %d: fresh %v, %v", i, fresh, err)
		}
	}
	n, err := s.PruneDPoPProofs(ctx)
	if err != nil || n != expired {
		t.Fatalf("pruned %d rows (%v), want %d", n, err, expired)
	}
	var left, leftLive int
	if err := conn.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE jkt = 'live' AND expires > now()) FROM "+q).Scan(&left, &leftLive); err != nil {
		t.Fatal(err)
	}
	if left != live || leftLive != live {
		t.Fatalf("after pruning: %d rows, %d live, want %d live only", left, leftLive, live)
	}
	if fresh, err := s.UseDPoPProof(ctx, "live", proofHash(0), time.Now().Add(time.Minute)); err != nil || fresh {
		t.Fatalf("a live proof's replay after pruning: fresh %v, %v", fresh, err)
	}
	if n, err := s.PruneDPoPProofs(ctx); err != nil || n != 0 {
		t.Fatalf("pruning again: %d, %v", n, err)
	}
}

// TestDPoPProofFailsWithoutDatabase: with the connection cut, with the
// store closed, and on a lazy store not open yet, a use is an error that
// errors.Is profile.ErrUnavailable, never fresh, and names no server.
func TestDPoPProofFailsWithoutDatabase(t *testing.T) {
	px, proxied := pgtest.NewProxyFor(t, dsn(t))
	_, port, _ := net.SplitHostPort(px.Addr)
	schema := freshSchema(t)
	ctx, exp := context.Background(), time.Now().Add(time.Minute)
	cut, err := pgstore.Open(ctx, proxied, pgstore.Options{Schema: schema, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cut.Close()
	if fresh, err := cut.UseDPoPProof(ctx, "jkt", proofHash(1), exp); err != nil || !fresh {
		t.Fatalf("before the cut: fresh %v, %v", fresh, err)
	}
	px.Cut()
	closed := open(t, schema)
	_ = closed.Close()
	lazy, err := pgstore.OpenLazy(proxied, pgstore.Options{Schema: schema, Timeout: time.Second}, pgstore.LazyOptions{Delay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer lazy.Close()
	type user interface {
		UseDPoPProof(context.Context, string, [sha256.Size]byte, time.Time) (bool, error)
	}
	for name, s := range map[string]user{"connection cut": cut, "store closed": closed, "lazy store not open": lazy} {
		fresh, err := s.UseDPoPProof(ctx, "jkt", proofHash(2), exp)
		if err == nil || fresh || !errors.Is(err, profile.ErrUnavailable) {
			t.Fatalf("%s: fresh %v, %v", name, fresh, err)
		}
		for _, leak := range []string{"user=", "database=", "127.0.0.1", port} {
			if strings.Contains(err.Error(), leak) {
				t.Errorf("%s: error %q names %q", name, err, leak)
			}
		}
		t.Logf("%s: %v", name, err)
	}
}

// TestDPoPProofsPrunedInTheBackgroundUntilClose: a node that has spent a
// proof deletes expired rows on its own, every DPoPPrune, and no more
// once closed.
func TestDPoPProofsPrunedInTheBackgroundUntilClose(t *testing.T) {
	schema := freshSchema(t)
	s, err := pgstore.Open(context.Background(), dsn(t), pgstore.Options{Schema: schema, Timeout: 3 * time.Second, DPoPPrune: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	q := pgx.Identifier{schema}.Sanitize() + ".dpop_proofs"
	expire := func(n int) {
		t.Helper()
		if _, err := conn.Exec(ctx, "INSERT INTO "+q+" SELECT 'k', sha256(('expired-'||g||'-'||$2::bigint)::bytea), now() - interval '1 second' FROM generate_series(1, $1::int) g", n, time.Now().UnixNano()); err != nil {
			t.Fatal(err)
		}
	}
	expired := func() int {
		t.Helper()
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+q+" WHERE expires < now()").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	expire(50)
	if fresh, err := s.UseDPoPProof(ctx, "k", proofHash(1), time.Now().Add(time.Hour)); err != nil || !fresh {
		t.Fatalf("first use: fresh %v, %v", fresh, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for expired() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d expired rows left 10 s after the first use", expired())
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = s.Close()
	expire(5)
	time.Sleep(200 * time.Millisecond) // ten intervals: a pruning still running would have run
	if n := expired(); n != 5 {
		t.Fatalf("%d expired rows after Close, want the 5 left alone", n)
	}
}
