package boltstore_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
	"github.com/workspace-edge/caddy-workspace-profile/profile/boltstore"
	"github.com/workspace-edge/caddy-workspace-profile/profile/storetest"
)

func open(t *testing.T) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(filepath.Join(t.TempDir(), "p.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) profile.Store { return open(t) })
}

func TestReopenKeepsProfiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	s, err := boltstore.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	want, err := s.Update(ctx, "u1", func(profile.Profile, bool) (profile.Profile, bool, error) {
		return profile.Profile{UserName: "dana", Email: "d@example.com"}, true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	s, err = boltstore.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.Get(ctx, "u1"); err != nil || got != want {
		t.Fatalf("after reopen: %+v, %v; want %+v", got, err, want)
	}
	if _, err := s.Update(ctx, "u2", func(profile.Profile, bool) (profile.Profile, bool, error) {
		return profile.Profile{UserName: "DANA"}, true, nil
	}); !errors.Is(err, profile.ErrUserNameTaken) {
		t.Fatalf("index lost on reopen: %v", err)
	}
}

func TestLockedFileTimesOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	s := func() *boltstore.Store {
		s, err := boltstore.Open(path, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()
	defer s.Close()
	// bbolt's lock is per open file description, so a second Open in the
	// same process contends just like another process would.
	if _, err := boltstore.Open(path, 100*time.Millisecond); !errors.Is(err, boltstore.ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucketIfNotExists([]byte("meta"))
		return b.Put([]byte("schema"), []byte("99"))
	})
	_ = db.Close()
	if _, err := boltstore.Open(path, time.Second); err == nil {
		t.Fatal("a file of a newer schema was opened")
	}
}

func TestClosedStoreIsUnavailable(t *testing.T) {
	s := open(t)
	_ = s.Close()
	ctx := context.Background()
	if _, err := s.Get(ctx, "u1"); !errors.Is(err, profile.ErrUnavailable) {
		t.Fatalf("Get on closed store: %v", err)
	}
	if _, err := s.Update(ctx, "u1", func(profile.Profile, bool) (profile.Profile, bool, error) {
		return profile.Profile{UserName: "x"}, true, nil
	}); !errors.Is(err, profile.ErrUnavailable) {
		t.Fatalf("Update on closed store: %v", err)
	}
}
