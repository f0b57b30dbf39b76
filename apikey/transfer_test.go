package apikey_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

var t0 = time.Date(2026, 12, 5, 10, 0, 0, 123456789, time.UTC)

func TestKeyExportImportsIntoAnotherStoreWithoutTheKey(t *testing.T) {
	ctx := context.Background()
	src := apikey.NewMemory()
	var keys []string
	for i, kind := range []apikey.Kind{apikey.KindUser, apikey.KindService, apikey.KindUser} {
		key, id, _ := apikey.Generate(apikey.DefaultPrefix)
		keys = append(keys, key)
		r := apikey.Record{ID: id, Hash: apikey.HashKey(key), Subject: fmt.Sprintf("u%d", i), Kind: kind,
			Name: "ci <deploy> ✓", Created: t0.Add(time.Duration(i) * time.Minute)}
		if i == 1 {
			r.Expires, r.Revoked, r.LastUsed = t0.Add(time.Hour), t0.Add(2*time.Minute), t0.Add(time.Minute)
		}
		if err := src.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	n, err := apikey.Export(ctx, src, &out)
	if err != nil || n != 3 {
		t.Fatalf("export: %d, %v", n, err)
	}
	for _, key := range keys {
		if strings.Contains(out.String(), key) || strings.Contains(out.String(), key[len(apikey.DefaultPrefix)+apikey.IDLen+1:]) {
			t.Fatal("an export holds a key or its secret")
		}
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[3], `{"_export":{"count":3,"sha256":"`) {
		t.Fatalf("export lines:\n%s", out.String())
	}
	if want := `","subject":"u1","kind":"service","name":"ci \u003cdeploy\u003e ✓","created":"2026-12-05T10:01:00.123456Z",` +
		`"expires":"2026-12-05T11:00:00.123456Z","revoked":"2026-12-05T10:02:00.123456Z","last_used":"2026-12-05T10:01:00.123456Z"}`; !strings.HasSuffix(lines[1], want) {
		t.Fatalf("line 2 is\n%s\nwant it to end with\n%s", lines[1], want)
	}
	f, err := apikey.ReadImport(bytes.NewReader(out.Bytes()), apikey.ImportOptions{MaxBytes: 1 << 20, RequireTrailer: true})
	if err != nil || len(f.Refused) != 0 || f.Trailer == nil || len(f.Records) != 3 || f.Lines[2] != 3 {
		t.Fatalf("import: %+v, %v", f, err)
	}
	dst := apikey.NewMemory()
	if err := dst.Import(ctx, f.Records); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if _, err := apikey.Export(ctx, dst, &again); err != nil || again.String() != out.String() {
		t.Fatalf("the other store's export differs (%v):\n%s\nwant\n%s", err, again.String(), out.String())
	}
}

// A store that fails midway: no trailer, so the file is refused later.
func TestKeyExportThatFailsHasNoTrailer(t *testing.T) {
	var out bytes.Buffer
	if _, err := apikey.Export(context.Background(), failingExport{}, &out); err == nil {
		t.Fatal("no error")
	}
	if strings.Contains(out.String(), "_export") || !strings.HasSuffix(out.String(), "}\n") {
		t.Fatalf("output %q", out.String())
	}
}

type failingExport struct{ apikey.Store }

func (failingExport) Export(_ context.Context, fn func(apikey.Record) error) error {
	if err := fn(apikey.Record{ID: "a", Kind: apikey.KindUser, Subject: "u", Created: t0}); err != nil {
		return err
	}
	return apikey.ErrUnavailable
}

// goodLine is a valid line with one member replaced (or removed, with "").
func goodLine(member, value string) string {
	m := []string{`"id":"abcdefghij012345"`, `"hash":"` + strings.Repeat("ab", 32) + `"`, `"subject":"u-1"`, `"kind":"user"`,
		`"name":"ci"`, `"created":"2026-12-05T10:00:00Z"`, `"expires":null`, `"revoked":null`, `"last_used":null`}
	for i, kv := range m {
		if strings.HasPrefix(kv, `"`+member+`":`) {
			if value == "" {
				m = append(m[:i], m[i+1:]...)
			} else {
				m[i] = `"` + member + `":` + value
			}
			return "{" + strings.Join(m, ",") + "}"
		}
	}
	if value == "" {
		return "{" + strings.Join(m, ",") + "}"
	}
	return "{" + strings.Join(m, ",") + `,"` + member + `":` + value + "}"
}

func TestReadKeyImportRefusesLinesPrecisely(t *testing.T) {
	key, _, _ := apikey.Generate("acme_")
	for name, c := range map[string]struct{ line, code, field string }{
		"a key member":            {goodLine("key", `"`+key+`"`), apikey.CodeKeyInClear, "key"},
		"a Key member":            {goodLine("Key", `"x"`), apikey.CodeKeyInClear, "Key"},
		"a key as the name":       {goodLine("name", `"`+key+`"`), apikey.CodeKeyInClear, "name"},
		"a key inside the name":   {goodLine("name", `"old: `+key+`."`), apikey.CodeKeyInClear, "name"},
		"a key as the subject":    {goodLine("subject", `"`+key+`"`), apikey.CodeKeyInClear, "subject"},
		"an unknown member":       {goodLine("note", `1`), profile.CodeUnknownField, ""},
		"a member in other case":  {strings.Replace(goodLine("x", ""), `"id"`, `"ID"`, 1), profile.CodeUnknownField, ""},
		"a member twice":          {strings.Replace(goodLine("x", ""), `"name":"ci"`, `"name":"ci","name":"cd"`, 1), profile.CodeDuplicateProperty, ""},
		"not an object":           {`["id"]`, profile.CodeInvalidJSON, ""},
		"two objects":             {goodLine("x", "") + "{}", profile.CodeInvalidJSON, ""},
		"no id":                   {goodLine("id", ""), profile.CodeRequired, "id"},
		"an id with a slash":      {goodLine("id", `"a/b"`), profile.CodeInvalidCharacters, "id"},
		"a long id":               {goodLine("id", `"`+strings.Repeat("a", 65)+`"`), profile.CodeInvalidCharacters, "id"},
		"a short hash":            {goodLine("hash", `"abcd"`), profile.CodeInvalidCharacters, "hash"},
		"a null hash":             {goodLine("hash", `null`), profile.CodeRequired, "hash"},
		"a subject with a space":  {goodLine("subject", `" u-1"`), profile.CodeInvalidCharacters, "subject"},
		"an empty subject":        {goodLine("subject", `""`), profile.CodeRequired, "subject"},
		"a numeric subject":       {goodLine("subject", `12`), profile.CodeInvalidType, "subject"},
		"an unknown kind":         {goodLine("kind", `"admin"`), profile.CodeInvalidType, "kind"},
		"a long name":             {goodLine("name", `"`+strings.Repeat("é", 101)+`"`), profile.CodeTooLong, "name"},
		"a name with a control":   {goodLine("name", `"a\u0007"`), profile.CodeInvalidCharacters, ""},
		"no created":              {goodLine("created", ""), profile.CodeRequired, "created"},
		"a created without zone":  {goodLine("created", `"2026-12-05T10:00:00"`), profile.CodeInvalidType, "created"},
		"a date only":             {goodLine("expires", `"2026-12-05"`), profile.CodeInvalidType, "expires"},
		"a time before 1970":      {goodLine("revoked", `"1969-12-31T23:59:59Z"`), profile.CodeInvalidType, "revoked"},
		"a time after 9999 (UTC)": {goodLine("last_used", `"9999-12-31T23:59:59-01:00"`), profile.CodeInvalidType, "last_used"},
		"invalid UTF-8":           {goodLine("name", "\"\xff\""), profile.CodeInvalidCharacters, ""},
	} {
		file := goodLine("x", "") + "\n" + c.line + "\n"
		f, err := apikey.ReadImport(strings.NewReader(file), apikey.ImportOptions{MaxBytes: 1 << 20})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(f.Refused) != 1 || f.Refused[0].Line != 2 || f.Records != nil {
			t.Errorf("%s: refused %+v, records %d; want line 2 alone", name, f.Refused, len(f.Records))
			continue
		}
		it := f.Refused[0].Errors[0]
		if it.Code != c.code || (c.field == "") != (it.Field == nil) || (it.Field != nil && *it.Field != c.field) {
			t.Errorf("%s: %s %v %q; want %s %q", name, it.Code, it.Field, it.Message, c.code, c.field)
		}
		if strings.Contains(it.Message, key) {
			t.Errorf("%s: the message quotes the key", name)
		}
	}
}

func TestReadKeyImportRefusesAnIDOrHashTwice(t *testing.T) {
	a := goodLine("x", "")
	sameHash := goodLine("id", `"other"`)
	sameID := goodLine("hash", `"`+strings.Repeat("cd", 32)+`"`)
	f, err := apikey.ReadImport(strings.NewReader(a+"\n\n"+sameHash+"\n"+sameID+"\n"), apikey.ImportOptions{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Refused) != 2 || f.Refused[0].Line != 3 || *f.Refused[0].Errors[0].Field != "hash" ||
		f.Refused[1].Line != 4 || *f.Refused[1].Errors[0].Field != "id" || f.Refused[1].Errors[0].Message != "The id also appears on line 1." {
		t.Fatalf("refused %+v", f.Refused)
	}
}

func TestReadKeyImportChecksTheTrailerAndLimits(t *testing.T) {
	var out bytes.Buffer
	w := apikey.NewExportWriter(&out)
	r, _ := apikey.ParseImportLine([]byte(goodLine("x", "")))
	if err := w.Write(r); err != nil || w.Close() != nil {
		t.Fatal(err)
	}
	read := func(file string, require bool) *apikey.ImportFile {
		t.Helper()
		f, err := apikey.ReadImport(strings.NewReader(file), apikey.ImportOptions{MaxBytes: 1 << 20, RequireTrailer: require})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	lines := strings.SplitAfter(out.String(), "\n")
	if f := read(lines[0], true); len(f.Refused) != 1 || f.Refused[0].Line != 2 || f.Refused[0].Errors[0].Code != profile.CodeExportTrailer {
		t.Errorf("no trailer: %+v", f.Refused)
	}
	edited := strings.Replace(lines[0], `"ci"`, `"cd"`, 1) + lines[1]
	if f := read(edited, false); len(f.Refused) != 1 || f.Refused[0].Line != 2 || f.Refused[0].Errors[0].Code != profile.CodeExportTrailer {
		t.Errorf("an edited line: %+v", f.Refused)
	}
	long := goodLine("name", `"`+strings.Repeat("a", apikey.MaxImportLineBytes)+`"`)
	if f := read(long+"\n", false); len(f.Refused) != 1 || f.Refused[0].Errors[0].Code != profile.CodeTooLong {
		t.Errorf("a line over %d bytes: %+v", apikey.MaxImportLineBytes, f.Refused)
	}
	if _, err := apikey.ReadImport(strings.NewReader(out.String()), apikey.ImportOptions{MaxBytes: 10}); !errors.Is(err, profile.ErrImportTooLarge) {
		t.Errorf("over MaxBytes: %v", err)
	}
}

func TestReadKeyImportCarriesAtMostMaxRecords(t *testing.T) {
	const limit = 50
	var b strings.Builder
	for i := range limit + 1 {
		fmt.Fprintf(&b, `{"id":"k%d","hash":"%064x","subject":"u","kind":"user","created":"2026-12-05T10:00:00Z"}`+"\n", i, i)
	}
	f, err := apikey.ReadImport(strings.NewReader(b.String()), apikey.ImportOptions{MaxBytes: 1 << 30, MaxRecords: limit})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Refused) != 1 || f.Refused[0].Line != limit+1 || f.Records != nil {
		t.Fatalf("refused %+v", f.Refused)
	}
	f, err = apikey.ReadImport(strings.NewReader(b.String()), apikey.ImportOptions{MaxBytes: 1 << 30, MaxRecords: limit + 1})
	if err != nil || len(f.Refused) != 0 || len(f.Records) != limit+1 {
		t.Fatalf("at the limit: %+v, %v", f.Refused, err)
	}
}
