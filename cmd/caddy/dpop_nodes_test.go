package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/workspace-edge/caddy-workspace-profile/internal/dpop/dpoptest"
	"github.com/workspace-edge/caddy-workspace-profile/internal/pgtest"
)

// dpopOrigin is the origin clients address, the same through either node
// (a load balancer in front of them), so a proof made for one node is
// valid on the other but for its replay.
const dpopOrigin = "https://api.nodes.test"

// boundToken mints a token of s bound to the DPoP key jkt.
func (s *signer) boundToken(t testing.TB, sub, jkt string) string {
	payload, _ := json.Marshal(map[string]any{"iss": "https://nodes.test.invalid", "aud": "workspace-api", "sub": sub,
		"exp": time.Now().Add(time.Hour).Unix(), "cnf": map[string]string{"jkt": jkt}})
	tok, err := jws.Sign(payload, jws.WithKey(jwa.ES256(), s.key))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

// withProof sends a GET to url with a DPoP-bound token and its proof.
func withProof(t *testing.T, url, tok, proof string) (int, string) {
	t.Helper()
	return getWith(t, url, "Authorization", "DPoP "+tok, "DPoP", proof)
}

// TestDPoPProofReplayedToAnotherNode: two built nodes share one schema. A
// proof accepted by node A is refused as already used when replayed to
// node B (and to A); with B's database unreachable, a fresh proof on B
// gets 503 StorageUnavailable, never a 200, and B logs why without the
// DSN.
func TestDPoPProofReplayedToAnotherNode(t *testing.T) {
	dsn := pgDSN(t)
	schema := pgSchema(t, dsn)
	s := newSigner(t)
	proxy, proxied := pgtest.NewProxyFor(t, dsn)
	route := "\n\t\tdpop {\n\t\t\torigin " + dpopOrigin + "\n\t\t}"
	a := startNode(t, s, fmt.Sprintf("storage postgres {env.PROFILE_TEST_PG_DSN} schema %s timeout 2s", schema)+route)
	b := startNode(t, s, fmt.Sprintf("storage postgres %q schema %s timeout 1s", proxied, schema)+route)
	prover := dpoptest.NewProver(t, jwa.ES256())
	tok := s.boundToken(t, "dpop-nodes", prover.Thumbprint)
	htu := dpopOrigin + "/api/workspace/account/profile"
	proof := func() string { return prover.Proof(t, "GET", htu, tok, time.Now(), nil, nil) }

	used := proof()
	if st, body := withProof(t, a.url, tok, used); st != 200 {
		t.Fatalf("a fresh proof on node A: %d %s", st, body)
	}
	for name, url := range map[string]string{"node B": b.url, "node A": a.url} {
		st, body := withProof(t, url, tok, used)
		if st != 401 || !strings.Contains(body, `"code":"InvalidDPoPProof"`) || !strings.Contains(body, "already used") {
			t.Fatalf("the proof node A accepted, replayed to %s: %d %s", name, st, body)
		}
	}
	if st, body := withProof(t, b.url, tok, proof()); st != 200 {
		t.Fatalf("a fresh proof on node B: %d %s", st, body)
	}

	proxy.Cut()
	for i := range 3 {
		st, body := withProof(t, b.url, tok, proof())
		if st != 503 || !strings.Contains(body, `"Code":"StorageUnavailable"`) {
			t.Fatalf("a fresh proof on node B, its database cut (request %d): %d %s", i, st, body)
		}
	}
	if st, body := withProof(t, a.url, tok, proof()); st != 200 {
		t.Fatalf("a fresh proof on node A while B's database is cut: %d %s", st, body)
	}
	b.proc.stop(t)
	out := b.proc.out.String()
	if !strings.Contains(out, "DPoP proof record") || strings.Contains(out, proxied) || strings.Contains(out, proxy.Addr) {
		t.Fatalf("node B's log: no line on the proof record, or the DSN in it:\n%s", out)
	}
}

// TestDPoPProofRaceAcrossNodesHasOneWinner: one proof sent to two built
// nodes at the same instant, round after round: exactly one node accepts
// it, the other refuses it as already used.
func TestDPoPProofRaceAcrossNodesHasOneWinner(t *testing.T) {
	dsn := pgDSN(t)
	schema := pgSchema(t, dsn)
	s := newSigner(t)
	route := "\n\t\tdpop {\n\t\t\torigin " + dpopOrigin + "\n\t\t}"
	storage := fmt.Sprintf("storage postgres {env.PROFILE_TEST_PG_DSN} schema %s", schema) + route
	nodes := startNodes(t, s, 2, storage)
	prover := dpoptest.NewProver(t, jwa.ES256())
	tok := s.boundToken(t, "dpop-race", prover.Thumbprint)
	htu := dpopOrigin + "/api/workspace/account/profile"
	for round := range 30 {
		proof := prover.Proof(t, "GET", htu, tok, time.Now(), nil, nil)
		type answer struct {
			status int
			body   string
			err    error
		}
		answers := make(chan answer, len(nodes))
		start := make(chan struct{})
		for _, n := range nodes {
			go func() {
				req, _ := http.NewRequest("GET", n.url, nil)
				req.Header.Set("Authorization", "DPoP "+tok)
				req.Header.Set("DPoP", proof)
				<-start
				resp, err := client.Do(req)
				if err != nil {
					answers <- answer{err: err}
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				answers <- answer{status: resp.StatusCode, body: string(b)}
			}()
		}
		close(start)
		accepted := 0
		for range nodes {
			a := <-answers
			switch {
			case a.err != nil:
				t.Fatalf("round %d: %v", round, a.err)
			case a.status == 200:
				accepted++
			case a.status != 401 || !strings.Contains(a.body, "already used"):
				t.Fatalf("round %d: %d %s", round, a.status, a.body)
			}
		}
		if accepted != 1 {
			t.Fatalf("round %d: the proof was accepted %d times", round, accepted)
		}
	}
}
