// Package storetest is the behaviour suite every profile.Store must pass.
// Each backend's tests call Run with a constructor, so the suite is written
// once and run against every backend.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// Run runs the suite. open must return a new, empty store for each call.
func Run(t *testing.T, open func(t *testing.T) profile.Store) {
	ctx := context.Background()
	set := func(p profile.Profile) profile.UpdateFunc {
		return func(profile.Profile, bool) (profile.Profile, bool, error) { return p, true, nil }
	}

	t.Run("missing profile", func(t *testing.T) {
		s := open(t)
		if _, err := s.Get(ctx, "nobody"); !errors.Is(err, profile.ErrNotFound) {
			t.Fatalf("Get of a missing profile: %v, want ErrNotFound", err)
		}
	})

	t.Run("create, read back, version counts writes", func(t *testing.T) {
		s := open(t)
		p, err := s.Update(ctx, "u1", set(profile.Profile{UserName: "Alice", Email: "a@example.com", FirstName: "Al", UserType: 1}))
		if err != nil || p.Version != 1 || p.UserID != "u1" {
			t.Fatalf("create: %+v, %v", p, err)
		}
		got, err := s.Get(ctx, "u1")
		if err != nil || got != p {
			t.Fatalf("Get = %+v, %v; want %+v", got, err, p)
		}
		p2, err := s.Update(ctx, "u1", func(cur profile.Profile, exists bool) (profile.Profile, bool, error) {
			if !exists || cur != p {
				return cur, false, fmt.Errorf("fn saw %+v exists=%v", cur, exists)
			}
			cur.LastName = "Liddell"
			return cur, true, nil
		})
		if err != nil || p2.Version != 2 || p2.LastName != "Liddell" || p2.FirstName != "Al" {
			t.Fatalf("second write: %+v, %v", p2, err)
		}
	})

	t.Run("no change writes nothing", func(t *testing.T) {
		s := open(t)
		p, _ := s.Update(ctx, "u1", set(profile.Profile{UserName: "bob"}))
		same, err := s.Update(ctx, "u1", func(cur profile.Profile, _ bool) (profile.Profile, bool, error) { return cur, false, nil })
		if err != nil || same.Version != p.Version {
			t.Fatalf("unchanged update: %+v, %v; version must stay %d", same, err, p.Version)
		}
	})

	t.Run("fn error writes nothing", func(t *testing.T) {
		s := open(t)
		boom := errors.New("boom")
		if _, err := s.Update(ctx, "u1", func(profile.Profile, bool) (profile.Profile, bool, error) {
			return profile.Profile{UserName: "ghost"}, true, boom
		}); !errors.Is(err, boom) {
			t.Fatalf("err = %v, want fn's error", err)
		}
		if _, err := s.Get(ctx, "u1"); !errors.Is(err, profile.ErrNotFound) {
			t.Fatalf("profile exists after a failed fn: %v", err)
		}
		// the name was not reserved either
		if _, err := s.Update(ctx, "u2", set(profile.Profile{UserName: "ghost"})); err != nil {
			t.Fatalf("name reserved by a failed update: %v", err)
		}
	})

	t.Run("user names are unique ignoring case", func(t *testing.T) {
		s := open(t)
		if _, err := s.Update(ctx, "u1", set(profile.Profile{UserName: "Alice"})); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Update(ctx, "u2", set(profile.Profile{UserName: "aLICE"})); !errors.Is(err, profile.ErrUserNameTaken) {
			t.Fatalf("err = %v, want ErrUserNameTaken", err)
		}
		if _, err := s.Get(ctx, "u2"); !errors.Is(err, profile.ErrNotFound) {
			t.Fatalf("loser was half-written: %v", err)
		}
		// the owner may change the case of its own name
		if _, err := s.Update(ctx, "u1", set(profile.Profile{UserName: "ALICE"})); err != nil {
			t.Fatalf("owner recasing own name: %v", err)
		}
		// renaming frees the old name
		if _, err := s.Update(ctx, "u1", set(profile.Profile{UserName: "alice2"})); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Update(ctx, "u2", set(profile.Profile{UserName: "alice"})); err != nil {
			t.Fatalf("old name not freed by rename: %v", err)
		}
		// empty user names are not indexed
		for _, id := range []string{"u3", "u4"} {
			if _, err := s.Update(ctx, id, set(profile.Profile{})); err != nil {
				t.Fatalf("empty user name for %s: %v", id, err)
			}
		}
	})

	t.Run("concurrent claims of one user name: exactly one wins", func(t *testing.T) {
		s := open(t)
		const n = 24
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = s.Update(ctx, fmt.Sprintf("user-%d", i), set(profile.Profile{UserName: "Contested"}))
			}()
		}
		wg.Wait()
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, profile.ErrUserNameTaken):
				t.Errorf("unexpected error: %v", err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d winners, want exactly 1", wins)
		}
	})

	t.Run("concurrent updates of different fields: none lost", func(t *testing.T) {
		s := open(t)
		if _, err := s.Update(ctx, "u1", set(profile.Profile{UserName: "carol"})); err != nil {
			t.Fatal(err)
		}
		const rounds = 20
		var wg sync.WaitGroup
		for _, field := range []string{"Email", "FirstName", "LastName"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range rounds {
					_, err := s.Update(ctx, "u1", func(cur profile.Profile, _ bool) (profile.Profile, bool, error) {
						v := fmt.Sprintf("%s%d", field, i)
						switch field {
						case "Email":
							cur.Email = v
						case "FirstName":
							cur.FirstName = v
						case "LastName":
							cur.LastName = v
						}
						return cur, true, nil
					})
					if err != nil {
						t.Errorf("update %s: %v", field, err)
					}
				}
			}()
		}
		wg.Wait()
		p, err := s.Get(ctx, "u1")
		last := fmt.Sprint(rounds - 1)
		if err != nil || p.Email != "Email"+last || p.FirstName != "FirstName"+last || p.LastName != "LastName"+last || p.UserName != "carol" {
			t.Fatalf("final profile %+v, %v: an update was lost", p, err)
		}
		if p.Version != 1+3*rounds {
			t.Fatalf("version %d, want %d", p.Version, 1+3*rounds)
		}
	})

	t.Run("export and import", func(t *testing.T) {
		s := open(t)
		ex, okEx := s.(profile.Exporter)
		im, okIm := s.(profile.Importer)
		if !okEx || !okIm {
			t.Fatal("the store cannot export and import")
		}
		for i, name := range []string{"ann", "ben", ""} {
			if _, err := s.Update(ctx, fmt.Sprintf("u%d", i), set(profile.Profile{UserName: name, Email: fmt.Sprintf("u%d@example.com", i)})); err != nil {
				t.Fatal(err)
			}
		}
		var all []profile.Profile
		if err := ex.Export(ctx, func(p profile.Profile) error { all = append(all, p); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(all) != 3 || all[0].UserID != "u0" || all[2].UserID != "u2" {
			t.Fatalf("export: %+v", all)
		}

		// ann and ben swap names in one import: no collision whatever the order
		swap := []profile.Profile{{UserID: "u0", UserName: "Ben"}, {UserID: "u1", UserName: "ann"}, {UserID: "u9", UserName: "new"}}
		if err := im.Import(ctx, swap); err != nil {
			t.Fatalf("swap import: %v", err)
		}
		p0, _ := s.Get(ctx, "u0")
		if p0.UserName != "Ben" || p0.Email != "" || p0.Version != 2 {
			t.Fatalf("after import: %+v", p0)
		}
		if _, err := s.Update(ctx, "u2", set(profile.Profile{UserName: "BEN"})); !errors.Is(err, profile.ErrUserNameTaken) {
			t.Fatalf("imported name not indexed: %v", err)
		}

		// a name held by a profile outside the import: nothing is written
		bad := []profile.Profile{{UserID: "u7", UserName: "fresh"}, {UserID: "u8", UserName: "NEW"}}
		err := im.Import(ctx, bad)
		var conflict *profile.ImportConflict
		if !errors.As(err, &conflict) || conflict.Index != 1 || !errors.Is(err, profile.ErrUserNameTaken) {
			t.Fatalf("conflicting import: %v", err)
		}
		if _, err := s.Get(ctx, "u7"); !errors.Is(err, profile.ErrNotFound) {
			t.Fatalf("a refused import wrote a profile: %v", err)
		}
		if _, err := s.Update(ctx, "u3", set(profile.Profile{UserName: "fresh"})); err != nil {
			t.Fatalf("a refused import reserved a name: %v", err)
		}
	})

	t.Run("the longest user IDs every backend takes", func(t *testing.T) {
		// Import lines and token subjects are checked by
		// profile.UserIDProblems before any store sees them; every store
		// must then take whatever passed, byte for byte, so that any
		// export imports into any backend.
		s := open(t)
		ids := []string{
			strings.Repeat("a", profile.MaxUserIDBytes),
			strings.Repeat("\u00e9", profile.MaxUserIDBytes/2) + "x", // 2-byte runes
			strings.Repeat("\u6f22", profile.MaxUserIDBytes/3),       // 3-byte runes
			"auth0|" + strings.Repeat("\U0001F600", (profile.MaxUserIDBytes-6)/4),
			"a b\u00a0c/%_*'\"\\;--",
		}
		for _, id := range ids {
			if errs := profile.UserIDProblems(id); len(errs) > 0 || len(id) > profile.MaxUserIDBytes {
				t.Fatalf("test id of %d bytes refused: %v", len(id), errs)
			}
		}
		if _, err := s.Update(ctx, ids[0], set(profile.Profile{UserName: "long0"})); err != nil {
			t.Fatalf("Update with a %d-byte id: %v", len(ids[0]), err)
		}
		var batch []profile.Profile
		for i, id := range ids {
			batch = append(batch, profile.Profile{UserID: id, UserName: fmt.Sprintf("long%d", i)})
		}
		if err := s.(profile.Importer).Import(ctx, batch); err != nil {
			t.Fatalf("Import: %v", err)
		}
		for i, id := range ids {
			p, err := s.Get(ctx, id)
			if err != nil || p.UserID != id || p.UserName != fmt.Sprintf("long%d", i) {
				t.Fatalf("Get of id %d: %+v, %v", i, p, err)
			}
		}
		seen := map[string]bool{}
		if err := s.(profile.Exporter).Export(ctx, func(p profile.Profile) error { seen[p.UserID] = true; return nil }); err != nil {
			t.Fatal(err)
		}
		for i, id := range ids {
			if !seen[id] {
				t.Fatalf("id %d not exported byte for byte", i)
			}
		}
	})
}
