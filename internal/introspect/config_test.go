package introspect

import (
	"strings"
	"testing"
	"time"
)

// TestConfigCheck: each option is refused when it cannot work, with an
// error naming the option; a plain-http endpoint passes only to a
// loopback host.
func TestConfigCheck(t *testing.T) {
	good := func() Config {
		return Config{Endpoint: "https://idp.example.com/oauth2/introspect", ClientID: "c", ClientSecret: "s",
			Issuers: []string{"https://idp.example.com"}, Audiences: []string{"api"}}
	}
	neg := -time.Second
	tests := []struct {
		name string
		mod  func(*Config)
		want string // "" for accepted
	}{
		{"good", func(*Config) {}, ""},
		{"http loopback", func(c *Config) { c.Endpoint = "http://127.0.0.1:8080/introspect" }, ""},
		{"http localhost", func(c *Config) { c.Endpoint = "http://localhost/introspect" }, ""},
		{"http ::1", func(c *Config) { c.Endpoint = "http://[::1]:9/i" }, ""},
		{"http remote", func(c *Config) { c.Endpoint = "http://idp.example.com/introspect" }, "loopback"},
		{"http remote IP", func(c *Config) { c.Endpoint = "http://10.0.0.1/introspect" }, "loopback"},
		{"ftp", func(c *Config) { c.Endpoint = "ftp://idp.example.com/i" }, "not https"},
		{"no endpoint", func(c *Config) { c.Endpoint = "" }, "endpoint is required"},
		{"no host", func(c *Config) { c.Endpoint = "https:///i" }, "no host"},
		{"userinfo", func(c *Config) { c.Endpoint = "https://u:p@idp.example.com/i" }, "credentials"},
		{"fragment", func(c *Config) { c.Endpoint = "https://idp.example.com/i#x" }, "fragment"},
		{"no client_id", func(c *Config) { c.ClientID = "" }, "client_id"},
		{"basic without secret", func(c *Config) { c.ClientSecret = "" }, "client_secret: required"},
		{"post without secret", func(c *Config) { c.AuthMethod = ClientSecretPost; c.ClientSecret = "" }, "client_secret: required"},
		{"basic with key", func(c *Config) { c.ClientKey = "k.pem" }, "client_key"},
		{"private_key_jwt without key", func(c *Config) { c.AuthMethod = PrivateKeyJWT; c.ClientSecret = "" }, "client_key: required"},
		{"private_key_jwt with secret", func(c *Config) { c.AuthMethod = PrivateKeyJWT; c.ClientKey = "k.pem" }, "client_secret: not sent"},
		{"none with secret", func(c *Config) { c.AuthMethod = None }, "none sends no"},
		{"none", func(c *Config) { c.AuthMethod = None; c.ClientSecret = "" }, ""},
		{"unknown method", func(c *Config) { c.AuthMethod = "tls_client_auth" }, "auth_method"},
		{"response jwt without keys", func(c *Config) { c.Response = ResponseJWT }, "response jwt"},
		{"response xml", func(c *Config) { c.Response = "xml" }, "response"},
		{"negative cache_ttl", func(c *Config) { c.CacheTTL = -1 }, "cache_ttl"},
		{"negative negative_ttl", func(c *Config) { c.NegativeTTL = -1 }, "negative_ttl"},
		{"negative cache_size", func(c *Config) { c.CacheSize = -1 }, "cache_size"},
		{"negative timeout", func(c *Config) { c.Timeout = -1 }, "timeout"},
		{"timeout too long", func(c *Config) { c.Timeout = time.Hour }, "timeout"},
		{"negative max_in_flight", func(c *Config) { c.MaxInFlight = -1 }, "max_in_flight"},
		{"no issuer", func(c *Config) { c.Issuers = nil }, "issuer"},
		{"no audience", func(c *Config) { c.Audiences = nil }, "audience"},
		{"empty client", func(c *Config) { c.Clients = []string{""} }, "clients"},
		{"negative leeway", func(c *Config) { c.Leeway = &neg }, "leeway"},
		{"negative max lifetime", func(c *Config) { c.MaxLifetime = -1 }, "max_token_lifetime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good()
			tt.mod(&cfg)
			err := cfg.Check()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			if _, nerr := New(cfg); (nerr == nil) != (err == nil) {
				t.Fatalf("New and Check disagree: %v / %v", nerr, err)
			}
		})
	}
}

// TestStatusHoldsNoSecret: the admin view names the endpoint redacted and
// the client, never the secret.
func TestStatusHoldsNoSecret(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Endpoint += "?tenant=acme" })
	e.serve(e.answer(nil))
	if _, aerr := e.verify(testToken); aerr != nil {
		t.Fatal(aerr)
	}
	s := e.in.Status()
	if s.LastGood == nil || s.ClientID != testClient || s.AuthMethod != ClientSecretBasic || strings.Contains(s.Endpoint, "acme") {
		t.Fatalf("status %+v", s)
	}
	if strings.Contains(string(mustJSON(t, s)), testSecret) {
		t.Fatal("status shows the secret")
	}
}
