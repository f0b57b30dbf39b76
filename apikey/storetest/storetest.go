// Package storetest is the behaviour suite every apikey.Store must pass.
// Each backend's tests call Run with a constructor, so the suite is written
// once and run against every backend (memory, bolt, PostgreSQL). It needs
// nothing but the Store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
)

// Run runs the suite. open must return a new, empty store for each call.
func Run(t *testing.T, open func(t *testing.T) apikey.Store) {
	ctx := context.Background()

	t.Run("lookup of an unknown hash", func(t *testing.T) {
		s := open(t)
		if _, err := s.Lookup(ctx, apikey.HashKey("nope")); !errors.Is(err, apikey.ErrNotFound) {
			t.Fatalf("Lookup: %v, want ErrNotFound", err)
		}
	})

	t.Run("create and read back at microsecond precision in UTC", func(t *testing.T) {
		s := open(t)
		r := newRecord(t, "u1", 0)
		// nanoseconds and a zone of its own: read back in UTC, truncated
		zone := time.FixedZone("X", 5*3600+1800)
		r.Created = time.Date(2026, 12, 5, 12, 0, 0, 123456789, zone)
		r.Expires = r.Created.Add(48*time.Hour + 999)
		r.Name = "deploy bot ✓"
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
		got, err := s.Lookup(ctx, r.Hash)
		if err != nil {
			t.Fatal(err)
		}
		same(t, got, r)
		if got.Created.Location() != time.UTC || got.Created.Nanosecond()%1000 != 0 {
			t.Errorf("created read back as %v, want UTC at microsecond precision", got.Created)
		}
		if !got.Revoked.IsZero() || !got.LastUsed.IsZero() {
			t.Errorf("zero times read back as %v, %v", got.Revoked, got.LastUsed)
		}
		// the Unix epoch is a time like any other, not "no time"
		epoch := newRecord(t, "u1", 1)
		epoch.Expires = time.Unix(0, 0)
		if err := s.Create(ctx, epoch); err != nil {
			t.Fatal(err)
		}
		got, _ = s.Lookup(ctx, epoch.Hash)
		same(t, got, epoch)
	})

	t.Run("create refuses a taken id or hash", func(t *testing.T) {
		s := open(t)
		r := newRecord(t, "u1", 0)
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
		sameID := newRecord(t, "u2", 1)
		sameID.ID = r.ID
		sameHash := newRecord(t, "u2", 2)
		sameHash.Hash = r.Hash
		for name, c := range map[string]apikey.Record{"id": sameID, "hash": sameHash} {
			if err := s.Create(ctx, c); !errors.Is(err, apikey.ErrExists) {
				t.Errorf("Create with a taken %s: %v, want ErrExists", name, err)
			}
		}
		if _, err := s.Lookup(ctx, sameID.Hash); !errors.Is(err, apikey.ErrNotFound) {
			t.Errorf("refused record stored: %v", err)
		}
		got, _ := s.Lookup(ctx, r.Hash)
		same(t, got, r)
	})

	t.Run("list by subject in creation order", func(t *testing.T) {
		s := open(t)
		var all []apikey.Record
		// created out of order; two share a creation time (then id order)
		for i, at := range []int{3, 1, 2, 1, 0} {
			subject := "u1"
			if i%2 == 1 {
				subject = "u2"
			}
			r := newRecord(t, subject, at)
			if err := s.Create(ctx, r); err != nil {
				t.Fatal(err)
			}
			all = append(all, r)
		}
		sortRecords(all)
		for _, subject := range []string{"u1", "u2", "nobody", ""} {
			got, err := s.List(ctx, subject)
			if err != nil {
				t.Fatal(err)
			}
			var want []apikey.Record
			for _, r := range all {
				if subject == "" || r.Subject == subject {
					want = append(want, r)
				}
			}
			sameList(t, "List("+subject+")", got, want)
		}
	})

	t.Run("revoke keeps the first time", func(t *testing.T) {
		s := open(t)
		r := newRecord(t, "u1", 0)
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
		first := base.Add(time.Hour + 1234567)
		got, err := s.Revoke(ctx, r.ID, first)
		r.Revoked = first
		if err != nil {
			t.Fatal(err)
		}
		same(t, got, r)
		again, err := s.Revoke(ctx, r.ID, first.Add(time.Hour))
		if err != nil {
			t.Fatalf("revoking again: %v, want success", err)
		}
		same(t, again, r)
		stored, _ := s.Lookup(ctx, r.Hash)
		same(t, stored, r)
		if _, err := s.Revoke(ctx, "unknownunknown00", first); !errors.Is(err, apikey.ErrNotFound) {
			t.Errorf("Revoke of an unknown id: %v, want ErrNotFound", err)
		}
	})

	t.Run("last used never goes backwards", func(t *testing.T) {
		s := open(t)
		a, b := newRecord(t, "u1", 0), newRecord(t, "u1", 1)
		for _, r := range []apikey.Record{a, b} {
			if err := s.Create(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		t1 := base.Add(10 * time.Minute)
		if err := s.TouchLastUsed(ctx, map[string]time.Time{a.ID: t1, b.ID: t1.Add(time.Minute), "unknownunknown00": t1}); err != nil {
			t.Fatal(err)
		}
		if err := s.TouchLastUsed(ctx, map[string]time.Time{a.ID: t1.Add(-time.Minute), b.ID: t1.Add(2 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
		a.LastUsed, b.LastUsed = t1, t1.Add(2*time.Minute)
		for _, r := range []apikey.Record{a, b} {
			got, _ := s.Lookup(ctx, r.Hash)
			same(t, got, r)
		}
		if _, err := s.Lookup(ctx, apikey.HashKey("unknownunknown00")); !errors.Is(err, apikey.ErrNotFound) {
			t.Errorf("TouchLastUsed made a record: %v", err)
		}
	})

	t.Run("export then import into another store", func(t *testing.T) {
		s := open(t)
		want := []apikey.Record{newRecord(t, "u1", 2), newRecord(t, "u2", 0), newRecord(t, "u1", 1)}
		want[0].Revoked, want[1].LastUsed = base.Add(time.Hour), base.Add(time.Minute)
		want[2].Kind = apikey.KindService
		if err := s.Import(ctx, want); err != nil {
			t.Fatal(err)
		}
		got := exportAll(t, s)
		sortRecords(want)
		sameList(t, "export", got, want)
		// the export imports again as it is: every record equal, skipped
		if err := s.Import(ctx, got); err != nil {
			t.Fatalf("importing the store's own export: %v", err)
		}
		sameList(t, "export after the second import", exportAll(t, s), want)
		other := open(t)
		if err := other.Import(ctx, got); err != nil {
			t.Fatal(err)
		}
		sameList(t, "export of the other store", exportAll(t, other), want)
		for _, r := range want {
			if l, err := other.Lookup(ctx, r.Hash); err != nil {
				t.Errorf("Lookup after import: %v", err)
			} else {
				same(t, l, r)
			}
		}
	})

	t.Run("import is all or nothing", func(t *testing.T) {
		s := open(t)
		held := newRecord(t, "u1", 0)
		if err := s.Create(ctx, held); err != nil {
			t.Fatal(err)
		}
		changed := held
		changed.Name = "another name"
		sameID := newRecord(t, "u2", 1)
		sameID.ID = held.ID
		sameHash := newRecord(t, "u2", 2)
		sameHash.Hash = held.Hash
		twice := newRecord(t, "u3", 3)
		for name, clash := range map[string][]apikey.Record{
			"a stored id with other fields":   {changed},
			"a stored id with another hash":   {sameID},
			"a stored hash with another id":   {sameHash},
			"one id twice in the import":      {twice, twice},
			"one hash twice, two ids":         {twice, withID(twice, "otherotherother0")},
			"a clash after new records":       {newRecord(t, "u4", 4), held, changed},
			"a clash before a record to skip": {sameHash, held},
		} {
			fresh := newRecord(t, "u9", 9)
			if err := s.Import(ctx, append([]apikey.Record{fresh}, clash...)); !errors.Is(err, apikey.ErrExists) {
				t.Errorf("import with %s: %v, want ErrExists", name, err)
			}
			if _, err := s.Lookup(ctx, fresh.Hash); !errors.Is(err, apikey.ErrNotFound) {
				t.Errorf("import with %s wrote a record: %v", name, err)
			}
		}
		sameList(t, "after refused imports", exportAll(t, s), []apikey.Record{held})
	})

	t.Run("concurrent creates of one id: one wins", func(t *testing.T) {
		s := open(t)
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			r := newRecord(t, fmt.Sprintf("u%d", i), i)
			r.ID = "sameidsameid0000"
			wg.Go(func() { errs[i] = s.Create(ctx, r) })
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, apikey.ErrExists):
				t.Errorf("Create: %v", err)
			}
		}
		if won != 1 {
			t.Errorf("%d creates of one id succeeded, want 1", won)
		}
	})
}

// base is the suite's clock: times are made from it, with nanoseconds,
// so that a store's truncation is exercised.
var base = time.Date(2026, 12, 5, 10, 0, 0, 987654321, time.UTC)

// newRecord makes a record of subject created at base + n minutes, with
// a fresh key.
func newRecord(t *testing.T, subject string, n int) apikey.Record {
	t.Helper()
	key, id, err := apikey.Generate(apikey.DefaultPrefix)
	if err != nil {
		t.Fatal(err)
	}
	return apikey.Record{ID: id, Hash: apikey.HashKey(key), Subject: subject, Kind: apikey.KindUser,
		Name: "key " + id[:4], Created: base.Add(time.Duration(n) * time.Minute)}
}

func withID(r apikey.Record, id string) apikey.Record { r.ID = id; return r }

func exportAll(t *testing.T, s apikey.Store) []apikey.Record {
	t.Helper()
	var out []apikey.Record
	if err := s.Export(context.Background(), func(r apikey.Record) error { out = append(out, r); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}
