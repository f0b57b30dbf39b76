package storetest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
)

// Comparing records at a store's precision: a record's times are UTC at
// microsecond precision (apikey.StoredTime). A store may truncate (Go) or
// round (PostgreSQL) the nanoseconds it is given, so a time read back must
// lie within a microsecond of the one written, in UTC.

// same fails t unless got is want as a store keeps it.
func same(t *testing.T, got, want apikey.Record) {
	t.Helper()
	if got.ID != want.ID || got.Hash != want.Hash || got.Subject != want.Subject || got.Kind != want.Kind || got.Name != want.Name {
		t.Errorf("record read back as %+v, want %+v", got, want)
		return
	}
	for _, f := range []struct {
		name      string
		got, want time.Time
	}{
		{"created", got.Created, want.Created},
		{"expires", got.Expires, want.Expires},
		{"revoked", got.Revoked, want.Revoked},
		{"last_used", got.LastUsed, want.LastUsed},
	} {
		if !sameTime(f.got, f.want) {
			t.Errorf("%s of %s read back as %v, want %v at microsecond precision in UTC", f.name, want.ID, f.got, f.want)
		}
	}
}

func sameTime(got, want time.Time) bool {
	if want.IsZero() || got.IsZero() {
		return want.IsZero() && got.IsZero()
	}
	d := got.Sub(want)
	return got.Location() == time.UTC && got.Nanosecond()%1000 == 0 && -time.Microsecond < d && d < time.Microsecond
}

func sameList(t *testing.T, what string, got, want []apikey.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d records, want %d", what, len(got), len(want))
		return
	}
	for i := range got {
		same(t, got[i], want[i])
	}
}

// sortRecords puts records in List's order: creation time, then id.
func sortRecords(rs []apikey.Record) {
	slices.SortFunc(rs, func(a, b apikey.Record) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}
