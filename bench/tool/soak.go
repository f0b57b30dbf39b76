package main

import (
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// soak is bench/soak's load and memory watch (docs/speed.md gives its figures, DEVELOPMENT.md how to run it). It drives
// the profile route with c keep-alive clients for d: each request takes the
// next token of the file (one shared counter, so every token is used in
// turn and a token cache smaller than the file churns), a GET, or with
// probability -put percent a PUT of {"FirstName":"A<k>"} (k the request's
// number, so every PUT writes). Every -every it samples the server's memory
// from /proc/<pid>/status (VmRSS, its anonymous and file-backed parts, and
// VmHWM, the peak) and, when -admin is set, the Go heap from Caddy's admin
// endpoint (/debug/vars, expvar's memstats), and prints a row of the table
// at once. At the end it prints a summary: RSS at the end of the warm-up,
// its max and last value after it, the growth after the warm-up in MiB and
// % (and the same from the end of the first pass over the tokens, when every
// profile exists), the answers by status, and the token-cache lookups
// (/metrics). Any answer but 200, or a transport error, makes it exit
// non-zero.
func soak(args []string) error {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	url := fs.String("url", "", "the route's URL")
	tokensFile := fs.String("tokens", "", "tokens, one per line")
	clients := fs.Int("c", 16, "concurrent keep-alive clients")
	dur := fs.Duration("d", 10*time.Minute, "duration of the load")
	warmup := fs.Duration("warmup", 2*time.Minute, "warm-up: growth is measured from its end")
	every := fs.Duration("every", 10*time.Second, "sampling interval")
	putPct := fs.Int("put", 20, "percentage of PUTs (the rest are GETs)")
	pid := fs.Int("pid", 0, "the server's process id (for /proc/<pid>/status)")
	admin := fs.String("admin", "", "Caddy's admin endpoint, e.g. http://127.0.0.1:2019 (optional)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" || *tokensFile == "" || *pid <= 0 || *clients < 1 || *dur <= 0 || *every <= 0 || *putPct < 0 || *putPct > 100 {
		return fmt.Errorf("want -url, -tokens, -pid, -c >= 1, -d > 0, -every > 0, 0 <= -put <= 100")
	}
	if _, err := readProcStatus(*pid); err != nil {
		return err
	}
	loadStart := time.Now()
	toks, err := readLines(*tokensFile)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "soak: %d tokens read in %s\n", len(toks), time.Since(loadStart).Round(time.Millisecond))
	n := int64(len(toks))

	tr := &http.Transport{
		MaxIdleConnsPerHost: *clients,
		MaxConnsPerHost:     *clients,
		DisableCompression:  true,
		IdleConnTimeout:     time.Minute,
	}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	adminClient := &http.Client{Timeout: 10 * time.Second}

	var (
		next, gets, puts, transportErrs atomic.Int64
		status                          [600]atomic.Int64
		firstBad                        sync.Map // status or "transport" -> first answer
	)
	bad := func(key string, msg string) { firstBad.LoadOrStore(key, msg) }

	var samples []sample
	take := func(elapsed time.Duration) (sample, error) {
		s := sample{elapsed: elapsed, requests: gets.Load() + puts.Load()}
		mem, err := readProcStatus(*pid)
		if err != nil {
			return s, err
		}
		s.rss, s.anon, s.file, s.hwm = mem["VmRSS"], mem["RssAnon"], mem["RssFile"], mem["VmHWM"]
		s.heap, s.sys, s.heapOK = -1, -1, false
		if *admin != "" {
			if ms, err := readMemStats(adminClient, *admin); err == nil {
				s.heap, s.sys, s.gcs, s.heapOK = ms.HeapAlloc, ms.Sys, ms.NumGC, true
			}
		}
		return s, nil
	}
	printHeader()
	s0, err := take(0)
	if err != nil {
		return err
	}
	samples = append(samples, s0)
	printRow(s0, sample{})

	start := time.Now()
	stop := start.Add(*dur)
	var wg sync.WaitGroup
	for w := range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w)+1, uint64(start.UnixNano())))
			for time.Now().Before(stop) {
				k := next.Add(1) - 1
				tok := toks[k%n]
				var body io.Reader
				method := http.MethodGet
				if rng.IntN(100) < *putPct {
					method = http.MethodPut
					body = strings.NewReader(`{"FirstName":"A` + strconv.FormatInt(k, 10) + `"}`)
				}
				req, err := http.NewRequest(method, *url, body)
				if err != nil {
					transportErrs.Add(1)
					bad("transport", err.Error())
					return
				}
				req.Header.Set("Authorization", "Bearer "+tok)
				if body != nil {
					req.Header.Set("Content-Type", "application/json")
				}
				resp, err := client.Do(req)
				if err != nil {
					transportErrs.Add(1)
					bad("transport", err.Error())
					time.Sleep(100 * time.Millisecond) // a dead server must not spin the loop
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if method == http.MethodGet {
					gets.Add(1)
				} else {
					puts.Add(1)
				}
				code := resp.StatusCode
				if code < 0 || code >= len(status) {
					code = 0
				}
				status[code].Add(1)
				if resp.StatusCode != http.StatusOK {
					bad(strconv.Itoa(resp.StatusCode), fmt.Sprintf("%s on token %d: %s", method, k%n, truncate(b, 300)))
				}
			}
		}()
	}

	// sample on a fixed grid from the start of the load
	var serverGone error
	prev := s0
	for t := *every; ; t += *every {
		last := t >= *dur
		if last {
			t = *dur
		}
		time.Sleep(time.Until(start.Add(t)))
		s, err := take(t)
		if err != nil {
			serverGone = err
			break
		}
		samples = append(samples, s)
		printRow(s, prev)
		prev = s
		if last {
			break
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	tr.CloseIdleConnections()
	if serverGone != nil {
		return fmt.Errorf("the server's memory could not be read (did it exit?): %w", serverGone)
	}

	// ------------------------------------------------------------ summary
	total := gets.Load() + puts.Load()
	fmt.Println()
	fmt.Printf("load: %d requests in %s (%.0f/s), %d GET and %d PUT, %d clients; %d tokens, %d used (%.2f passes)\n",
		total, elapsed.Round(time.Second), float64(total)/elapsed.Seconds(), gets.Load(), puts.Load(), *clients,
		n, min(total, n), float64(total)/float64(n))
	var codes []string
	for c := range status {
		if v := status[c].Load(); v > 0 {
			codes = append(codes, fmt.Sprintf("%d: %d", c, v))
		}
	}
	if e := transportErrs.Load(); e > 0 {
		codes = append(codes, fmt.Sprintf("transport errors: %d", e))
	}
	fmt.Printf("answers: %s\n", strings.Join(codes, ", "))
	if *admin != "" {
		if hit, miss, err := cacheLookups(adminClient, *admin); err == nil {
			fmt.Printf("token cache (since the server started): %d hits, %d misses\n", hit, miss)
		}
	}
	w := -1
	for i, s := range samples {
		if s.elapsed <= *warmup {
			w = i
		}
	}
	summarize(samples, w, "end of warm-up")
	// Until every token has been used once, create_missing is still
	// writing new profiles and the bolt file (mapped, so in RSS) grows
	// with them: growth from the first sample after the first pass is
	// what the server does once the data set stops growing.
	for i, s := range samples {
		if s.requests >= n {
			if i > w {
				summarize(samples, i, "first pass over the tokens done")
			}
			break
		}
	}
	fmt.Printf("peak RSS (VmHWM) over the whole run: %.1f MiB\n", float64(samples[len(samples)-1].hwm)/mib)

	failed := false
	firstBad.Range(func(k, v any) bool {
		fmt.Fprintf(os.Stderr, "soak: first %s: %s\n", k, v)
		failed = true
		return true
	})
	if failed {
		return fmt.Errorf("answers other than 200, or transport errors (above)")
	}
	return nil
}
