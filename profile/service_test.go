package profile_test

import (
	"context"
	"errors"
	"testing"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
	"github.com/workspace-edge/caddy-workspace-profile/profile/memstore"
)

func ptr(s string) *string { return &s }

var alice = profile.Identity{UserID: "u-1", PreferredUserName: "alice", Email: "alice@example.com",
	GivenName: "Alice", FamilyName: "Liddell", UserType: profile.UserTypeAdmin}

func TestGetUnknownWithoutCreateMissing(t *testing.T) {
	s := profile.Service{Store: memstore.New()}
	if _, err := s.Get(context.Background(), alice); !errors.Is(err, profile.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if _, err := s.Put(context.Background(), alice, "", profile.UpdateRequest{FirstName: ptr("A")}); !errors.Is(err, profile.ErrNotFound) {
		t.Fatalf("PUT: err = %v, want ErrNotFound", err)
	}
}

func TestCreateMissingFromClaims(t *testing.T) {
	s := profile.Service{Store: memstore.New(), CreateMissing: true}
	p, err := s.Get(context.Background(), alice)
	want := profile.Profile{UserID: "u-1", UserName: "alice", Email: "alice@example.com", FirstName: "Alice",
		LastName: "Liddell", UserType: profile.UserTypeAdmin, Version: 1}
	if err != nil || p != want {
		t.Fatalf("got %+v, %v; want %+v", p, err, want)
	}
	// a second GET reads, it does not write again
	if p2, _ := s.Get(context.Background(), alice); p2.Version != 1 {
		t.Fatalf("second GET wrote: version %d", p2.Version)
	}
}

func TestCreateMissingFallsBackWhenNameTakenOrInvalid(t *testing.T) {
	ctx := context.Background()
	s := profile.Service{Store: memstore.New(), CreateMissing: true}
	if _, err := s.Get(ctx, alice); err != nil {
		t.Fatal(err)
	}
	// the claimed name is taken: the subject becomes the user name
	imposter := profile.Identity{UserID: "user-2", PreferredUserName: "ALICE", Email: "not an email"}
	p, err := s.Get(ctx, imposter)
	if err != nil || p.UserName != "user-2" || p.Email != "" {
		t.Fatalf("got %+v, %v; want user name user-2 and no email", p, err)
	}
	// neither the claim nor the subject is a valid user name: none
	odd := profile.Identity{UserID: "x", PreferredUserName: "with space"}
	if p, err := s.Get(ctx, odd); err != nil || p.UserName != "" {
		t.Fatalf("got %+v, %v; want an empty user name", p, err)
	}
}

func TestPutCreatesWithRequestedName(t *testing.T) {
	s := profile.Service{Store: memstore.New(), CreateMissing: true}
	res, err := s.Put(context.Background(), alice, "", profile.UpdateRequest{UserName: ptr("alice2")})
	if err != nil || res.Profile.UserName != "alice2" || res.Profile.Email != "alice@example.com" || !res.Changed {
		t.Fatalf("got %+v, %v", res, err)
	}
}

func TestPutIfMatchAndNoChanges(t *testing.T) {
	ctx := context.Background()
	s := profile.Service{Store: memstore.New(), CreateMissing: true}
	p, _ := s.Get(ctx, alice)
	if _, err := s.Put(ctx, alice, `"0-nope"`, profile.UpdateRequest{FirstName: ptr("B")}); !errors.Is(err, profile.ErrPreconditionFailed) {
		t.Fatalf("stale If-Match: %v", err)
	}
	res, err := s.Put(ctx, alice, p.ETag(), profile.UpdateRequest{FirstName: ptr("B")})
	if err != nil || !res.Changed || res.Profile.Version != 2 {
		t.Fatalf("matching If-Match: %+v, %v", res, err)
	}
	res, err = s.Put(ctx, alice, "", profile.UpdateRequest{FirstName: ptr("B"), LastName: ptr("Liddell")})
	if err != nil || res.Changed || res.Profile.Version != 2 {
		t.Fatalf("no-op PUT: %+v, %v; want unchanged at version 2", res, err)
	}
	// If-Match on a profile that does not exist fails, even with create_missing
	bob := profile.Identity{UserID: "bob"}
	if _, err := s.Put(ctx, bob, "*", profile.UpdateRequest{}); !errors.Is(err, profile.ErrPreconditionFailed) {
		t.Fatalf("If-Match * on a missing profile: %v", err)
	}
}

func TestPutClearsOptionalFields(t *testing.T) {
	ctx := context.Background()
	s := profile.Service{Store: memstore.New(), CreateMissing: true}
	_, _ = s.Get(ctx, alice)
	res, err := s.Put(ctx, alice, "", profile.UpdateRequest{Email: ptr(""), FirstName: ptr("")})
	if err != nil || res.Profile.Email != "" || res.Profile.FirstName != "" || res.Profile.LastName != "Liddell" {
		t.Fatalf("got %+v, %v", res.Profile, err)
	}
}
