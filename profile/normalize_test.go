package profile

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNormalizeFixtures runs every legacy response in testdata/legacy (raw
// HTTP) through Normalize and compares the result with its golden file.
func TestNormalizeFixtures(t *testing.T) {
	dir := filepath.Join("..", "testdata", "legacy")
	files, err := filepath.Glob(filepath.Join(dir, "*.http"))
	if err != nil || len(files) < 20 {
		t.Fatalf("fixtures: %v (%d)", err, len(files))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".http")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			n := Normalize(LegacyResponse{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: body})
			checkNormalized(t, n, resp.StatusCode)
			got, _ := json.MarshalIndent(n, "", "  ")
			golden(t, filepath.Join("..", "legacy", name+".golden.json"), append(got, '\n'))
		})
	}
}

// checkNormalized holds every output to the contract's invariants.
func checkNormalized(t *testing.T, n Normalized, in int) {
	t.Helper()
	switch {
	case n.Status == 304:
		if n.Envelope != nil || n.Problem != nil {
			t.Fatal("304 with a body")
		}
		return
	case n.Problem != nil:
		if n.Envelope != nil || (n.Status != 401 && n.Status != 403) || n.Problem.Status != n.Status || n.Problem.Code == "" {
			t.Fatalf("bad problem: %+v", n)
		}
		return
	case n.Envelope == nil:
		t.Fatalf("neither envelope nor problem: %+v", n)
	}
	e := n.Envelope
	if e.Errors == nil || e.Warnings == nil {
		t.Fatal("nil arrays")
	}
	if e.Success != (len(e.Errors) == 0) || (e.Success && n.Status >= 300) || (!e.Success && e.Data != nil) {
		t.Fatalf("inconsistent envelope: %d %+v", n.Status, e)
	}
	for _, it := range append(e.Errors, e.Warnings...) {
		if it.Code == "" || it.Message == "" {
			t.Fatalf("item without code or message: %+v", it)
		}
	}
	if in >= 500 && n.Status != 502 {
		t.Fatalf("a %d became %d, want 502", in, n.Status)
	}
	if in >= 400 && in < 500 && in != 401 && in != 403 && n.Status != in {
		t.Fatalf("a %d became %d, want it kept", in, n.Status)
	}
}

// FuzzNormalize: whatever the backend sends, Normalize never panics and
// always returns a valid envelope or problem.
func FuzzNormalize(f *testing.F) {
	f.Add(200, "application/json", []byte(`{"Data":{"UserId":"u"},"Errors":[],"Success":true}`))
	f.Add(400, "application/problem+json", []byte(`{"errors":{"$.email":["bad"]}}`))
	f.Add(401, "", []byte(`{"detail":"x","code":7}`))
	f.Add(500, "text/html", []byte(`<html>`))
	f.Add(200, "application/json", []byte(`{"errors":[1,{"code":[]},{"metadata":{"a":{}}}],"data":[]}`))
	f.Add(204, "", []byte(nil))
	f.Add(422, "application/json; charset=utf-16", []byte(`{}`))
	f.Fuzz(func(t *testing.T, status int, contentType string, body []byte) {
		if status < 100 || status > 599 {
			return
		}
		n := Normalize(LegacyResponse{Status: status, ContentType: contentType, Body: body})
		checkNormalized(t, n, status)
		if _, err := json.Marshal(n); err != nil {
			t.Fatal(err)
		}
	})
}
