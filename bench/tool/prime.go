package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// prime sends one request per token (GET, or PUT with a small body) from c
// clients and fails unless every answer is 200. bench/run uses it before
// anything is measured, so that every profile exists (create_missing) and
// every token has verified once: the creation writes are acknowledged, hence
// over, before a read is timed. It prints the count, the time taken and the
// size of one answer body on stderr.
func prime(args []string) error {
	fs := flag.NewFlagSet("prime", flag.ContinueOnError)
	url := fs.String("url", "", "the route's URL")
	tokensFile := fs.String("tokens", "", "tokens, one per line")
	method := fs.String("method", "GET", "GET or PUT")
	clients := fs.Int("c", 32, "concurrent clients")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	toks, err := readLines(*tokensFile)
	if err != nil {
		return err
	}
	tr := &http.Transport{MaxIdleConnsPerHost: *clients, DisableCompression: true}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	deadline := time.Now().Add(*timeout)
	start := time.Now()
	var next atomic.Int64
	var failed atomic.Pointer[string]
	var bodySize atomic.Int64
	var wg sync.WaitGroup
	for range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for failed.Load() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(toks) {
					return
				}
				if time.Now().After(deadline) {
					msg := fmt.Sprintf("timed out after %s with %d of %d done", *timeout, i, len(toks))
					failed.CompareAndSwap(nil, &msg)
					return
				}
				var body io.Reader
				if *method == "PUT" {
					body = strings.NewReader(fmt.Sprintf(`{"FirstName":"p%d"}`, i))
				}
				req, err := http.NewRequest(*method, *url, body)
				if err != nil {
					msg := err.Error()
					failed.CompareAndSwap(nil, &msg)
					return
				}
				req.Header.Set("Authorization", "Bearer "+toks[i])
				if body != nil {
					req.Header.Set("Content-Type", "application/json")
				}
				resp, err := client.Do(req)
				if err != nil {
					msg := err.Error()
					failed.CompareAndSwap(nil, &msg)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					msg := fmt.Sprintf("token %d: %s %s", i, resp.Status, truncate(b, 300))
					failed.CompareAndSwap(nil, &msg)
					return
				}
				bodySize.Store(int64(len(b)))
			}
		}()
	}
	wg.Wait()
	if msg := failed.Load(); msg != nil {
		return fmt.Errorf("%s %s: %s", *method, *url, *msg)
	}
	fmt.Fprintf(os.Stderr, "primed %d × %s %s in %s (answer body %d bytes)\n",
		len(toks), *method, *url, time.Since(start).Round(time.Millisecond), bodySize.Load())
	return nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

func readLines(name string) ([]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			out = append(out, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no lines", name)
	}
	return out, nil
}
