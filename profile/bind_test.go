package profile

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func ptr(s string) *string { return &s }

func codes(items []Item) string {
	var out []string
	for _, it := range items {
		c := it.Code
		if it.Field != nil {
			c += "@" + *it.Field
		}
		out = append(out, c)
	}
	return strings.Join(out, ",")
}

func TestBindUpdate(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		want     UpdateRequest
		errs     string
		warnings string
	}{
		{name: "canonical", body: `{"UserName":"alice","Email":"a@x.io","FirstName":"A","LastName":"L"}`,
			want: UpdateRequest{UserName: ptr("alice"), Email: ptr("a@x.io"), FirstName: ptr("A"), LastName: ptr("L")}},
		{name: "case variants bind", body: `{"username":"alice","EMAIL":"a@x.io","firstNAME":"A","lastname":"L"}`,
			want: UpdateRequest{UserName: ptr("alice"), Email: ptr("a@x.io"), FirstName: ptr("A"), LastName: ptr("L")}},
		{name: "null leaves unchanged", body: `{"Email":null,"FirstName":""}`, want: UpdateRequest{FirstName: ptr("")}},
		{name: "empty object", body: ` {} `, want: UpdateRequest{}},
		{name: "unknown field warns", body: `{"Nick":"x","LastName":"L"}`, want: UpdateRequest{LastName: ptr("L")}, warnings: "UnknownField@Nick"},
		{name: "duplicate exact", body: `{"Email":"a@x.io","Email":"b@x.io"}`, errs: "DuplicateProperty@Email"},
		{name: "duplicate by case", body: `{"Email":"a@x.io","email":"b@x.io"}`, errs: "DuplicateProperty@Email"},
		{name: "duplicate unknown", body: `{"x":1,"X":2}`, errs: "DuplicateProperty@X", warnings: "UnknownField@x"},
		// Names match by Unicode simple folding (strings.EqualFold), for
		// binding and for duplicates alike: U+017F LONG S folds to s, U+212A
		// KELVIN SIGN to k, U+03C2 FINAL SIGMA to σ. Rows with \u in a raw
		// string test JSON escapes; the others, raw UTF-8 in the body.
		{name: "long s binds", body: `{"U\u017ferName":"alice","FirstName":"A"}`, want: UpdateRequest{UserName: ptr("alice"), FirstName: ptr("A")}},
		{name: "long s binds, raw UTF-8", body: "{\"U\u017ferName\":\"alice\"}", want: UpdateRequest{UserName: ptr("alice")}},
		{name: "duplicate by long s", body: `{"UserName":"a","U\u017ferName":"b"}`, errs: "DuplicateProperty@UserName"},
		{name: "duplicate by long s, raw UTF-8", body: "{\"UserName\":\"a\",\"U\u017ferName\":\"b\"}", errs: "DuplicateProperty@UserName"},
		{name: "duplicate by long s first", body: "{\"U\u017ferName\":\"b\",\"username\":\"a\"}", errs: "DuplicateProperty@UserName"},
		{name: "duplicate unknown by kelvin sign", body: "{\"Kind\":1,\"\u212aind\":2}", errs: "DuplicateProperty@\u212aind", warnings: "UnknownField@Kind"},
		{name: "duplicate unknown by kelvin sign, escaped", body: `{"kind":1,"\u212AIND":2}`, errs: "DuplicateProperty@\u212aIND", warnings: "UnknownField@kind"},
		{name: "duplicate unknown by long s", body: "{\"size\":1,\"\u017fize\":2}", errs: "DuplicateProperty@\u017fize", warnings: "UnknownField@size"},
		{name: "duplicate unknown by final sigma", body: "{\"\u03c3\":1,\"\u03c2\":2}", errs: "DuplicateProperty@\u03c2", warnings: "UnknownField@\u03c3"},
		// U+0130 has no simple folding: EqualFold("\u0130d", "id") is false, so
		// these are two different (unknown) properties, not a duplicate.
		{name: "dotted I is not i", body: "{\"\u0130d\":1,\"id\":2}", warnings: "UnknownField@\u0130d,UnknownField@id"},
		{name: "wrong types all reported", body: `{"FirstName":12,"LastName":true,"Email":{},"UserName":[]}`,
			errs: "InvalidType@FirstName,InvalidType@LastName,InvalidType@Email,InvalidType@UserName"},
		{name: "empty body", body: ``, errs: "InvalidJson"},
		{name: "whitespace body", body: " \n\t", errs: "InvalidJson"},
		{name: "array", body: `[{"Email":"a@x.io"}]`, errs: "InvalidJson"},
		{name: "string", body: `"x"`, errs: "InvalidJson"},
		{name: "null", body: `null`, errs: "InvalidJson"},
		{name: "trailing object", body: `{} {}`, errs: "InvalidJson"},
		{name: "trailing garbage", body: `{"Email":"a@x.io"}x`, errs: "InvalidJson"},
		{name: "truncated", body: `{"Email":"a@x.io"`, errs: "InvalidJson"},
		{name: "trailing comma", body: `{"Email":"a@x.io",}`, errs: "InvalidJson"},
		{name: "invalid utf-8", body: "{\"FirstName\":\"\xff\xfe\"}", errs: "InvalidJson"},
		{name: "invalid utf-8 in key", body: "{\"\xc3\x28\":\"x\"}", errs: "InvalidJson"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warnings, errs := BindUpdate([]byte(tt.body))
			if codes(errs) != tt.errs {
				t.Fatalf("errors = %q, want %q", codes(errs), tt.errs)
			}
			if codes(warnings) != tt.warnings {
				t.Fatalf("warnings = %q, want %q", codes(warnings), tt.warnings)
			}
			if tt.errs == "" && !sameRequest(got, tt.want) {
				t.Fatalf("request = %s, want %s", show(got), show(tt.want))
			}
		})
	}
}

func sameRequest(a, b UpdateRequest) bool { return show(a) == show(b) }

func show(r UpdateRequest) string {
	s := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return "\"" + *p + "\""
	}
	return s(r.UserName) + " " + s(r.Email) + " " + s(r.FirstName) + " " + s(r.LastName)
}

// FuzzBindUpdate: binding and validation never panic, and they either
// fail with at least one error or yield a request whose present fields
// pass validation again unchanged (validation is idempotent).
func FuzzBindUpdate(f *testing.F) {
	for _, seed := range []string{
		`{"UserName":"alice","Email":"a@x.io","FirstName":"A","LastName":"L"}`,
		`{"email":"a@x.io","EMAIL":"b"}`, `{"FirstName":12}`, `{} {}`, `[]`, ``, "{\"a\":\"\xff\"}",
		`{"UserName":"  bob  ","x":{"y":[1,2,{"z":null}]}}`, `{"LastName":"\u0000"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, _, errs := BindUpdate(body)
		if len(errs) > 0 {
			for _, e := range errs {
				if e.Code == "" || e.Message == "" {
					t.Fatalf("item without code or message: %+v", e)
				}
			}
			return
		}
		v, verrs := req.Validate()
		if len(verrs) > 0 {
			return
		}
		again, verrs := v.Validate()
		if len(verrs) > 0 || show(again) != show(v) {
			t.Fatalf("validation not idempotent: %s -> %s (%v)", show(v), show(again), verrs)
		}
	})
}

// FuzzPropertyKey: two names have the same key exactly when
// strings.EqualFold says they are equal, so that binding (which matches
// known properties by key) and duplicate detection never disagree.
func FuzzPropertyKey(f *testing.F) {
	for _, seed := range [][2]string{
		{"UserName", "U\u017ferName"}, {"kind", "\u212aIND"}, {"\u03c3", "\u03c2"}, {"\u0130d", "id"},
		{"Email", "email"}, {"a", "ab"}, {"\u00df", "ss"}, {"\u1e9e", "\u00df"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if !utf8.ValidString(a) || !utf8.ValidString(b) {
			return // BindUpdate refuses invalid UTF-8 before any name is read
		}
		if same, fold := propertyKey(a) == propertyKey(b), strings.EqualFold(a, b); same != fold {
			t.Fatalf("propertyKey(%q) == propertyKey(%q) is %v, EqualFold is %v", a, b, same, fold)
		}
	})
}

// TestPropertyKeyEveryRune: for every rune, each member of its folding
// orbit has the same key, and the key folds equal to the rune.
func TestPropertyKeyEveryRune(t *testing.T) {
	for r := rune(0); r <= utf8.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		k := propertyKey(string(r))
		if !strings.EqualFold(k, string(r)) {
			t.Fatalf("key of %U is %q, which does not fold equal", r, k)
		}
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if propertyKey(string(f)) != k {
				t.Fatalf("%U and %U fold equal but have keys %q and %q", r, f, k, propertyKey(string(f)))
			}
		}
	}
}

// TestBindUpdateMessagesQuoteBoundedNames: a message quotes at most
// maxQuoted bytes of a property name, cut on a rune boundary, so a body of
// long names is not echoed back twice (Field still names it whole).
func TestBindUpdateMessagesQuoteBoundedNames(t *testing.T) {
	long := strings.Repeat("\u00e9", 200) // 400 bytes, 2 per rune
	_, warnings, errs := BindUpdate([]byte(`{"` + long + `":1,"` + long + `":2}`))
	if len(warnings) != 1 || len(errs) != 1 {
		t.Fatalf("warnings %v, errors %v", warnings, errs)
	}
	for _, it := range []Item{warnings[0], errs[0]} {
		if len(it.Message) > maxQuoted+100 || !utf8.ValidString(it.Message) || !strings.Contains(it.Message, "...") {
			t.Fatalf("message of %d bytes: %q", len(it.Message), it.Message)
		}
		if it.Field == nil || *it.Field != long {
			t.Fatalf("field %v", it.Field)
		}
	}
}

// TestCanonicalJSON: the body a legacy backend gets names the present
// properties only, in canonical spelling and sorted order.
func TestCanonicalJSON(t *testing.T) {
	name, empty := "alice", ""
	for want, req := range map[string]UpdateRequest{
		`{}`:                                 {},
		`{"UserName":"alice"}`:               {UserName: &name},
		`{"Email":"","FirstName":"alice"}`:   {FirstName: &name, Email: &empty},
		`{"LastName":"alice","UserName":""}`: {LastName: &name, UserName: &empty},
	} {
		if got := string(req.CanonicalJSON()); got != want {
			t.Errorf("CanonicalJSON = %s, want %s", got, want)
		}
	}
}

// TestBindUpdateLoneSurrogate (catalogue row D07, see
// docs/threat-model.md): an escaped surrogate that is not one half of a
// pair would be decoded to U+FFFD and stored so; it is refused as invalid
// UTF-8 is, and a proper pair is kept.
func TestBindUpdateLoneSurrogate(t *testing.T) {
	for _, body := range []string{
		`{"FirstName":"\ud800"}`,
		`{"FirstName":"a\uD800b"}`,
		`{"FirstName":"\udc00"}`,
		`{"FirstName":"\ud800\u0041"}`,
		`{"FirstName":"\ud800\ud800"}`,
		`{"FirstName":"\udc00\ud800"}`,
		`{"LastName":"x\\\ud800"}`,
		`{"F\ud800":"x"}`,
		`{"Email":"\uDBFF"}`,
	} {
		req, _, errs := BindUpdate([]byte(body))
		if codes(errs) != "InvalidJson" || show(req) != show(UpdateRequest{}) {
			t.Errorf("%s: errs %q, req %s", body, codes(errs), show(req))
		}
	}
	for body, want := range map[string]string{
		`{"FirstName":"\ud83d\ude00"}`:  "\U0001F600",
		`{"FirstName":"\\ud800"}`:       `\ud800`, // an escaped backslash, no escape
		`{"FirstName":"\uD83D\uDE00x"}`: "\U0001F600x",
	} {
		req, _, errs := BindUpdate([]byte(body))
		if len(errs) != 0 || req.FirstName == nil || *req.FirstName != want {
			t.Errorf("%s: errs %q, req %s", body, codes(errs), show(req))
		}
	}
}
