package jsonscan

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckStrict(t *testing.T) {
	for raw, want := range map[string]error{
		`{"sub":"alice","aud":["a","b"],"n":{"x":1,"y":[{"x":2}]}}`: nil,
		`{"sub":"us\ud83d\ude00er","name":"é \\ \" \/ \u00e9"}`:     nil,
		`{"a":"x","b":{"a":1},"c":[{"a":1},{"a":2}]}`:               nil, // the same name in different objects
		"{\"sub\":\"user\xff\"}":                                    ErrUTF8,
		`{"sub":"user\ud800"}`:                                      ErrSurrogate,
		`{"sub":"user\ud800x"}`:                                     ErrSurrogate,
		`{"sub":"user\ud800\u0041"}`:                                ErrSurrogate,
		`{"sub":"user\udfff"}`:                                      ErrSurrogate,
		`{"sub":"a\u0000"}`:                                         ErrControl,
		`{"sub":"a\n"}`:                                             ErrControl,
		`{"sub":"a\t"}`:                                             ErrControl,
		`{"sub":"a\u007F"}`:                                         ErrControl,
		`{"sub":"a\u0085"}`:                                         ErrControl,
		"{\"sub\":\"a\u0085\"}":                                     ErrControl, // raw C1 in UTF-8
		"{\"sub\":\"a\x7f\"}":                                       ErrControl,
		`{"k\u0000":1}`:                                             ErrControl,
		`{"sub":"a","sub":"b"}`:                                     ErrDuplicate,
		`{"sub":"a","s\u0075b":"b"}`:                                ErrDuplicate,
		`{"n":{"x":1,"x":2}}`:                                       ErrDuplicate,
		`{"n":[{"x":1,"y":{},"x":2}]}`:                              ErrDuplicate,
		`}`:                                                         ErrSyntax,
		`{"sub":"a`:                                                 ErrSyntax,
		`{"sub":"a\u12"}`:                                           ErrSyntax,
	} {
		if got := CheckStrict([]byte(raw)); !errors.Is(got, want) {
			t.Errorf("%q: %v, want %v", raw, got, want)
		}
	}
	// many members: the map path finds a duplicate as the list path does
	var b strings.Builder
	b.WriteString(`{`)
	for i := range 200 {
		fmt.Fprintf(&b, `"c%d":%d,`, i, i)
	}
	if err := CheckStrict([]byte(b.String() + `"c0":1}`)); !errors.Is(err, ErrDuplicate) {
		t.Errorf("a duplicate after 200 members: %v", err)
	}
	if err := CheckStrict([]byte(b.String() + `"d":1}`)); err != nil {
		t.Errorf("200 distinct members: %v", err)
	}
}

// FuzzCheckStrict: whatever CheckStrict accepts that is JSON has
// no duplicate member, no control character and no replaced byte, as a
// token-by-token reading with encoding/json confirms; a refused
// duplicate is one that reading finds.
func FuzzCheckStrict(f *testing.F) {
	for _, s := range []string{`{"sub":"a","sub":"b"}`, `{"a":{"b":[1,{"c":"\ud83d\ude00"}]}}`, `{"s\u0075b":"\u0000"}`, "{\"a\":\"\xff\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		err := CheckStrict(raw)
		if !json.Valid(raw) {
			return
		}
		dup, bad := referenceScan(t, raw)
		switch {
		case err == nil && (dup || bad):
			t.Fatalf("accepted %q: duplicate=%v control or replaced=%v", raw, dup, bad)
		case errors.Is(err, ErrDuplicate) && !dup:
			t.Fatalf("refused %q as a duplicate, but none is there", raw)
		}
	})
}

// referenceScan walks raw with json.Decoder: dup when an object names a
// member twice, bad when a string holds a control character or a U+FFFD
// that raw does not hold literally.
func referenceScan(t *testing.T, raw []byte) (dup, bad bool) {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber() // numbers beyond float64 (1E700) are valid JSON
	type obj struct {
		names     map[string]bool
		expectKey bool
	}
	var stack []*obj
	literalFFFD := strings.ContainsRune(string(raw), utf8.RuneError)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("json.Valid but Token fails: %v", err)
		}
		top := (*obj)(nil)
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		isKey := top != nil && top.names != nil && top.expectKey
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, &obj{names: map[string]bool{}, expectKey: true})
				continue
			case '[':
				stack = append(stack, &obj{})
				continue
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			for _, r := range v {
				if r < 0x20 || r >= 0x7f && r <= 0x9f || r == utf8.RuneError && !literalFFFD {
					bad = true
				}
			}
			if isKey {
				if top.names[v] {
					dup = true
				}
				top.names[v] = true
				top.expectKey = false
				continue
			}
		}
		// a value ends: the enclosing object expects a key again
		if len(stack) > 0 && stack[len(stack)-1].names != nil {
			stack[len(stack)-1].expectKey = true
		}
	}
}
