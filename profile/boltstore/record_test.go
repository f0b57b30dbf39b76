package boltstore

import (
	"encoding/json"
	"testing"
)

func checkRecordAgrees(t *testing.T, v []byte) {
	t.Helper()
	var want record
	werr := json.Unmarshal(v, &want)
	got, gerr := decodeRecord(v)
	if (werr == nil) != (gerr == nil) || (werr == nil && got != want) {
		t.Fatalf("%q: decodeRecord %+v, %v; json.Unmarshal %+v, %v", v, got, gerr, want, werr)
	}
}

var recordSeeds = []string{
	`{"u":"alice","e":"a@example.com","f":"Alice","l":"Liddell","t":1,"v":3}`, `{"v":0}`, `{"v":18446744073709551615}`,
	`{"v":18446744073709551616}`, `{"t":2147483648,"v":1}`, `{"u":"é日本","v":1}`, "{\"u\":\"\xff\",\"v\":1}",
	`{"u":"a\"b","v":1}`, `{"u":"\u003c","v":1}`, `{"v":1,"v":2}`, `{"x":1,"v":1}`, `{"v":01}`, `{"v":1.5}`,
	`{"v":-1}`, `{"u":1,"v":1}`, `{}`, `{"u":"a"}`, ` {"v":1}`, `{"v":1} `, `{"v":1,}`, `{"t":0,"v":1}`, `null`, ``,
}

// A record is read exactly as json.Unmarshal reads it, whatever the bytes.
func TestDecodeRecordAgreesWithUnmarshal(t *testing.T) {
	for _, s := range recordSeeds {
		checkRecordAgrees(t, []byte(s))
	}
	// what Update writes is read by the fast path, not the fallback
	b, _ := json.Marshal(record{UserName: "alice", Email: "a@example.com", FirstName: "A", LastName: "L", UserType: 2, Version: 7})
	if r, ok := cutRecord(b); !ok || r.Version != 7 || r.UserName != "alice" || r.UserType != 2 {
		t.Fatalf("cutRecord(%s) = %+v, %v", b, r, ok)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	for _, s := range recordSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) { checkRecordAgrees(t, v) })
}
