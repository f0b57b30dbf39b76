package jwtauth

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// RedactURL is how a key-set URL is shown in logs, errors and on the admin
// endpoint: userinfo becomes "xxxxx", every query value "REDACTED" (names
// stay, so the shape is recognisable), the fragment goes. A URL that does
// not parse is not shown at all.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[unparsable URL]"
	}
	if u.Opaque != "" {
		return u.Scheme + ":REDACTED"
	}
	if u.User != nil {
		u.User = url.User("xxxxx")
	}
	if u.RawQuery != "" {
		parts := strings.Split(u.RawQuery, "&")
		for i, p := range parts {
			if name, _, ok := strings.Cut(p, "="); ok {
				parts[i] = name + "=REDACTED"
			} else if p != "" {
				parts[i] = "REDACTED"
			}
		}
		u.RawQuery = strings.Join(parts, "&")
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// redactURLError redacts the URL a net/http error names (the request's, or
// a redirect's); net/http itself only masks the password.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = RedactURL(ue.URL)
	}
	return err
}

// Bounds of attacker-sized strings in log lines and on the admin endpoint.
const (
	maxLoggedKid  = 64  // a kid, from a token header or a key set
	maxLoggedText = 512 // an error or reason that may quote a document
)

// logKid is how a kid is logged: it comes from a token header or a key set,
// so it is escaped as strconv.QuoteToASCII does (without the quotes) and
// cut to at most maxLoggedKid bytes, a cut marked with "…".
func logKid(kid string) string { return boundText(kid, maxLoggedKid, true) }

// logKids applies logKid to each kid.
func logKids(kids []string) []string {
	out := make([]string, len(kids))
	for i, k := range kids {
		out[i] = logKid(k)
	}
	return out
}

// logText bounds a message that may quote a provider's document to limit
// bytes, escaping control and non-ASCII characters as logKid does but
// leaving quotes and backslashes as they are.
func logText(s string, limit int) string { return boundText(s, limit, false) }

func boundText(s string, limit int, quoteAll bool) string {
	const mark = "…"
	printable := func(c rune) bool {
		return c >= 0x20 && c < 0x7f && (!quoteAll || (c != '"' && c != '\\'))
	}
	if len(s) <= limit && !strings.ContainsFunc(s, func(c rune) bool { return !printable(c) }) {
		return s
	}
	buf := make([]byte, 0, limit+8)
	cut := 0 // the longest prefix of whole characters that leaves room for mark
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if printable(r) {
			buf = append(buf, byte(r))
		} else {
			q := strconv.QuoteToASCII(s[i : i+size])
			buf = append(buf, q[1:len(q)-1]...)
		}
		i += size
		if len(buf) > limit {
			return string(buf[:cut]) + mark
		}
		if len(buf) <= limit-len(mark) {
			cut = len(buf)
		}
	}
	return string(buf)
}
