package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BenchmarkAPIKeySpray is a load run (threat row G08, see
// docs/threat-model.md and docs/api-keys.md, "What a spray of random keys
// costs"): one Caddy node built from this command, api_keys on
// PostgreSQL. It measures the legitimate traffic (4 clients, one valid
// user key, warm) alone, then beside a spray of random keys of the right
// shape (32 clients), each phase sprayDuration long: keys never seen
// before as fast as the clients go, the same at pacedRate, and 200 keys
// cycled as fast as they go. It counts the node's store reads (its
// metrics), the database's lookups by hash (idx_scan of the api_keys hash
// index) and its commits in each phase. Runs once:
//
//	PROFILE_TEST_PG_DSN=postgres://postgres@127.0.0.1:5432/test?sslmode=disable \
//	    go test ./cmd/caddy -run '^$' -bench APIKeySpray -benchtime 1x
func BenchmarkAPIKeySpray(b *testing.B) {
	dsn := pgDSN(b)
	schema := pgSchema(b, dsn)
	s := newSigner(b)
	n := startKeyNode(b, s, fmt.Sprintf("storage postgres {env.PROFILE_TEST_PG_DSN} schema %s", schema))
	key := createKey(b, n, "legit-user", "user").Key
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	for range 50 { // warm: the key cached, the profile made
		if st, body := withKey(b, n.url, key); st != 200 {
			b.Fatalf("%d %s", st, body)
		}
	}
	for b.Loop() {
		ring := make([]string, 200)
		for i := range ring {
			ring[i] = randomKey()
		}
		fresh := func(int) string { return randomKey() }
		alone1 := sprayPhase(b, n, key, nil, 0, conn, schema)
		unique := sprayPhase(b, n, key, fresh, 0, conn, schema)
		paced := sprayPhase(b, n, key, fresh, pacedRate, conn, schema)
		alone2 := sprayPhase(b, n, key, nil, 0, conn, schema)
		repeat := sprayPhase(b, n, key, func(i int) string { return ring[i%len(ring)] }, 0, conn, schema)
		for _, p := range []struct {
			name string
			r    phaseResult
		}{{"alone", alone1}, {"new keys", unique}, {"new keys 1000/s", paced}, {"alone again", alone2}, {"200 keys", repeat}} {
			b.Logf("%-16s legit %5.0f req/s p50 %6.2f ms p99 %6.2f ms | spray %5.0f req/s (401 %d, 503 %d, other %d) | store reads %5.0f/s, hash-index scans %5.0f/s, commits %5.0f/s",
				p.name, p.r.legitRPS, ms(p.r.p50), ms(p.r.p99), p.r.sprayRPS, p.r.spray401, p.r.spray503, p.r.sprayOther, p.r.readsPS, p.r.lookupsPS, p.r.commitsPS)
		}
		alone := alone1
		if alone2.p99 > alone.p99 { // the worse of the two baselines: the ratio is not flattered
			alone = alone2
		}
		b.ReportMetric(alone.legitRPS, "alone-req/s")
		b.ReportMetric(ms(alone.p99), "alone-p99-ms")
		for _, p := range []struct {
			name string
			r    phaseResult
		}{{"new", unique}, {"paced", paced}, {"200keys", repeat}} {
			b.ReportMetric(p.r.sprayRPS, p.name+"-spray-req/s")
			b.ReportMetric(p.r.readsPS, p.name+"-reads/s")
			b.ReportMetric(p.r.lookupsPS, p.name+"-index-scans/s")
			b.ReportMetric(ms(p.r.p99)/ms(alone.p99), p.name+"-p99-ratio")
			b.ReportMetric(p.r.legitRPS/alone.legitRPS, p.name+"-rps-ratio")
		}
	}
}

const (
	sprayDuration = 5 * time.Second
	legitClients  = 4
	sprayClients  = 32
	pacedRate     = 1000 // spray requests a second in the paced phase
)

type phaseResult struct {
	legitRPS, sprayRPS             float64
	p50, p99                       time.Duration
	spray401, spray503, sprayOther int64
	lookupsPS, commitsPS, readsPS  float64
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// sprayPhase runs the legitimate clients with key for sprayDuration, and
// beside them, when spray is not nil, the spraying clients sending
// spray(i) as their i-th key.
func sprayPhase(b *testing.B, n keyNode, key string, spray func(int) string, rate int, conn *pgx.Conn, schema string) phaseResult {
	url := n.url
	legitClient := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: legitClients}}
	sprayClient := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: sprayClients}}
	defer legitClient.CloseIdleConnections()
	defer sprayClient.CloseIdleConnections()
	get := func(c *http.Client, k string) int {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("X-Api-Key", k)
		resp, err := c.Do(req)
		if err != nil {
			b.Error(err)
			return 0
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	lookups0, commits0 := dbCounters(b, conn, schema)
	reads0 := storeReads(b, n)
	var pace <-chan time.Time
	if rate > 0 {
		t := time.NewTicker(time.Second / time.Duration(rate))
		defer t.Stop()
		pace = t.C
	}
	var (
		r       phaseResult
		mu      sync.Mutex
		lat     []time.Duration
		sprayed atomic.Int64
		wg      sync.WaitGroup
	)
	end := time.Now().Add(sprayDuration)
	for range legitClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(end) {
				t0 := time.Now()
				if st := get(legitClient, key); st != 200 {
					b.Errorf("legitimate request: %d", st)
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	if spray != nil {
		for range sprayClients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(end) {
					if pace != nil {
						<-pace
					}
					i := int(sprayed.Add(1))
					switch get(sprayClient, spray(i)) {
					case 401:
						atomic.AddInt64(&r.spray401, 1)
					case 503:
						atomic.AddInt64(&r.spray503, 1)
					default:
						atomic.AddInt64(&r.sprayOther, 1)
					}
				}
			}()
		}
	}
	start := time.Now()
	wg.Wait()
	elapsed := time.Since(start)
	r.readsPS = (storeReads(b, n) - reads0) / elapsed.Seconds()
	lookups1, commits1 := dbCounters(b, conn, schema)
	slices.Sort(lat)
	if len(lat) == 0 {
		b.Fatal("no legitimate request answered")
	}
	r.legitRPS = float64(len(lat)) / elapsed.Seconds()
	r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	r.sprayRPS = float64(r.spray401+r.spray503+r.sprayOther) / elapsed.Seconds()
	r.lookupsPS = float64(lookups1-lookups0) / elapsed.Seconds()
	r.commitsPS = float64(commits1-commits0) / elapsed.Seconds()
	return r
}

// dbCounters reads the scans of the api_keys hash index (the store's
// lookups by hash) and the database's commits, once the backends have
// flushed their statistics (an idle backend flushes within 10 s).
func dbCounters(b *testing.B, conn *pgx.Conn, schema string) (lookups, commits int64) {
	time.Sleep(11 * time.Second)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "SELECT pg_stat_clear_snapshot()"); err != nil {
		b.Fatal(err)
	}
	err := conn.QueryRow(ctx, `SELECT
		(SELECT coalesce(sum(idx_scan), 0)::bigint FROM pg_stat_user_indexes WHERE schemaname = $1 AND indexrelname = 'api_keys_hash_key'),
		(SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())`, schema).Scan(&lookups, &commits)
	if err != nil {
		b.Fatal(err)
	}
	return lookups, commits
}

// storeReads is the node's count of key-store reads made (its metrics:
// found, not_found, failed; not busy, where no read was made).
func storeReads(b *testing.B, n keyNode) float64 {
	resp, err := client.Get(n.admin + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "caddy_workspace_profile_api_key_store_reads_total") || strings.Contains(line, `result="busy"`) {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
			sum += v
		}
	}
	return sum
}

// randomKey is a key of the default shape no one made.
func randomKey() string {
	const alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
	var id [16]byte
	var secret [32]byte
	_, _ = rand.Read(id[:])
	_, _ = rand.Read(secret[:])
	for i := range id {
		id[i] = alnum[int(id[i])%len(alnum)]
	}
	return "wsk_" + string(id[:]) + "_" + base64.RawURLEncoding.EncodeToString(secret[:])
}
