package apikey

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// FuzzParseMade: the key parser never panics, accepts only keys of the
// exact shape <prefix><16 of a-z0-9>_<43 base64url of 32 bytes>, which
// the import's clear-key check recognises, and reads back every key
// Generate makes.
func FuzzParseMade(f *testing.F) {
	key, _, _ := Generate(DefaultPrefix)
	f.Add(DefaultPrefix, key)
	f.Add("acme_", "acme_abcdefghij012345_"+strings.Repeat("A", 43))
	f.Add("wsk_", "wsk_abcdefghij012345_"+strings.Repeat("_", 42)+"B") // B: bits beyond 256
	f.Add("", "")
	f.Add("wsk_", "wsk_ABCDEFGHIJ012345_"+strings.Repeat("a", 43))
	f.Fuzz(func(t *testing.T, prefix, key string) {
		id, ok := ParseMade(prefix, key)
		if ok {
			rest, found := strings.CutPrefix(key, prefix)
			if !found || len(rest) != IDLen+1+SecretLen || rest[:IDLen] != id || rest[IDLen] != '_' {
				t.Fatalf("ParseMade(%q, %q) accepted id %q", prefix, key, id)
			}
			for _, c := range id {
				if !strings.ContainsRune(idAlphabet, c) {
					t.Fatalf("id %q has %q", id, c)
				}
			}
			secret, err := base64.RawURLEncoding.Strict().DecodeString(rest[IDLen+1:])
			if err != nil || len(secret) != 32 || base64.RawURLEncoding.EncodeToString(secret) != rest[IDLen+1:] {
				t.Fatalf("secret of %q: %v", key, err)
			}
			if prefix != "" && !holdsKey(key) {
				t.Fatalf("the import's check does not see the key %q", key)
			}
		}
		if CheckPrefix(prefix) == nil {
			made, madeID, err := Generate(prefix)
			if err != nil {
				t.Fatal(err)
			}
			if got, ok := ParseMade(prefix, made); !ok || got != madeID || !Presentable(made) || !holdsKey(made) {
				t.Fatalf("Generate(%q) made %q (id %q), parsed %q %v", prefix, made, madeID, got, ok)
			}
		}
	})
}

// FuzzReadKeyImport: reading a key import never panics and reports within
// its caps; records it accepts export to lines that read back to the
// same records and export again byte for byte.
func FuzzReadKeyImport(f *testing.F) {
	line := `{"id":"abcdefghij012345","hash":"` + strings.Repeat("0f", 32) + `","subject":"u-1","kind":"user","name":"ci",` +
		`"created":"2026-12-05T10:00:00.5+02:00","expires":null,"revoked":"2026-12-06T00:00:00Z","last_used":null}`
	f.Add([]byte(line+"\n"), false)
	var exp bytes.Buffer
	w := NewExportWriter(&exp)
	r, _ := ParseImportLine([]byte(line))
	_ = w.Write(r)
	_ = w.Close()
	f.Add(exp.Bytes(), true)
	f.Add([]byte(`{"id":"a","hash":"`+strings.Repeat("A", 64)+`","subject":"s","kind":"service","created":"1970-01-01T00:00:00Z"}`), false)
	f.Add([]byte(`{"key":"wsk_abcdefghij012345_`+strings.Repeat("A", 43)+`"}`+"\n\n{}"), true)
	f.Fuzz(func(t *testing.T, file []byte, requireTrailer bool) {
		imp, err := ReadImport(bytes.NewReader(file), ImportOptions{MaxBytes: 1 << 20, RequireTrailer: requireTrailer})
		if err != nil {
			if !errors.Is(err, profile.ErrImportTooLarge) {
				t.Fatal(err)
			}
			return
		}
		if imp.Refused == nil || len(imp.Refused) > profile.MaxImportLineReports {
			t.Fatalf("%d refused lines reported", len(imp.Refused))
		}
		if len(imp.Refused) > 0 {
			if imp.Records != nil || imp.Trailer != nil {
				t.Fatal("records or a trailer kept with refused lines")
			}
			return
		}
		var out bytes.Buffer
		w := NewExportWriter(&out)
		for _, r := range imp.Records {
			if err := w.Write(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		back, err := ReadImport(bytes.NewReader(out.Bytes()), ImportOptions{MaxBytes: 1 << 30, RequireTrailer: true})
		if err != nil || len(back.Refused) != 0 || len(back.Records) != len(imp.Records) {
			t.Fatalf("the export of accepted records reads back as %+v, %v\n%s", back, err, out.Bytes())
		}
		var again bytes.Buffer
		w = NewExportWriter(&again)
		for i, r := range back.Records {
			if !r.Equal(imp.Records[i]) {
				t.Fatalf("record %d read back as %+v, want %+v", i, r, imp.Records[i])
			}
			_ = w.Write(r)
		}
		_ = w.Close()
		if !bytes.Equal(again.Bytes(), out.Bytes()) {
			t.Fatalf("exported again:\n%s\nfirst:\n%s", again.Bytes(), out.Bytes())
		}
	})
}
