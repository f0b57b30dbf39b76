package dpop

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzDPoPProof: whatever a DPoP header holds, Check never panics, never
// accepts more than 8 KiB, and what it accepts has a thumbprint, passes a
// second Check (it is deterministic) and is spent by its first Commit.
// The seed corpus (testdata/fuzz/FuzzDPoPProof) holds a valid proof of
// each key type for this request and broken ones; the verifier's clock is
// fixed at their iat.
func FuzzDPoPProof(f *testing.F) {
	for _, s := range []string{"", "a.b.c", "eyJ0eXAiOiJkcG9wK2p3dCJ9.e30.", strings.Repeat("A", MaxProofLen+1)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, proof string) {
		v := newTestVerifier(t, Config{Replay: NewReplayCache(4)})
		p, err := v.Check(request(proof))
		if err != nil {
			if err.Desc == "" || strings.Contains(err.Desc, testToken) {
				t.Fatalf("refusal %q", err.Desc)
			}
			return
		}
		if len(proof) > MaxProofLen || p.Thumbprint == "" {
			t.Fatalf("accepted %d bytes with thumbprint %q", len(proof), p.Thumbprint)
		}
		if p2, err := v.Check(request(proof)); err != nil || p2 != p {
			t.Fatalf("second check: %+v, %v", p2, err)
		}
		if err := v.Commit(context.Background(), p); err != nil {
			t.Fatalf("first commit: %v", err)
		}
		if err := v.Commit(context.Background(), p); err == nil {
			t.Fatal("a proof was spent twice")
		}
	})
}

// TestFuzzSeedsStayValid: the corpus's good-* proofs pass, so that the
// fuzzer starts from proofs that reach every check.
func TestFuzzSeedsStayValid(t *testing.T) {
	names, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzDPoPProof", "good-*"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no good seeds: %v", err)
	}
	for _, name := range names {
		raw, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		_, lit, _ := strings.Cut(strings.TrimSpace(string(raw)), "string(")
		proof, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, derr := newTestVerifier(t, Config{}).Verify(context.Background(), request(proof)); derr != nil {
			t.Errorf("%s refused: %v", name, derr)
		}
	}
}
