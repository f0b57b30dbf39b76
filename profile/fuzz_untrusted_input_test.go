package profile_test

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
	"github.com/workspace-edge/caddy-workspace-profile/profile/memstore"
)

// Fuzz targets for the parsers of untrusted input in profile: the admin
// import reader and the ETag matcher (catalogue parts D and E, see
// docs/threat-model.md). Their corpora (testdata/fuzz/<Target>/) hold the
// write-endpoint rows' bodies as import lines and their If-Match values; a crasher found later is committed
// there as a regression seed.

// fuzzImportMax is the import cap of the fuzz target: small enough that
// a run is fast, large enough for every seed.
const fuzzImportMax = 1 << 20

// FuzzReadImport: the admin import reader never panics; its report is
// bounded whatever the file holds (at most MaxImportLineReports refused
// lines, each with short messages); a file with any refused line yields
// nothing to write; an accepted file, written to a store and exported
// again, re-reads to the same profiles, trailer checked.
func FuzzReadImport(f *testing.F) {
	for _, seed := range []string{
		"{\"UserId\":\"u-1\",\"UserName\":\"alice\",\"Email\":\"a@x.io\"}\n",
		"{\"UserId\":\"u-1\",\"FirstName\":\"\\ud800\"}\n",
		"{\"UserId\":\"u-1\"}\r\n\r\n{\"UserId\":\"u-2\",\"UserType\":2}\n",
		"{\"UserId\":\"u-1\",\"userid\":\"u-2\"}\n",
		"{\"_export\":{\"count\":0,\"sha256\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"}}\n",
	} {
		f.Add([]byte(seed), false)
	}
	f.Fuzz(func(t *testing.T, file []byte, requireTrailer bool) {
		imp, err := profile.ReadImportWith(bytes.NewReader(file), profile.ImportOptions{MaxBytes: fuzzImportMax, RequireTrailer: requireTrailer})
		if err != nil {
			if len(file) <= fuzzImportMax {
				t.Fatalf("a file under the cap: %v", err)
			}
			return
		}
		if imp.Refused == nil || len(imp.Refused) > profile.MaxImportLineReports {
			t.Fatalf("%d refused lines reported (cap %d)", len(imp.Refused), profile.MaxImportLineReports)
		}
		report, _ := json.Marshal(imp.Refused)
		if len(report) > profile.MaxImportLineReports*2048 {
			t.Fatalf("report of %d bytes", len(report))
		}
		for _, r := range imp.Refused {
			if len(r.Errors) == 0 || r.Line < 1 {
				t.Fatalf("empty report %+v", r)
			}
			for _, it := range r.Errors {
				if it.Code == "" || len(it.Message) > 400 {
					t.Fatalf("item %+v", it)
				}
			}
		}
		if len(imp.Refused) > 0 {
			if imp.Profiles != nil || imp.Lines != nil || imp.Trailer != nil {
				t.Fatalf("a refused file still has %d profiles to write", len(imp.Profiles))
			}
			return
		}
		if len(imp.Profiles) != len(imp.Lines) {
			t.Fatalf("%d profiles, %d line numbers", len(imp.Profiles), len(imp.Lines))
		}
		// every accepted profile is one a PUT could have made: a line of it
		// parses to itself
		for _, p := range imp.Profiles {
			line, _ := json.Marshal(p.Data())
			again, errs := profile.ParseImportLine(line)
			if len(errs) > 0 || again != p {
				t.Fatalf("%s re-parses to %+v, %v", line, again, errs)
			}
		}
		store := memstore.New()
		ctx := context.Background()
		if err := store.Import(ctx, imp.Profiles); err != nil {
			t.Fatalf("an accepted file fails to import: %v", err)
		}
		var out bytes.Buffer
		ew := profile.NewExportWriter(&out)
		if err := store.Export(ctx, func(p profile.Profile) error { return ew.Write(p) }); err != nil {
			t.Fatal(err)
		}
		_ = ew.Close()
		back, err := profile.ReadImportWith(&out, profile.ImportOptions{MaxBytes: 1 << 30, RequireTrailer: true})
		if err != nil || len(back.Refused) > 0 || back.Trailer == nil {
			t.Fatalf("the export of an accepted file: %v %+v", err, back.Refused)
		}
		want := slices.Clone(imp.Profiles)
		slices.SortFunc(want, func(a, b profile.Profile) int { return strings.Compare(a.UserID, b.UserID) })
		if len(back.Profiles) != len(want) {
			t.Fatalf("%d profiles re-read, %d imported", len(back.Profiles), len(want))
		}
		for i := range want {
			if back.Profiles[i] != want[i] {
				t.Fatalf("re-read %+v, imported %+v", back.Profiles[i], want[i])
			}
		}
	})
}

// FuzzETag: If-Match / If-None-Match parsing. A strong match is also a
// weak one; a tag always matches itself in a list, strongly; its weak form
// never matches strongly; "*" matches; nothing panics.
func FuzzETag(f *testing.F) {
	for _, seed := range [][2]string{
		{`"1-abc"`, `"1-abc"`}, {`W/"1-abc"`, `"1-abc"`}, {`*`, `"1-abc"`}, {`"a", "b" ,"1-abc"`, `"1-abc"`},
		{``, `"1-abc"`}, {`"1-abc`, `"1-abc"`}, {`w/"1-abc"`, `"1-abc"`}, {`,,,`, `""`},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, header, tag string) {
		strong, weak := profile.MatchETag(header, tag, false), profile.MatchETag(header, tag, true)
		if strong && !weak {
			t.Fatalf("%q matches %q strongly but not weakly", header, tag)
		}
		// the tags this module issues are quoted and hold no comma or space
		if !strings.HasPrefix(tag, `"`) || !strings.HasSuffix(tag, `"`) || len(tag) < 2 || strings.ContainsAny(tag, ", \t") {
			return
		}
		if !profile.MatchETag(tag, tag, false) || !profile.MatchETag(header+", "+tag, tag, false) {
			t.Fatalf("%q does not match itself in %q", tag, header+", "+tag)
		}
		if profile.MatchETag("W/"+tag, tag, false) || !profile.MatchETag("W/"+tag, tag, true) {
			t.Fatalf("weak %q: strong/weak comparison wrong", tag)
		}
		if !profile.MatchETag("*", tag, false) {
			t.Fatal(`"*" does not match`)
		}
	})
}
