package caddymodule

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// authenticate extracts and verifies the token, sets the user
// placeholders, and refuses service accounts.
//
// A token bound to a DPoP key (cnf.jkt) needs the DPoP scheme and a valid
// proof by that key (checkDPoP, dpop_proof.go); the proof is checked on every
// request, after the token, whose verification may come from the cache.
func (h *Handler) authenticate(r *http.Request) (jwtauth.Claims, string, *refusal) {
	d := h.DPoP
	cred, aerr := d.extract(r, h.QueryToken == nil || *h.QueryToken)
	if aerr != nil {
		return nil, "", d.missing(aerr)
	}
	viaDPoP := cred.Scheme == jwtauth.SchemeDPoP
	if d.required() && !viaDPoP {
		// refused before any verification: no bearer token can pass
		return nil, "", d.asDPoP(jwtauth.InvalidToken(detailDPoPRequired))
	}
	tok := cred.Token
	c, aerr := h.verifier.Verify(r.Context(), tok)
	if aerr != nil {
		if viaDPoP {
			return nil, "", d.asDPoP(aerr)
		}
		return nil, "", refuse(aerr)
	}
	if rerr := h.checkDPoP(r, c, cred); rerr != nil {
		return nil, "", rerr
	}
	// one rule for the profile key on every backend: what an import would
	// refuse as a UserId (too long, untrimmed, control characters) is no
	// subject either, so bolt and PostgreSQL never answer it differently
	subject := h.verifier.SubjectClaim()
	if sub, _ := c.Str(subject); len(profile.UserIDProblems(sub)) > 0 {
		return nil, "", refuse(jwtauth.InvalidToken(profile.DetailUnusableSubject))
	}
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		setUserPlaceholders(repl, c, subject)
	}
	if h.isServiceAccount(c) {
		return nil, "", refuse(errServiceAccount)
	}
	// .NET's FindFirst takes the first of two case spellings; this edge
	// would take another, so a token naming an identity claim twice
	// (sub and SUB, UserType and usertype) is refused.
	if len(c.Folded(subject)) > 1 || len(c.Folded(userTypeClaim)) > 1 {
		return nil, "", refuse(jwtauth.InvalidToken(profile.DetailIdentityClaimTwice))
	}
	return c, tok, nil
}

const userPlaceholderPrefix = "http.auth.user."

// setUserPlaceholders answers {http.auth.user.*} lazily from the claims, so
// a request pays for the claims it logs and no more.
func setUserPlaceholders(repl *caddy.Replacer, c jwtauth.Claims, subject string) {
	repl.Map(func(key string) (any, bool) {
		name, ok := strings.CutPrefix(key, userPlaceholderPrefix)
		if !ok {
			return nil, false
		}
		if name == "id" {
			name = subject
		}
		v, ok := c.Text(name)
		if !ok {
			return nil, false
		}
		return v, true
	})
}

// isServiceAccount reads the claim as ASP.NET does: every member whose name
// equals the configured claim ignoring case, every element of an array,
// and numbers by value, so that 2, 2.0, 2e0 and "2" all match a configured
// "2". Any match refuses the token.
func (h *Handler) isServiceAccount(c jwtauth.Claims) bool {
	for _, raw := range c.Folded(h.ServiceAccount.Claim) {
		values := []json.RawMessage{raw}
		if raw[0] == '[' {
			values = nil
			_ = json.Unmarshal(raw, &values)
		}
		for _, x := range values {
			for _, want := range h.ServiceAccount.Values {
				if claimValueIs(x, want) {
					return true
				}
			}
		}
	}
	return false
}

// claimValueIs compares a claim value (a JSON string or number) with a
// configured value: as strings, or as numbers when both read as numbers the
// way .NET's parsers read them (surrounding spaces, a leading + and leading
// zeros allowed), so that " 2", "+2", "02" and 2.0 all match "2".
func claimValueIs(raw json.RawMessage, want string) bool {
	s := jwtauth.RawText(raw)
	if s == want {
		return true
	}
	a, okA := looseNumber(s)
	b, okB := looseNumber(want)
	return okA && okB && a == b
}

// looseNumber reads s as a decimal number, as lenient backends do: spaces
// around it, a leading + and leading zeros are allowed; hex, Inf, NaN and
// underscores are not.
func looseNumber(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	if t, ok := strings.CutPrefix(s, "+"); ok {
		s = t
	}
	if s == "" || strings.ContainsAny(s, "xXpP_iInN") {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

// userType is the UserType claim (its name compared ignoring case;
// authenticate refuses a token naming it twice), numbers in their
// canonical integer form: a token saying 1.0 or " 1" is an admin as one
// saying 1 is, and the backend never sees another spelling.
func userType(c jwtauth.Claims) (string, bool) {
	vals := c.Folded(userTypeClaim)
	if len(vals) == 0 {
		return "", false
	}
	s := jwtauth.RawText(vals[0])
	if f, ok := looseNumber(s); ok && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.FormatFloat(f, 'f', -1, 64), true
	}
	return strings.TrimSpace(s), true
}

// identity is what the profile service needs to know of the caller.
func (h *Handler) identity(c jwtauth.Claims) profile.Identity {
	str := func(name string) string { s, _ := c.Str(name); return s }
	id := profile.Identity{
		UserID:            str(h.verifier.SubjectClaim()),
		PreferredUserName: str("preferred_username"),
		Email:             str("email"),
		GivenName:         str("given_name"),
		FamilyName:        str("family_name"),
	}
	if v, ok := userType(c); ok {
		switch v {
		case "1":
			id.UserType = profile.UserTypeAdmin
		case "2":
			id.UserType = profile.UserTypeServiceAccount
		}
	}
	return id
}
