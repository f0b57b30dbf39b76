// Package authn is the one place the route decides who the caller is. It
// sits between the Caddy glue (caddymodule) and the token core
// (internal/jwtauth) as Envoy's authenticator sits between its jwt_authn
// filter and jwt_verify_lib: it takes the one credential of a request,
// routes it by its shape to the verifier of its kind before any network
// call (a JWT to the token core; an opaque token to introspection and an
// API key to the API-key store once those exist, refused until then),
// applies the DPoP binding, makes the service-account decision and the
// subject rule, and answers with a Principal or a Refusal that carries
// its status, code, detail and WWW-Authenticate challenge.
//
// It knows nothing of Caddy: the glue passes in what depends on it (the
// DPoP mode and algorithms as data, the request target a proof must name)
// and writes the problem answer. It reads the domain's client-facing texts
// and its rule for a usable profile key from profile.
package authn
