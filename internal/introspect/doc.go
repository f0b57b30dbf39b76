// Package introspect verifies opaque access tokens by asking their issuer
// (OAuth 2.0 token introspection, RFC 7662, and its signed answers,
// RFC 9701), without Caddy. An *Introspector is the opaque-token verifier
// of internal/authn: it answers with the claims of the token or with a
// jwtauth.Error, as the JWT core does, so that everything after the
// verifier (the DPoP binding through cnf.jkt, the service-account
// decision, the subject rule, placeholders) works on either alike.
//
// What it guarantees:
//
//   - Only the JSON value true in active counts as active. Registered
//     members are read from the top level only; any other claim the top
//     level lacks is read from ext, where Ory Hydra puts extra claims. The
//     answer is strict JSON (no member named twice, no lone surrogate).
//   - The claim rules are jwtauth's (jwtauth.ClaimRules): audience
//     required, issuer when named, exp when named, nbf, iat, the maximum
//     lifetime, the clients; a refresh token is refused. They run on
//     every answer and again on every cache hit, so a cached answer never
//     lets through what a fresh one would refuse.
//   - The cache is keyed by the SHA-256 of the token (the token is never
//     stored), bounded, keeps an active answer for cache_ttl and never
//     past its exp, an inactive one for negative_ttl, and never a failure.
//   - Many requests with one new token make one call, on a context of its
//     own: a client that hangs up fails no one else, and each waiting
//     caller still leaves when its own context ends. At most max_in_flight
//     calls run at once; none is retried on the request path; after
//     repeated failures calls fail fast for an interval growing from 1 s
//     to 30 s. Any failure is IntrospectionUnavailable (a 503), never a
//     401: nothing was learnt of the token.
//   - The client never follows a redirect, reads at most 64 KiB of an
//     answer, and sends its secret in one place only. Nothing it logs or
//     shows (Observer, Status) holds a token, the secret or a client
//     assertion: a token appears at most as a short prefix of its hash.
//
// An Introspector is built explicitly (New) and stopped explicitly
// (Close), so that a holder shared across config reloads can own its
// cache and calls. Several routes may share one: each applies its own
// claim rules over it through a Route (Introspector.Route), on every
// answer and every cache hit.
package introspect
