package pgstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
	"github.com/workspace-edge/caddy-workspace-profile/profile/pgstore"
)

// TestLazyStoreWatchesKeysOnceOpen: a watch asked for before the lazy
// store is open starts once it is, and hears another node's revoke.
func TestLazyStoreWatchesKeysOnceOpen(t *testing.T) {
	schema := freshSchema(t)
	l, err := pgstore.OpenLazy(dsn(t), pgstore.Options{Schema: schema, Timeout: 3 * time.Second, Poll: time.Minute},
		pgstore.LazyOptions{Delay: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if h := l.ListenerHealth(); h.Started {
		t.Fatalf("listener started before the store opened: %+v", h)
	}
	changed := make(chan string, 8)
	stop := l.WatchAPIKeys(func(id string) { changed <- id }, nil)
	defer stop()
	<-l.Ready()
	deadline := time.Now().Add(5 * time.Second)
	for !l.ListenerHealth().Connected {
		if time.Now().After(deadline) {
			t.Fatal("the listener did not connect")
		}
		time.Sleep(10 * time.Millisecond)
	}
	other := node(t, schema, time.Minute)
	r := createKey(t, other)
	select {
	case id := <-changed:
		if id != r.ID {
			t.Fatalf("reported %q, want %q", id, r.ID)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the lazy store's watch heard nothing")
	}
	got, err := l.APIKeys().Lookup(context.Background(), r.Hash)
	if err != nil || got.ID != r.ID {
		t.Fatalf("Lookup through the lazy store: %+v, %v", got, err)
	}
}

// TestListenDSNCarriesOnlyTheListener: with a separate DSN for the
// listening connection, keys are served from the pool's DSN while the
// listener goes where ListenDSN says (here nowhere: it reports the
// failure and keeps retrying); a ListenDSN that does not parse is refused.
func TestListenDSNCarriesOnlyTheListener(t *testing.T) {
	s, err := pgstore.Open(context.Background(), dsn(t), pgstore.Options{Schema: freshSchema(t), Timeout: 2 * time.Second,
		ListenDSN: "postgres://nobody@127.0.0.1:1/none?sslmode=disable"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer s.WatchAPIKeys(func(string) {}, func() {})()
	r := newRecord(t, "alice", time.Now())
	if err := s.APIKeys().Create(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.ListenerHealth().LastError == "" {
		if time.Now().After(deadline) {
			t.Fatal("the listener reported no failure")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if h := s.ListenerHealth(); h.Connected || h.LastError != "cannot connect: connection refused" {
		t.Fatalf("listener health %+v", h)
	}
	_, err = pgstore.Open(context.Background(), dsn(t), pgstore.Options{ListenDSN: "postgres://%zz"})
	if !errors.Is(err, pgstore.ErrBadDSN) {
		t.Fatalf("Open with a ListenDSN that does not parse: %v", err)
	}
	if _, err := pgstore.OpenLazy(dsn(t), pgstore.Options{ListenDSN: "postgres://%zz"}, pgstore.LazyOptions{}); !errors.Is(err, pgstore.ErrBadDSN) {
		t.Fatalf("OpenLazy with a ListenDSN that does not parse: %v", err)
	}
	var _ apikey.Store = s.APIKeys()
}
