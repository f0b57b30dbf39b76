// Package dpop verifies DPoP proofs (RFC 9449), the signed JWTs with which
// a client shows that it holds the key a DPoP-bound access token names:
// Verifier.Check applies the checks of RFC 9449 §4.3 to one request (one
// proof, typ dpop+jwt, an accepted asymmetric alg, a public jwk that signed
// it, htm, htu compared after RFC 3986 normalization, iat within a window,
// ath) and returns the RFC 7638 thumbprint of the proof's key;
// Verifier.Commit then refuses a proof seen before, from a ReplayCache
// bounded in memory. Nonces (RFC 9449 §8, §9) are not implemented.
//
// Like internal/jwtauth it knows nothing of HTTP servers or Caddy: the glue
// hands it the method, the URI the client addressed, the DPoP header values
// and the access token, and maps its refusals to responses. It imports jwx
// for the proof key (parsing, thumbprint, signature), as jwtauth does for
// the token's keys.
package dpop
