package jwtauth

import (
	"context"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
)

// TestUnknownKidBudgetSpentByForgedTokens documents what
// claims-first does and does not stop. The claims of a token naming an
// unknown kid cannot be verified, so anyone who knows the issuer and the
// audience (both public) can spend the budget with tokens signed by a key
// of their own: 12 of them, 4 s apart, empty the bucket. Fetches stay
// bounded (docs/authentication.md's promise), but a rotation right after such a flood
// is in force only when the bucket refills (up to 50 s), not within 5 s.
// Malformed, expired and foreign tokens spend nothing.
func TestUnknownKidBudgetSpentByForgedTokens(t *testing.T) {
	old, fresh := jwtauthtest.NewKey(t, jwa.ES256(), "old"), jwtauthtest.NewKey(t, jwa.ES256(), "fresh")
	mallory := jwtauthtest.NewKey(t, jwa.ES256(), "mallory")
	clock, idp, _, timers, v := newRotationVerifier(t, old)
	ctx := context.Background()
	before := idp.Fetches.Load()

	// tokens whose claims fail spend nothing, whatever their kid
	expired := jwtauthtest.ClaimsAt(clock, "u", time.Hour)
	expired["exp"] = clock.Now().Add(-time.Hour).Unix()
	foreign := jwtauthtest.ClaimsAt(clock, "u", time.Hour)
	foreign["iss"] = "https://evil.example"
	for i := range 20 {
		clock.Advance(5 * time.Second)
		timers.fire()
		for _, c := range []map[string]any{expired, foreign} {
			_, _ = v.Verify(ctx, mallory.Mint(t, c, map[string]any{"kid": "k" + string(rune('a'+i))}))
		}
	}
	if n := idp.Fetches.Load() - before; n != 0 {
		t.Fatalf("tokens whose claims fail caused %d fetches", n)
	}

	// forged tokens with plausible claims spend the bucket: 12 fetches, then no more
	for range 12 {
		clock.Advance(4 * time.Second)
		timers.fire()
		_, _ = v.Verify(ctx, mallory.Mint(t, jwtauthtest.ClaimsAt(clock, "u", time.Hour), nil))
	}
	if n := idp.Fetches.Load() - before; n != 12 {
		t.Fatalf("forged tokens caused %d fetches, want the burst of 12", n)
	}
	// one forged token a second keeps the bucket empty: each spends the
	// refill the moment it is there
	for idp.Fetches.Load()-before < 13 {
		clock.Advance(time.Second)
		timers.fire()
		_, _ = v.Verify(ctx, mallory.Mint(t, jwtauthtest.ClaimsAt(clock, "u", time.Hour), nil))
	}
	idp.ServeKeys(t, "", old, fresh) // the rotation, just after the flood
	rotated := clock.Mono()
	tok := fresh.Mint(t, jwtauthtest.ClaimsAt(clock, "u", time.Hour), nil)
	var acceptedAfter time.Duration
	for range 600 {
		clock.Advance(100 * time.Millisecond)
		timers.fire()
		if _, aerr := v.Verify(ctx, tok); aerr == nil {
			acceptedAfter = clock.Mono() - rotated
			break
		}
	}
	if acceptedAfter == 0 || acceptedAfter > unknownKidRefill+unknownKidSpacing {
		t.Fatalf("after a drained budget the rotation was accepted after %v (0: never), want within %v", acceptedAfter, unknownKidRefill+unknownKidSpacing)
	}
	if acceptedAfter <= 30*time.Second {
		t.Fatalf("accepted after %v: the budget was not drained as this test assumes", acceptedAfter)
	}
	t.Logf("a rotation right after a forged-kid flood took %v to be in force (5 s target without a flood)", acceptedAfter)
}
