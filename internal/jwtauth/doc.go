// Package jwtauth is the token-verification core of the workspace profile
// route, without Caddy: it finds the bearer token of a request
// (ExtractCredential), reads key sets from files and URLs (LoadFile,
// NewURLSource), checks a token's signature and claims against a Config
// (New, Verifier.Verify), remembers the tokens that verified, and refuses
// with an Error that carries a code and a description, never an HTTP
// status. The glue (caddymodule) maps codes to responses, shares URL
// sources across config reloads and counts what an Observer is told.
//
// It imports the standard library, jwx, golang-lru and zap only.
package jwtauth
