package caddymodule

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestWalkthroughMatchesREADME runs the README's walk-through against a
// real Caddy serving Caddyfile.example, and compares every answer with what
// the README says it is, so that the two cannot drift apart.
//
// The walk-through is the first ```sh block under "## Walk-through". Each
// curl command in it is sent in order; the comment lines right after it are
// its expected answer, in the form curl prints it:
//
//   - with -i: the status line ("HTTP/1.1 200 OK"), then the headers shown
//     (only those are compared; others may come too), then the body;
//   - with -s -w '\n%{http_code}\n': the body, then the status code alone.
//
// A body may span several comment lines (they are joined, their leading
// spaces dropped), and "..." in a body or a header value stands for any
// text, so the README can leave out what does not matter (and traceId,
// which differs on every request). No expected body means an empty one.
//
// The example's config is used as it is, but for what a test must not
// share with a developer's running example: this run's ports, a temporary
// bolt file instead of .data/, and the access log discarded.
func TestWalkthroughMatchesREADME(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	steps, vars := parseWalkthrough(t, string(readme))
	if len(steps) < 8 {
		t.Fatalf("the walk-through has %d curl commands; the parser found too few", len(steps))
	}

	tc := newTester(t)
	tc.InitServer(walkthroughCaddyfile(t), "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	for i, st := range steps {
		req, err := st.request(t, vars)
		if err != nil {
			t.Fatalf("step %d (%s): %v", i+1, st.line, err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("step %d (%s): %v", i+1, st.line, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("step %d (%s): %v", i+1, st.line, err)
		}
		if st.capture != "" {
			// NAME=$(curl ... | jq -r .member): the member of a JSON answer
			var answer map[string]any
			if err := json.Unmarshal(body, &answer); err != nil || resp.StatusCode/100 != 2 {
				t.Fatalf("step %d (%s): %d %s", i+1, st.line, resp.StatusCode, body)
			}
			v, ok := answer[st.member].(string)
			if !ok {
				t.Fatalf("step %d (%s): the answer has no string %q: %s", i+1, st.line, st.member, body)
			}
			vars[st.capture] = v
			continue
		}
		if msg := st.compare(resp, string(body)); msg != "" {
			t.Errorf("step %d of the README's walk-through, %s\n%s\nthe README says:\n%s", i+1, st.line, msg, strings.Join(st.expect, "\n"))
		}
	}
}

// walkthroughCaddyfile is Caddyfile.example on this run's ports, with its
// bolt file in a temporary directory and its access log discarded.
func walkthroughCaddyfile(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(raw)
	// the global options block: the first block at column 0 that opens with "{"
	global := regexp.MustCompile(`(?m)^\{\n(?:(?:\t.*)?\n)*\}\n`)
	if !global.MatchString(cfg) {
		t.Fatal("Caddyfile.example has no global options block where this test expects it")
	}
	cfg = global.ReplaceAllLiteralString(cfg, itGlobal)
	db := filepath.Join(t.TempDir(), "workspace_profile.db")
	for _, r := range []struct{ old, new string }{
		{"http://localhost:8080 {", itSite + " {"},
		{"storage bolt .data/workspace_profile.db", "storage bolt " + db},
		{"jwks_file testdata/", "jwks_file ../testdata/"},
		{"output stdout", "output discard"},
	} {
		if !strings.Contains(cfg, r.old) {
			t.Fatalf("Caddyfile.example has no %q; the walk-through test must follow the example's change", r.old)
		}
		cfg = strings.ReplaceAll(cfg, r.old, r.new)
	}
	return cfg
}

// wtStep is one curl command of the walk-through and its expected answer.
type wtStep struct {
	line   string   // the command as written (joined), for messages
	args   []string // its words, variables and $(cat ...) expanded later
	expect []string // the comment lines after it, "# " stripped
	// capture and member: NAME=$(curl ... | jq -r .member) sets NAME to a
	// member of the answer (an API key made by the admin endpoint), and
	// shows no answer
	capture, member string
}

// wtCapture is a variable set from a curl command's JSON answer.
var wtCapture = regexp.MustCompile(`^([A-Z][A-Z0-9_]*)=\$\((curl .*) \| jq -r \.([A-Za-z_]+)\)$`)

// parseWalkthrough returns the curl commands of the README's walk-through
// and its variables (U, T...) with their values, U's on this run's port.
func parseWalkthrough(t *testing.T, readme string) ([]wtStep, map[string]string) {
	t.Helper()
	_, after, ok := strings.Cut(readme, "\n## Walk-through\n")
	if !ok {
		t.Fatal(`README.md has no "## Walk-through" section`)
	}
	_, after, ok = strings.Cut(after, "```sh\n")
	if !ok {
		t.Fatal("the walk-through has no ```sh block")
	}
	block, _, ok := strings.Cut(after, "\n```")
	if !ok {
		t.Fatal("the walk-through's ```sh block does not end")
	}

	// join continuation lines, keep comment lines apart
	var lines []string
	for _, l := range strings.Split(block, "\n") {
		if n := len(lines); n > 0 && strings.HasSuffix(lines[n-1], "\\") {
			lines[n-1] = strings.TrimSuffix(lines[n-1], "\\") + " " + strings.TrimSpace(l)
			continue
		}
		lines = append(lines, l)
	}

	vars := map[string]string{}
	var steps []wtStep
	assign := regexp.MustCompile(`^([A-Z][A-Z0-9_]*)=(.*)$`)
	inAnswer := false // comment lines belong to the last command until a blank line
	for _, l := range lines {
		trimmed := strings.TrimSpace(l)
		switch {
		case trimmed == "":
			inAnswer = false
		case strings.HasPrefix(trimmed, "#"):
			if inAnswer {
				c := strings.TrimPrefix(strings.TrimPrefix(trimmed, "#"), " ")
				steps[len(steps)-1].expect = append(steps[len(steps)-1].expect, c)
			}
		case wtCapture.MatchString(trimmed):
			m := wtCapture.FindStringSubmatch(trimmed)
			words, err := shellWords(m[2])
			if err != nil {
				t.Fatalf("walk-through: cannot read %q: %v", trimmed, err)
			}
			steps = append(steps, wtStep{line: trimmed, args: words[1:], capture: m[1], member: m[3]})
			inAnswer = false
		case assign.MatchString(trimmed):
			m := assign.FindStringSubmatch(trimmed)
			words, err := shellWords(m[2])
			if err != nil || len(words) != 1 {
				t.Fatalf("walk-through: cannot read %q: %v", trimmed, err)
			}
			vars[m[1]] = words[0]
			inAnswer = false
		case strings.HasPrefix(trimmed, "curl "):
			words, err := shellWords(trimmed)
			if err != nil {
				t.Fatalf("walk-through: cannot read %q: %v", trimmed, err)
			}
			steps = append(steps, wtStep{line: trimmed, args: words[1:]})
			inAnswer = true
		default:
			t.Fatalf("walk-through: a line this test cannot run: %q", trimmed)
		}
	}
	u, ok := vars["U"]
	if !ok || !strings.Contains(u, "localhost:8080") {
		t.Fatalf("walk-through: U = %q, expected an address on localhost:8080", u)
	}
	vars["U"] = strings.Replace(u, "localhost:8080", itHost, 1)
	for _, st := range steps {
		if len(st.expect) == 0 && st.capture == "" {
			t.Fatalf("walk-through: %q shows no answer", st.line)
		}
	}
	return steps, vars
}

// shellWords splits a command line the way sh does for the subset the
// walk-through uses: single quotes, double quotes, plain words, and a
// trailing "# comment". Expansion happens in expand, per word.
func shellWords(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	marker := "\x00" // marks expandable text: $ inside single quotes is escaped
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated single quote")
			}
			cur.WriteString(strings.ReplaceAll(line[i+1:i+1+j], "$", marker))
			i += j + 1
			inWord = true
		case c == '"':
			j := strings.IndexByte(line[i+1:], '"')
			if j < 0 {
				return nil, fmt.Errorf("unterminated double quote")
			}
			cur.WriteString(line[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '$' && strings.HasPrefix(line[i:], "$("):
			j := strings.IndexByte(line[i:], ')')
			if j < 0 {
				return nil, fmt.Errorf("unterminated $(")
			}
			cur.WriteString(line[i : i+j+1])
			i += j
			inWord = true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '#' && !inWord:
			i = len(line)
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

var (
	wtCat = regexp.MustCompile(`\$\(cat ([^)]+)\)`)
	wtVar = regexp.MustCompile(`\$([A-Z][A-Z0-9_]*)`)
)

// expand replaces $(cat file) with the file's content (trailing newlines
// removed, as sh does) and $VAR with its value; "\x00" marks a literal $.
func expand(t *testing.T, s string, vars map[string]string) string {
	t.Helper()
	s = wtCat.ReplaceAllStringFunc(s, func(m string) string {
		name := wtCat.FindStringSubmatch(m)[1]
		b, err := os.ReadFile(filepath.Join("..", strings.TrimSpace(name)))
		if err != nil {
			t.Fatalf("walk-through: %v", err)
		}
		return strings.TrimRight(string(b), "\n")
	})
	s = wtVar.ReplaceAllStringFunc(s, func(m string) string {
		v, ok := vars[m[1:]]
		if !ok {
			t.Fatalf("walk-through: %s is not set", m)
		}
		return expand(t, v, vars)
	})
	return strings.ReplaceAll(s, "\x00", "$")
}

// request builds the HTTP request of a curl command, and records in the
// step which form of output (-i or -w) its answer is written in.
func (st *wtStep) request(t *testing.T, vars map[string]string) (*http.Request, error) {
	t.Helper()
	method, body, url := "", "", ""
	var headers [][2]string
	for i := 0; i < len(st.args); i++ {
		a := st.args[i]
		next := func() (string, error) {
			if i+1 >= len(st.args) {
				return "", fmt.Errorf("%s needs an argument", a)
			}
			i++
			return expand(t, st.args[i], vars), nil
		}
		var err error
		switch a {
		case "-i", "-s":
		case "-X":
			method, err = next()
		case "-H":
			var h string
			if h, err = next(); err == nil {
				name, value, ok := strings.Cut(h, ":")
				if !ok {
					return nil, fmt.Errorf("header %q has no colon", h)
				}
				headers = append(headers, [2]string{name, strings.TrimSpace(value)})
			}
		case "-d":
			body, err = next()
		case "-w":
			var w string
			if w, err = next(); err == nil && w != `\n%{http_code}\n` {
				return nil, fmt.Errorf("-w %q: this test knows only -w '\\n%%{http_code}\\n'", w)
			}
		default:
			if strings.HasPrefix(a, "-") {
				return nil, fmt.Errorf("curl option %s is not one this test knows", a)
			}
			if url != "" {
				return nil, fmt.Errorf("two URLs: %s and %s", url, a)
			}
			// Caddy's admin endpoint, on this run's admin port
			url = strings.Replace(expand(t, a, vars), "localhost:2019", strings.TrimPrefix(itAdmin, "http://"), 1)
		}
		if err != nil {
			return nil, err
		}
	}
	if url == "" {
		return nil, fmt.Errorf("no URL")
	}
	if method == "" {
		method = "GET"
		if body != "" {
			method = "POST"
		}
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, err
	}
	if body != "" {
		// curl -d sends this unless a -H says otherwise
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, h := range headers {
		req.Header.Set(h[0], h[1])
	}
	return req, nil
}

func (st *wtStep) has(flag string) bool {
	for _, a := range st.args {
		if a == flag {
			return true
		}
	}
	return false
}

var wtHeaderLine = regexp.MustCompile(`^([A-Za-z0-9-]+): (.*)$`)

// compare checks an answer against the step's expectation; it returns
// what differs, or "".
func (st *wtStep) compare(resp *http.Response, body string) string {
	exp := st.expect
	var problems []string
	var bodyLines []string
	switch {
	case st.has("-i"):
		status := fmt.Sprintf("HTTP/%d.%d %s", resp.ProtoMajor, resp.ProtoMinor, resp.Status)
		if exp[0] != status {
			problems = append(problems, fmt.Sprintf("status line %q, the README shows %q", status, exp[0]))
		}
		rest := exp[1:]
		for len(rest) > 0 {
			m := wtHeaderLine.FindStringSubmatch(rest[0])
			if m == nil {
				break
			}
			got := strings.Join(resp.Header.Values(m[1]), ", ")
			if !elisionMatch(m[2], got) {
				problems = append(problems, fmt.Sprintf("header %s: %q, the README shows %q", m[1], got, m[2]))
			}
			rest = rest[1:]
		}
		bodyLines = rest
	case st.has("-w"):
		last := exp[len(exp)-1]
		if got := fmt.Sprint(resp.StatusCode); last != got {
			problems = append(problems, fmt.Sprintf("status %s, the README shows %q", got, last))
		}
		bodyLines = exp[:len(exp)-1]
	default:
		return "the command prints no status: use -i or -s -w '\\n%{http_code}\\n'"
	}
	var want strings.Builder
	for _, l := range bodyLines {
		want.WriteString(strings.TrimLeft(l, " "))
	}
	if !elisionMatch(want.String(), body) {
		problems = append(problems, fmt.Sprintf("body:\n%s", body))
	}
	return strings.Join(problems, "\n")
}

// elisionMatch reports whether got is want, where each "..." in want
// stands for any text (none included).
func elisionMatch(want, got string) bool {
	parts := strings.Split(want, "...")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile(`(?s)^` + strings.Join(parts, ".*?") + `$`).MatchString(got)
}
