package pgstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
	"github.com/workspace-edge/caddy-workspace-profile/apikey/storetest"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
	"github.com/workspace-edge/caddy-workspace-profile/profile/pgstore"
)

// openKeyStore is a key store on a schema of its own, the function the
// shared conformance suite takes.
func openKeyStore(t *testing.T) apikey.Store { return open(t, freshSchema(t)).APIKeys() }

// newRecord is a user key of subject created at created (whole seconds,
// as PostgreSQL keeps microseconds).
func newRecord(t *testing.T, subject string, created time.Time) apikey.Record {
	t.Helper()
	key, id, err := apikey.Generate("wsp_")
	if err != nil {
		t.Fatal(err)
	}
	return apikey.Record{ID: id, Hash: apikey.HashKey(key), Subject: subject, Kind: apikey.KindUser, Name: "ci " + id,
		Created: created.UTC().Truncate(time.Second)}
}

// TestAPIKeyStore runs the conformance suite every key store passes.
func TestAPIKeyStore(t *testing.T) { storetest.Run(t, openKeyStore) }

func TestAPIKeysCreateLookupList(t *testing.T) {
	ks, ctx := openKeyStore(t), context.Background()
	now := time.Now()
	a := newRecord(t, "alice", now.Add(-time.Hour))
	a.Expires = now.Add(time.Hour).UTC().Truncate(time.Second)
	b := newRecord(t, "bob", now.Add(-30*time.Minute))
	b.Kind = apikey.KindService
	c := newRecord(t, "alice", now.Add(-time.Minute))
	for _, r := range []apikey.Record{c, a, b} {
		if err := ks.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ks.Lookup(ctx, a.Hash)
	if err != nil || got != a {
		t.Fatalf("Lookup = %+v, %v; want %+v", got, err, a)
	}
	if _, err := ks.Lookup(ctx, apikey.HashKey("unknown")); !errors.Is(err, apikey.ErrNotFound) {
		t.Fatalf("unknown hash: %v, want ErrNotFound", err)
	}
	sameID := newRecord(t, "carol", now)
	sameID.ID = a.ID
	sameHash := newRecord(t, "carol", now)
	sameHash.Hash = b.Hash
	for _, r := range []apikey.Record{sameID, sameHash} {
		if err := ks.Create(ctx, r); !errors.Is(err, apikey.ErrExists) {
			t.Fatalf("Create of a taken id or hash: %v, want ErrExists", err)
		}
	}
	bad := newRecord(t, "carol", now)
	bad.Kind = "admin"
	if err := ks.Create(ctx, bad); err == nil || errors.Is(err, apikey.ErrUnavailable) {
		t.Fatalf("Create of kind admin: %v, want a refusal that is no outage", err)
	}
	list, err := ks.List(ctx, "alice")
	if err != nil || len(list) != 2 || list[0] != a || list[1] != c {
		t.Fatalf("List(alice) = %+v, %v; want a then c", list, err)
	}
	all, err := ks.List(ctx, "")
	if err != nil || len(all) != 3 || all[1] != b {
		t.Fatalf("List() = %+v, %v; want a, b, c", all, err)
	}
}

func TestAPIKeysRevokeKeepsFirstTime(t *testing.T) {
	ks, ctx := openKeyStore(t), context.Background()
	r := newRecord(t, "alice", time.Now())
	if err := ks.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	first := time.Now().UTC().Truncate(time.Second)
	got, err := ks.Revoke(ctx, r.ID, first)
	if err != nil || !got.Revoked.Equal(first) {
		t.Fatalf("Revoke = %+v, %v", got, err)
	}
	got, err = ks.Revoke(ctx, r.ID, first.Add(time.Hour))
	if err != nil || !got.Revoked.Equal(first) {
		t.Fatalf("second Revoke = %+v, %v; want the first time kept", got, err)
	}
	if l, _ := ks.Lookup(ctx, r.Hash); !l.Revoked.Equal(first) || l.Usable(time.Now()) {
		t.Fatalf("stored after revoke: %+v", l)
	}
	if _, err := ks.Revoke(ctx, "0000000000000000", first); !errors.Is(err, apikey.ErrNotFound) {
		t.Fatalf("Revoke of an unknown id: %v", err)
	}
}

func TestAPIKeysTouchLastUsedNeverBackwards(t *testing.T) {
	ks, ctx := openKeyStore(t), context.Background()
	a, b := newRecord(t, "alice", time.Now()), newRecord(t, "alice", time.Now())
	for _, r := range []apikey.Record{a, b} {
		if err := ks.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now().UTC().Truncate(time.Minute)
	if err := ks.TouchLastUsed(ctx, map[string]time.Time{a.ID: t0, b.ID: t0.Add(-time.Minute), "0000000000000000": t0}); err != nil {
		t.Fatal(err)
	}
	if err := ks.TouchLastUsed(ctx, map[string]time.Time{a.ID: t0.Add(-10 * time.Minute), b.ID: t0}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []apikey.Record{a, b} {
		got, _ := ks.Lookup(ctx, r.Hash)
		if !got.LastUsed.Equal(t0) {
			t.Fatalf("%s last used %v, want %v", r.ID, got.LastUsed, t0)
		}
	}
	if err := ks.TouchLastUsed(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

func TestAPIKeysImportAllOrNothingAndExport(t *testing.T) {
	ks, ctx := openKeyStore(t), context.Background()
	now := time.Now()
	stored := newRecord(t, "alice", now.Add(-time.Hour))
	stored.LastUsed = now.UTC().Truncate(time.Minute)
	if err := ks.Create(ctx, stored); err != nil {
		t.Fatal(err)
	}
	fresh := newRecord(t, "bob", now.Add(-time.Minute))
	fresh.Revoked = now.UTC().Truncate(time.Second)
	changed := stored
	changed.Name = "renamed"
	hashClash := newRecord(t, "carol", now)
	hashClash.Hash = stored.Hash
	for name, rs := range map[string][]apikey.Record{
		"a stored record changed":           {fresh, changed},
		"a stored hash under another id":    {fresh, hashClash},
		"one id twice in the import":        {fresh, fresh},
		"a new record clashing with itself": {fresh, func() apikey.Record { r := newRecord(t, "x", now); r.Hash = fresh.Hash; return r }()},
	} {
		if err := ks.Import(ctx, rs); !errors.Is(err, apikey.ErrExists) {
			t.Fatalf("%s: Import = %v, want ErrExists", name, err)
		}
		if _, err := ks.Lookup(ctx, fresh.Hash); !errors.Is(err, apikey.ErrNotFound) {
			t.Fatalf("%s: a failed import stored %s (%v)", name, fresh.ID, err)
		}
	}
	if err := ks.Import(ctx, []apikey.Record{stored, fresh}); err != nil {
		t.Fatalf("import of a stored record and a new one: %v", err)
	}
	var exported []apikey.Record
	if err := ks.Export(ctx, func(r apikey.Record) error { exported = append(exported, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(exported) != 2 || exported[0] != stored || exported[1] != fresh {
		t.Fatalf("export = %+v; want the stored record then the imported one", exported)
	}
	stop := errors.New("stop")
	if err := ks.Export(ctx, func(apikey.Record) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("Export returned %v, want the callback's error", err)
	}
}

// TestAPIKeysUnavailableIsTheKeyStoresError: a store that cannot answer
// fails with apikey.ErrUnavailable (the route's 503), not the profile
// store's error, and names no host or port.
func TestAPIKeysUnavailableIsTheKeyStoresError(t *testing.T) {
	l, err := pgstore.OpenLazy("postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=1", pgstore.Options{Timeout: time.Second},
		pgstore.LazyOptions{Delay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = l.APIKeys().Lookup(context.Background(), apikey.HashKey("k"))
	if !errors.Is(err, apikey.ErrUnavailable) || errors.Is(err, profile.ErrUnavailable) {
		t.Fatalf("Lookup on a database that is down: %v; want apikey.ErrUnavailable only", err)
	}
	s := open(t, freshSchema(t))
	ks := s.APIKeys()
	_ = s.Close()
	err = ks.Create(context.Background(), newRecord(t, "alice", time.Now()))
	if !errors.Is(err, apikey.ErrUnavailable) || errors.Is(err, profile.ErrUnavailable) {
		t.Fatalf("Create on a closed store: %v; want apikey.ErrUnavailable", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ks.List(ctx, ""); !errors.Is(err, context.Canceled) || errors.Is(err, apikey.ErrUnavailable) {
		t.Fatalf("List with the caller gone: %v; want context.Canceled", err)
	}
}
