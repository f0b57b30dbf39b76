package introspect

import (
	"context"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
)

// An Introspector's call, cache, flights, call slots and fail-fast state
// may serve several routes, and outlive the config that made them (the
// glue shares one by endpoint and client across config reloads). A Route
// is one route's claim rules over such a shared Introspector: the cache
// holds answers as the endpoint gave them, checked only by what holds
// whatever the route (active, strict JSON, not a refresh token), and each
// route applies its own rules on every answer and every cache hit, so an
// answer another route cached never lets through what a fresh one would
// refuse on this one.

// Route verifies opaque tokens with a shared Introspector and one
// route's claim rules. It is safe for concurrent use and owns nothing:
// closing the Introspector is its holder's business.
type Route struct {
	in    *Introspector
	rules jwtauth.ClaimRules
}

// Route checks the claim rules of cfg (Issuers, Audiences, Leeway,
// MaxLifetime, Clients; no other field is read) and returns the route
// that applies them to in's answers.
func (in *Introspector) Route(cfg Config) (*Route, error) {
	if err := cfg.rulesConfig().Check(); err != nil {
		return nil, err
	}
	return &Route{in: in, rules: claimRules(cfg)}, nil
}

// Verify is Introspector.Verify with the route's rules.
func (r *Route) Verify(ctx context.Context, tok string) (jwtauth.Claims, *jwtauth.Error) {
	return r.in.verify(ctx, tok, &r.rules)
}

// Status is the shared introspector's.
func (r *Route) Status() Status { return r.in.Status() }

// SetSigned replaces the verifier of signed answers (ResponseJWT), so
// that an introspector that outlives a config checks them with the key
// sets of the newest one. A nil s is ignored.
func (in *Introspector) SetSigned(s SignedVerifier) {
	if s != nil {
		in.signed.Store(&s)
	}
}

// claimRules are cfg's claim rules as the token core applies them to an
// answer: exp and iss optional (an answer may lack them), the rest as for
// a JWT.
func claimRules(cfg Config) jwtauth.ClaimRules {
	leeway := jwtauth.DefaultLeeway
	if cfg.Leeway != nil {
		leeway = *cfg.Leeway
	}
	return jwtauth.ClaimRules{Issuers: cfg.Issuers, Audiences: cfg.Audiences, Leeway: leeway,
		MaxLifetime: cfg.MaxLifetime, Clients: cfg.Clients, ExpOptional: true, IssOptional: true}
}

// InFlight is how many calls to the endpoint are running now.
func (in *Introspector) InFlight() int { return len(in.slots) }
