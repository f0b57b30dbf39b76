package profile

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func exportOf(t *testing.T, n int) []byte {
	t.Helper()
	var b bytes.Buffer
	ew := NewExportWriter(&b)
	for i := range n {
		name := fmt.Sprintf("user-%03d", i)
		if err := ew.Write(Profile{UserID: fmt.Sprintf("u-%03d", i), UserName: name, Email: name + "@example.com", UserType: UserType(i % 3)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ew.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func readRequired(t *testing.T, file []byte) *ImportFile {
	t.Helper()
	f, err := ReadImportWith(bytes.NewReader(file), ImportOptions{MaxBytes: 1 << 20, RequireTrailer: true})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestExportTrailerRoundTrip: an export ends with its trailer, which the
// import checks; the profiles come back whole.
func TestExportTrailerRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 250} {
		file := exportOf(t, n)
		lines := strings.Split(strings.TrimSuffix(string(file), "\n"), "\n")
		if len(lines) != n+1 || !strings.HasPrefix(lines[n], `{"_export":{"count":`+fmt.Sprint(n)+`,"sha256":"`) {
			t.Fatalf("%d profiles: last line %q of %d", n, lines[len(lines)-1], len(lines))
		}
		f := readRequired(t, file)
		if len(f.Refused) != 0 || len(f.Profiles) != n || f.Trailer == nil || f.Trailer.Count != int64(n) {
			t.Fatalf("%d profiles: %s, %d read, trailer %+v", n, lineCodes(f), len(f.Profiles), f.Trailer)
		}
		if n > 0 && (f.Profiles[n-1].UserName != fmt.Sprintf("user-%03d", n-1) || f.Profiles[2%n].UserType != UserType(2%n%3)) {
			t.Fatalf("round trip: %+v", f.Profiles[n-1])
		}
	}
}

// TestExportTrailerRefusals: whatever cuts or alters an export is refused
// with ExportTrailer, and nothing is kept to write.
func TestExportTrailerRefusals(t *testing.T) {
	file := string(exportOf(t, 20))
	lines := strings.SplitAfter(file, "\n")
	trailer := lines[20]
	cut := func(i int) string { return strings.Join(lines[:i], "") }
	tests := []struct{ name, file, want string }{
		{"cut before the trailer", cut(20), "21:ExportTrailer"},
		{"cut in the middle", cut(10), "11:ExportTrailer"},
		{"cut inside a line", file[:len(file)/2], fmt.Sprintf("%d:InvalidJson %d:ExportTrailer", strings.Count(file[:len(file)/2], "\n")+1, strings.Count(file[:len(file)/2], "\n")+2)},
		{"cut inside the trailer", file[:len(file)-10], "21:ExportTrailer"},
		{"a line removed", cut(5) + strings.Join(lines[6:], ""), "20:ExportTrailer,ExportTrailer"},
		{"a value altered", strings.Replace(file, "user-007@", "user-070@", 1), "21:ExportTrailer"},
		{"two lines swapped", cut(3) + lines[4] + lines[3] + strings.Join(lines[5:], ""), "21:ExportTrailer"},
		{"line endings changed", strings.ReplaceAll(cut(20), "\n", "\r\n") + trailer, "21:ExportTrailer"},
		{"a line after the trailer", file + `{"UserId":"late"}` + "\n", "22:ExportTrailer"},
		{"two trailers", file + trailer, "22:ExportTrailer"},
		{"trailer respelled", cut(20) + strings.Replace(trailer, `"count"`, `"Count"`, 1), "21:ExportTrailer"},
		{"trailer with another key", cut(20) + strings.Replace(trailer, `{"count"`, `{"x":1,"count"`, 1), "21:ExportTrailer"},
		{"no trailer at all", `{"UserId":"a"}` + "\n", "2:ExportTrailer"},
		{"no trailer, no final newline", `{"UserId":"a"}`, "2:ExportTrailer"},
		{"empty file", "", "1:ExportTrailer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := readRequired(t, []byte(tt.file))
			if got := lineCodes(f); got != tt.want {
				t.Fatalf("refused %q, want %q", got, tt.want)
			}
			if f.Profiles != nil || f.Trailer != nil {
				t.Fatalf("%d profiles kept, trailer %+v", len(f.Profiles), f.Trailer)
			}
		})
	}
}

// TestImportWithoutTrailer: a hand-written file, without a trailer, reads
// when the trailer is not required; a trailer it has is checked anyway;
// blank lines after the trailer are fine.
func TestImportWithoutTrailer(t *testing.T) {
	f, err := ReadImport(strings.NewReader("{\"UserId\":\"a\"}\n\n{\"UserId\":\"b\"}"), 1<<20)
	if err != nil || len(f.Refused) != 0 || len(f.Profiles) != 2 || f.Trailer != nil {
		t.Fatalf("%v %s %d", err, lineCodes(f), len(f.Profiles))
	}
	file := exportOf(t, 3)
	if f, _ := ReadImport(bytes.NewReader(append(file, "\n \n"...)), 1<<20); len(f.Refused) != 0 || f.Trailer == nil {
		t.Fatalf("blank lines after the trailer: %s", lineCodes(f))
	}
	altered := bytes.Replace(file, []byte("user-001"), []byte("user-101"), 1)
	if f, _ := ReadImport(bytes.NewReader(altered), 1<<20); lineCodes(f) != "4:ExportTrailer" {
		t.Fatalf("an altered file with its trailer, trailer not required: %q", lineCodes(f))
	}
}
