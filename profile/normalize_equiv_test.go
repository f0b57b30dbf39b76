package profile

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// The reference decodes into maps, so two members whose keys fold alike
// ("userId" and "user_id") collide in an order Go's map iteration picks at
// random. Normalize lets the later member win. To hold Normalize to the
// reference on such bodies too, refLastWins can rebuild the reference's
// raw map in document order, dropping every member a later one with the
// same folded key overrides: the reference's answer is then the one it
// gives when it happens to fold in document order, one of its possible
// answers. Bodies without such a collision are also compared with the
// untouched reference.
var (
	refResolveLastWins bool // refLastWins rebuilds the map
	refCollided        bool // refLastWins dropped a member
)

func refLastWins(raw map[string]any, body []byte) map[string]any {
	if !refResolveLastWins {
		return raw
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	v, err := refOrdered(dec, true)
	if err != nil {
		panic(err) // the body has been decoded once already
	}
	return v.(map[string]any)
}

// refOrdered decodes the next value like Decode into any, except that in
// an object the reference folds only the last member of each folded key is
// kept. Every object in an array counts as folded (the reference folds the
// items of errors and warnings, and reads no other array's objects); an
// object under a key that folds to errors or metadata is kept raw.
func refOrdered(dec *json.Decoder, folded bool) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		m := map[string]any{}
		last := map[string]string{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			k := kt.(string)
			fk := refFoldKey(k)
			v, err := refOrdered(dec, folded && fk != "errors" && fk != "metadata")
			if err != nil {
				return nil, err
			}
			if folded {
				if prev, ok := last[fk]; ok && prev != k {
					delete(m, prev)
					refCollided = true
				}
				last[fk] = k
			}
			m[k] = v
		}
		_, err := dec.Token()
		return m, err
	case json.Delim('['):
		a := []any{}
		for dec.More() {
			v, err := refOrdered(dec, true)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := dec.Token()
		return a, err
	}
	return tok, nil
}

// checkEquivalent fails t unless Normalize answers r exactly as the
// reference does; it reports whether r had keys that fold alike.
func checkEquivalent(t *testing.T, r LegacyResponse) (collided bool) {
	t.Helper()
	// Normalize reads a copy, overwritten before the comparison: the
	// upstream path reuses the buffer, so nothing may alias it.
	body := bytes.Clone(r.Body)
	got := Normalize(LegacyResponse{Status: r.Status, ContentType: r.ContentType, Body: body})
	for i := range body {
		body[i] = 'X'
	}
	refResolveLastWins, refCollided = true, false
	want := refNormalize(r)
	collided = refCollided
	refResolveLastWins, refCollided = false, false
	if !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		t.Fatalf("%d %q %q:\n got %s\nwant %s", r.Status, r.ContentType, r.Body, g, w)
	}
	if !collided {
		if plain := refNormalize(r); !reflect.DeepEqual(got, plain) {
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(plain)
			t.Fatalf("%d %q %q (untouched reference):\n got %s\nwant %s", r.Status, r.ContentType, r.Body, g, w)
		}
	}
	return collided
}

// legacyFixtures are the responses in testdata/legacy.
func legacyFixtures(tb testing.TB) []LegacyResponse {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join("..", "testdata", "legacy", "*.http"))
	if err != nil || len(files) < 20 {
		tb.Fatalf("fixtures: %v (%d)", err, len(files))
	}
	var out []LegacyResponse
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
		if err != nil {
			tb.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		out = append(out, LegacyResponse{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: body})
	}
	return out
}

// equivalenceBodies are the bodies whose reading is easiest to get subtly
// wrong: trailing data, escapes, invalid UTF-8, keys that fold alike,
// members of every JSON type where strings are expected.
var equivalenceBodies = []string{
	// flat profiles
	`{"userId":"u-42","userName":"alice","email":"alice@example.com","firstName":"Alice","lastName":"Liddell","userType":1,"createdAt":"2020-01-01T00:00:00Z","isActive":true,"roles":["a","b"],"settings":{"theme":"dark"},"title":"Dr","type":"person","phone":null}`,
	`{"user_id":"u","user_name":"a","email_address":"e","given_name":"g","family_name":"f","account_type":"2"}`,
	`{"UserId":"u","Login":"l","Mail":"m","GivenName":"g","Surname":"s","AccountType":0}`,
	`{"id":"x","login_name":"l","USER-TYPE":"+1"}`,
	`{"uid":"x","userType":"02"}`, `{"uid":"x","userType":" 1"}`, `{"uid":"x","userType":-0}`, `{"uid":"x","userType":3}`,
	`{"uid":"x","userType":1.0}`, `{"uid":"x","userType":1e0}`, `{"uid":"x","userType":true}`, `{"uid":"x","userType":null}`,
	`{"id":12345678901234567890,"email":-0.5e10}`, `{"id":null,"uid":"x"}`, `{"id":true}`, `{"id":{"a":1}}`, `{"id":[]}`, `{"id":""}`,
	`{"email":"","firstName":"","lastName":null}`, `{"id":"a","id":"b"}`, `{"id":"a","id":null}`, `{"id":null,"id":"a"}`,
	// keys that fold alike
	`{"userId":"a","user_id":"b"}`, `{"user_id":"b","userId":"a"}`, `{"USER-ID":"a","userid":"b","UserId":"c"}`,
	`{"a_b":1,"ab":2,"a_b":3,"id":"x"}`, `{"Data":{"id":"x"},"data":null}`, `{"data":null,"Data":{"id":"x"}}`,
	`{"errors":[],"Errors":{"a":["x"]}}`, `{"Errors":{"a":["x"]},"errors":[]}`, `{"data":{"userId":"a","user-id":"b"}}`,
	`{"errors":[{"code":"a","Code":"b","MESSAGE":"m","message":"n"}]}`, `{"errors":[{"metadata":{"k":"1"},"Meta_Data":{"k":"2"}}]}`,
	// escapes, UTF-8
	`{"user\u0049d":"\u00e9t\u00e9","email":"a\"b\\c\/d\b\f\n\r\t"}`, `{"id":"\ud800"}`, `{"id":"\ud83d\ude00x"}`, `{"id":"\udc00\ud800"}`,
	"{\"id\":\"\xff\xfe\"}", "{\"\xffid\":\"x\",\"uid\":\"y\"}", `{"firstName":"Ålice","id":"ü"}`, "{\"id\":\"\xed\xa0\x80\"}",
	"{\"id\":\"a\xc3\"}", `{"\u0075\u0069\u0064":"x"}`, `{"u\u005fid":"x"}`, `{"\u0000id":"x","id":"y"}`, `{"ıd":"x"}`, `{"K":"x"}`,
	`{"id":"\u0000"}`, `{"id":"\\u0041"}`,
	`{"000000000000A":"","emailaddressX":1,"EMAILADDRESS":"e","e_m_a_i_l_a_d_d_r_e_s_s":"f","emailaddres\u0073":"g"}`,
	// acceptance
	`{}`, `[]`, `null`, `"x"`, `1`, `true`, `{`, `}`, `{"a":}`, `{"a":1,}`, `{"a" 1}`, `{'a':1}`, `{"a":01}`, `{"a":1.}`, `{"a":-}`,
	`{"id":"a"}]`, `{"id":"a"} }`, `{"id":"a"}x`, `{"id":"a"}{}`, `{"id":"a"},`, `{"id":"a"}]x`, "{\"id\":\"a\"}\t\n]garbage",
	"{\"id\":\"a\"}\v", "{\"id\":\"a\"}\u00a0]", "\u00a0{\"id\":\"x\"}\u00a0", "\ufeff{\"id\":\"x\"}", "{\"id\":\"a\"}\x00",
	"{\"id\":\"a\nb\"}", "{\"id\":\"a\tb\"}", `{"id":"a"}}}}`, `{"id":"a"}]]`, `{"id":"a"} ] [`, `{"id":"a"}[`, `{"id":"a"}"`,
	`{"id":"a"}  `, `{"id":"a","x":[1,{"y":"}"}],"z":"]"}`, `{"id":"a\"}"}x`, `{"id":"a\\"}`, `{"id":"a\\"}]`,
	// envelopes
	`{"Data":{"UserId":"u","UserName":"alice","Email":null,"FirstName":"A","LastName":"L","UserType":2},"Errors":[],"Warnings":[],"Success":true}`,
	`{"data":null}`, `{"data":{"id":"x"},"id":"y"}`, `{"data":{"id":"x"}}`, `{"data":5,"success":true}`, `{"data":{"errors":{"a":1},"id":"x"}}`,
	`{"success":false,"errors":[{"code":"C","message":"M","field":"$.email","target":"T","type":"1","severity":0,"metadata":{"a":"1","b":2,"c":null,"d":{},"e":""}}]}`,
	`{"errors":[1,null,"x",{},{"Code":"","Message":""},[]],"warnings":[{"code":"W","field":".firstName","type":7,"severity":"1"}]}`,
	`{"errors":[],"warnings":[{"Meta_Data":{}}]}`, `{"errors":[{"metadata":{"x":[]}}]}`, `{"errors":[{"metadata":{"k":"1","k":"2"}}]}`,
	`{"errors":[{"metadata":{"K":"1","k":"2","\u004b":"3"}}]}`, `{"errors":[{"metadata":[]}]}`, `{"errors":[{"metadata":null}]}`,
	`{"errors":[{"field":"$","target":"","code":1.5,"message":true}]}`, `{"errors":[{"field":"$.","target":null}]}`,
	`{"errors":[{"field":"user_name"},{"field":"EMAIL"},{"field":"$.LastName"},{"field":"Nick"}]}`, `{"warnings":[],"success":null}`,
	`{"Success":true,"Errors":[{"code":"E"}],"Data":{"id":"x"}}`, `{"warnings":{}}`, `{"errors":"x","id":"y"}`, `{"errors":"x"}`,
	// problem details
	`{"title":"T","detail":"D","code":"C","errors":{"$.email":["bad","worse"],"UserName":"str","x":[1,null,""],"y":{},"z":null}}`,
	`{"type":"about:blank"}`, `{"title":5}`, `{"detail":""}`, `{"errors":{}}`, `{"errors":{"b":["2"],"a":["1"],"a":["3"]}}`,
	`{"errors":{"\u0024.email":["x"]},"title":"t"}`, `{"errors":{"$.given_name":["x"],"$.FIRSTNAME":["y"]}}`, `{"detail":null,"title":"t"}`,
	`{"type":null}`, `{"code":"C"}`, `{"errors":{"a":[{"b":"c"}]},"detail":"d"}`,
	// 401 and 403
	`{"detail":"Service accounts cannot access this endpoint via API keys."}`, `{"errors":[{"message":"m"}],"message":"x","code":7}`,
	`{"message":"m"}`, `{"errors":[{}]}`, `{"errors":[null,{"message":""}],"message":"x"}`, `{"detail":"","message":"m","code":""}`,
}

var equivalenceStatuses = []int{100, 199, 200, 201, 204, 299, 300, 302, 304, 400, 401, 403, 404, 405, 409, 412, 413, 415, 422, 499, 500, 599}

var equivalenceContentTypes = []string{
	"application/json", "application/json; charset=utf-8", "", "text/plain", "text/json", "application/problem+json",
	"APPLICATION/JSON", "application/json;", "application/json; charset", "application/vnd.api+json", "text/html",
	"application/json ; x=y", " application/json", "application/json\x00", "application/json;charset=utf-8", "foo",
	"text/plain; charset=us-ascii", "text/plain; charset=utf-8", "application/problem+json; charset=utf-8", "application/json; charset=utf-8;",
	`application/json; charset="utf-8"`, "application/json; charset=utf-8; charset=utf-16", "multipart/form-data",
}

func TestNormalizeEquivalent(t *testing.T) {
	collisions := 0
	for _, r := range legacyFixtures(t) {
		checkEquivalent(t, r)
	}
	deep := strings.Repeat(`{"a":[`, 5001) + strings.Repeat(`]}`, 5001)
	bodies := append(equivalenceBodies, deep, `{"id":"x","n":`+deep[:len(deep)-2]+`}`, strings.Repeat("[", 10001))
	for _, b := range bodies {
		for _, st := range equivalenceStatuses {
			for _, ct := range equivalenceContentTypes {
				if checkEquivalent(t, LegacyResponse{Status: st, ContentType: ct, Body: []byte(b)}) {
					collisions++
				}
			}
		}
	}
	if collisions == 0 {
		t.Fatal("no body had keys that fold alike: the last-wins comparison is untested")
	}
}

// FuzzNormalizeEquivalent: on every input, Normalize answers as the
// reference does (see refLastWins for keys that fold alike).
func FuzzNormalizeEquivalent(f *testing.F) {
	// FuzzNormalize's seeds
	f.Add(200, "application/json", []byte(`{"Data":{"UserId":"u"},"Errors":[],"Success":true}`))
	f.Add(400, "application/problem+json", []byte(`{"errors":{"$.email":["bad"]}}`))
	f.Add(401, "", []byte(`{"detail":"x","code":7}`))
	f.Add(500, "text/html", []byte(`<html>`))
	f.Add(200, "application/json", []byte(`{"errors":[1,{"code":[]},{"metadata":{"a":{}}}],"data":[]}`))
	f.Add(204, "", []byte(nil))
	f.Add(422, "application/json; charset=utf-16", []byte(`{}`))
	for _, r := range legacyFixtures(f) {
		f.Add(r.Status, r.ContentType, r.Body)
	}
	for _, b := range equivalenceBodies {
		for _, st := range []int{200, 400, 403} {
			f.Add(st, "application/json", []byte(b))
		}
	}
	f.Fuzz(func(t *testing.T, status int, contentType string, body []byte) {
		checkEquivalent(t, LegacyResponse{Status: status, ContentType: contentType, Body: body})
	})
}

// TestSmallInt: smallInt is strconv.Atoi restricted to 0, 1 and 2, on
// every string of up to four bytes over the bytes that matter, and on
// long ones that take Atoi's slow way.
func TestSmallInt(t *testing.T) {
	const alphabet = "0123+-9a. "
	inputs := []string{"", "00000000000000000000001", "-0000000000000000000000", "+00000000000000000000002",
		"99999999999999999999", "-99999999999999999999", "18446744073709551618", "1_0", "0x1", "\u0031"}
	var gen func(prefix string)
	gen = func(prefix string) {
		inputs = append(inputs, prefix)
		if len(prefix) < 4 {
			for i := range len(alphabet) {
				gen(prefix + alphabet[i:i+1])
			}
		}
	}
	gen("")
	for _, s := range inputs {
		n, err := strconv.Atoi(s)
		wantOK := err == nil && n >= 0 && n <= 2
		got, ok := smallInt([]byte(s))
		if ok != wantOK || (ok && got != n) {
			t.Fatalf("smallInt(%q) = %d, %v; Atoi: %d, %v", s, got, ok, n, err)
		}
	}
}
