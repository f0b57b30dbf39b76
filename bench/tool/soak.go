package main

import (
	"bufio"
	"encoding/json"
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

// soak is bench/soak's load and memory watch (the README's "Speed, end to end"). It drives
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

type sample struct {
	elapsed              time.Duration
	requests             int64
	rss, anon, file, hwm int64 // bytes
	heap, sys            int64 // bytes, -1 when unknown
	gcs                  int64
	heapOK               bool
}

const mib = 1 << 20

func printHeader() {
	fmt.Println("| elapsed | requests | req/s | RSS MiB | anon MiB | file MiB | HWM MiB | heap MiB | Go sys MiB | GCs |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
}

func printRow(s, prev sample) {
	rate := "—"
	if dt := (s.elapsed - prev.elapsed).Seconds(); dt > 0 {
		rate = fmt.Sprintf("%.0f", float64(s.requests-prev.requests)/dt)
	}
	heap, sys, gcs := "?", "?", "?"
	if s.heapOK {
		heap = fmt.Sprintf("%.1f", float64(s.heap)/mib)
		sys = fmt.Sprintf("%.1f", float64(s.sys)/mib)
		gcs = strconv.FormatInt(s.gcs, 10)
	}
	fmt.Printf("| %s | %d | %s | %.1f | %.1f | %.1f | %.1f | %s | %s | %s |\n",
		fmtElapsed(s.elapsed), s.requests, rate,
		float64(s.rss)/mib, float64(s.anon)/mib, float64(s.file)/mib, float64(s.hwm)/mib, heap, sys, gcs)
}

func fmtElapsed(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}

// summarize prints, for RSS, its anonymous and file-backed parts and the Go
// heap, the value at samples[w], the max and the last value after it, and
// the growth from the one to the other.
func summarize(samples []sample, w int, label string) {
	if w < 0 || w >= len(samples)-1 {
		fmt.Printf("no samples after the %s: no growth figure\n", label)
		return
	}
	after := samples[w+1:]
	fmt.Printf("from %s (%s, %d requests) to the end:\n", fmtElapsed(samples[w].elapsed), label, samples[w].requests)
	line := func(name string, get func(sample) int64, ok bool) {
		if !ok {
			fmt.Printf("  %-5s unknown (admin endpoint not read)\n", name)
			return
		}
		base, last := get(samples[w]), get(after[len(after)-1])
		maxV := base
		for _, s := range after {
			maxV = max(maxV, get(s))
		}
		pct := 0.0
		if base > 0 {
			pct = 100 * float64(last-base) / float64(base)
		}
		fmt.Printf("  %-5s %.1f MiB, then max %.1f, last %.1f: growth %+.1f MiB (%+.1f%%)\n",
			name, float64(base)/mib, float64(maxV)/mib, float64(last)/mib, float64(last-base)/mib, pct)
	}
	heapOK := samples[w].heapOK
	for _, s := range after {
		heapOK = heapOK && s.heapOK
	}
	line("RSS", func(s sample) int64 { return s.rss }, true)
	line("anon", func(s sample) int64 { return s.anon }, true)
	line("file", func(s sample) int64 { return s.file }, true)
	line("heap", func(s sample) int64 { return s.heap }, heapOK)
}

// readProcStatus returns the kB fields of /proc/<pid>/status in bytes.
func readProcStatus(pid int) (map[string]int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 2 && fields[1] == "kB" {
			if v, err := strconv.ParseInt(fields[0], 10, 64); err == nil {
				out[name] = v * 1024
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if _, ok := out["VmRSS"]; !ok {
		return nil, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
	}
	return out, nil
}

type memStats struct {
	HeapAlloc, Sys, NumGC int64
}

// readMemStats reads expvar's memstats from Caddy's admin endpoint.
func readMemStats(c *http.Client, admin string) (memStats, error) {
	var v struct {
		Memstats *memStats `json:"memstats"`
	}
	resp, err := c.Get(strings.TrimRight(admin, "/") + "/debug/vars")
	if err != nil {
		return memStats{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return memStats{}, fmt.Errorf("/debug/vars: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return memStats{}, err
	}
	if v.Memstats == nil {
		return memStats{}, fmt.Errorf("/debug/vars: no memstats")
	}
	return *v.Memstats, nil
}

// cacheLookups sums the module's token-cache counter on /metrics.
func cacheLookups(c *http.Client, admin string) (hit, miss int64, err error) {
	resp, err := c.Get(strings.TrimRight(admin, "/") + "/metrics")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	found := false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "caddy_workspace_profile_token_cache_total{") {
			continue
		}
		fields := strings.Fields(line)
		v, perr := strconv.ParseFloat(fields[len(fields)-1], 64)
		if perr != nil {
			continue
		}
		found = true
		switch {
		case strings.Contains(line, `result="hit"`):
			hit += int64(v)
		case strings.Contains(line, `result="miss"`):
			miss += int64(v)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if !found {
		return 0, 0, fmt.Errorf("no token-cache metric")
	}
	return hit, miss, nil
}
