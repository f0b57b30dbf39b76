package profile

import (
	"encoding/json"
	"errors"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// repeat yields s over and over, n bytes in all: big input made on the fly.
func repeat(s string, n int64) io.Reader { return io.LimitReader(&cycle{s: s}, n) }

type cycle struct {
	s   string
	off int
}

func (c *cycle) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := copy(p[n:], c.s[c.off:])
		n += k
		c.off = (c.off + k) % len(c.s)
	}
	return n, nil
}

// readImport runs ReadImport and returns what the process allocated
// meanwhile.
func readImport(t *testing.T, r io.Reader, maxBytes int64) (*ImportFile, uint64) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f, err := ReadImport(r, maxBytes)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatalf("ReadImport: %v", err)
	}
	return f, after.TotalAlloc - before.TotalAlloc
}

// lineCodes is "line:Code@Field,..." for each refused line.
func lineCodes(f *ImportFile) string {
	var out []string
	for _, lr := range f.Refused {
		out = append(out, strconv.Itoa(lr.Line)+":"+codes(lr.Errors))
	}
	return strings.Join(out, " ")
}

// TestReadImportJunkIsBounded: 6 MiB of junk lines, of several kinds, are
// reported by their first MaxImportLineReports lines in a small report,
// with the count of the lines left unchecked, and reading them allocates a
// few MiB however many lines are bad.
func TestReadImportJunkIsBounded(t *testing.T) {
	long := strings.Repeat("Z", 5000)
	for name, junk := range map[string]string{
		"not json":   "junk\n",
		"empty obj":  "{}\n",
		"every rule": `{"UserId":" ","UserName":"` + long + `!","Email":"` + long + `","FirstName":"` + long + "\\u0000" + `","LastName":"` + long + "\\u0007" + `","UserType":9}` + "\n",
		"same user":  `{"UserId":"u-1","UserName":"` + strings.Repeat("y", 64) + `"}` + "\n",
		"too long":   strings.Repeat("x", MaxImportLineBytes+1) + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			const size = 6 << 20
			f, alloc := readImport(t, repeat(junk, size), 256<<20)
			report, err := json.Marshal(f.Refused)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d line reports, %d unchecked, report %d bytes, %d KiB allocated", len(f.Refused), f.Unchecked, len(report), alloc>>10)
			lines := (size + len(junk) - 1) / len(junk)
			wantReports := min(lines, MaxImportLineReports)
			if name == "same user" {
				wantReports = min(lines-1, MaxImportLineReports) // the first line is fine
			}
			if len(f.Refused) != wantReports || f.Truncated != (wantReports == MaxImportLineReports) || f.Profiles != nil || f.Lines != nil {
				t.Fatalf("%d reports (want %d), truncated %v, %d profiles kept", len(f.Refused), wantReports, f.Truncated, len(f.Profiles))
			}
			if checked := f.Refused[len(f.Refused)-1].Line; f.Unchecked != lines-checked {
				t.Fatalf("unchecked %d, want %d", f.Unchecked, lines-checked)
			}
			// A line that breaks every rule is refused with 8 items of
			// fixed text: 100 of them are ~155 KB; any other junk, 16-32 KB.
			bound := 64 << 10
			if name == "every rule" {
				bound = 192 << 10
			}
			if len(report) > bound {
				t.Fatalf("report of %d bytes, over %d", len(report), bound)
			}
			if strings.Contains(string(report), strings.Repeat("Z", maxQuoted+1)) {
				t.Fatal("the report echoes a line's value")
			}
			if alloc > 64<<20 {
				t.Fatalf("reading %d MiB allocated %d MiB", size>>20, alloc>>20)
			}
		})
	}
}

// TestReadImportLongLineNotHeld: a 1 MiB line with no newline is refused
// as too long with its length, and is not read into memory whole.
func TestReadImportLongLineNotHeld(t *testing.T) {
	f, alloc := readImport(t, repeat("a", 1<<20), 256<<20)
	if got := lineCodes(f); got != "1:TooLong" {
		t.Fatalf("refused %q", got)
	}
	if meta := f.Refused[0].Errors[0].Metadata; meta["Length"] != strconv.Itoa(1<<20) || meta["MaxLength"] != strconv.Itoa(MaxImportLineBytes) {
		t.Fatalf("metadata %v", meta)
	}
	if alloc >= 1<<20 {
		t.Fatalf("a 1 MiB line took %d KiB", alloc>>10)
	}
}

func TestReadImport(t *testing.T) {
	at := func(n int) string { // a valid line of exactly n bytes
		s := `{"UserId":"u-at"}`
		return s + strings.Repeat(" ", n-len(s))
	}
	tests := []struct {
		name, file string
		lines      string // file line of each accepted profile
		refused    string
	}{
		{name: "empty", file: ""},
		{name: "blank lines numbered", file: "\n \t\n{\"UserId\":\"a\"}\n\r\n{\"UserId\":\"b\"}", lines: "3 5"},
		{name: "crlf", file: "{\"UserId\":\"a\"}\r\n{\"UserId\":\"b\"}\r\n", lines: "1 2"},
		{name: "line at the limit", file: at(MaxImportLineBytes) + "\n", lines: "1"},
		{name: "line at the limit, crlf", file: at(MaxImportLineBytes) + "\r\n", lines: "1"},
		{name: "line at the limit, no newline", file: at(MaxImportLineBytes), lines: "1"},
		{name: "line over the limit", file: "{\"UserId\":\"a\"}\n" + at(MaxImportLineBytes+1) + "\n{\"UserId\":\"c\"}\n", refused: "2:TooLong"},
		{name: "line over the limit, no newline", file: at(MaxImportLineBytes + 1), refused: "1:TooLong"},
		{name: "long blank line is too long", file: strings.Repeat(" ", 2*MaxImportLineBytes), refused: "1:TooLong"},
		{name: "lines after a long one are checked", file: at(3*MaxImportLineBytes) + "\nx\n{\"UserId\":\"c\"}\n{\"UserId\":\"c\"}\n",
			refused: "1:TooLong 2:InvalidJson 4:DuplicateProperty@UserId"},
		{name: "every refused line", file: "{\"UserId\":\"a\",\"Email\":\"nope\"}\n{\"UserId\":\"b\",\"UserName\":\"Ann\"}\n{\"UserId\":\"c\",\"UserName\":\"ann\"}\n{\"UserId\":\"a\"}\n",
			refused: "1:InvalidEmail@Email 3:UserNameTaken@UserName"},
		{name: "invalid utf-8", file: "{\"UserId\":\"a\",\"FirstName\":\"\xff\"}\n", refused: "1:InvalidJson"},
		{name: "unknown property", file: "{\"UserId\":\"a\",\"Password\":\"x\"}\n", refused: "1:InvalidJson"},
		{name: "property by case binds", file: "{\"userid\":\"a\",\"USERNAME\":\"ann\"}\n", lines: "1"},
		{name: "property by long s binds", file: "{\"UserId\":\"a\",\"U\u017ferName\":\"ann\"}\n", lines: "1"},
		// encoding/json lets the last of two equal names win; a PUT refuses them
		{name: "duplicate property", file: "{\"UserId\":\"a\",\"UserId\":\"b\"}\n", refused: "1:DuplicateProperty@UserId"},
		{name: "duplicate property by case", file: "{\"UserId\":\"a\",\"userId\":\"b\",\"UserType\":1,\"usertype\":2}\n",
			refused: "1:DuplicateProperty@UserId,DuplicateProperty@UserType"},
		{name: "duplicate property by long s", file: "{\"UserId\":\"a\",\"UserName\":\"ann\",\"U\u017ferName\":\"bob\"}\n", refused: "1:DuplicateProperty@UserName"},
		{name: "duplicate property, null", file: "{\"UserId\":\"a\",\"Email\":null,\"email\":\"a@x.io\"}\n", refused: "1:DuplicateProperty@Email"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ReadImport(strings.NewReader(tt.file), 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if got := lineCodes(f); got != tt.refused {
				t.Fatalf("refused %q, want %q", got, tt.refused)
			}
			var lines []string
			for _, n := range f.Lines {
				lines = append(lines, strconv.Itoa(n))
			}
			if got := strings.Join(lines, " "); got != tt.lines || len(f.Profiles) != len(f.Lines) || f.Truncated || f.Unchecked != 0 {
				t.Fatalf("lines %q (want %q), %d profiles, truncated %v, unchecked %d", got, tt.lines, len(f.Profiles), f.Truncated, f.Unchecked)
			}
		})
	}
}

// TestReadImportDuplicateNamesTheLine: a user ID or name seen twice names
// the file line of the first, blank and refused lines counted.
func TestReadImportDuplicateNamesTheLine(t *testing.T) {
	f, err := ReadImport(strings.NewReader("x\n\n{\"UserId\":\"a\",\"UserName\":\"ann\"}\n{\"UserId\":\"a\",\"UserName\":\"ANN\"}\n"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if got := lineCodes(f); got != "1:InvalidJson 4:DuplicateProperty@UserId,UserNameTaken@UserName" {
		t.Fatalf("refused %q", got)
	}
	for _, it := range f.Refused[1].Errors {
		if !strings.Contains(it.Message, "line 3.") {
			t.Fatalf("message %q does not name line 3", it.Message)
		}
	}
}

// TestReadImportStopsChecking: after MaxImportLineReports refused lines
// nothing more is checked or reported, only counted (blank lines not).
func TestReadImportStopsChecking(t *testing.T) {
	var b strings.Builder
	b.WriteString("{\"UserId\":\"ok\"}\n")
	for range MaxImportLineReports {
		b.WriteString("bad\n")
	}
	b.WriteString("\n{\"UserId\":\"ok\"}\nbad\n" + strings.Repeat("y", 2*MaxImportLineBytes) + "\n")
	f, err := ReadImport(strings.NewReader(b.String()), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Refused) != MaxImportLineReports || !f.Truncated || f.Unchecked != 3 || f.Profiles != nil {
		t.Fatalf("%d reports, truncated %v, unchecked %d, %d profiles", len(f.Refused), f.Truncated, f.Unchecked, len(f.Profiles))
	}
	if first, last := f.Refused[0].Line, f.Refused[len(f.Refused)-1].Line; first != 2 || last != MaxImportLineReports+1 {
		t.Fatalf("reports lines %d..%d", first, last)
	}
}

// TestReadImportCap: a body over maxBytes is ErrImportTooLarge, wherever
// the bytes are (also in one endless line); a body of maxBytes is read.
func TestReadImportCap(t *testing.T) {
	line := "{\"UserId\":\"a\"}\n"
	if f, err := ReadImport(strings.NewReader(line), int64(len(line))); err != nil || len(f.Profiles) != 1 {
		t.Fatalf("at the cap: %v", err)
	}
	if _, err := ReadImport(strings.NewReader(line+" "), int64(len(line))); !errors.Is(err, ErrImportTooLarge) {
		t.Fatalf("one byte over: %v", err)
	}
	if _, err := ReadImport(repeat("q", 8<<20), 4<<20); !errors.Is(err, ErrImportTooLarge) {
		t.Fatalf("endless line: %v", err)
	}
	if _, err := ReadImport(repeat("junk\n", 8<<20), 4<<20); !errors.Is(err, ErrImportTooLarge) {
		t.Fatalf("junk over the cap: %v", err)
	}
}

// TestReadImportReaderError: a failing body is an error, not a report.
func TestReadImportReaderError(t *testing.T) {
	boom := errors.New("connection reset")
	_, err := ReadImport(io.MultiReader(strings.NewReader("{\"UserId\":\"a\"}\n{\"Us"), iotest.ErrReader(boom)), 1<<20)
	if !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
}

// TestCheckImportSet: by index, as before ReadImport.
func TestCheckImportSet(t *testing.T) {
	out := CheckImportSet([]Profile{{UserID: "a", UserName: "ann"}, {UserID: "b"}, {UserID: "a", UserName: "ANN"}})
	if len(out) != 1 || codes(out[2]) != "DuplicateProperty@UserId,UserNameTaken@UserName" || !strings.Contains(out[2][0].Message, "line 1.") {
		t.Fatalf("%v", out)
	}
}

// TestParseImportLineLoneSurrogate (catalogue row D07, see
// docs/threat-model.md): an import line is refused for an escaped lone
// surrogate as a PUT is, and an import file holding one writes nothing.
func TestParseImportLineLoneSurrogate(t *testing.T) {
	for _, line := range []string{
		`{"UserId":"u-1","FirstName":"\ud800"}`,
		`{"UserId":"u-\udfff"}`,
		`{"UserId":"u-1","LastName":"\ud800\u0041"}`,
	} {
		if _, errs := ParseImportLine([]byte(line)); codes(errs) != "InvalidJson" {
			t.Errorf("%s: %q", line, codes(errs))
		}
	}
	if p, errs := ParseImportLine([]byte(`{"UserId":"u-1","FirstName":"\ud83d\ude00"}`)); len(errs) != 0 || p.FirstName != "\U0001F600" {
		t.Errorf("a pair: %q %+v", codes(errs), p)
	}
	f, err := ReadImport(strings.NewReader("{\"UserId\":\"u-1\"}\n{\"UserId\":\"u-2\",\"FirstName\":\"\\ud800\"}\n"), 1<<20)
	if err != nil || f.Profiles != nil || len(f.Refused) != 1 || f.Refused[0].Line != 2 {
		t.Fatalf("file: %v %+v", err, f)
	}
}
