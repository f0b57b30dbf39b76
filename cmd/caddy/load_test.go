package main

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkLoadTwoNodes is a load run: two Caddy nodes on one PostgreSQL
// database against one node on bolt, the same workload for each (16
// clients, 3000 PUTs then 3000 GETs over 200 users), reported as
// throughput, p99 latency and PostgreSQL/bolt ratios. It is bounded in
// count, sends only to loopback, and runs once:
//
//	PROFILE_TEST_PG_DSN=postgres://postgres@127.0.0.1:5432/test \
//	    go test ./cmd/caddy -run '^$' -bench LoadTwoNodes -benchtime 1x
func BenchmarkLoadTwoNodes(b *testing.B) {
	dsn := pgDSN(b)
	s := newSigner(b)
	pg := []node{}
	storage := fmt.Sprintf("storage postgres {env.PROFILE_TEST_PG_DSN} schema %s max_conns 16", pgSchema(b, dsn))
	pg = append(pg, startNode(b, s, storage), startNode(b, s, storage))
	bolt := []node{startNode(b, s, "storage bolt")}

	const users, clients, requests = 200, 16, 3000
	tokens := make([]string, users)
	for i := range tokens {
		tokens[i] = s.token(b, fmt.Sprintf("load-%d", i))
	}
	run := func(nodes []node, method string) (rps float64, p99 time.Duration) {
		latencies := make([]time.Duration, requests)
		var next int
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := time.Now()
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					mu.Lock()
					i := next
					next++
					mu.Unlock()
					if i >= requests {
						return
					}
					var body io.Reader
					if method == "PUT" {
						body = strings.NewReader(fmt.Sprintf(`{"FirstName":"F%d","LastName":"L%d"}`, i, i))
					}
					req, _ := http.NewRequest(method, nodes[i%len(nodes)].url, body)
					req.Header.Set("Authorization", "Bearer "+tokens[i%users])
					req.Header.Set("Content-Type", "application/json")
					t0 := time.Now()
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("%s: %d", method, resp.StatusCode)
					}
					latencies[i] = time.Since(t0)
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		slices.Sort(latencies)
		return float64(requests) / elapsed.Seconds(), latencies[requests*99/100]
	}
	for b.Loop() {
		// PUTs create the 200 profiles on first touch (create_missing)
		pgPut, pgPutP99 := run(pg, "PUT")
		boltPut, boltPutP99 := run(bolt, "PUT")
		pgGet, pgGetP99 := run(pg, "GET")
		boltGet, boltGetP99 := run(bolt, "GET")
		b.ReportMetric(pgPut, "pg-put/s")
		b.ReportMetric(boltPut, "bolt-put/s")
		b.ReportMetric(pgPut/boltPut, "put-pg/bolt")
		b.ReportMetric(pgGet, "pg-get/s")
		b.ReportMetric(boltGet, "bolt-get/s")
		b.ReportMetric(pgGet/boltGet, "get-pg/bolt")
		b.ReportMetric(float64(pgPutP99.Microseconds())/1000, "pg-put-p99-ms")
		b.ReportMetric(float64(boltPutP99.Microseconds())/1000, "bolt-put-p99-ms")
		b.ReportMetric(float64(pgGetP99.Microseconds())/1000, "pg-get-p99-ms")
		b.ReportMetric(float64(boltGetP99.Microseconds())/1000, "bolt-get-p99-ms")
	}
}
