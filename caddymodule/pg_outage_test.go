package caddymodule

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth/jwtauthtest"
	"github.com/workspace-edge/caddy-workspace-profile/internal/pgtest"
)

// TestIntegrationPostgresOutage: PostgreSQL becomes unreachable mid-load.
// Requests answer 503 StorageUnavailable quickly during the outage, no row
// is ever half written, and service comes back without restarting Caddy.
func TestIntegrationPostgresOutage(t *testing.T) {
	dsn := os.Getenv("PROFILE_TEST_PG_DSN")
	pgStorage(t) // skips without PROFILE_TEST_PG_DSN
	proxy, proxied := pgtest.NewProxyFor(t, dsn)
	schema := fmt.Sprintf("wp_outage_%d", time.Now().UnixNano()%1e12)
	t.Cleanup(func() { dropSchema(dsn, schema) })

	k := jwtauthtest.NewKey(t, jwa.RS256(), "k")
	tc := startCaddy(t, itConfig{jwksFiles: []string{writeFile(t, "k.json", jwtauthtest.JWKS(t, k))},
		storage: fmt.Sprintf("storage postgres %q schema %s timeout 1s", proxied, schema)})
	url := itBase + profilePath
	tokens := make([]string, 8)
	for i := range tokens {
		tokens[i] = k.Mint(t, jwtauthtest.Claims(fmt.Sprintf("outage-%d", i)), nil)
		if r := do(t, tc.Client, "GET", url, bearer(tokens[i]), ""); r.status != 200 {
			t.Fatalf("before the outage: %d %s", r.status, r.body)
		}
	}

	type result struct {
		status int
		code   string
		took   time.Duration
	}
	var mu sync.Mutex
	var results []result
	halt := startLoad(len(tokens), func(w, n int) {
		// FirstName and LastName are written together: a row with
		// one and not the other would be a half-written update
		body := fmt.Sprintf(`{"FirstName":"F%d","LastName":"L%d"}`, n, n)
		start := time.Now()
		r := do(t, tc.Client, "PUT", url, jsonPut(tokens[w], ""), body)
		res := result{status: r.status, took: time.Since(start)}
		if r.status != 200 {
			res.code = itemCodes(r.envelope(t).Errors)
		}
		mu.Lock()
		results = append(results, res)
		mu.Unlock()
	})
	time.Sleep(300 * time.Millisecond)
	proxy.Cut()
	time.Sleep(1500 * time.Millisecond)
	proxy.Restore()
	// service returns without a Caddy restart
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := do(t, tc.Client, "PUT", url, jsonPut(tokens[0], ""), `{"FirstName":"Back","LastName":"Again"}`)
		if r.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not back 10s after the database returned: %d %s", r.status, r.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	halt()

	var ok, unavailable int
	for _, r := range results {
		switch {
		case r.status == 200:
			ok++
		case r.status == 503 && r.code == "StorageUnavailable":
			unavailable++
			if r.took > 3*time.Second {
				t.Errorf("a 503 took %v: the timeout must bound it", r.took)
			}
		default:
			t.Errorf("during the outage: %d %s", r.status, r.code)
		}
	}
	if unavailable == 0 || ok == 0 {
		t.Fatalf("%d ok, %d unavailable: the outage was not observed", ok, unavailable)
	}
	t.Logf("%d requests: %d ok, %d StorageUnavailable", len(results), ok, unavailable)

	// no half-written row
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), "SELECT user_id, first_name, last_name FROM "+pgx.Identifier{schema}.Sanitize()+".profiles")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, first, last string
		_ = rows.Scan(&id, &first, &last)
		if strings.TrimPrefix(first, "F") != strings.TrimPrefix(last, "L") && !(first == "Back" && last == "Again") {
			t.Errorf("half-written row %s: %q %q", id, first, last)
		}
	}
}
