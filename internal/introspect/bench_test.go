package introspect

import (
	"context"
	"testing"
)

// BenchmarkIntrospectionCacheHit: Verify of a token whose answer the
// cache holds, every claim rule re-checked, beside the JWT core's
// BenchmarkTokenCacheHit (a hit should cost at most 1.2 times one).
//
//	go test ./internal/introspect -run '^$' -bench BenchmarkIntrospectionCacheHit -benchmem
func BenchmarkIntrospectionCacheHit(b *testing.B) {
	e := newEnv(b, nil)
	e.serve(e.answer(map[string]any{"jti": "AT.0123456789abcdef", "ext": map[string]any{"email": "alice@example.com", "UserType": 0}}))
	ctx := context.Background()
	if _, aerr := e.in.Verify(ctx, testToken); aerr != nil {
		b.Fatal(aerr)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, aerr := e.in.Verify(ctx, testToken); aerr != nil {
			b.Fatal(aerr)
		}
	}
	if e.calls() != 1 {
		b.Fatalf("%d calls", e.calls())
	}
}
