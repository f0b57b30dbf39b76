package caddymodule

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// TestOptionsSameInCaddyfileAndJSON: each value is accepted or refused
// alike whether written in a Caddyfile or in JSON, and a refusal names the
// option in both. A Caddyfile counts as accepted when it parses and the
// JSON it adapts to provisions, as `caddy run` would load it.
func TestOptionsSameInCaddyfileAndJSON(t *testing.T) {
	keys := writeFile(t, "k.json", jwtauthtest.JWKS(t, jwtauthtest.NewKey(t, jwa.ES256(), "k")))
	tests := []struct {
		name      string
		path      string // the directive's argument, and JSON's "path"
		caddyfile string // lines of the block besides the required ones
		json      string // members besides the required ones
		mention   string // what a refusal names; "": accepted
	}{
		{name: "max_body 1B", caddyfile: "max_body 1B", json: `"max_body":1`},
		{name: "max_body 1GiB", caddyfile: "max_body 1GiB", json: `"max_body":1073741824`},
		{name: "max_body 1GiB and a byte", caddyfile: "max_body 1073741825", json: `"max_body":1073741825`, mention: "max_body"},
		{name: "max_body 2GiB", caddyfile: "max_body 2GiB", json: `"max_body":2147483648`, mention: "max_body"},
		{name: "max_body negative", caddyfile: "max_body -1", json: `"max_body":-1`, mention: "max_body"},
		{name: "max_upstream_body 1GiB", caddyfile: "max_upstream_body 1GiB", json: `"max_upstream_body":1073741824`},
		{name: "max_upstream_body 2GiB", caddyfile: "max_upstream_body 2GiB", json: `"max_upstream_body":2147483648`, mention: "max_upstream_body"},
		{name: "leeway 0", caddyfile: "leeway 0s", json: `"leeway":"0s"`},
		{name: "leeway negative", caddyfile: "leeway -5s", json: `"leeway":"-5s"`, mention: "leeway"},
		{name: "max_token_lifetime 24h", caddyfile: "max_token_lifetime 24h", json: `"max_token_lifetime":"24h"`},
		{name: "max_token_lifetime negative", caddyfile: "max_token_lifetime -1h", json: `"max_token_lifetime":"-1h"`, mention: "max_token_lifetime"},
		{name: "token_cache 0", caddyfile: "token_cache 0", json: `"token_cache":0`},
		{name: "token_cache negative", caddyfile: "token_cache -1", json: `"token_cache":-1`, mention: "token_cache"},
		{name: "min_refresh 1m", caddyfile: "min_refresh 1m", json: `"min_refresh":"1m"`},
		{name: "min_refresh negative", caddyfile: "min_refresh -1s", json: `"min_refresh":"-1s"`, mention: "min_refresh"},
		{name: "min_refresh over max_refresh", caddyfile: "min_refresh 20m", json: `"min_refresh":"20m"`, mention: "min_refresh 20m"},
		{name: "algorithms ES256", caddyfile: "algorithms ES256", json: `"algorithms":["ES256"]`},
		{name: "algorithms HS256", caddyfile: "algorithms HS256", json: `"algorithms":["HS256"]`, mention: "algorithms"},
		{name: "token_type at+jwt", caddyfile: "token_type at+jwt", json: `"token_types":["at+jwt"]`},
		{name: "token_type with a space", caddyfile: `token_type "at+jwt x"`, json: `"token_types":["at+jwt x"]`, mention: "token_type"},
		{name: "clients empty", caddyfile: `clients ""`, json: `"clients":[""]`, mention: "clients"},
		{name: "path clean", path: "/p/q", json: `"path":"/p/q"`},
		{name: "path not absolute", path: "p/q", json: `"path":"p/q"`, mention: "path"},
		{name: "dpop required", caddyfile: "dpop required", json: `"dpop":{"mode":"required"}`},
		{name: "dpop mode unknown", caddyfile: "dpop sometimes", json: `"dpop":{"mode":"sometimes"}`, mention: "dpop"},
		{name: "dpop algorithms HS256", caddyfile: "dpop {\nalgorithms HS256\n}", json: `"dpop":{"algorithms":["HS256"]}`, mention: "dpop: algorithms"},
		{name: "dpop iat_window 30s", caddyfile: "dpop {\niat_window 30s\n}", json: `"dpop":{"iat_window":"30s"}`},
		{name: "dpop iat_window negative", caddyfile: "dpop {\niat_window -1s\n}", json: `"dpop":{"iat_window":"-1s"}`, mention: "dpop: iat_window"},
		{name: "dpop replay_cache_size 10", caddyfile: "dpop {\nreplay_cache_size 10\n}", json: `"dpop":{"replay_cache_size":10}`},
		{name: "dpop replay_cache_size negative", caddyfile: "dpop {\nreplay_cache_size -1\n}", json: `"dpop":{"replay_cache_size":-1}`, mention: "dpop: replay_cache_size"},
		{name: "dpop origin with a path prefix", caddyfile: "dpop {\norigin https://a.example/p\n}", json: `"dpop":{"origin":"https://a.example/p"}`},
		{name: "dpop origin with a query", caddyfile: "dpop {\norigin https://a.example/p?x=1\n}", json: `"dpop":{"origin":"https://a.example/p?x=1"}`, mention: "dpop: origin"},
		{name: "introspection", caddyfile: "introspection https://idp.example/introspect {\nclient_id c\nclient_secret s\n}", json: `"introspection":{"endpoint":"https://idp.example/introspect","client_id":"c","client_secret":"s"}`},
		{name: "introspection client_secret_post", caddyfile: "introspection https://idp.example/introspect {\nclient_id c\nclient_secret s\nauth_method client_secret_post\n}", json: `"introspection":{"endpoint":"https://idp.example/introspect","client_id":"c","client_secret":"s","auth_method":"client_secret_post"}`},
		{name: "introspection auth_method unknown", caddyfile: "introspection https://idp.example/introspect {\nclient_id c\nclient_secret s\nauth_method magic\n}", json: `"introspection":{"endpoint":"https://idp.example/introspect","client_id":"c","client_secret":"s","auth_method":"magic"}`, mention: "auth_method"},
		{name: "introspection no client_secret", caddyfile: "introspection https://idp.example/introspect {\nclient_id c\nauth_method client_secret_basic\n}", json: `"introspection":{"endpoint":"https://idp.example/introspect","client_id":"c","auth_method":"client_secret_basic"}`, mention: "client_secret"},
		{name: "introspection secret with private_key_jwt", caddyfile: "introspection https://idp.example/introspect {\nclient_id c\nclient_secret s\nclient_key k.pem\nauth_method private_key_jwt\n}", json: `"introspection":{"endpoint":"https://idp.example/introspect","client_id":"c","client_secret":"s","client_key":"k.pem","auth_method":"private_key_jwt"}`, mention: "client_secret"},
		{name: "introspection response jwt", caddyfile: "introspection https://idp.example/introspect {\nclient_id c\nclient_secret s\nresponse jwt\n}", json: `"introspection":{"endpoint":"https://idp.example/introspect","client_id":"c","client_secret":"s","response":"jwt"}`},
		{name: "introspection response xml", caddyfile: "introspection https://idp.example/introspect {\nclient_id c\nclient_secret s\nresponse xml\n}", json: `"introspection":{"endpoint":"https://idp.example/introspect","client_id":"c","client_secret":"s","response":"xml"}`, mention: "response"},
		{name: "introspection cache_ttl 1m", caddyfile: "introspection https://idp.example/introspect {\nclient_id c\nclient_secret s\ncache_ttl 1m\n}", json: `"introspection":{"endpoint":"https://idp.example/introspect","client_id":"c","client_secret":"s","cache_ttl":"1m"}`},
		{name: "introspection cache_ttl negative", caddyfile: "introspection https://idp.example/introspect {\nclient_id c\nclient_secret s\ncache_ttl -1s\n}", json: `"introspection":{"endpoint":"https://idp.example/introspect","client_id":"c","client_secret":"s","cache_ttl":"-1s"}`, mention: "cache_ttl"},
		{name: "introspection negative_ttl negative", caddyfile: "introspection https://idp.example/introspect {\nclient_id c\nclient_secret s\nnegative_ttl -1s\n}", json: `"introspection":{"endpoint":"https://idp.example/introspect","client_id":"c","client_secret":"s","negative_ttl":"-1s"}`, mention: "negative_ttl"},
		{name: "introspection cache_size negative", caddyfile: "introspection https://idp.example/introspect {\nclient_id c\nclient_secret s\ncache_size -1\n}", json: `"introspection":{"endpoint":"https://idp.example/introspect","client_id":"c","client_secret":"s","cache_size":-1}`, mention: "cache_size"},
		{name: "introspection timeout 31s", caddyfile: "introspection https://idp.example/introspect {\nclient_id c\nclient_secret s\ntimeout 31s\n}", json: `"introspection":{"endpoint":"https://idp.example/introspect","client_id":"c","client_secret":"s","timeout":"31s"}`, mention: "timeout"},
		{name: "introspection max_in_flight negative", caddyfile: "introspection https://idp.example/introspect {\nclient_id c\nclient_secret s\nmax_in_flight -1\n}", json: `"introspection":{"endpoint":"https://idp.example/introspect","client_id":"c","client_secret":"s","max_in_flight":-1}`, mention: "max_in_flight"},
		{name: "introspection without client_id", caddyfile: "introspection https://idp.example/introspect {\nclient_secret s\n}", json: `"introspection":{"endpoint":"https://idp.example/introspect","client_secret":"s"}`, mention: "client_id"},
		{name: "introspection over plain http", caddyfile: "introspection http://idp.example/introspect {\nclient_id c\nclient_secret s\n}", json: `"introspection":{"endpoint":"http://idp.example/introspect","client_id":"c","client_secret":"s"}`, mention: "endpoint"},
		{name: "introspection without endpoint or discovery", caddyfile: "introspection {\nclient_id c\nclient_secret s\n}", json: `"introspection":{"client_id":"c","client_secret":"s"}`, mention: "exactly one discovery issuer"},
		{name: "api_keys bare", caddyfile: "api_keys", json: `"api_keys":{}`},
		{name: "api_keys header and prefix", caddyfile: "api_keys {\nheader X-Service-Key\nprefix acme_\n}", json: `"api_keys":{"header":"X-Service-Key","prefix":"acme_"}`},
		{name: "api_keys store memory", caddyfile: "api_keys {\nstore memory\n}", json: `"api_keys":{"store":{"backend":"memory"}}`},
		{name: "api_keys header Authorization", caddyfile: "api_keys {\nheader authorization\n}", json: `"api_keys":{"header":"authorization"}`, mention: "api_keys: header"},
		{name: "api_keys header DPoP", caddyfile: "api_keys {\nheader DPoP\n}", json: `"api_keys":{"header":"DPoP"}`, mention: "api_keys: header"},
		{name: "api_keys header an identity header", caddyfile: "api_keys {\nheader X-Workspace-Key\n}", json: `"api_keys":{"header":"X-Workspace-Key"}`, mention: "api_keys: header"},
		{name: "api_keys header not a name", caddyfile: "api_keys {\nheader \"X Key\"\n}", json: `"api_keys":{"header":"X Key"}`, mention: "api_keys: header"},
		{name: "api_keys prefix starting with ey", caddyfile: "api_keys {\nprefix eyk_\n}", json: `"api_keys":{"prefix":"eyk_"}`, mention: "api_keys: prefix"},
		{name: "api_keys prefix with a dot", caddyfile: "api_keys {\nprefix a.b\n}", json: `"api_keys":{"prefix":"a.b"}`, mention: "api_keys: prefix"},
		{name: "api_keys prefix too long", caddyfile: "api_keys {\nprefix " + strings.Repeat("a", 33) + "\n}", json: `"api_keys":{"prefix":"` + strings.Repeat("a", 33) + `"}`, mention: "api_keys: prefix"},
		{name: "api_keys store unknown", caddyfile: "api_keys {\nstore paper\n}", json: `"api_keys":{"store":{"backend":"paper"}}`, mention: "paper"},
		{name: "bolt timeout 2s", caddyfile: "storage bolt {dir}/p.db timeout 2s", json: `"storage":{"backend":"bolt","path":"{dir}/p.db","timeout":"2s"}`},
		{name: "bolt timeout negative", caddyfile: "storage bolt {dir}/p.db timeout -1s", json: `"storage":{"backend":"bolt","path":"{dir}/p.db","timeout":"-1s"}`, mention: "timeout"},
		{name: "postgres max_conns 20", caddyfile: "storage postgres postgres://127.0.0.1:1/x max_conns 20", json: `"storage":{"backend":"postgres","dsn":"postgres://127.0.0.1:1/x","max_conns":20}`},
		{name: "postgres max_conns 1001", caddyfile: "storage postgres postgres://127.0.0.1:1/x max_conns 1001", json: `"storage":{"backend":"postgres","dsn":"postgres://127.0.0.1:1/x","max_conns":1001}`, mention: "max_conns"},
		{name: "postgres max_conns negative", caddyfile: "storage postgres postgres://127.0.0.1:1/x max_conns -1", json: `"storage":{"backend":"postgres","dsn":"postgres://127.0.0.1:1/x","max_conns":-1}`, mention: "max_conns"},
		{name: "postgres cache 0 (off)", caddyfile: "storage postgres postgres://127.0.0.1:1/x cache 0", json: `"storage":{"backend":"postgres","dsn":"postgres://127.0.0.1:1/x","cache":0}`},
		{name: "postgres cache 10000000", caddyfile: "storage postgres postgres://127.0.0.1:1/x cache 10000000", json: `"storage":{"backend":"postgres","dsn":"postgres://127.0.0.1:1/x","cache":10000000}`},
		{name: "postgres cache 10000001", caddyfile: "storage postgres postgres://127.0.0.1:1/x cache 10000001", json: `"storage":{"backend":"postgres","dsn":"postgres://127.0.0.1:1/x","cache":10000001}`, mention: "cache"},
		{name: "postgres cache negative", caddyfile: "storage postgres postgres://127.0.0.1:1/x cache -1", json: `"storage":{"backend":"postgres","dsn":"postgres://127.0.0.1:1/x","cache":-1}`, mention: "cache"},
		{name: "postgres poll 100ms", caddyfile: "storage postgres postgres://127.0.0.1:1/x poll 100ms", json: `"storage":{"backend":"postgres","dsn":"postgres://127.0.0.1:1/x","poll":"100ms"}`},
		{name: "postgres poll 1m", caddyfile: "storage postgres postgres://127.0.0.1:1/x poll 1m", json: `"storage":{"backend":"postgres","dsn":"postgres://127.0.0.1:1/x","poll":"1m"}`},
		{name: "postgres poll 99ms", caddyfile: "storage postgres postgres://127.0.0.1:1/x poll 99ms", json: `"storage":{"backend":"postgres","dsn":"postgres://127.0.0.1:1/x","poll":"99ms"}`, mention: "poll"},
		{name: "postgres poll 61s", caddyfile: "storage postgres postgres://127.0.0.1:1/x poll 61s", json: `"storage":{"backend":"postgres","dsn":"postgres://127.0.0.1:1/x","poll":"61s"}`, mention: "poll"},
		{name: "postgres poll negative", caddyfile: "storage postgres postgres://127.0.0.1:1/x poll -1s", json: `"storage":{"backend":"postgres","dsn":"postgres://127.0.0.1:1/x","poll":"-1s"}`, mention: "poll"},
		{name: "postgres listen_dsn", caddyfile: "storage postgres postgres://127.0.0.1:1/x listen_dsn postgres://127.0.0.1:2/x", json: `"storage":{"backend":"postgres","dsn":"postgres://127.0.0.1:1/x","listen_dsn":"postgres://127.0.0.1:2/x"}`},
		{name: "postgres listen_dsn unparsable", caddyfile: "storage postgres postgres://127.0.0.1:1/x listen_dsn postgres://u:secret@[::1/x", json: `"storage":{"backend":"postgres","dsn":"postgres://127.0.0.1:1/x","listen_dsn":"postgres://u:secret@[::1/x"}`, mention: "listen_dsn: invalid PostgreSQL DSN"},
		{name: "postgres statement_timeout negative", caddyfile: "storage postgres postgres://127.0.0.1:1/x statement_timeout -1s", json: `"storage":{"backend":"postgres","dsn":"postgres://127.0.0.1:1/x","statement_timeout":"-1s"}`, mention: "statement_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			block := strings.ReplaceAll(tt.caddyfile, "{dir}", dir)
			members := strings.ReplaceAll(tt.json, "{dir}", dir)
			if !strings.Contains(block, "storage ") {
				block += "\nstorage memory"
			}
			if !strings.Contains(members, `"storage"`) {
				members += `,"storage":{"backend":"memory"}`
			}
			required := `"jwks_files":[` + strconvQuote(keys) + `],"issuers":["i"],"audiences":["a"]`
			fromJSON := loadHandlerJSON(t, []byte("{"+required+","+strings.TrimPrefix(members, ",")+"}"))
			fromCaddyfile := loadHandlerCaddyfile(t, "workspace_profile "+tt.path+" {\njwks_file "+keys+"\nissuer i\naudience a\n"+block+"\n}")
			for form, err := range map[string]error{"JSON": fromJSON, "Caddyfile": fromCaddyfile} {
				if err != nil {
					t.Logf("%s: %v", form, err)
				}
				switch {
				case tt.mention == "" && err != nil:
					t.Errorf("%s refused: %v", form, err)
				case tt.mention != "" && err == nil:
					t.Errorf("%s accepted", form)
				case tt.mention != "" && !strings.Contains(err.Error(), tt.mention):
					t.Errorf("%s: error %q does not name %q", form, err, tt.mention)
				}
			}
		})
	}
}

// TestIntrospectionConfigRules: a route with introspection and no key
// source is valid; response jwt then has no key set to verify answers
// with, and is refused; neither a key source nor introspection is refused.
func TestIntrospectionConfigRules(t *testing.T) {
	const intro = `"introspection":{"endpoint":"https://idp.example/introspect","client_id":"c","client_secret":"s"`
	for name, tt := range map[string]struct{ raw, mention string }{
		"introspection only":           {raw: `{"issuers":["i"],"audiences":["a"],"storage":{"backend":"memory"},` + intro + `}}`},
		"response jwt without keys":    {raw: `{"issuers":["i"],"audiences":["a"],"storage":{"backend":"memory"},` + intro + `,"response":"jwt"}}`, mention: "response jwt"},
		"introspection without issuer": {raw: `{"audiences":["a"],"storage":{"backend":"memory"},` + intro + `}}`, mention: "issuer"},
		"neither":                      {raw: `{"issuers":["i"],"audiences":["a"],"storage":{"backend":"memory"}}`, mention: "introspection"},
	} {
		err := loadHandlerJSON(t, []byte(tt.raw))
		switch {
		case tt.mention == "" && err != nil:
			t.Errorf("%s: refused: %v", name, err)
		case tt.mention != "" && (err == nil || !strings.Contains(err.Error(), tt.mention)):
			t.Errorf("%s: error %v, want one naming %q", name, err, tt.mention)
		}
	}
}

// TestAPIKeyConfigRules: api_keys alone makes a route (no key source,
// issuer or audience needed); in upstream mode it needs a store; routes
// sharing a store must agree on the prefix.
func TestAPIKeyConfigRules(t *testing.T) {
	const up = `"upstream":{"handler":"reverse_proxy","upstreams":[{"dial":"127.0.0.1:1"}]}`
	for name, tt := range map[string]struct{ raw, mention string }{
		"api_keys only":                {raw: `{"storage":{"backend":"memory"},"api_keys":{}}`},
		"upstream without a key store": {raw: `{` + up + `,"api_keys":{}}`, mention: "api_keys: store: required in upstream mode"},
		"nothing to verify with":       {raw: `{"storage":{"backend":"memory"}}`, mention: "api_keys"},
	} {
		err := loadHandlerJSON(t, []byte(tt.raw))
		switch {
		case tt.mention == "" && err != nil:
			t.Errorf("%s: refused: %v", name, err)
		case tt.mention != "" && (err == nil || !strings.Contains(err.Error(), tt.mention)):
			t.Errorf("%s: error %v, want one naming %q", name, err, tt.mention)
		}
	}
	name := "test_keys prefix-" + strings.ReplaceAll(t.Name(), "/", "-")
	first := &Handler{StorageRaw: json.RawMessage(`{"backend":"memory"}`), APIKeys: &APIKeys{StoreRaw: json.RawMessage(`{"backend":"test_keys","name":"` + name + `"}`)}}
	provisionHandler(t, first)
	second := &Handler{StorageRaw: json.RawMessage(`{"backend":"memory"}`), APIKeys: &APIKeys{Prefix: "acme_", StoreRaw: json.RawMessage(`{"backend":"test_keys","name":"` + name + `"}`)}}
	ctx, cancel := newTestContext()
	defer cancel()
	err := second.Provision(ctx)
	_ = second.Cleanup()
	if err == nil || !strings.Contains(err.Error(), `prefix "acme_"`) {
		t.Fatalf("a second prefix on one store: %v", err)
	}
	if ks, err := findKeyStore("test_keys:" + name); err != nil || ks.Prefix != "wsk_" {
		t.Fatalf("the first route's store after the refused one: %v %v", ks, err)
	}
}

// TestBodyLimitsCappedInJSON: a JSON config, which never meets the
// Caddyfile parser, is held to the same 1GiB cap on max_body and
// max_upstream_body, refused at provision with the option named.
func TestBodyLimitsCappedInJSON(t *testing.T) {
	keys := writeFile(t, "k.json", jwtauthtest.JWKS(t, jwtauthtest.NewKey(t, jwa.ES256(), "k")))
	for _, opt := range []string{"max_body", "max_upstream_body"} {
		raw := `{"jwks_files":[` + strconvQuote(keys) + `],"issuers":["i"],"audiences":["a"],"storage":{"backend":"memory"},"` + opt + `":2147483648}`
		err := loadHandlerJSON(t, []byte(raw))
		if err == nil {
			t.Fatalf("%s 2GiB accepted", opt)
		}
		if want := opt + ": 2147483648 is not a size between 1B and 1GiB"; !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "workspace_profile") {
			t.Fatalf("%s 2GiB: error %q, want one naming workspace_profile and saying %q", opt, err, want)
		}
	}
}

// loadHandlerJSON provisions the handler as Caddy loads it, and cleans it
// up at once.
func loadHandlerJSON(t *testing.T, raw []byte) error {
	t.Helper()
	ctx, cancel := newTestContext()
	defer cancel()
	_, err := ctx.LoadModuleByID("http.handlers.workspace_profile", raw)
	return err
}

// loadHandlerCaddyfile parses a workspace_profile directive and, when it
// parses, provisions the JSON it adapts to.
func loadHandlerCaddyfile(t *testing.T, src string) error {
	t.Helper()
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(src)); err != nil {
		return err
	}
	raw, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	return loadHandlerJSON(t, raw)
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(filepath.ToSlash(s))
	return string(b)
}

// TestAPIKeysCaddyfileJSON: the api_keys block adapts to the JSON the
// docs show, its store written as the storage module's own JSON.
func TestAPIKeysCaddyfileJSON(t *testing.T) {
	var h Handler
	src := "workspace_profile {\nstorage memory\napi_keys {\nstore bolt /srv/keys.db timeout 2s\nheader X-Service-Key\nprefix acme_\n}\n}"
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(src)); err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(h.APIKeys)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"store":{"backend":"bolt","path":"/srv/keys.db","timeout":2000000000},"header":"X-Service-Key","prefix":"acme_"}`; string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	var bare Handler
	if err := bare.UnmarshalCaddyfile(caddyfile.NewTestDispenser("workspace_profile {\nstorage memory\napi_keys\n}")); err != nil {
		t.Fatal(err)
	}
	if got, _ := json.Marshal(bare.APIKeys); string(got) != "{}" {
		t.Fatalf("bare api_keys: %s", got)
	}
}
