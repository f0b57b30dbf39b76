package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
	"github.com/workspace-edge/caddy-workspace-profile/profile/memstore"
)

// importAnswer is the import report as a client reads it off the wire.
type importAnswer struct {
	Imported  int                  `json:"imported"`
	Errors    []profile.LineReport `json:"errors"`
	Success   bool                 `json:"success"`
	Truncated bool                 `json:"truncated"`
	Unchecked int                  `json:"unchecked"`
}

// repeatReader yields line over and over, n bytes in all: a big import
// file made on the fly.
func repeatReader(line string, n int64) io.Reader {
	return io.LimitReader(&cycle{s: line}, n)
}

type cycle struct {
	s   string
	off int
}

func (c *cycle) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := copy(p[n:], c.s[c.off:])
		n += k
		c.off = (c.off + k) % len(c.s)
	}
	return n, nil
}

// postImport runs the admin endpoint's import handler on body, a
// hand-written file (?verify=off), against store, and returns the status, the raw answer, the decoded answer and
// the bytes the process allocated meanwhile.
func postImport(t *testing.T, store profile.Store, body io.Reader) (int, []byte, importAnswer, uint64) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/workspace-profile/profiles?verify=off", body)
	rec := httptest.NewRecorder()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	err := importProfiles(rec, req, store)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatalf("import handler: %v", err)
	}
	raw := rec.Body.Bytes()
	var ans importAnswer
	if err := json.Unmarshal(raw, &ans); err != nil {
		t.Fatalf("answer %.200q: %v", raw, err)
	}
	return rec.Code, raw, ans, after.TotalAlloc - before.TotalAlloc
}

func storedCount(t *testing.T, store profile.Store) int {
	t.Helper()
	n := 0
	if err := store.(profile.Exporter).Export(context.Background(), func(profile.Profile) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestImportJunkIsBounded: 6 MiB of junk lines (over a million refused
// lines) gives a short report of the first refused lines that says it
// stopped there, and the handler allocates a few MiB, not gigabytes.
func TestImportJunkIsBounded(t *testing.T) {
	store := memstore.New()
	const size = 6 << 20
	const junk = "junk\n"
	status, raw, ans, alloc := postImport(t, store, repeatReader(junk, size))
	t.Logf("answer %d bytes, %d MiB allocated", len(raw), alloc>>20)
	if status != http.StatusBadRequest || ans.Success || ans.Imported != 0 {
		t.Fatalf("status %d, success %v, imported %d", status, ans.Success, ans.Imported)
	}
	if len(ans.Errors) != profile.MaxImportLineReports || !ans.Truncated {
		t.Fatalf("%d line reports, truncated %v; want %d and true", len(ans.Errors), ans.Truncated, profile.MaxImportLineReports)
	}
	for i, lr := range ans.Errors {
		if lr.Line != i+1 || len(lr.Errors) != 1 || lr.Errors[0].Code != profile.CodeInvalidJSON {
			t.Fatalf("report %d: %+v", i, lr)
		}
	}
	// the last line is what the cut leaves of one
	if want := (size+len(junk)-1)/len(junk) - profile.MaxImportLineReports; ans.Unchecked != want {
		t.Fatalf("unchecked %d, want %d", ans.Unchecked, want)
	}
	if len(raw) > 64<<10 {
		t.Fatalf("answer of %d bytes", len(raw))
	}
	if alloc > 64<<20 {
		t.Fatalf("the import allocated %d MiB for a %d MiB file", alloc>>20, size>>20)
	}
	if n := storedCount(t, store); n != 0 {
		t.Fatalf("a refused import stored %d profiles", n)
	}
}

// TestImportLongLine: a line of 1 MiB with no newline is refused as too
// long, by its line number, without being read into memory whole; the
// lines around it are still checked and numbered; nothing is written.
func TestImportLongLine(t *testing.T) {
	store := memstore.New()
	t.Run("alone, no newline", func(t *testing.T) {
		status, _, ans, alloc := postImport(t, store, repeatReader("a", 1<<20))
		if status != http.StatusBadRequest || len(ans.Errors) != 1 || ans.Errors[0].Line != 1 || ans.Errors[0].Errors[0].Code != profile.CodeTooLong {
			t.Fatalf("%d %+v", status, ans)
		}
		if alloc >= 1<<20 {
			t.Fatalf("a 1 MiB line took %d KiB", alloc>>10)
		}
	})
	t.Run("between good lines", func(t *testing.T) {
		body := io.MultiReader(
			strings.NewReader("{\"UserId\":\"u-1\",\"UserName\":\"ann\"}\n\n"),
			repeatReader("b", 1<<20), strings.NewReader("\n"),
			strings.NewReader("{\"UserId\":\"u-2\",\"Email\":\"nope\"}\r\n{\"UserId\":\"u-3\"}"))
		status, _, ans, _ := postImport(t, store, body)
		if status != http.StatusBadRequest || ans.Truncated || len(ans.Errors) != 2 ||
			ans.Errors[0].Line != 3 || ans.Errors[0].Errors[0].Code != profile.CodeTooLong ||
			ans.Errors[1].Line != 4 || ans.Errors[1].Errors[0].Code != profile.CodeInvalidEmail {
			t.Fatalf("%d %+v", status, ans)
		}
		if n := storedCount(t, store); n != 0 {
			t.Fatalf("a refused import stored %d profiles", n)
		}
	})
	t.Run("at the limit", func(t *testing.T) {
		line := `{"UserId":"u-1","UserName":"ann"}`
		line += strings.Repeat(" ", profile.MaxImportLineBytes-len(line))
		status, raw, ans, _ := postImport(t, store, strings.NewReader(line+"\n"+`{"UserId":"u-2"}`+"\n"))
		if status != http.StatusOK || !ans.Success || ans.Imported != 2 {
			t.Fatalf("%d %s", status, raw)
		}
		if bytes.Contains(raw, []byte("truncated")) || bytes.Contains(raw, []byte("unchecked")) {
			t.Fatalf("a clean import's answer changed shape: %s", raw)
		}
	})
}

// TestImportCapAndFoldedDuplicates: a body over the 256 MiB cap is 413
// however it is made up (read as it streams, not held); a line that names
// a property twice under Unicode folding is refused as a PUT would be.
func TestImportCapAndFoldedDuplicates(t *testing.T) {
	store := memstore.New()
	t.Run("over the cap", func(t *testing.T) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		req := httptest.NewRequest(http.MethodPost, "/workspace-profile/profiles", repeatReader("{\"UserId\":\"x\"}\njunk\n", maxImportBytes+1))
		err := importProfiles(httptest.NewRecorder(), req, store)
		runtime.ReadMemStats(&after)
		var apiErr caddy.APIError
		if !errors.As(err, &apiErr) || apiErr.HTTPStatus != http.StatusRequestEntityTooLarge {
			t.Fatalf("err %v", err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
			t.Fatalf("a refused %d MiB body allocated %d MiB", maxImportBytes>>20, alloc>>20)
		}
	})
	t.Run("long s", func(t *testing.T) {
		status, raw, ans, _ := postImport(t, store, strings.NewReader("{\"UserId\":\"a\"}\n{\"UserId\":\"b\",\"UserName\":\"ann\",\"U\u017ferName\":\"bob\"}\n"))
		if status != http.StatusBadRequest || len(ans.Errors) != 1 || ans.Errors[0].Line != 2 || ans.Errors[0].Errors[0].Code != profile.CodeDuplicateProperty {
			t.Fatalf("%d %s", status, raw)
		}
		if n := storedCount(t, store); n != 0 {
			t.Fatalf("a refused import stored %d profiles", n)
		}
	})
}

// TestImportSlowUpload: Caddy's admin server gives a request 10 s to
// arrive; the import endpoint extends that (to 10 minutes), so an import
// uploaded slowly, here over about 12 s, succeeds through a real Caddy.
func TestImportSlowUpload(t *testing.T) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	startCaddy(t, itConfig{jwksFiles: []string{writeFile(t, "k.json", jwtauthtest.JWKS(t, k))}})
	pr, pw := io.Pipe()
	const chunks = 13
	go func() {
		for i := range chunks {
			if i > 0 {
				time.Sleep(time.Second)
			}
			if _, err := fmt.Fprintf(pw, "{\"UserId\":\"slow-%02d\",\"UserName\":\"slow-%02d\"}\n", i, i); err != nil {
				return
			}
		}
		_ = pw.Close()
	}()
	start := time.Now()
	req, _ := http.NewRequest("POST", itAdmin+"/workspace-profile/profiles?verify=off", pr)
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("after %v: %v", time.Since(start), err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	t.Logf("upload of %v: %d %s", time.Since(start).Round(time.Millisecond), resp.StatusCode, raw)
	var ans importAnswer
	if resp.StatusCode != 200 || json.Unmarshal(raw, &ans) != nil || ans.Imported != chunks {
		t.Fatalf("slow import: %d %s", resp.StatusCode, raw)
	}
}
