package authn

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
)

// UserTypeClaim is the claim that says what kind of user the caller is: a
// service account, an admin or a regular user. It is the default
// service-account claim.
const UserTypeClaim = "UserType"

// ServiceAccount says which callers are service accounts: those whose
// Claim (its name compared ignoring case) holds one of Values.
type ServiceAccount struct {
	Claim  string
	Values []string
}

// Is reads the claim as ASP.NET does: every member whose name equals the
// configured claim ignoring case, every element of an array, and numbers
// by value, so that 2, 2.0, 2e0 and "2" all match a configured "2". Any
// match makes the caller a service account.
func (s ServiceAccount) Is(c jwtauth.Claims) bool {
	for _, raw := range c.Folded(s.Claim) {
		values := []json.RawMessage{raw}
		if raw[0] == '[' {
			values = nil
			_ = json.Unmarshal(raw, &values)
		}
		for _, x := range values {
			for _, want := range s.Values {
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

// UserType is the UserType claim (its name compared ignoring case;
// Authenticate refuses a credential naming it twice), numbers in their
// canonical integer form: a token saying 1.0 or " 1" is an admin as one
// saying 1 is, and the backend never sees another spelling.
func UserType(c jwtauth.Claims) (string, bool) {
	vals := c.Folded(UserTypeClaim)
	if len(vals) == 0 {
		return "", false
	}
	s := jwtauth.RawText(vals[0])
	if f, ok := looseNumber(s); ok && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.FormatFloat(f, 'f', -1, 64), true
	}
	return strings.TrimSpace(s), true
}
