package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
)

// The admin endpoint's API-key routes, through the test Caddy's real
// admin server. The route's provisioning, which fills the registry of key
// stores, is not needed: each test registers memory stores itself.

// keyAdmin is the test Caddy's admin endpoint with key stores registered.
type keyAdmin struct {
	t   *testing.T
	log string // the default log's file: every admin log line
}

// startKeyAdmin loads a config whose default log goes to a file of the
// test, so that the audit lines (and every admin request line) can be read.
func startKeyAdmin(t *testing.T) *keyAdmin {
	t.Helper()
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	global := strings.Replace(itGlobal, "\tskip_install_trust\n", fmt.Sprintf("\tskip_install_trust\n\tlog default {\n\t\toutput file %s\n\t\tformat json\n\t}\n", logFile), 1)
	startCaddyfile(t, global+itSite+" {\n\trespond ok\n}\n")
	return &keyAdmin{t: t, log: logFile}
}

// addStore registers a memory key store named name for the test.
func (a *keyAdmin) addStore(name string) *keyStore {
	m := apikey.NewMemory()
	ks := useKeyStore(&keyStore{Name: name, Store: m, Keyring: apikey.NewKeyring(m, apikey.Options{}), Prefix: apikey.DefaultPrefix})
	a.t.Cleanup(func() { releaseKeyStore(ks) })
	return ks
}

// do sends a request to the admin endpoint with headers hdr (name, value
// pairs) and returns the status, headers and body.
func (a *keyAdmin) do(method, path string, body io.Reader, hdr ...string) (int, http.Header, []byte) {
	a.t.Helper()
	req, err := http.NewRequest(method, itAdmin+path, body)
	if err != nil {
		a.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// create makes a key in store and returns the 201 answer's members.
func (a *keyAdmin) create(store, body string) map[string]any {
	a.t.Helper()
	code, hdr, b := a.do("POST", apiKeysPath+"?store="+store, strings.NewReader(body))
	if code != http.StatusCreated {
		a.t.Fatalf("create %s: %d %s", body, code, b)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		a.t.Fatal(err)
	}
	if loc := hdr.Get("Location"); loc != apiKeysPath+"/"+out["id"].(string) {
		a.t.Errorf("Location %q for id %v", loc, out["id"])
	}
	if hdr.Get("Cache-Control") != "no-store" {
		a.t.Errorf("Cache-Control %q on the answer that shows a key", hdr.Get("Cache-Control"))
	}
	return out
}

func memberNames(m map[string]any) []string {
	var names []string
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

func TestAdminAPIKeysCreateListRevoke(t *testing.T) {
	a := startKeyAdmin(t)
	ks := a.addStore("memory:admin-crud")
	created := a.create(ks.Name, `{"subject":"alice","kind":"user","name":"laptop","expires":"2999-01-01T00:00:00+01:00"}`)
	if got := memberNames(created); !slices.Equal(got, []string{"created", "expires", "id", "key", "kind", "name", "subject"}) {
		t.Fatalf("members %v", got)
	}
	key, id := created["key"].(string), created["id"].(string)
	if made, ok := apikey.ParseMade(apikey.DefaultPrefix, key); !ok || made != id || created["subject"] != "alice" ||
		created["kind"] != "user" || created["name"] != "laptop" || created["expires"] != "2998-12-31T23:00:00Z" {
		t.Fatalf("answer %v", created)
	}
	if c, err := time.Parse(time.RFC3339, created["created"].(string)); err != nil || time.Since(c) > time.Minute {
		t.Fatalf("created %v: %v", created["created"], err)
	}
	rec, err := ks.Keyring.Verify(context.Background(), key)
	if err != nil || rec.ID != id || rec.Subject != "alice" {
		t.Fatalf("the key made is not the key stored: %+v %v", rec, err)
	}
	svc := a.create(ks.Name, `{"subject":"robot","kind":"service"}`)
	if svc["expires"] != nil || svc["name"] != "" {
		t.Fatalf("a key without name or expiry: %v", svc)
	}
	hash := apikey.HashKey(key).String()

	code, _, body := a.do("GET", apiKeysPath+"?store="+ks.Name, nil)
	var list []map[string]any
	if code != 200 || json.Unmarshal(body, &list) != nil || len(list) != 2 {
		t.Fatalf("list: %d %s", code, body)
	}
	if got := memberNames(list[0]); !slices.Equal(got, []string{"created", "expires", "id", "kind", "last_used", "name", "revoked", "subject"}) {
		t.Fatalf("listed members %v", got)
	}
	if list[0]["revoked"] != nil || list[0]["last_used"] != nil {
		t.Fatalf("zero times must be null: %v", list[0])
	}
	code, _, body = a.do("GET", apiKeysPath+"?subject=robot&store="+ks.Name, nil)
	if code != 200 || json.Unmarshal(body, &list) != nil || len(list) != 1 || list[0]["id"] != svc["id"] {
		t.Fatalf("list of robot: %d %s", code, body)
	}
	code, _, export := a.do("GET", apiKeysPath+"/export?store="+ks.Name, nil)
	if code != 200 || !bytes.Contains(export, []byte(hash)) || !bytes.Contains(export, []byte(`{"_export":{"count":2,"sha256":"`)) {
		t.Fatalf("export: %d %s", code, export)
	}
	for what, b := range map[string][]byte{"list": body, "export": export} {
		if bytes.Contains(b, []byte(key)) || bytes.Contains(b, []byte(key[len(apikey.DefaultPrefix)+apikey.IDLen+1:])) {
			t.Errorf("the %s shows the key", what)
		}
	}

	for i, want := range []int{http.StatusNoContent, http.StatusNoContent} { // again: still 204
		if code, _, body := a.do("DELETE", apiKeysPath+"/"+id+"?store="+ks.Name, nil); code != want {
			t.Fatalf("revoke %d: %d %s", i, code, body)
		}
		if _, err := ks.Keyring.Verify(context.Background(), key); !errors.Is(err, apikey.ErrInvalid) {
			t.Fatalf("the revoked key still verifies on this node: %v", err)
		}
	}
	code, _, body = a.do("GET", apiKeysPath+"?subject=alice&store="+ks.Name, nil)
	if code != 200 || json.Unmarshal(body, &list) != nil || len(list) != 1 || list[0]["revoked"] == nil {
		t.Fatalf("list after revoke: %d %s", code, body)
	}
	if code, _, body := a.do("DELETE", apiKeysPath+"/aaaaaaaaaaaaaaaa?store="+ks.Name, nil); code != http.StatusNotFound || !bytes.Contains(body, []byte(`"error":`)) {
		t.Fatalf("revoke of an unknown id: %d %s", code, body)
	}
	if code, _, body := a.do("DELETE", apiKeysPath+"/"+key+"?store="+ks.Name, nil); code != http.StatusBadRequest ||
		!bytes.Contains(body, []byte("not a key id")) || bytes.Contains(body, []byte(key)) {
		t.Fatalf("a key in the path instead of its id: %d %s", code, body)
	}
}

// TestAdminAPIKeysRefusals: every refusal is Caddy's admin error body with
// a precise message, and nothing is stored.
func TestAdminAPIKeysRefusals(t *testing.T) {
	a := startKeyAdmin(t)
	ks := a.addStore("memory:admin-refusals")
	post := func(body string) (string, string, io.Reader) {
		return "POST", apiKeysPath + "?store=" + ks.Name, strings.NewReader(body)
	}
	huge := `{"subject":"u1","kind":"user","name":"` + strings.Repeat("a", 64<<10) + `"}`
	for _, c := range []struct {
		name   string
		method string
		path   string
		body   io.Reader
		status int
		msg    string
	}{
		{"bad JSON", "", "", nil, 400, "one JSON object"},
		{"unknown member", "", "", nil, 400, `unknown member \"owner\"`},
		{"duplicate member", "", "", nil, 400, "names a member twice"},
		{"missing subject", "", "", nil, 400, "subject is required"},
		{"bad subject", "", "", nil, 400, "white space"},
		{"bad kind", "", "", nil, 400, `kind must be \"user\" or \"service\"`},
		{"past expires", "", "", nil, 400, "expires must lie in the future"},
		{"name too long", "", "", nil, 400, "name is 101 characters long"},
		{"huge body", "", "", nil, 413, "longer than 4096 bytes"},
		{"key in the query", "GET", apiKeysPath + "?key=wsk_x&store=" + ks.Name, nil, 400, "never be sent in a URI"},
		{"unknown query parameter", "GET", apiKeysPath + "?owner=u1&store=" + ks.Name, nil, 400, `unknown query parameter \"owner\"`},
		{"store named twice", "GET", apiKeysPath + "?store=" + ks.Name + "&store=" + ks.Name, nil, 400, "more than once"},
		{"bad subject filter", "GET", apiKeysPath + "?subject=%20u1&store=" + ks.Name, nil, 400, "subject: subject begins or ends with white space"},
		{"unknown store", "GET", apiKeysPath + "?store=memory:nowhere", nil, 404, "memory:admin-refusals"},
		{"unknown id", "DELETE", apiKeysPath + "/bbbbbbbbbbbbbbbb?store=" + ks.Name, nil, 404, "no API key with that id"},
		{"deeper path", "DELETE", apiKeysPath + "/a/b?store=" + ks.Name, nil, 404, "no such API-key resource"},
		{"PUT on the collection", "PUT", apiKeysPath + "?store=" + ks.Name, nil, 405, "GET or POST"},
		{"GET of one key", "GET", apiKeysPath + "/bbbbbbbbbbbbbbbb?store=" + ks.Name, nil, 405, "DELETE only"},
		{"POST to the export", "POST", apiKeysPath + "/export?store=" + ks.Name, nil, 405, "GET only"},
		{"GET of the import", "GET", apiKeysPath + "/import?store=" + ks.Name, nil, 405, "POST only"},
		{"verify neither on nor off", "POST", apiKeysPath + "/import?verify=no&store=" + ks.Name, strings.NewReader(""), 400, "verify is on"},
	} {
		bodies := map[string]string{"bad JSON": `{"subject":`, "unknown member": `{"subject":"u1","kind":"user","owner":"x"}`,
			"duplicate member": `{"subject":"u1","kind":"user","kind":"service"}`, "missing subject": `{"kind":"user"}`,
			"bad subject": `{"subject":"u1 ","kind":"user"}`, "bad kind": `{"subject":"u1","kind":"admin"}`,
			"past expires":  `{"subject":"u1","kind":"user","expires":"2020-01-01T00:00:00Z"}`,
			"name too long": `{"subject":"u1","kind":"user","name":"` + strings.Repeat("n", 101) + `"}`, "huge body": huge}
		method, path, body := c.method, c.path, c.body
		if method == "" {
			method, path, body = post(bodies[c.name])
		}
		code, hdr, b := a.do(method, path, body)
		var e struct{ Error string }
		if code != c.status || json.Unmarshal(b, &e) != nil || e.Error == "" || !strings.Contains(string(b), c.msg) {
			t.Errorf("%s: %d %s; want %d with %q", c.name, code, b, c.status, c.msg)
		}
		if code == 405 && hdr.Get("Allow") == "" {
			t.Errorf("%s: 405 without Allow", c.name)
		}
	}
	if rs, _ := ks.Store.List(context.Background(), ""); len(rs) != 0 {
		t.Fatalf("refused requests stored %d keys", len(rs))
	}
}

// TestAdminAPIKeysStoreChoice: with one key store, ?store= may be left
// out; with several, it must name one (400 listing them), and a name not
// in use is 404.
func TestAdminAPIKeysStoreChoice(t *testing.T) {
	a := startKeyAdmin(t)
	if code, _, b := a.do("GET", apiKeysPath, nil); code != http.StatusNotFound || !bytes.Contains(b, []byte("no route of the running config has api_keys")) {
		t.Fatalf("no key store: %d %s", code, b)
	}
	one := a.addStore("memory:admin-choice-1")
	a.create("", `{"subject":"u1","kind":"user"}`)
	if rs, _ := one.Store.List(context.Background(), ""); len(rs) != 1 {
		t.Fatalf("the only store holds %d keys", len(rs))
	}
	a.addStore("memory:admin-choice-2")
	code, _, b := a.do("POST", apiKeysPath, strings.NewReader(`{"subject":"u1","kind":"user"}`))
	if code != http.StatusBadRequest || !bytes.Contains(b, []byte(`[\"memory:admin-choice-1\",\"memory:admin-choice-2\"]`)) {
		t.Fatalf("two stores, none named: %d %s", code, b)
	}
	a.create("memory:admin-choice-2", `{"subject":"u2","kind":"user"}`)
	if rs, _ := one.Store.List(context.Background(), ""); len(rs) != 1 {
		t.Fatalf("a create into the second store reached the first: %d keys", len(rs))
	}
}

// TestAdminAPIKeysAuditLines: each create and revoke writes one line with
// the key's id, subject, kind and the caller's address; no log line of the
// process holds the key or its hash.
func TestAdminAPIKeysAuditLines(t *testing.T) {
	a := startKeyAdmin(t)
	ks := a.addStore("memory:admin-audit")
	created := a.create(ks.Name, `{"subject":"audited","kind":"service","name":"ci"}`)
	key, id := created["key"].(string), created["id"].(string)
	for range 2 {
		if code, _, b := a.do("DELETE", apiKeysPath+"/"+id+"?store="+ks.Name, nil); code != http.StatusNoContent {
			t.Fatalf("revoke: %d %s", code, b)
		}
	}
	type line struct {
		Logger, Msg, KeyID, Subject, Kind, RemoteAddr string
	}
	var audit []line
	var raw []byte
	for deadline := time.Now().Add(5 * time.Second); ; {
		raw, _ = os.ReadFile(a.log)
		audit = nil
		for _, l := range bytes.Split(raw, []byte("\n")) {
			var m map[string]any
			if json.Unmarshal(l, &m) != nil || m["key_id"] == nil {
				continue
			}
			s := func(k string) string { v, _ := m[k].(string); return v }
			audit = append(audit, line{s("logger"), s("msg"), s("key_id"), s("subject"), s("kind"), s("remote_addr")})
		}
		if len(audit) >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(audit) != 3 {
		t.Fatalf("%d audit lines, want 3 (create, revoke, revoke):\n%s", len(audit), raw)
	}
	for i, want := range []string{"API key created", "API key revoked", "API key revoked"} {
		l := audit[i]
		if l.Msg != want || l.KeyID != id || l.Subject != "audited" || l.Kind != "service" || !strings.HasPrefix(l.RemoteAddr, "127.0.0.1:") ||
			l.Logger != "admin.api.workspace_profile" {
			t.Errorf("audit line %d: %+v", i, l)
		}
	}
	for _, secret := range []string{key, key[len(apikey.DefaultPrefix)+apikey.IDLen+1:], apikey.HashKey(key).String()} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Fatalf("the log holds the key or its hash:\n%s", raw)
		}
	}
}

// TestAdminAPIKeysImportAllOrNothing: an import is written whole or not
// at all: a file cut short, altered, carrying a key in the clear, with one
// bad line, clashing with a stored record, or too large leaves the store
// as it was; a good export imports into another store record for record.
func TestAdminAPIKeysImportAllOrNothing(t *testing.T) {
	a := startKeyAdmin(t)
	src := a.addStore("memory:admin-import-src")
	first := a.create(src.Name, `{"subject":"u1","kind":"user","name":"one"}`)
	a.create(src.Name, `{"subject":"u2","kind":"service"}`)
	code, _, export := a.do("GET", apiKeysPath+"/export?store="+src.Name, nil)
	if code != 200 {
		t.Fatalf("export: %d %s", code, export)
	}
	lines := strings.SplitAfter(string(export), "\n")
	if len(lines) != 4 || lines[3] != "" {
		t.Fatalf("export of 2 keys: %q", export)
	}
	rec1, rec2, trailer := lines[0], lines[1], lines[2]
	if !strings.Contains(rec1, `"name":"one"`) {
		rec1, rec2 = rec2, rec1
	}
	badKind := strings.Replace(rec2, `"kind":"service"`, `"kind":"admin"`, 1)
	withKey := strings.Replace(rec2, `{"id":`, `{"key":"wsk_aaaaaaaaaaaaaaaa_`+strings.Repeat("A", 43)+`","id":`, 1)

	dst := a.addStore("memory:admin-import-dst")
	clash := a.addStore("memory:admin-import-clash")
	taken := apikey.Record{ID: first["id"].(string), Hash: apikey.HashKey("another key"), Subject: "u9", Kind: apikey.KindUser, Created: time.Now()}
	if err := clash.Store.Create(context.Background(), taken); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, store, query, body string
		status                   int
		msg                      string
	}{
		{"cut short", dst.Name, "", rec1 + rec2, 400, "does not end with an export's trailer"},
		{"altered", dst.Name, "", rec1 + strings.Replace(rec2, `"name":""`, `"name":"x"`, 1) + trailer, 400, "does not match"},
		{"a key in the clear", dst.Name, "&verify=off", rec1 + withKey, 400, "line 2: A key record never carries the key"},
		{"one bad line", dst.Name, "&verify=off", rec1 + badKind, 400, "line 2"},
		{"clash with a stored record", clash.Name, "", string(export), 409, "nothing was imported"},
	} {
		code, _, b := a.do("POST", apiKeysPath+"/import?store="+c.store+c.query, strings.NewReader(c.body))
		if code != c.status || !strings.Contains(string(b), c.msg) || !bytes.Contains(b, []byte(`"error":`)) {
			t.Errorf("%s: %d %s; want %d with %q", c.name, code, b, c.status, c.msg)
		}
	}
	defer func(n int64) { maxKeyImportBytes = n }(maxKeyImportBytes)
	maxKeyImportBytes = 1 << 20
	code, _, b := a.do("POST", apiKeysPath+"/import?verify=off&store="+dst.Name, repeatReader(rec1, maxKeyImportBytes+1))
	maxKeyImportBytes = 64 << 20
	if code != http.StatusRequestEntityTooLarge {
		t.Errorf("an import over its cap: %d %s", code, b)
	}
	if rs, _ := dst.Store.List(context.Background(), ""); len(rs) != 0 {
		t.Fatalf("refused imports wrote %d records", len(rs))
	}
	if rs, _ := clash.Store.List(context.Background(), ""); len(rs) != 1 || rs[0].Hash != taken.Hash {
		t.Fatalf("the clashing import changed the store: %+v", rs)
	}

	for range 2 { // twice: equal records are skipped
		code, _, b := a.do("POST", apiKeysPath+"/import?store="+dst.Name, bytes.NewReader(export))
		if code != 200 || string(b) != `{"imported":2,"success":true}`+"\n" {
			t.Fatalf("import of the export: %d %s", code, b)
		}
	}
	want, _ := src.Store.List(context.Background(), "")
	got, _ := dst.Store.List(context.Background(), "")
	if len(got) != 2 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("imported %+v\nwant %+v", got, want)
	}
	if _, err := dst.Keyring.Verify(context.Background(), first["key"].(string)); err != nil {
		t.Fatalf("an imported key does not verify: %v", err)
	}
}

// TestAdminAPIKeysCrossSiteRefused (G13): Caddy's admin server checks
// module routes as its own. A request carrying the Origin of another site
// is refused whether or not enforce_origin is set (Caddy checks any Origin
// or Sec-Fetch-Mode header it gets), as is a Host other than the admin
// address (DNS rebinding) and a no-cors fetch; with enforce_origin on, a
// request without Origin is refused too. Nothing is created by any of them.
func TestAdminAPIKeysCrossSiteRefused(t *testing.T) {
	a := startKeyAdmin(t)
	ks := a.addStore("memory:admin-origin")
	own := "http://localhost:" + fmt.Sprint(itAdminPort)
	create := func(hdr ...string) (int, []byte) {
		code, _, b := a.do("POST", apiKeysPath+"?store="+ks.Name, strings.NewReader(`{"subject":"u1","kind":"user"}`), hdr...)
		return code, b
	}
	for name, hdr := range map[string][]string{
		"another site's Origin": {"Origin", "https://evil.example"},
		"a look-alike Origin":   {"Origin", "http://localhost.evil.example:" + fmt.Sprint(itAdminPort)},
		"a Referer elsewhere":   {"Sec-Fetch-Mode", "cors", "Referer", "https://evil.example/page"},
		"null Origin":           {"Origin", "null"},
		"no-cors":               {"Sec-Fetch-Mode", "no-cors"},
		"DNS rebinding":         {"Host", "evil.example:" + fmt.Sprint(itAdminPort)},
	} {
		if code, b := create(hdr...); code != http.StatusForbidden && code != http.StatusBadRequest {
			t.Errorf("%s: %d %s", name, code, b)
		}
	}
	if code, b := create("Origin", own); code != http.StatusCreated {
		t.Fatalf("the admin endpoint's own origin: %d %s", code, b)
	}

	// enforce_origin: loaded by hand, since caddytest checks a load with
	// requests that carry no Origin
	load := func(cfg, origin string) {
		t.Helper()
		req, _ := http.NewRequest("POST", itAdmin+"/load", strings.NewReader(cfg))
		req.Header.Set("Content-Type", "text/caddyfile")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("load: %d %s", resp.StatusCode, b)
		}
	}
	enforced := strings.Replace(itGlobal, fmt.Sprintf("admin localhost:%d\n", itAdminPort),
		fmt.Sprintf("admin localhost:%d {\n\t\tenforce_origin\n\t}\n", itAdminPort), 1)
	if enforced == itGlobal {
		t.Fatal("the global options changed shape")
	}
	load(enforced+itSite+" {\n\trespond ok\n}\n", "")
	t.Cleanup(func() { load(itGlobal+itSite+" {\n\trespond ok\n}\n", own) })
	var code int
	var b []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if code, b = create(); code == http.StatusForbidden {
			break
		}
	}
	if code != http.StatusForbidden || !bytes.Contains(b, []byte("origin")) {
		t.Fatalf("enforce_origin, no Origin: %d %s", code, b)
	}
	if code, b := create("Origin", "https://evil.example"); code != http.StatusForbidden {
		t.Errorf("enforce_origin, another site: %d %s", code, b)
	}
	if code, b := create("Origin", own); code != http.StatusCreated {
		t.Fatalf("enforce_origin, the endpoint's own origin: %d %s", code, b)
	}
	if rs, _ := ks.Store.List(context.Background(), ""); len(rs) != 2 {
		t.Fatalf("%d keys stored; only the two requests from the endpoint's own origin may store one", len(rs))
	}
}

// exportFailsAfter is a key store whose export fails after n records.
type exportFailsAfter struct {
	apikey.Store
	n int
}

func (s exportFailsAfter) Export(ctx context.Context, fn func(apikey.Record) error) error {
	i := 0
	err := s.Store.Export(ctx, func(r apikey.Record) error {
		if i++; i > s.n {
			return errors.New("disk on fire")
		}
		return fn(r)
	})
	if err == nil && i <= s.n {
		err = errors.New("disk on fire")
	}
	return err
}

// TestAdminAPIKeysExportFailure: an export that fails before its first
// byte is a 503 with nothing exported; after it, the connection is cut,
// so the client never reads a trailer nor a clean end.
func TestAdminAPIKeysExportFailure(t *testing.T) {
	startKeyAdmin(t)
	m := apikey.NewMemory()
	now := time.Now().UTC()
	for i := range 1000 {
		key, id, _ := apikey.Generate(apikey.DefaultPrefix)
		if err := m.Create(context.Background(), apikey.Record{ID: id, Hash: apikey.HashKey(key), Subject: fmt.Sprintf("user-%d", i),
			Kind: apikey.KindUser, Name: strings.Repeat("n", 100), Created: now}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []int{0, 900} {
		name := fmt.Sprintf("memory:admin-export-fails-%d", n)
		ks := useKeyStore(&keyStore{Name: name, Store: exportFailsAfter{m, n}, Keyring: apikey.NewKeyring(m, apikey.Options{})})
		t.Cleanup(func() { releaseKeyStore(ks) })
		resp, err := http.Get(itAdmin + apiKeysPath + "/export?store=" + name)
		if err != nil {
			t.Fatal(err)
		}
		body, readErr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if n == 0 {
			if resp.StatusCode != http.StatusServiceUnavailable || !bytes.Contains(body, []byte("nothing was exported")) {
				t.Errorf("a failure before the first byte: %d %s", resp.StatusCode, body)
			}
			continue
		}
		if resp.StatusCode != 200 || readErr == nil || bytes.Contains(body, []byte(`{"_export":`)) || len(body) < exportChunk {
			t.Errorf("a failure after %d records: %d, read %d bytes, %v", n, resp.StatusCode, len(body), readErr)
		}
	}
}

// clashingStore answers ErrExists to the first clashes creates, as a
// store does when a made id is already taken.
type clashingStore struct {
	apikey.Store
	clashes, creates int
}

func (s *clashingStore) Create(ctx context.Context, r apikey.Record) error {
	if s.creates++; s.creates <= s.clashes {
		return apikey.ErrExists
	}
	return s.Store.Create(ctx, r)
}

// TestAdminAPIKeysRetryATakenID: a create whose made id is taken tries a
// fresh key, createAttempts times in all, then gives up.
func TestAdminAPIKeysRetryATakenID(t *testing.T) {
	req := apikey.CreateRequest{Subject: "u1", Kind: apikey.KindUser}
	s := &clashingStore{Store: apikey.NewMemory(), clashes: createAttempts - 1}
	key, rec, err := makeKey(context.Background(), s, "", req, time.Now())
	if err != nil || s.creates != createAttempts || !strings.HasPrefix(key, apikey.DefaultPrefix+rec.ID+"_") {
		t.Fatalf("after %d clashes: %v, %d creates, key of id %q", s.clashes, err, s.creates, rec.ID)
	}
	if got, err := s.Lookup(context.Background(), apikey.HashKey(key)); err != nil || got.ID != rec.ID {
		t.Fatalf("the key given is not the key stored: %v", err)
	}
	s = &clashingStore{Store: apikey.NewMemory(), clashes: createAttempts}
	if _, _, err := makeKey(context.Background(), s, "", req, time.Now()); !errors.Is(err, apikey.ErrExists) || s.creates != createAttempts {
		t.Fatalf("after %d clashes: %v, %d creates", s.clashes, err, s.creates)
	}
}
