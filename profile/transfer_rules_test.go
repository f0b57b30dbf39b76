package profile

import (
	"strings"
	"testing"
)

// TestParseImportLineUserIDRules: one set of rules for the UserId of every
// import line, whichever backend it goes to: required, no leading or
// trailing white space (an id is never trimmed into another one), no
// control characters (NUL included, also escaped), valid UTF-8, at most
// 255 bytes, and one UserId key per line under any case fold.
func TestParseImportLineUserIDRules(t *testing.T) {
	long := strings.Repeat("\u00e9", 128) // 256 bytes, 128 runes
	tests := []struct{ name, line, want string }{
		{"plain", `{"UserId":"auth0|5f7c8ec7c33c6c004bbafe82"}`, ""},
		{"at the limit, multibyte", `{"UserId":"` + long[:254] + `x"}`, ""},
		{"over the limit by a byte", `{"UserId":"` + long + `"}`, "TooLong@UserId"},
		{"40000 characters", `{"UserId":"` + strings.Repeat("a", 40000) + `"}`, "TooLong@UserId"},
		{"leading space", `{"UserId":" u-1"}`, "InvalidCharacters@UserId"},
		{"trailing tab", `{"UserId":"u-1\t"}`, "InvalidCharacters@UserId"},
		{"trailing no-break space", `{"UserId":"u-1\u00a0"}`, "InvalidCharacters@UserId"},
		{"escaped NUL", `{"UserId":"u\u0000-1"}`, "InvalidCharacters@UserId"},
		{"escaped newline inside", `{"UserId":"u\n1"}`, "InvalidCharacters@UserId"},
		{"DEL", "{\"UserId\":\"u\x7f1\"}", "InvalidCharacters@UserId"},
		{"C1 control", `{"UserId":"u\u00851"}`, "InvalidCharacters@UserId"},
		{"blank", `{"UserId":"  "}`, "Required@UserId"},
		{"empty", `{"UserId":""}`, "Required@UserId"},
		{"null", `{"UserId":null}`, "Required@UserId"},
		{"invalid UTF-8 in the id", "{\"UserId\":\"u-\xc3\"}", "InvalidJson"},
		{"escaped lone surrogate", `{"UserId":"u-\ud800"}`, "InvalidJson"}, // as invalid UTF-8 (D07)
		{"two UserId keys", `{"UserId":"a","UserId":"b"}`, "DuplicateProperty@UserId"},
		{"two UserId keys by case", `{"userid":"a","USERID":"b"}`, "DuplicateProperty@UserId"},
		{"two UserId keys, one null", `{"UserId":null,"userId":"b"}`, "DuplicateProperty@UserId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, errs := ParseImportLine([]byte(tt.line))
			if got := codes(errs); got != tt.want {
				t.Fatalf("%.80s: %q, want %q", tt.line, got, tt.want)
			}
			if tt.want == "" && (p.UserID == "" || strings.TrimSpace(p.UserID) != p.UserID) {
				t.Fatalf("accepted UserId %q", p.UserID)
			}
			for _, it := range errs {
				if len(it.Message) > 200 {
					t.Fatalf("message of %d bytes echoes the line", len(it.Message))
				}
			}
		})
	}
}
