package profile

import (
	"strings"
	"testing"
)

// TestImportDuplicateNamesFileLine: "also appears on line j" names the line
// of the file, counting blank and refused lines, not the j-th accepted
// profile.
func TestImportDuplicateNamesFileLine(t *testing.T) {
	file := strings.Join([]string{
		``,                                  // 1: blank
		`{"UserId":"b","UserType":9}`,       // 2: refused
		`{"UserId":"a","UserName":"alice"}`, // 3: the first accepted profile
		`{"UserId":"a","UserName":"alice"}`, // 4: both again
	}, "\n") + "\n"
	f, err := ReadImportWith(strings.NewReader(file), ImportOptions{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var dup *LineReport
	for i := range f.Refused {
		if f.Refused[i].Line == 4 {
			dup = &f.Refused[i]
		}
	}
	if dup == nil || len(dup.Errors) != 2 {
		t.Fatalf("refused %+v, want line 4 with two errors", f.Refused)
	}
	for _, it := range dup.Errors {
		if !strings.HasSuffix(it.Message, "also appears on line 3.") {
			t.Errorf("line 4: %q, want it to name line 3", it.Message)
		}
	}
}
