package jwtauth

// CheckStrictJSON is the strict-JSON rule of claims sets (checkClaimsJSON:
// no invalid UTF-8, lone surrogate, control character or member named
// twice) for other JOSE objects of the module, such as DPoP proofs.
func CheckStrictJSON(raw []byte) error { return checkClaimsJSON(raw) }
