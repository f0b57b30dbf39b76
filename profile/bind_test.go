package profile

import (
	"strings"
	"testing"
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
