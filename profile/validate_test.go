package profile

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	long := func(n int, c string) string { return strings.Repeat(c, n) }
	tests := []struct {
		name string
		req  UpdateRequest
		errs string
	}{
		{"user name min 3", UpdateRequest{UserName: ptr("abc")}, ""},
		{"user name 2 too short", UpdateRequest{UserName: ptr("ab")}, "TooShort@UserName"},
		{"user name max 64", UpdateRequest{UserName: ptr(long(64, "a"))}, ""},
		{"user name 65 too long", UpdateRequest{UserName: ptr(long(65, "a"))}, "TooLong@UserName"},
		{"user name trimmed before length", UpdateRequest{UserName: ptr("  ab  ")}, "TooShort@UserName"},
		{"user name empty", UpdateRequest{UserName: ptr("")}, "Required@UserName"},
		{"user name blank", UpdateRequest{UserName: ptr("   ")}, "Required@UserName"},
		{"user name allowed punctuation", UpdateRequest{UserName: ptr("a.b_c-d@e+f")}, ""},
		{"user name space", UpdateRequest{UserName: ptr("a b c")}, "InvalidCharacters@UserName"},
		{"user name non-ascii letter", UpdateRequest{UserName: ptr("jürgen")}, "InvalidCharacters@UserName"},
		{"user name short and bad chars: both", UpdateRequest{UserName: ptr("a$")}, "TooShort@UserName,InvalidCharacters@UserName"},
		{"email plain", UpdateRequest{Email: ptr("alice@example.com")}, ""},
		{"email cleared", UpdateRequest{Email: ptr("")}, ""},
		{"email blank clears", UpdateRequest{Email: ptr("  ")}, ""},
		{"email display name", UpdateRequest{Email: ptr("Alice <alice@example.com>")}, "InvalidEmail@Email"},
		{"email angle brackets", UpdateRequest{Email: ptr("<alice@example.com>")}, "InvalidEmail@Email"},
		{"email two addresses", UpdateRequest{Email: ptr("a@x.io, b@x.io")}, "InvalidEmail@Email"},
		{"email no at", UpdateRequest{Email: ptr("alice.example.com")}, "InvalidEmail@Email"},
		{"email quoted local", UpdateRequest{Email: ptr(`"a b"@x.io`)}, "InvalidEmail@Email"},
		{"email 254", UpdateRequest{Email: ptr(long(64, "a") + "@" + long(185, "b") + ".com")}, ""},
		{"email 255", UpdateRequest{Email: ptr(long(64, "a") + "@" + long(186, "b") + ".com")}, "TooLong@Email"},
		{"first name 100", UpdateRequest{FirstName: ptr(long(100, "é"))}, ""},
		{"first name 101", UpdateRequest{FirstName: ptr(long(101, "é"))}, "TooLong@FirstName"},
		{"last name control char", UpdateRequest{LastName: ptr("Lid\u0007dell")}, "InvalidCharacters@LastName"},
		{"last name newline inside", UpdateRequest{LastName: ptr("Lid\ndell")}, "InvalidCharacters@LastName"},
		{"names cleared", UpdateRequest{FirstName: ptr(""), LastName: ptr(" ")}, ""},
		{"every problem at once", UpdateRequest{UserName: ptr("x"), Email: ptr("nope"), FirstName: ptr(long(101, "a")), LastName: ptr("\x00")},
			"TooShort@UserName,InvalidEmail@Email,TooLong@FirstName,InvalidCharacters@LastName"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs := tt.req.Validate()
			if got := codes(errs); got != tt.errs {
				t.Fatalf("errors = %q, want %q", got, tt.errs)
			}
		})
	}
}

func TestValidateTrims(t *testing.T) {
	got, errs := UpdateRequest{UserName: ptr(" alice "), Email: ptr("\ta@x.io\n"), FirstName: ptr(" A ")}.Validate()
	if len(errs) != 0 || *got.UserName != "alice" || *got.Email != "a@x.io" || *got.FirstName != "A" || got.LastName != nil {
		t.Fatalf("got %s, %v", show(got), errs)
	}
}

func TestLengthMetadata(t *testing.T) {
	errs := UserNameProblems(strings.Repeat("a", 70))
	if len(errs) != 1 || errs[0].Metadata["MaxLength"] != "64" || errs[0].Metadata["Length"] != "70" {
		t.Fatalf("metadata: %+v", errs)
	}
}

func TestMatchETag(t *testing.T) {
	tag := `"3-abc"`
	tests := []struct {
		header string
		weak   bool
		want   bool
	}{
		{`"3-abc"`, false, true},
		{`"2-abc"`, false, false},
		{`"1-x", "3-abc"`, false, true},
		{`*`, false, true},
		{`W/"3-abc"`, false, false},
		{`W/"3-abc"`, true, true},
		{`3-abc`, true, false},
	}
	for _, tt := range tests {
		if got := MatchETag(tt.header, tag, tt.weak); got != tt.want {
			t.Errorf("MatchETag(%q, weak=%v) = %v", tt.header, tt.weak, got)
		}
	}
	a, b := Profile{UserID: "a", Version: 1}.ETag(), Profile{UserID: "b", Version: 1}.ETag()
	if a == b {
		t.Fatalf("two accounts at version 1 share the tag %s", a)
	}
}

// TestEmailLengthInBytes (catalogue row D11, see docs/threat-model.md): the
// limit is 254 bytes of UTF-8, as the database stores the address, not 254
// characters.
func TestEmailLengthInBytes(t *testing.T) {
	ascii := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".com" // 254 bytes
	if errs := EmailProblems(ascii); len(errs) != 0 {
		t.Fatalf("254 ASCII bytes: %q", codes(errs))
	}
	if errs := EmailProblems("a" + ascii); codes(errs) != "TooLong@Email" || errs[0].Metadata["Length"] != "255" {
		t.Fatalf("255 bytes: %q %v", codes(errs), errs)
	}
	// 200 characters, 300 bytes: "ü" is two bytes
	wide := strings.Repeat("ü", 100) + "@" + strings.Repeat("b", 95) + ".com"
	errs := EmailProblems(wide)
	if codes(errs) != "TooLong@Email" || errs[0].Metadata["Length"] != "300" || errs[0].Metadata["MaxLength"] != "254" {
		t.Fatalf("200 characters in 300 bytes: %q %v", codes(errs), errs)
	}
}
