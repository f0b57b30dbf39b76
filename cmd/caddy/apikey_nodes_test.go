package main

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestAPIKeysTwoNodes (threat row G10, see docs/threat-model.md): two
// Caddy processes with api_keys on one PostgreSQL store, each with its
// own admin endpoint. A key made on A is served by B at once; revoked on
// A, it is refused by A at the next request and by B within 5 s, also
// when B holds it in its cache, and also while B's listening connection
// has been killed and is reconnecting. A service account's key gets the
// 403 on both.
func TestAPIKeysTwoNodes(t *testing.T) {
	dsn := pgDSN(t)
	schema := pgSchema(t, dsn)
	s := newSigner(t)
	storage := fmt.Sprintf("storage postgres {env.PROFILE_TEST_PG_DSN} schema %s", schema)
	var a, b keyNode
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a = startKeyNode(t, s, storage) }()
	go func() { defer wg.Done(); b = startKeyNode(t, s, storage) }()
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// made on A, served by B within 1 s
	k1 := createKey(t, a, "alice", "user")
	served := untilStatus(t, b.url, k1.Key, 200, time.Second)
	if st, body := withKey(t, a.url, k1.Key); st != 200 {
		t.Fatalf("A: %d %s", st, body)
	}
	t.Logf("a key made on A served by B after %v", served.Round(time.Millisecond))

	// revoked on A: A refuses at the next request, B (which holds it in
	// its cache since it served it) within 5 s
	revokeKeyOn(t, a, k1.ID)
	if st, body := withKey(t, a.url, k1.Key); st != 401 {
		t.Fatalf("A right after the revocation: %d %s", st, body)
	}
	refused := untilStatus(t, b.url, k1.Key, 401, 5*time.Second)
	t.Logf("revoked on A: refused by B after %v", refused.Round(time.Millisecond))

	// a key used on B many times (cached there), then revoked on A
	k2 := createKey(t, a, "bob", "user")
	untilStatus(t, b.url, k2.Key, 200, time.Second)
	for range 20 {
		if st, body := withKey(t, b.url, k2.Key); st != 200 {
			t.Fatalf("B: %d %s", st, body)
		}
	}
	revokeKeyOn(t, a, k2.ID)
	cached := untilStatus(t, b.url, k2.Key, 401, 5*time.Second)
	t.Logf("a key B had cached, revoked on A: refused by B after %v", cached.Round(time.Millisecond))

	// the listening connections of the schema killed (both nodes': they
	// share one application_name), a key revoked on A while they are down
	// or reconnecting: B refuses it within 5 s (its poll, or the reset
	// when its listener is back)
	k3 := createKey(t, a, "carol", "user")
	untilStatus(t, b.url, k3.Key, 200, time.Second)
	if n := killListeners(t, dsn, schema); n < 1 {
		t.Fatalf("%d listening connections of schema %s found to kill", n, schema)
	} else {
		t.Logf("killed %d listening connections", n)
	}
	// B reads it again while its listener is down (its loss dropped B's
	// cache), so that B holds it when the revocation's notification is sent
	// to no one
	if st, body := withKey(t, b.url, k3.Key); st != 200 {
		t.Fatalf("B with its listener killed: %d %s", st, body)
	}
	revokeKeyOn(t, a, k3.ID)
	if st, body := withKey(t, a.url, k3.Key); st != 401 {
		t.Fatalf("A right after the revocation: %d %s", st, body)
	}
	lost := untilStatus(t, b.url, k3.Key, 401, 5*time.Second)
	t.Logf("revoked on A with the listeners killed: refused by B after %v", lost.Round(time.Millisecond))

	// a service account's key: the exact 403 on both nodes
	svc := createKey(t, a, "billing-sync", "service")
	wantServiceRefused(t, a.url, svc.Key)
	wantServiceRefused(t, b.url, svc.Key)

	// and B's own revocations reach A as well
	k4 := createKey(t, b, "dave", "user")
	untilStatus(t, a.url, k4.Key, 200, time.Second)
	revokeKeyOn(t, b, k4.ID)
	back := untilStatus(t, a.url, k4.Key, 401, 5*time.Second)
	t.Logf("revoked on B: refused by A after %v", back.Round(time.Millisecond))
}
