package apikey

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestGenerateMakesKeysOfTheDocumentedShape(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		key, id, err := Generate(DefaultPrefix)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := ParseMade(DefaultPrefix, key)
		if !ok || got != id || len(id) != IDLen || len(key) != len(DefaultPrefix)+IDLen+1+SecretLen {
			t.Fatalf("Generate made %d characters, id %q, parsed %q %v", len(key), id, got, ok)
		}
		if seen[id] {
			t.Fatalf("id %q made twice", id)
		}
		seen[id] = true
	}
}

func TestCheckPrefix(t *testing.T) {
	for p, ok := range map[string]bool{"wsk_": true, "ACME_9": true, "": false, "ey": false, "Eyx_": false,
		"a-b": false, "a b": false, "0123456789012345678901234567890123": false} {
		if err := CheckPrefix(p); (err == nil) != ok {
			t.Errorf("CheckPrefix(%q) = %v, want ok=%v", p, err, ok)
		}
	}
}

func TestKeyringRefusesEveryBadKeyAlike(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	m := NewMemory()
	good, id, _ := Generate(DefaultPrefix)
	revoked, rid, _ := Generate(DefaultPrefix)
	expired, eid, _ := Generate(DefaultPrefix)
	ctx := context.Background()
	for _, r := range []Record{
		{ID: id, Hash: HashKey(good), Subject: "u1", Kind: KindUser, Created: now},
		{ID: rid, Hash: HashKey(revoked), Subject: "u1", Kind: KindUser, Created: now, Revoked: now},
		{ID: eid, Hash: HashKey(expired), Subject: "u1", Kind: KindUser, Created: now, Expires: now},
	} {
		if err := m.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	k := NewKeyring(m, Options{Now: func() time.Time { return now }})
	defer k.Close()
	if r, err := k.Verify(ctx, good); err != nil || r.Subject != "u1" {
		t.Fatalf("good key: %v %v", r, err)
	}
	unknown, _, _ := Generate(DefaultPrefix)
	for name, key := range map[string]string{"revoked": revoked, "expired": expired, "unknown": unknown,
		"empty": "", "control": "wsk_a\x01", "long": string(make([]byte, MaxKeyLen+1))} {
		if _, err := k.Verify(ctx, key); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s key: %v, want ErrInvalid", name, err)
		}
	}
}
