package boltstore_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
	"github.com/workspace-edge/caddy-workspace-profile/apikey/storetest"
	"github.com/workspace-edge/caddy-workspace-profile/profile/boltstore"
)

func TestAPIKeyStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) apikey.Store { return open(t).APIKeys() })
}

// A file written before API keys existed (profiles and user names only)
// opens, gains the key buckets, and keeps its schema version.
func TestAPIKeysInAFileWithoutKeyBuckets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		meta, _ := tx.CreateBucket([]byte("meta"))
		_ = meta.Put([]byte("schema"), []byte("1"))
		_, _ = tx.CreateBucket([]byte("profiles"))
		_, err := tx.CreateBucket([]byte("usernames"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	s, err := boltstore.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	key, id, _ := apikey.Generate(apikey.DefaultPrefix)
	r := apikey.Record{ID: id, Hash: apikey.HashKey(key), Subject: "u1", Kind: apikey.KindUser, Created: time.Now()}
	ctx := context.Background()
	if err := s.APIKeys().Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	// reopened: the key is still there, the schema still 1
	s, err = boltstore.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.APIKeys().Lookup(ctx, r.Hash); err != nil || got.ID != id {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
	_ = s.Close()
	db, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket([]byte("meta")).Get([]byte("schema")); string(v) != "1" {
			t.Errorf("schema = %q, want 1", v)
		}
		return nil
	})
}

// A store whose context is done answers ErrUnavailable, never ErrNotFound.
func TestAPIKeysDoneContextIsUnavailable(t *testing.T) {
	ks := open(t).APIKeys()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ks.Lookup(ctx, apikey.HashKey("x")); !isUnavailable(err) {
		t.Errorf("Lookup: %v", err)
	}
	if err := ks.Create(ctx, apikey.Record{ID: "a", Kind: apikey.KindUser}); !isUnavailable(err) {
		t.Errorf("Create: %v", err)
	}
	if _, err := ks.Revoke(ctx, "a", time.Now()); !isUnavailable(err) {
		t.Errorf("Revoke: %v", err)
	}
}

func isUnavailable(err error) bool { return errors.Is(err, apikey.ErrUnavailable) }
