package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	tests := []struct {
		raw  string
		want string
		ok   bool
	}{
		{`"plain"`, "plain", true},
		{`""`, "", true},
		{`"tab\there"`, "tab\there", true},
		{`"quote\"d"`, `quote"d`, true},
		{`"\u00e9t\u00e9"`, "été", true},
		{`"été"`, "été", true},
		{"\"a\xffb\"", "a\ufffdb", true}, // as encoding/json: replaced
		{"\"a\x01\"", "", false},
		{`12`, "", false},
		{`null`, "", false},
		{`["a"]`, "", false},
		{`"`, "", false},
		{``, "", false},
	}
	for _, tt := range tests {
		got, ok := String([]byte(tt.raw))
		if got != tt.want || ok != tt.ok {
			t.Errorf("String(%s) = %q, %v; want %q, %v", tt.raw, got, ok, tt.want, tt.ok)
		}
	}
}

func TestFloat(t *testing.T) {
	for raw, want := range map[string]float64{`1700000000`: 1.7e9, `1.5e9`: 1.5e9, `-1`: -1, `0`: 0} {
		if got, ok := Float([]byte(raw)); !ok || got != want {
			t.Errorf("Float(%s) = %v, %v; want %v", raw, got, ok, want)
		}
	}
	for _, raw := range []string{`"1700000000"`, `null`, ``, `true`, `1e400`, `-1e400`, ` 1`} {
		if got, ok := Float([]byte(raw)); ok {
			t.Errorf("Float(%s) = %v, want none", raw, got)
		}
	}
}

// FuzzString holds String and Literal to json.Unmarshal into a string.
func FuzzString(f *testing.F) {
	for _, s := range []string{`"plain"`, `"tab\there"`, `"\u00e9"`, `"été"`, "\"a\xff\"", "\"\x01\"", `"a"b"`, `"\"`, `null`, `"\ud800"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := String(raw)
		if len(raw) == 0 || raw[0] != '"' {
			if ok {
				t.Fatalf("String(%q) = %q, but it is not a string", raw, got)
			}
			return
		}
		var want string
		err := json.Unmarshal(raw, &want)
		if ok != (err == nil) || got != want {
			t.Fatalf("String(%q) = %q, %v; json.Unmarshal: %q, %v", raw, got, ok, want, err)
		}
		if in, plain := Literal(raw); plain && (err != nil || string(in) != want) {
			t.Fatalf("Literal(%q) = %q, but json.Unmarshal: %q, %v", raw, in, want, err)
		}
	})
}

// FuzzFloat holds Float to json.Unmarshal into a float64, on JSON
// numbers; anything else is not one.
func FuzzFloat(f *testing.F) {
	for _, s := range []string{`1700000000`, `-1.5e3`, `1e400`, `0x10`, `"1"`, `01`, `1_0`, `Inf`, `-NaN`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := Float(raw)
		if ok && (math.IsNaN(got) || math.IsInf(got, 0)) {
			t.Fatalf("Float(%q) = %v", raw, got)
		}
		if !json.Valid(raw) || len(raw) == 0 || raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
			return
		}
		if len(trimSpace(raw)) != len(raw) {
			if ok {
				t.Fatalf("Float(%q) = %v: a number is read as cut, without space", raw, got)
			}
			return
		}
		var want float64
		err := json.Unmarshal(raw, &want)
		if ok != (err == nil) || ok && got != want {
			t.Fatalf("Float(%q) = %v, %v; json.Unmarshal: %v, %v", raw, got, ok, want, err)
		}
	})
}

// decoderObject is what json.Decoder makes of body as the profile's legacy
// reader used it: one object into a map, then More false. obj is the
// object's text as the decoder read it.
func decoderObject(body []byte) (obj []byte, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var m map[string]json.RawMessage
	if dec.Decode(&m) != nil || m == nil || dec.More() {
		return nil, false
	}
	var raw json.RawMessage
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&raw); err != nil {
		panic(err) // decoded once already
	}
	return raw, true
}

// trimSpace drops the JSON space after a value, which CutObject keeps
// when the whole body is the object.
func trimSpace(b []byte) []byte { return bytes.TrimRight(b, " \t\n\r") }

var objectSeeds = []string{
	`{}`, `{"a":1}`, `{"a":1} `, `{"a":1}]`, `{"a":1} }x`, `{"a":1}x`, `{"a":1} {`, `{"a":`, `{"a":"}"}`,
	`{"a":[1,{"b":"]"}],"c":{"d":null}}`, `{"a":"\"}"}`, `{"a":1,}`, `null`, `[]`, `{"a":tru}`, "{\"a\":\"\xff\"}",
	`{"a" : 1 , "b\u0041" : [ "x" , 2.5e3 , true , false , null ] }`, "{\"a\":\"\x01\"}",
}

// FuzzCutObject holds CutObject to json.Decoder, on bodies that start
// with a brace as the callers' do.
func FuzzCutObject(f *testing.F) {
	for _, s := range objectSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		obj, ok := CutObject(body)
		if len(body) == 0 || body[0] != '{' {
			if ok {
				t.Fatalf("CutObject(%q) cut %q", body, obj)
			}
			return
		}
		want, wok := decoderObject(body)
		if ok != wok {
			t.Fatalf("CutObject(%q): %v, json.Decoder: %v", body, ok, wok)
		}
		if ok && !bytes.Equal(trimSpace(obj), want) {
			t.Fatalf("CutObject(%q) = %q, json.Decoder read %q", body, obj, want)
		}
	})
}

// walk compares NextMember and NextElement with json.Decoder's tokens,
// down every object and array of the valid JSON value v.
func walk(t *testing.T, v []byte) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		t.Fatalf("%q: %v", v, err)
	}
	switch tok {
	case json.Delim('{'):
		key, val, i := NextMember(v, 1)
		for ; dec.More(); key, val, i = NextMember(v, i) {
			name, _ := dec.Token()
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				t.Fatalf("%q: %v", v, err)
			}
			if i < 0 || Unquote(key) != name || !bytes.Equal(val, raw) {
				t.Fatalf("%q: NextMember gave %q: %q (%d), json.Decoder %q: %q", v, key, val, i, name, raw)
			}
			walk(t, val)
		}
		if i >= 0 {
			t.Fatalf("%q: NextMember read %q past the end", v, key)
		}
	case json.Delim('['):
		val, i := NextElement(v, 1)
		for ; dec.More(); val, i = NextElement(v, i) {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				t.Fatalf("%q: %v", v, err)
			}
			if i < 0 || !bytes.Equal(val, raw) {
				t.Fatalf("%q: NextElement gave %q (%d), json.Decoder %q", v, val, i, raw)
			}
			walk(t, val)
		}
		if i >= 0 {
			t.Fatalf("%q: NextElement read %q past the end", v, val)
		}
	default:
		if end := ValueEnd(v, 0); end != len(v) {
			t.Fatalf("ValueEnd(%q) = %d", v, end)
		}
	}
}

// FuzzWalk holds the member and element walk, and ValueEnd under it, to
// json.Decoder on every object CutObject accepts.
func FuzzWalk(f *testing.F) {
	for _, s := range objectSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if obj, ok := CutObject(body); ok {
			obj = trimSpace(obj)
			if end := ValueEnd(obj, 0); end != len(obj) {
				t.Fatalf("ValueEnd(%q) = %d", obj, end)
			}
			walk(t, obj)
		}
	})
}

// FuzzValueEnd: on any input, ValueEnd stays in bounds, and where it cuts
// a valid JSON value followed by JSON, the cut is that value.
func FuzzValueEnd(f *testing.F) {
	for _, s := range objectSeeds {
		f.Add([]byte(s), 0)
	}
	f.Fuzz(func(t *testing.T, b []byte, i int) {
		if i < 0 || i > len(b) {
			return
		}
		end := ValueEnd(b, i)
		if end == -1 {
			if i < len(b) && json.Valid(b[i:]) && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
				t.Fatalf("ValueEnd(%q, %d) found no end in a valid value", b, i)
			}
			return
		}
		if end <= i || end > len(b) {
			t.Fatalf("ValueEnd(%q, %d) = %d", b, i, end)
		}
		if json.Valid(b[i:]) && SkipSpace(b, end) != len(b) {
			t.Fatalf("ValueEnd(%q, %d) = %d, before the end of a valid value", b, i, end)
		}
	})
}

// lenientFFFD: q holds U+FFFD of its own (raw, or as a \ufffd escape),
// which a decoder's replacement could not be told from.
func lenientFFFD(q []byte) bool {
	return bytes.ContainsRune(q, utf8.RuneError) || bytes.Contains(bytes.ToLower(q), []byte(`\ufffd`))
}

// FuzzHasLoneSurrogate holds HasLoneSurrogate to encoding/json, which
// decodes a lone surrogate escape to U+FFFD, on JSON strings that hold no
// U+FFFD of their own; and holds CheckStrict's surrogate rule to it.
func FuzzHasLoneSurrogate(f *testing.F) {
	for _, s := range []string{`"\ud800"`, `"\udc00"`, `"\ud83d\ude00"`, `"\ud83d\u0041"`, `"\ud800\ud800\udc00"`, `"\\ud800"`, `"\u00e9"`, `"x\ud83d"`, `{"a\udfff":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := HasLoneSurrogate(b)
		if err := CheckStrict(b); errors.Is(err, ErrSurrogate) && !got {
			t.Fatalf("CheckStrict(%q) finds a lone surrogate, HasLoneSurrogate does not", b)
		} else if err == nil && got {
			t.Fatalf("CheckStrict(%q) accepts a lone surrogate", b)
		}
		if !json.Valid(b) || !utf8.Valid(b) || lenientFFFD(b) {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber() // numbers beyond float64 (1E700) are valid JSON
		want := false
		for {
			tok, err := dec.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("json.Valid but Token fails: %v", err)
			}
			if s, ok := tok.(string); ok && strings.ContainsRune(s, utf8.RuneError) {
				want = true
			}
		}
		if got != want {
			t.Fatalf("HasLoneSurrogate(%q) = %v, encoding/json replaced a surrogate: %v", b, got, want)
		}
	})
}

// FuzzHex4 holds Hex4 to strconv's reading of four hex digits.
func FuzzHex4(f *testing.F) {
	f.Add([]byte("00e9"), 0)
	f.Add([]byte("\\uD83D"), 2)
	f.Add([]byte("12g4"), 0)
	f.Fuzz(func(t *testing.T, b []byte, i int) {
		if i < 0 || i > len(b) {
			return
		}
		r, ok := Hex4(b, i)
		want, wok := rune(0), i+4 <= len(b)
		if wok {
			for _, c := range b[i : i+4] {
				d := strings.IndexByte("0123456789abcdef", c|0x20)
				if d < 0 || c < '0' || c > '9' && c < 'A' || c > 'F' && c < 'a' || c > 'f' {
					wok = false
					break
				}
				want = want<<4 | rune(d)
			}
		}
		if ok != wok || ok && r != want {
			t.Fatalf("Hex4(%q, %d) = %U, %v; want %U, %v", b, i, r, ok, want, wok)
		}
	})
}

// FuzzScanString holds ScanString to StringEnd and Literal, and through
// them to encoding/json: a string it finds plain decodes to its own bytes.
func FuzzScanString(f *testing.F) {
	for _, s := range []string{`"plain"`, `"a\"b"`, `"\\"`, `"é"`, "\"\xff\"", "\"\x01\"", `"open`, `"a" "b"`} {
		f.Add([]byte(s), 0)
	}
	f.Fuzz(func(t *testing.T, b []byte, i int) {
		if i < 0 || i >= len(b) || b[i] != '"' {
			return
		}
		end, plain := ScanString(b, i)
		if want := StringEnd(b, i); end != want {
			t.Fatalf("ScanString(%q, %d) ends at %d, StringEnd at %d", b, i, end, want)
		}
		if end < 0 {
			if plain {
				t.Fatalf("ScanString(%q, %d): an open string is plain", b, i)
			}
			return
		}
		text, lit := Literal(b[i:end])
		if plain != lit {
			t.Fatalf("ScanString(%q, %d) plain %v, Literal %v", b, i, plain, lit)
		}
		if plain {
			var s string
			if err := json.Unmarshal(b[i:end], &s); err != nil || s != string(text) {
				t.Fatalf("%q is plain, but json.Unmarshal gives %q, %v", b[i:end], s, err)
			}
		}
	})
}
