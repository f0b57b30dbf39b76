package caddyworkspaceprofile

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// TestDocsLinks keeps the documentation's pages connected and inside the
// repository. In README.md, DEVELOPMENT.md and docs/*.md:
//
//   - every relative link names a file or directory that exists, and a
//     heading (as GitHub makes its anchors) or an <a id> of it when it has
//     a #fragment;
//   - no link leaves the repository: none resolves above its root, none
//     is an absolute path, and none has a scheme but http, https and
//     mailto; and no page names the team's sibling checkout or a
//     machine's directory (/work/), so the pages stand on their own;
//   - every page of docs/ is linked from another page, so none is lost.
func TestDocsLinks(t *testing.T) {
	pages := []string{"README.md", "DEVELOPMENT.md"}
	docs, err := filepath.Glob(filepath.Join("docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) == 0 {
		t.Fatal("no docs/*.md pages")
	}
	pages = append(pages, docs...)

	texts := map[string]string{}
	for _, p := range pages {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		texts[filepath.ToSlash(p)] = string(b)
	}

	linkedFrom := map[string][]string{} // page -> pages that link to it
	for _, page := range sortedKeys(texts) {
		text := texts[page]
		// a path into a sibling checkout or this machine, even in prose or code
		if m := outsidePath.FindString(text); m != "" {
			t.Errorf("%s mentions %q: the pages must not depend on anything outside this repository", page, m)
		}
		for _, target := range markdownLinks(text) {
			if scheme, _, ok := strings.Cut(target, ":"); ok && regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*$`).MatchString(scheme) {
				switch strings.ToLower(scheme) {
				case "http", "https", "mailto":
				default:
					t.Errorf("%s: link %q: only http, https and mailto links may leave the repository", page, target)
				}
				continue
			}
			file, fragment, _ := strings.Cut(target, "#")
			if strings.HasPrefix(file, "/") || strings.HasPrefix(file, `\`) {
				t.Errorf("%s: link %q is an absolute path", page, target)
				continue
			}
			resolved := page
			if file != "" {
				resolved = path.Clean(path.Join(path.Dir(page), strings.ReplaceAll(file, `\`, "/")))
			}
			if resolved == ".." || strings.HasPrefix(resolved, "../") {
				t.Errorf("%s: link %q climbs out of the repository: link within it only", page, target)
				continue
			}
			info, err := os.Stat(filepath.FromSlash(resolved))
			if err != nil {
				t.Errorf("%s: link %q points at nothing (%s)", page, target, resolved)
				continue
			}
			if resolved != page {
				linkedFrom[resolved] = append(linkedFrom[resolved], page)
			}
			if fragment == "" || info.IsDir() || !strings.HasSuffix(resolved, ".md") {
				continue
			}
			targetText, ok := texts[resolved]
			if !ok {
				b, err := os.ReadFile(filepath.FromSlash(resolved))
				if err != nil {
					t.Fatal(err)
				}
				targetText = string(b)
			}
			if !markdownAnchors(targetText)[fragment] {
				t.Errorf("%s: link %q: %s has no heading or anchor %q", page, target, resolved, fragment)
			}
		}
	}

	for _, d := range docs {
		d = filepath.ToSlash(d)
		if len(linkedFrom[d]) == 0 {
			t.Errorf("%s is linked from no other page: add it to the README's menu", d)
		}
	}
}

var (
	// the sibling checkout beside the repository, and this machine's work tree
	outsidePath = regexp.MustCompile(`\.\.[/\\]shared\b|/work/`)

	mdFence    = regexp.MustCompile("(?ms)^[ \t]*```.*?^[ \t]*```[ \t]*$")
	mdCode     = regexp.MustCompile("`[^`\n]*`")
	mdLink     = regexp.MustCompile(`\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	mdHref     = regexp.MustCompile(`<a\s[^>]*href="([^"]+)"`)
	mdHeading  = regexp.MustCompile(`(?m)^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$`)
	mdAnchorID = regexp.MustCompile(`<a\s[^>]*(?:id|name)="([^"]+)"`)
)

// markdownLinks returns the targets of the inline links of a Markdown
// text, outside code blocks and code spans.
func markdownLinks(text string) []string {
	text = mdFence.ReplaceAllString(text, "")
	text = mdCode.ReplaceAllString(text, "``")
	var out []string
	for _, re := range []*regexp.Regexp{mdLink, mdHref} {
		for _, m := range re.FindAllStringSubmatch(text, -1) {
			out = append(out, m[1])
		}
	}
	return out
}

// markdownAnchors returns the fragments that reach into a Markdown text:
// its headings as GitHub makes their anchors (lower case, punctuation
// other than - and _ dropped, spaces made -, a repeated one suffixed -1,
// -2...), and explicit <a id> or <a name> anchors.
func markdownAnchors(text string) map[string]bool {
	anchors := map[string]bool{}
	for _, m := range mdAnchorID.FindAllStringSubmatch(text, -1) {
		anchors[m[1]] = true
	}
	text = mdFence.ReplaceAllString(text, "")
	seen := map[string]int{}
	for _, m := range mdHeading.FindAllStringSubmatch(text, -1) {
		a := githubAnchor(m[1])
		if n := seen[a]; n > 0 {
			anchors[a+"-"+strconv.Itoa(n)] = true
		} else {
			anchors[a] = true
		}
		seen[a]++
	}
	return anchors
}

func githubAnchor(heading string) string {
	// links in a heading count by their text
	heading = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`).ReplaceAllString(heading, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestDocsNameExistingTests keeps the documentation's references to tests
// true: every Test, Fuzz or Benchmark function that README.md,
// DEVELOPMENT.md or a docs/ page names is defined in a test file of the
// repository, so a renamed test cannot leave the threat model or the
// development notes pointing at nothing.
func TestDocsNameExistingTests(t *testing.T) {
	out, err := exec.Command("git", "ls-files", "*_test.go").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	defined := map[string]bool{}
	funcName := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz|Benchmark)[A-Za-z0-9_]*)\(`)
	for _, f := range strings.Fields(string(out)) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range funcName.FindAllStringSubmatch(string(b), -1) {
			defined[m[1]] = true
		}
	}
	if len(defined) == 0 {
		t.Fatal("no test functions found")
	}
	pages, err := filepath.Glob(filepath.Join("docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	cited := regexp.MustCompile(`\b((?:Test|Fuzz|Benchmark)[A-Z][A-Za-z0-9_]*)`)
	for _, p := range append([]string{"README.md", "DEVELOPMENT.md"}, pages...) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range cited.FindAllStringSubmatch(string(b), -1) {
			if !defined[m[1]] {
				t.Errorf("%s names %s, which no test file defines", p, m[1])
			}
		}
	}
}
