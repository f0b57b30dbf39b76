package caddymodule

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// TestIntegrationImportExport: 10000 profiles through the admin endpoint
// of a real Caddy and back, on bolt and on PostgreSQL; a file with one bad
// line writes nothing and reports that line.
func TestIntegrationImportExport(t *testing.T) {
	t.Run("bolt", func(t *testing.T) { testImportExport(t, "") })
	t.Run("postgres", func(t *testing.T) { testImportExport(t, pgStorage(t)) })
}

func testImportExport(t *testing.T, storage string) {
	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	tc := startCaddy(t, itConfig{jwksFiles: []string{writeFile(t, "k.json", jwtauthtest.JWKS(t, k))}, storage: storage})
	admin := &http.Client{Timeout: 60 * time.Second}
	post := func(body string) (int, importReport) {
		resp, err := admin.Post(itAdmin+"/workspace-profile/profiles?verify=off", "application/x-ndjson", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var rep importReport
		raw, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(raw, &rep); err != nil {
			t.Fatalf("report %q: %v", raw, err)
		}
		return resp.StatusCode, rep
	}
	export := func() map[string]profile.ProfileData {
		resp, err := admin.Get(itAdmin + "/workspace-profile/profiles")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("export: %d %v", resp.StatusCode, resp.Header)
		}
		out := map[string]profile.ProfileData{}
		sc := bufio.NewScanner(resp.Body)
		trailer := ""
		for sc.Scan() {
			if trailer != "" {
				t.Fatalf("a line after the trailer: %q", sc.Bytes())
			}
			if bytes.HasPrefix(sc.Bytes(), []byte(`{"_export":`)) {
				trailer = sc.Text()
				continue
			}
			var d profile.ProfileData
			if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
				t.Fatalf("export line %q: %v", sc.Bytes(), err)
			}
			out[d.UserID] = d
		}
		if err := sc.Err(); err != nil || !strings.HasPrefix(trailer, fmt.Sprintf(`{"_export":{"count":%d,`, len(out))) {
			t.Fatalf("export of %d profiles ends with %q, %v", len(out), trailer, err)
		}
		return out
	}

	const n = 10000
	var file bytes.Buffer
	for i := range n {
		fmt.Fprintf(&file, `{"UserId":"imp-%05d","UserName":"user-%05d","Email":"user%d@example.com","FirstName":"First %d","LastName":null,"UserType":%d}`+"\n", i, i, i, i, i%2)
	}
	start := time.Now()
	status, rep := post(file.String())
	if status != 200 || !rep.Success || rep.Imported != n || len(rep.Errors) != 0 {
		t.Fatalf("import: %d %+v", status, rep)
	}
	t.Logf("imported %d profiles in %v", n, time.Since(start).Round(time.Millisecond))
	got := export()
	if len(got) != n {
		t.Fatalf("exported %d profiles, want %d", len(got), n)
	}
	d := got["imp-04242"]
	if *d.UserName != "user-04242" || *d.Email != "user4242@example.com" || *d.FirstName != "First 4242" || d.LastName != nil || d.UserType != 0 {
		t.Fatalf("round trip: %+v", d)
	}
	// the imported profile is served, and its name is taken
	if r := do(t, tc.Client, "GET", itBase+profilePath, bearer(k.Mint(t, jwtauthtest.Claims("imp-00007"), nil)), ""); r.status != 200 || *r.envelope(t).Data.UserName != "user-00007" {
		t.Fatalf("served: %d %s", r.status, r.body)
	}
	if r := do(t, tc.Client, "PUT", itBase+profilePath, jsonPut(k.Mint(t, jwtauthtest.Claims("someone"), nil), ""), `{"UserName":"USER-00001"}`); r.status != 400 {
		t.Fatalf("imported name not taken: %d", r.status)
	}

	for name, c := range map[string]struct {
		file string
		line int
		code string
	}{
		"invalid email on line 2":       {"{\"UserId\":\"new-1\",\"UserName\":\"newbie\"}\n{\"UserId\":\"new-2\",\"Email\":\"nope\"}\n{\"UserId\":\"new-3\"}\n", 2, "InvalidEmail"},
		"name held by a stored profile": {"{\"UserId\":\"new-1\",\"UserName\":\"newbie\"}\n\n{\"UserId\":\"new-3\",\"UserName\":\"USER-00009\"}\n", 3, "UserNameTaken"},
		"unknown property":              {"{\"UserId\":\"new-1\",\"Password\":\"x\"}\n", 1, "InvalidJson"},
		"same user twice":               {"{\"UserId\":\"new-1\"}\n{\"UserId\":\"new-1\"}\n", 2, "DuplicateProperty"},
	} {
		t.Run(name, func(t *testing.T) {
			status, rep := post(c.file)
			if status != 400 || rep.Success || rep.Imported != 0 || len(rep.Errors) != 1 || rep.Errors[0].Line != c.line || rep.Errors[0].Errors[0].Code != c.code {
				t.Fatalf("%d %+v", status, rep)
			}
			after := export()
			if len(after) != n {
				t.Fatalf("a refused import changed the store: %d profiles", len(after))
			}
			if _, ok := after["new-1"]; ok {
				t.Fatal("a refused import wrote new-1")
			}
		})
	}
}
