package jwtauth

import (
	"encoding/json"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jsonscan"
)

// The rules below are the token's, shared with internal/dpop for the
// proof, so that a DPoP proof is read exactly as a token is.

// CheckStrictJSON is the strict-JSON rule of claims sets (jsonscan.CheckStrict:
// no invalid UTF-8, lone surrogate, control character or member named
// twice).
func CheckStrictJSON(raw []byte) error { return jsonscan.CheckStrict(raw) }

// AlgFitsKey reports whether k can verify alg: an accepted asymmetric
// algorithm of its type and, for EC and OKP keys, of its curve.
func AlgFitsKey(alg string, k jwk.Key) bool { return algFitsKey(alg, k) }

// CheckRSASize refuses a JWK (raw JSON) that is an RSA key shorter than
// 2048 bits; any other key passes it.
func CheckRSASize(raw []byte) error { return checkRSASize(raw) }

// JSONString decodes a JSON string literal; ok is false for anything else.
func JSONString(raw json.RawMessage) (s string, ok bool) { return jsonscan.String(raw) }

// NumericDate reads a JSON number (RFC 7519's NumericDate); a string, even
// "1700000000", is not one.
func NumericDate(raw json.RawMessage) (float64, bool) { return jsonscan.Float(raw) }
