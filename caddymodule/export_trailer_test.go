package caddymodule

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
	"github.com/workspace-edge/caddy-workspace-profile/profile/memstore"
)

// siteBlock is one site of a test Caddyfile with the profile handler on
// storage.
func siteBlock(addr, jwksFile, storage string) string {
	return fmt.Sprintf(`%s {
	workspace_profile {
		jwks_file %s
		issuer %s
		audience %s
		%s
		create_missing
	}
}
`, addr, jwksFile, testIssuer, testAudience, storage)
}

// startSites runs a real Caddy with one site per storage line: the first
// at itSite (http://localhost:<port>), the second at http://127.0.0.1:<port>.
func startSites(t *testing.T, k jwtauthtest.Key, storages ...string) *caddytest.Tester {
	t.Helper()
	jwks := writeFile(t, "k.json", jwtauthtest.JWKS(t, k))
	cfg := itGlobal
	for i, s := range storages {
		addr := itSite
		if i == 1 {
			addr = "http://" + itAddr
		}
		cfg += siteBlock(addr, jwks, s)
	}
	tc := startCaddyfile(t, cfg)
	return tc
}

var adminClient = &http.Client{Timeout: 60 * time.Second}

// adminDo sends one request to the admin endpoint of the test Caddy.
func adminDo(t *testing.T, method, query string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, itAdmin+"/workspace-profile/profiles"+query, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := adminClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, query, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, query, err)
	}
	return resp.StatusCode, raw
}

func importReportOf(t *testing.T, raw []byte) importAnswer {
	t.Helper()
	var a importAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatalf("import answer %.300q: %v", raw, err)
	}
	return a
}

// handFile is a hand-written import file of n profiles, without trailer.
func handFile(prefix string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"UserId":"%s-%04d","UserName":"%s-%04d","Email":"%s%d@example.com","FirstName":"First","LastName":null,"UserType":%d}`+"\n",
			prefix, i, prefix, i, prefix, i, i%3)
	}
	return b.String()
}

var trailerRE = regexp.MustCompile(`^\{"_export":\{"count":(\d+),"sha256":"([0-9a-f]{64})"\}\}$`)

// TestExportTrailerBackupRestore is a backup and a restore as an operator
// does them, through a real Caddy: export from bolt, check the trailer,
// import into another backend (memory); a cut, altered or trailer-less
// file is refused with 400 and nothing written, unless the trailer-less
// file is imported with ?verify=off.
func TestExportTrailerBackupRestore(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	startSites(t, k, "storage bolt "+t.TempDir()+"/p.db", "storage memory")
	// the store names, from the error that asks for one
	status, raw := adminDo(t, "GET", "", nil)
	var names []string
	if m := regexp.MustCompile(`\[.*\]`).Find(raw); status != 400 || m == nil || json.Unmarshal([]byte(strings.ReplaceAll(string(m), `\"`, `"`)), &names) != nil || len(names) != 2 {
		t.Fatalf("store names: %d %s", status, raw)
	}
	bolt, mem := "?store="+names[0], "?store="+names[1]
	if !strings.HasPrefix(names[0], "bolt:") {
		bolt, mem = mem, bolt
	}

	// a hand-written file needs ?verify=off
	const n = 300
	status, raw = adminDo(t, "POST", bolt, strings.NewReader(handFile("b", n)))
	if a := importReportOf(t, raw); status != 400 || a.Imported != 0 || len(a.Errors) != 1 || a.Errors[0].Line != n+1 || a.Errors[0].Errors[0].Code != profile.CodeExportTrailer {
		t.Fatalf("a file without trailer: %d %s", status, raw)
	}
	status, raw = adminDo(t, "POST", bolt+"&verify=off", strings.NewReader(handFile("b", n)))
	if a := importReportOf(t, raw); status != 200 || a.Imported != n {
		t.Fatalf("a file without trailer, verify=off: %d %s", status, raw)
	}

	// backup: every line, then the trailer that counts and sums them
	status, backup := adminDo(t, "GET", bolt, nil)
	lines := strings.SplitAfter(string(backup), "\n")
	if status != 200 || len(lines) != n+2 || lines[n+1] != "" {
		t.Fatalf("export: %d, %d lines", status, len(lines))
	}
	m := trailerRE.FindStringSubmatch(strings.TrimSuffix(lines[n], "\n"))
	sum := sha256.Sum256([]byte(strings.Join(lines[:n], "")))
	if m == nil || m[1] != fmt.Sprint(n) || m[2] != hex.EncodeToString(sum[:]) {
		t.Fatalf("trailer %q, want count %d and sha256 %x", lines[n], n, sum)
	}

	memCount := func() int {
		_, raw := adminDo(t, "GET", mem, nil)
		return strings.Count(string(raw), "\n") - 1
	}
	altered := strings.Replace(string(backup), `"UserName":"b-0042"`, `"UserName":"b-9042"`, 1)
	if altered == string(backup) {
		t.Fatal("nothing altered")
	}
	for _, c := range []struct{ name, file string }{
		{"cut before the trailer", strings.Join(lines[:n], "")},
		{"cut in the middle", strings.Join(lines[:n/2], "")},
		{"cut inside a line", string(backup[:len(backup)/2])},
		{"one line altered", altered},
		{"one line removed", strings.Join(lines[:7], "") + strings.Join(lines[8:], "")},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, raw := adminDo(t, "POST", mem, strings.NewReader(c.file))
			a := importReportOf(t, raw)
			if status != 400 || a.Success || a.Imported != 0 || len(a.Errors) == 0 || a.Errors[len(a.Errors)-1].Errors[0].Code != profile.CodeExportTrailer {
				t.Fatalf("%d %s", status, raw)
			}
			if c := memCount(); c != 0 {
				t.Fatalf("a refused restore wrote %d profiles", c)
			}
		})
	}

	// restore into the other backend: the same file comes back out
	status, raw = adminDo(t, "POST", mem, bytes.NewReader(backup))
	if a := importReportOf(t, raw); status != 200 || a.Imported != n {
		t.Fatalf("restore: %d %s", status, raw)
	}
	_, again := adminDo(t, "GET", mem, nil)
	strip := func(b []byte) string { // versions differ: the restore is a write
		return regexp.MustCompile(`"Version":\d+`).ReplaceAllString(string(b), "")
	}
	if !strings.Contains(string(backup), `"b-0299"`) || strings.Count(string(again), "\n") != n+1 || !trailerRE.MatchString(strings.TrimSpace(string(again[bytes.LastIndexByte(again[:len(again)-1], '\n')+1:]))) {
		t.Fatalf("the restored store exports %d lines", strings.Count(string(again), "\n"))
	}
	if strip(backup[:bytes.LastIndex(backup, []byte(`{"_export"`))]) != strip(again[:bytes.LastIndex(again, []byte(`{"_export"`))]) {
		t.Fatal("the restored store does not export what was backed up")
	}
}

// failingStore is a memory store whose Export fails after `after`
// profiles, as a database that goes away in the middle of an export.
type failingStore struct {
	*memstore.Store
	after int
}

var errExportBroke = errors.New("the store went away")

func (f failingStore) Export(ctx context.Context, fn func(profile.Profile) error) error {
	n := 0
	return f.Store.Export(ctx, func(p profile.Profile) error {
		if n++; n > f.after {
			return errExportBroke
		}
		return fn(p)
	})
}

// TestExportFailureIsVisible: an export that fails after its first bytes
// went out aborts the connection, through Caddy's real admin server: the
// client sees a body cut short (unexpected EOF), never a clean end nor an
// error object as the last line. One that fails before any byte left the
// handler (the first 64 KiB are buffered) answers 503, without the cause.
func TestExportFailureIsVisible(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	startSites(t, k, "storage memory")
	store := memstore.New()
	var all []profile.Profile
	for i := range 20000 {
		all = append(all, profile.Profile{UserID: fmt.Sprintf("u-%05d", i), UserName: fmt.Sprintf("user-%05d", i), FirstName: strings.Repeat("f", 60)})
	}
	if err := store.Import(context.Background(), all); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		after int
	}{{"midway, after megabytes", 15000}, {"after a few lines", 3}, {"at once", 0}, {"after the first chunk", 800}} {
		t.Run(c.name, func(t *testing.T) {
			name := fmt.Sprintf("failing:%d", c.after)
			fs := failingStore{store, c.after}
			liveStores.add(name, fs)
			defer liveStores.remove(name, fs)
			resp, err := adminClient.Get(itAdmin + "/workspace-profile/profiles?store=" + name)
			if c.after < 500 { // less than the 64 KiB buffered
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 503 || strings.Contains(string(raw), "went away") {
					t.Fatalf("%d %s", resp.StatusCode, raw)
				}
				return
			}
			if err != nil {
				// cut before the header went out: as visible as it gets
				t.Logf("no answer: %v", err)
				return
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			lines, last := 0, ""
			for sc.Scan() {
				lines++
				last = sc.Text()
			}
			err = sc.Err()
			t.Logf("status %d, %d lines, then %v", resp.StatusCode, lines, err)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("the body ended with %v after %d lines (last %.100q); want an unexpected EOF", err, lines, last)
			}
			if strings.Contains(last, "error") || strings.Contains(last, "_export") || lines > c.after {
				t.Fatalf("last line %.200q of %d", last, lines)
			}
		})
	}
}
