package dpop

import "testing"

func TestNormalizeHTU(t *testing.T) {
	const want = "https://api.example.com/api/profile"
	same := []string{
		"https://api.example.com/api/profile",
		"HTTPS://Api.Example.COM/api/profile",
		"https://api.example.com:443/api/profile",
		"https://api.example.com:0443/api/profile",
		"https://api.example.com:/api/profile",
		"https://api.example.com/api/profile?q=1",
		"https://api.example.com/api/profile#f",
		"https://api.example.com/api/profile?q=1#f",
		"https://api.example.com/%61pi/profile",
		"https://api.example.com/api/x/../profile",
		"https://api.example.com/./api/./profile",
		"https://api.example.com/api/%2e/profile",
	}
	for _, s := range same {
		if got, ok := NormalizeHTU(s); !ok || got != want {
			t.Errorf("NormalizeHTU(%q) = %q, %v; want %q", s, got, ok, want)
		}
	}
	different := []string{
		"http://api.example.com/api/profile",
		"https://api.example.com:8443/api/profile",
		"https://api.example.com/API/profile",
		"https://api.example.com/api/profile/",
		"https://api.example.com/api%2Fprofile",
		"https://api.example.com./api/profile",
		"https://other.example.com/api/profile",
	}
	for _, s := range different {
		if got, ok := NormalizeHTU(s); ok && got == want {
			t.Errorf("NormalizeHTU(%q) = %q, the same URI", s, got)
		}
	}
	for in, out := range map[string]string{
		"http://h":                  "http://h/",
		"http://h:80":               "http://h/",
		"http://h:443/":             "http://h:443/",
		"https://[::1]:443/a":       "https://[::1]/a",
		"https://[::A]:8443/a":      "https://[::a]:8443/a",
		"https://h/a%2fb%7e":        "https://h/a%2Fb~",
		"https://h/a/b/../../../..": "https://h/",
	} {
		if got, ok := NormalizeHTU(in); !ok || got != out {
			t.Errorf("NormalizeHTU(%q) = %q, %v; want %q", in, got, ok, out)
		}
	}
	for _, bad := range []string{"", "/api/profile", "ftp://h/a", "https://", "https:///a", "https://u:p@h/a",
		"https://h:99999/a", "https://h:x/a", "https://h/a%zz", "https://h/a%4", "mailto:a@b", "https://h%41/a"} {
		if got, ok := NormalizeHTU(bad); ok {
			t.Errorf("NormalizeHTU(%q) = %q, accepted", bad, got)
		}
	}
}
