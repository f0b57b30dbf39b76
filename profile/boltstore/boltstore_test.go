package boltstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// bigProfile is a profile of about 400 bytes, so that a few thousand of
// them make a file bbolt must grow its mmap for.
func bigProfile(i int) profile.Profile {
	return profile.Profile{UserName: fmt.Sprintf("user-%06d", i), Email: fmt.Sprintf("user%06d@example.com", i),
		FirstName: strings.Repeat("F", 100) + strconv.Itoa(i), LastName: strings.Repeat("L", 100) + strconv.Itoa(i)}
}

// TestExportDoesNotHoldTheFile: while an export's consumer is stalled
// (fn blocks, as a client that stopped reading), writes that make bbolt
// grow its mmap, which waits for every read transaction, still complete.
// An export that kept its read transaction open for the download froze
// every writer until the consumer went away.
func TestExportDoesNotHoldTheFile(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	seed := make([]profile.Profile, 2000)
	for i := range seed {
		seed[i] = bigProfile(i)
		seed[i].UserID = fmt.Sprintf("seed-%06d", i)
	}
	if err := s.Import(ctx, seed); err != nil {
		t.Fatal(err)
	}
	stalled, release := make(chan struct{}), make(chan struct{})
	exportDone := make(chan error, 1)
	go func() {
		n := 0
		exportDone <- s.Export(ctx, func(profile.Profile) error {
			if n++; n == 10 {
				close(stalled)
				<-release
			}
			return nil
		})
	}()
	<-stalled
	// 5x the seed's data, in several transactions: the mmap must grow.
	start := time.Now()
	writes := make(chan error, 1)
	go func() {
		for b := range 10 {
			batch := make([]profile.Profile, 1000)
			for i := range batch {
				batch[i] = bigProfile(10000 + b*1000 + i)
				batch[i].UserID = fmt.Sprintf("new-%06d", b*1000+i)
			}
			if err := s.Import(ctx, batch); err != nil {
				writes <- err
				return
			}
		}
		writes <- nil
	}()
	select {
	case err := <-writes:
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("10000 profiles written in %v while the export was stalled", time.Since(start).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		close(release)
		<-writes
		t.Fatal("writes hung while an export was stalled")
	}
	close(release)
	if err := <-exportDone; err != nil {
		t.Fatal(err)
	}
}

// TestExportIsASnapshot: an export lists the profiles of the moment it
// began, in user-ID order, whatever is written while it runs, and leaves
// no temporary file behind.
func TestExportIsASnapshot(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	for i := range 50 {
		if _, err := s.Update(ctx, fmt.Sprintf("u%03d", i), func(profile.Profile, bool) (profile.Profile, bool, error) {
			return profile.Profile{UserName: fmt.Sprintf("n%03d", i)}, true, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := filepath.Glob(filepath.Join(os.TempDir(), "workspace-profile-export-*"))
	var ids []string
	err := s.Export(ctx, func(p profile.Profile) error {
		ids = append(ids, p.UserID)
		if len(ids) == 1 {
			if _, err := s.Update(ctx, "u000", func(profile.Profile, bool) (profile.Profile, bool, error) {
				return profile.Profile{UserName: "renamed"}, true, nil
			}); err != nil {
				return err
			}
			_, err := s.Update(ctx, "u999", func(profile.Profile, bool) (profile.Profile, bool, error) {
				return profile.Profile{UserName: "late"}, true, nil
			})
			return err
		}
		if p.UserID == "u000" && p.UserName != "n000" {
			return fmt.Errorf("export saw a later write")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 50 || !slices.IsSorted(ids) {
		t.Fatalf("exported %d ids (sorted %v), want the 50 of the start", len(ids), slices.IsSorted(ids))
	}
	after, _ := filepath.Glob(filepath.Join(os.TempDir(), "workspace-profile-export-*"))
	if len(after) > len(before) {
		t.Fatalf("temporary files left: %v", after)
	}
}

// holdWriter holds bbolt's writer lock through an Update whose fn blocks
// until the returned func is called.
func holdWriter(t *testing.T, s *boltstore.Store) func() {
	t.Helper()
	held, release := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = s.Update(context.Background(), "holder", func(profile.Profile, bool) (profile.Profile, bool, error) {
			close(held)
			<-release
			return profile.Profile{}, false, nil
		})
	}()
	<-held
	var once sync.Once
	stop := func() { once.Do(func() { close(release); <-done }) }
	t.Cleanup(stop)
	return stop
}

// TestDeadlineWhileTheWriterIsHeld: Update and Import that wait for the
// writer lock, and a Get, return ErrUnavailable (503 on the route) by the
// caller's deadline instead of hanging; an Update whose caller gave up
// before its transaction began is never written.
func TestDeadlineWhileTheWriterIsHeld(t *testing.T) {
	s := open(t)
	stop := holdWriter(t, s)
	set := func(name string) profile.UpdateFunc {
		return func(profile.Profile, bool) (profile.Profile, bool, error) {
			return profile.Profile{UserName: name}, true, nil
		}
	}
	bounded := func(name string, call func(ctx context.Context) error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := call(ctx)
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("%s took %v with a 200ms deadline", name, took)
		}
		if !errors.Is(err, profile.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: %v, want ErrUnavailable and DeadlineExceeded", name, err)
		}
	}
	bounded("Update", func(ctx context.Context) error { _, err := s.Update(ctx, "late", set("late")); return err })
	bounded("Import", func(ctx context.Context) error {
		return s.Import(ctx, []profile.Profile{{UserID: "imp", UserName: "imp"}})
	})
	// a cancelled context is refused before the store is touched
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Get(ctx, "late"); !errors.Is(err, profile.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a cancelled context: %v", err)
	}
	stop()
	// the abandoned writes ran after the writer was free, and wrote nothing
	time.Sleep(100 * time.Millisecond)
	ctx = context.Background()
	for _, id := range []string{"late", "imp"} {
		if _, err := s.Get(ctx, id); !errors.Is(err, profile.ErrNotFound) {
			t.Fatalf("abandoned write of %s: %v", id, err)
		}
	}
	if _, err := s.Update(ctx, "other", set("late")); err != nil {
		t.Fatalf("an abandoned write kept its name: %v", err)
	}
}
