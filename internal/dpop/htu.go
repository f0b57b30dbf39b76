package dpop

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jsonscan"
)

// NormalizeHTU is an http or https URI without its query and fragment, in
// the form RFC 3986 compares URIs in: §6.2.2 syntax-based normalization
// (scheme and host in lower case, percent-encoding in upper case and
// unreserved characters decoded, dot segments removed) and §6.2.3
// scheme-based normalization (the default port and an empty port removed,
// an empty path read as "/"). ok is false for anything else: another
// scheme, no host, userinfo, a port that is not a number, a malformed
// percent escape. RFC 9449 §4.3 compares htu with the request's URI so.
func NormalizeHTU(s string) (string, bool) {
	if i := strings.IndexByte(s, '#'); i >= 0 {
		s = s[:i]
	}
	if i := strings.IndexByte(s, '?'); i >= 0 {
		s = s[:i]
	}
	sep := strings.Index(s, "://")
	if sep <= 0 {
		return "", false
	}
	scheme := strings.ToLower(s[:sep])
	var defaultPort string
	switch scheme {
	case "http":
		defaultPort = "80"
	case "https":
		defaultPort = "443"
	default:
		return "", false
	}
	authority, rawPath := s[sep+3:], ""
	if i := strings.IndexByte(authority, '/'); i >= 0 {
		authority, rawPath = authority[:i], authority[i:]
	}
	if authority == "" || strings.ContainsAny(authority, "@%\\") {
		return "", false // no host, userinfo, or an escaped host: none is ours
	}
	u, err := url.Parse(scheme + "://" + authority)
	if err != nil || u.Host == "" || u.Hostname() == "" {
		return "", false
	}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]" // an IPv6 literal
	}
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return "", false
		}
		if p = strconv.FormatUint(n, 10); p != defaultPort {
			host += ":" + p
		}
	}
	path, ok := NormalizePath(rawPath)
	if !ok {
		return "", false
	}
	return scheme + "://" + host + path, true
}

// NormalizePath is an absolute path (no query) normalized as NormalizeHTU
// normalizes a URI's: percent-encoding in upper case with unreserved
// characters decoded, dot segments removed (never above the root), "" read
// as "/". ok is false for a malformed percent escape.
func NormalizePath(p string) (string, bool) {
	p, ok := normalizePercent(p)
	if !ok {
		return "", false
	}
	if p = removeDotSegments(p); p == "" {
		p = "/"
	}
	return p, true
}

// normalizePercent writes every percent escape in upper case and decodes
// those of unreserved characters (RFC 3986 §6.2.2.1, §6.2.2.2); a '%' not
// followed by two hex digits makes the path malformed.
func normalizePercent(p string) (string, bool) {
	if !strings.Contains(p, "%") {
		return p, true
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] != '%' {
			b.WriteByte(p[i])
			continue
		}
		if i+2 >= len(p) || !jsonscan.IsHex(p[i+1]) || !jsonscan.IsHex(p[i+2]) {
			return "", false
		}
		c := jsonscan.Unhex(p[i+1])<<4 | jsonscan.Unhex(p[i+2])
		if isUnreserved(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteString(strings.ToUpper(p[i+1 : i+3]))
		}
		i += 2
	}
	return b.String(), true
}

// removeDotSegments is RFC 3986 §5.2.4's algorithm.
func removeDotSegments(in string) string {
	out := make([]byte, 0, len(in))
	trimLast := func() {
		if i := strings.LastIndexByte(string(out), '/'); i >= 0 {
			out = out[:i]
		} else {
			out = out[:0]
		}
	}
	for in != "" {
		switch {
		case strings.HasPrefix(in, "../"):
			in = in[3:]
		case strings.HasPrefix(in, "./"):
			in = in[2:]
		case strings.HasPrefix(in, "/./"):
			in = in[2:]
		case in == "/.":
			in = "/"
		case strings.HasPrefix(in, "/../"):
			in = in[3:]
			trimLast()
		case in == "/..":
			in = "/"
			trimLast()
		case in == "." || in == "..":
			in = ""
		default:
			start := 0
			if in[0] == '/' {
				start = 1
			}
			j := strings.IndexByte(in[start:], '/')
			if j < 0 {
				j = len(in)
			} else {
				j += start
			}
			out = append(out, in[:j]...)
			in = in[j:]
		}
	}
	return string(out)
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}
