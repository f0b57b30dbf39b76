package dpop

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/dpop/dpoptest"
)

// usedProofs is a shared record in memory, as several nodes' verifiers
// see one database table: it counts the calls, remembers the expiry it
// was given, and fails every call while err is set.
type usedProofs struct {
	mu      sync.Mutex
	seen    map[[sha256.Size]byte]time.Time
	calls   int
	err     error
	expires time.Time
}

func (u *usedProofs) UseProof(_ context.Context, jkt string, key [sha256.Size]byte, expires time.Time) (bool, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.calls++
	if u.err != nil {
		return false, u.err
	}
	if u.seen == nil {
		u.seen = map[[sha256.Size]byte]time.Time{}
	}
	k := sha256.Sum256(append([]byte(jkt+"\x00"), key[:]...))
	if _, ok := u.seen[k]; ok {
		return false, nil
	}
	u.seen[k], u.expires = expires, expires
	return true, nil
}

// TestSharedRecordRefusesOtherNodesReplay: a proof spent through one
// verifier (a node, with its own replay cache) is refused as already used
// through another that shares the record; a replay on the node that saw
// it is refused without asking the record.
func TestSharedRecordRefusesOtherNodesReplay(t *testing.T) {
	p := dpoptest.NewProver(t, jwa.ES256())
	shared := &usedProofs{}
	a := newTestVerifier(t, Config{Shared: shared})
	b := newTestVerifier(t, Config{Shared: shared})
	proof := p.Proof(t, "GET", testURI, testToken, testNow, nil, nil)
	if _, err := a.Verify(context.Background(), request(proof)); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if _, err := a.Verify(context.Background(), request(proof)); err == nil || err.Desc != alreadyUsed().Desc || err.Unavailable {
		t.Fatalf("replay on the same node: %v", err)
	}
	if shared.calls != 1 {
		t.Fatalf("the shared record was asked %d times, want once: a replay this node saw needs no call", shared.calls)
	}
	if _, err := b.Verify(context.Background(), request(proof)); err == nil || err.Desc != alreadyUsed().Desc || err.Unavailable {
		t.Fatalf("replay on another node: %v", err)
	}
	if shared.calls != 2 {
		t.Fatalf("the shared record was asked %d times, want twice", shared.calls)
	}
}

// TestSharedRecordKeepsProofsForTheLongestWindow: the record keeps a
// proof until its iat plus the replay cache's window, the longest of the
// verifiers that share the cache, not this verifier's own.
func TestSharedRecordKeepsProofsForTheLongestWindow(t *testing.T) {
	p := dpoptest.NewProver(t, jwa.ES256())
	shared, cache := &usedProofs{}, NewReplayCache(10)
	newTestVerifier(t, Config{Replay: cache, Window: 5 * time.Minute})
	short := newTestVerifier(t, Config{Replay: cache, Window: 10 * time.Second, Shared: shared})
	iat := testNow.Add(-3 * time.Second)
	if _, err := short.Verify(context.Background(), request(p.Proof(t, "GET", testURI, testToken, iat, nil, nil))); err != nil {
		t.Fatal(err)
	}
	if want := iat.Add(5 * time.Minute); !shared.expires.Equal(want) {
		t.Fatalf("kept until %v, want %v (iat + the cache's window)", shared.expires, want)
	}
}

// TestSharedRecordFailureIsNeverAnAccept: when the record fails, the
// proof is refused as Unavailable (not as a bad proof), and stays spent on
// the node: a retry of the same proof is a replay there.
func TestSharedRecordFailureIsNeverAnAccept(t *testing.T) {
	p := dpoptest.NewProver(t, jwa.ES256())
	shared := &usedProofs{err: errors.New("database down")}
	v := newTestVerifier(t, Config{Shared: shared})
	proof := p.Proof(t, "GET", testURI, testToken, testNow, nil, nil)
	_, err := v.Verify(context.Background(), request(proof))
	if err == nil || !err.Unavailable || err.KeyMismatch {
		t.Fatalf("with the record down: %+v", err)
	}
	shared.err = nil
	if _, err := v.Verify(context.Background(), request(proof)); err == nil || err.Unavailable {
		t.Fatalf("the same proof once the record is back: %+v", err)
	}
	if _, err := v.Verify(context.Background(), request(p.Proof(t, "GET", testURI, testToken, testNow, nil, nil))); err != nil {
		t.Fatalf("a new proof once the record is back: %v", err)
	}
}
