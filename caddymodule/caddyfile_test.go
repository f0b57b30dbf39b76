package caddymodule

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  string // the handler's JSON
	}{
		{"minimal", `workspace_profile {
			jwks_file keys.json
			issuer https://idp
			audience api
		}`, `{"jwks_files":["keys.json"],"issuers":["https://idp"],"audiences":["api"]}`},
		{"everything", `workspace_profile /custom/profile {
			jwks_url https://idp/jwks https://idp2/jwks
			jwks_file a.json
			jwks_file b.pem
			issuer https://idp https://idp2
			audience api other
			algorithms RS256 ES256
			leeway 1m
			max_token_lifetime 24h
			subject_claim oid
			query_token off
			service_account roles robot machine
			create_missing
			max_body 16KiB
			storage bolt /var/lib/profiles.db
		}`, `{"path":"/custom/profile","jwks_urls":["https://idp/jwks","https://idp2/jwks"],"jwks_files":["a.json","b.pem"],` +
			`"issuers":["https://idp","https://idp2"],"audiences":["api","other"],"algorithms":["RS256","ES256"],"leeway":60000000000,` +
			`"max_token_lifetime":86400000000000,"subject_claim":"oid","query_token":false,"service_account":{"claim":"roles","values":["robot","machine"]},` +
			`"create_missing":true,"max_body":16384,"storage":{"backend":"bolt","path":"/var/lib/profiles.db"}}`},
		{"memory storage, query on", `workspace_profile {
			jwks_url http://127.0.0.1:9999/jwks
			issuer i
			audience a
			query_token on
			storage memory
		}`, `{"jwks_urls":["http://127.0.0.1:9999/jwks"],"issuers":["i"],"audiences":["a"],"query_token":true,"storage":{"backend":"memory"}}`},
		{"upstream with reverse_proxy subdirectives", `workspace_profile {
			jwks_file k
			issuer i
			audience a
			max_upstream_body 2MiB
			upstream 10.0.0.1:8080 legacy.internal:8080 {
				lb_policy first
				transport http {
					response_header_timeout 5s
				}
			}
		}`, `{"jwks_files":["k"],"issuers":["i"],"audiences":["a"],"upstream":{"handler":"reverse_proxy",` +
			`"load_balancing":{"selection_policy":{"policy":"first"}},"transport":{"protocol":"http","response_header_timeout":5000000000},` +
			`"upstreams":[{"dial":"10.0.0.1:8080"},{"dial":"legacy.internal:8080"}]},"max_upstream_body":2097152}`},
		{"key-set tuning, discovery and token cache", `workspace_profile {
			discovery https://login.example.com
			audience a
			min_refresh 1m
			max_refresh 1h
			max_stale 2h
			token_cache 0
		}`, `{"discovery":["https://login.example.com"],"min_refresh":60000000000,"max_refresh":3600000000000,` +
			`"max_stale":7200000000000,"token_cache":0,"audiences":["a"]}`},
		{"postgres with options", `workspace_profile {
			jwks_file k
			issuer i
			audience a
			storage postgres {env.PROFILE_PG_DSN} schema profiles_eu max_conns 20 timeout 2s statement_timeout 3s
		}`, `{"jwks_files":["k"],"issuers":["i"],"audiences":["a"],"storage":{"backend":"postgres","dsn":"{env.PROFILE_PG_DSN}",` +
			`"max_conns":20,"schema":"profiles_eu","statement_timeout":3000000000,"timeout":2000000000}}`},
		{"postgres cache off, poll and listen_dsn", `workspace_profile {
			jwks_file k
			issuer i
			audience a
			storage postgres {env.PROFILE_PG_DSN} cache 0 poll 500ms listen_dsn {env.PROFILE_PG_LISTEN_DSN}
		}`, `{"jwks_files":["k"],"issuers":["i"],"audiences":["a"],"storage":{"backend":"postgres","cache":0,"dsn":"{env.PROFILE_PG_DSN}",` +
			`"listen_dsn":"{env.PROFILE_PG_LISTEN_DSN}","poll":500000000}}`},
		{"RFC 9068 access tokens of listed clients, Ed25519", `workspace_profile {
			jwks_file k
			issuer i
			audience a
			algorithms Ed25519 ES256
			token_type at+jwt
			token_type application/at+jwt
			clients web mobile
			clients batch
		}`, `{"jwks_files":["k"],"issuers":["i"],"audiences":["a"],"algorithms":["Ed25519","ES256"],` +
			`"token_types":["at+jwt","application/at+jwt"],"clients":["web","mobile","batch"]}`},
		{"bolt default file", `workspace_profile {
			jwks_file k
			issuer i
			audience a
			storage bolt
		}`, `{"jwks_files":["k"],"issuers":["i"],"audiences":["a"],"storage":{"backend":"bolt"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Handler
			if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input)); err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(h)
			if string(got) != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	const base = "jwks_file k\nissuer i\naudience a\n"
	bad := map[string]struct{ input, mention string }{
		"unknown option":                    {"workspace_profile {\n" + base + "colour blue\n}", `unrecognized subdirective "colour"`},
		"postgres cache not a number":       {"workspace_profile {\n" + base + "storage postgres d cache lots\n}", `cache: "lots" is not a number of entries`},
		"postgres poll not a duration":      {"workspace_profile {\n" + base + "storage postgres d poll soon\n}", `poll: "soon" is not a positive duration`},
		"postgres listen_dsn without value": {"workspace_profile {\n" + base + "storage postgres d listen_dsn\n}", "listen_dsn needs a value"},
		"extra argument":                    {"workspace_profile /p /q {\n" + base + "}", "unexpected argument"},
		"no issuer":                         {"workspace_profile {\njwks_file k\naudience a\n}", "issuer"},
		"no audience":                       {"workspace_profile {\njwks_file k\nissuer i\n}", "audience"},
		"no key source":                     {"workspace_profile {\nissuer i\naudience a\n}", "jwks_url/jwks_file"},
		"issuer without value":              {"workspace_profile {\n" + base + "issuer\n}", "issuer: wrong number of arguments"},
		"token_type with a parameter":       {"workspace_profile {\n" + base + "token_type \"at+jwt; v=1\"\n}", "token_type"},
		"token_type without value":          {"workspace_profile {\n" + base + "token_type\n}", "token_type: wrong number of arguments"},
		"clients without value":             {"workspace_profile {\n" + base + "clients\n}", "clients: wrong number of arguments"},
		"Ed448":                             {"workspace_profile {\n" + base + "algorithms Ed448\n}", `algorithms: "Ed448"`},
		"leeway not a duration":             {"workspace_profile {\n" + base + "leeway soon\n}", "leeway"},
		"leeway negative":                   {"workspace_profile {\n" + base + "leeway -5s\n}", "leeway"},
		"leeway two values":                 {"workspace_profile {\n" + base + "leeway 1s 2s\n}", "leeway: wrong number of arguments"},
		"max_token_lifetime negative":       {"workspace_profile {\n" + base + "max_token_lifetime -1h\n}", "max_token_lifetime"},
		"max_token_lifetime not a duration": {"workspace_profile {\n" + base + "max_token_lifetime forever\n}", "max_token_lifetime"},
		"query_token yes":                   {"workspace_profile {\n" + base + "query_token yes\n}", "query_token"},
		"HS256 algorithm":                   {"workspace_profile {\n" + base + "algorithms RS256 HS256\n}", `algorithms: "HS256"`},
		"alg none":                          {"workspace_profile {\n" + base + "algorithms none\n}", "algorithms"},
		"service_account no value":          {"workspace_profile {\n" + base + "service_account UserType\n}", "service_account: wrong number of arguments"},
		"create_missing argument":           {"workspace_profile {\n" + base + "create_missing yes\n}", "create_missing"},
		"max_body not a size":               {"workspace_profile {\n" + base + "max_body lots\n}", "max_body"},
		"max_body zero":                     {"workspace_profile {\n" + base + "max_body 0\n}", "max_body"},
		"two backends":                      {"workspace_profile {\n" + base + "storage memory\nstorage bolt\n}", "storage: a backend is already configured"},
		"unknown backend":                   {"workspace_profile {\n" + base + "storage redis\n}", `storage: unknown backend "redis"`},
		"memory with argument":              {"workspace_profile {\n" + base + "storage memory big\n}", "storage memory"},
		"bolt two files":                    {"workspace_profile {\n" + base + "storage bolt a.db b.db\n}", "storage bolt"},
		"storage without backend":           {"workspace_profile {\n" + base + "storage\n}", "storage: wrong number of arguments"},
		"api_keys twice":                    {"workspace_profile {\n" + base + "api_keys\napi_keys\n}", "api_keys: configured twice"},
		"api_keys argument":                 {"workspace_profile {\n" + base + "api_keys on\n}", "api_keys: takes no arguments"},
		"api_keys unknown option":           {"workspace_profile {\n" + base + "api_keys {\ncolour blue\n}\n}", `api_keys: unrecognized option "colour"`},
		"api_keys header two values":        {"workspace_profile {\n" + base + "api_keys {\nheader A B\n}\n}", "api_keys: header: wrong number of arguments"},
		"api_keys store without backend":    {"workspace_profile {\n" + base + "api_keys {\nstore\n}\n}", "api_keys: store: wrong number of arguments"},
		"api_keys store twice":              {"workspace_profile {\n" + base + "api_keys {\nstore memory\nstore memory\n}\n}", "api_keys: store: configured twice"},
		"api_keys upstream without store":   {"workspace_profile {\n" + base + "upstream localhost:1\napi_keys\n}", "api_keys: store: required in upstream mode"},
		"api_keys alone without a store":    {"workspace_profile {\nupstream localhost:1\napi_keys\n}", "api_keys: store"},
	}
	for name, tt := range bad {
		t.Run(name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), "workspace_profile") || !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("error %q must name workspace_profile and %q", err, tt.mention)
			}
		})
	}
}

// TestProvisionErrors: config errors that only show once the JSON is
// provisioned (JSON configs skip the Caddyfile parser) name the option,
// and Caddy names the module.
func TestProvisionErrors(t *testing.T) {
	bad := map[string]struct {
		h       Handler
		mention string
	}{
		"no issuer":               {Handler{JWKSFiles: []string{"k"}, Audiences: []string{"a"}}, "issuer"},
		"no audience":             {Handler{JWKSFiles: []string{"k"}, Issuers: []string{"i"}}, "audience"},
		"no key source":           {Handler{Issuers: []string{"i"}, Audiences: []string{"a"}}, "jwks_url"},
		"plain http remote":       {Handler{JWKSURLs: []string{"http://idp.example.com/jwks"}, Issuers: []string{"i"}, Audiences: []string{"a"}}, "jwks_url"},
		"relative url":            {Handler{JWKSURLs: []string{"/jwks"}, Issuers: []string{"i"}, Audiences: []string{"a"}}, "jwks_url"},
		"HMAC algorithm":          {Handler{JWKSFiles: []string{"k"}, Issuers: []string{"i"}, Audiences: []string{"a"}, Algorithms: []string{"HS256"}}, "algorithms"},
		"missing jwks file":       {Handler{JWKSFiles: []string{"/nonexistent/jwks.json"}, Issuers: []string{"i"}, Audiences: []string{"a"}}, "jwks_file"},
		"path not absolute":       {Handler{Path: "api/x", JWKSFiles: []string{"k"}, Issuers: []string{"i"}, Audiences: []string{"a"}}, "path"},
		"token type with a space": {Handler{JWKSFiles: []string{"k"}, Issuers: []string{"i"}, Audiences: []string{"a"}, TokenTypes: []string{"at+jwt x"}}, "token_type"},
		"empty client":            {Handler{JWKSFiles: []string{"k"}, Issuers: []string{"i"}, Audiences: []string{"a"}, Clients: []string{""}}, "clients"},
		"Ed448 algorithm":         {Handler{JWKSFiles: []string{"k"}, Issuers: []string{"i"}, Audiences: []string{"a"}, Algorithms: []string{"Ed448"}}, "algorithms"},
		"negative max_body":       {Handler{MaxBody: -1, JWKSFiles: []string{"k"}, Issuers: []string{"i"}, Audiences: []string{"a"}}, "max_body"},
		"unknown storage":         {Handler{JWKSFiles: []string{"k"}, Issuers: []string{"i"}, Audiences: []string{"a"}, StorageRaw: json.RawMessage(`{"backend":"nope"}`)}, "storage"},
	}
	for name, tt := range bad {
		t.Run(name, func(t *testing.T) {
			h := tt.h
			if name == "negative token cache" {
				*h.TokenCache = -1
			}
			if name == "unknown storage" {
				h.JWKSFiles = []string{writeFile(t, "k.json", jwtauthtest.JWKS(t, jwtauthtest.NewKey(t, jwa.RS256(), "k")))}
			}
			ctx, cancel := newTestContext()
			defer cancel()
			// as Caddy loads it, which names the module in front of the
			// handler's own error (and cleans up after a failed Provision)
			_, err := ctx.LoadModuleByID("http.handlers.workspace_profile", caddyconfig.JSON(h, nil))
			if err == nil || !strings.Contains(err.Error(), "workspace_profile") || !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("error %v must name workspace_profile and %q", err, tt.mention)
			}
		})
	}
}

// TestAdaptCaddyfileExample keeps Caddyfile.example valid and its JSON
// under review: any change shows as a diff of testdata/golden.
func TestAdaptCaddyfileExample(t *testing.T) {
	adaptExample(t, "Caddyfile.example")
}

// adaptExample does for an example Caddyfile at the repository root what
// `caddy fmt` and `caddy adapt` do: the file must be formatted and adapt
// without warnings, and its JSON must equal the reviewed golden copy in
// testdata/golden (-update rewrites it). It returns the adapted JSON.
func adaptExample(t *testing.T, name string) []byte {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", name))
	if err != nil {
		t.Fatal(err)
	}
	if formatted := caddyfile.Format(src); !bytes.Equal(formatted, src) {
		t.Fatalf("%s is not formatted as caddy fmt would write it", name)
	}
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": name})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) > 0 {
		t.Fatalf("adapt warnings: %v", warnings)
	}
	var pretty bytes.Buffer
	_ = json.Indent(&pretty, out, "", "\t")
	pretty.WriteByte('\n')
	path := filepath.Join("..", "testdata", "golden", name+".json")
	if *update {
		_ = os.WriteFile(path, pretty.Bytes(), 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./caddymodule -run 'Adapt|ProductionExample' -update)", err)
	}
	if !bytes.Equal(pretty.Bytes(), want) {
		t.Fatalf("adapted %s differs from %s:\n%s", name, path, pretty.String())
	}
	return out
}
