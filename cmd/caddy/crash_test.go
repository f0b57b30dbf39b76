package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCrashKill9UnderPuts (catalogue row D17, see docs/threat-model.md):
// the built binary runs on a bolt file under concurrent PUTs (distinct
// profiles, each writing an increasing counter) and is killed with SIGKILL
// mid-load. Restarted on the same file, it opens it, and every profile
// holds its last acknowledged value or the one that was in flight at the
// kill: never older than acknowledged, never anything else.
func TestCrashKill9UnderPuts(t *testing.T) {
	s := newSigner(t)
	db := filepath.Join(t.TempDir(), "kill9.db")
	storage := "storage bolt " + db

	const writers = 16
	first := startNode(t, s, storage)
	toks := make([]string, writers)
	for i := range toks {
		toks[i] = s.token(t, fmt.Sprintf("kill9-%d", i))
	}
	crashClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: writers}}
	defer crashClient.CloseIdleConnections()
	var (
		acked    [writers]int64 // the last counter answered 200
		inflight [writers]int64 // the counter of the PUT sent last
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := int64(1); !stop.Load(); c++ {
				atomic.StoreInt64(&inflight[i], c)
				req, _ := http.NewRequest("PUT", first.url, strings.NewReader(fmt.Sprintf(`{"FirstName":"c%d"}`, c)))
				req.Header.Set("Authorization", "Bearer "+toks[i])
				req.Header.Set("Content-Type", "application/json")
				resp, err := crashClient.Do(req)
				if err != nil {
					return // the process is gone
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("writer %d, PUT %d: %d", i, c, resp.StatusCode)
					return
				}
				atomic.StoreInt64(&acked[i], c)
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	if err := first.proc.cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = first.proc.cmd.Wait()
	stop.Store(true)
	wg.Wait()

	var total, pending int64
	for i := range writers {
		total += acked[i]
		if inflight[i] > acked[i] {
			pending++
		}
	}
	t.Logf("SIGKILL after %d acknowledged writes over %d profiles; %d writes in flight at the kill", total, writers, pending)
	if total < writers {
		t.Fatalf("only %d writes acknowledged before the kill: the load did not run", total)
	}

	second := startNode(t, s, storage) // the same file: it opens
	for i := range writers {
		req, _ := http.NewRequest("GET", second.url, nil)
		req.Header.Set("Authorization", "Bearer "+toks[i])
		resp, err := crashClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var env struct{ Data struct{ FirstName *string } }
		err = json.NewDecoder(resp.Body).Decode(&env)
		resp.Body.Close()
		a, f := acked[i], inflight[i]
		if resp.StatusCode != 200 || err != nil || env.Data.FirstName == nil {
			if a == 0 && resp.StatusCode == 200 { // never acknowledged: created from claims at most
				continue
			}
			t.Errorf("profile %d after restart: %d %v", i, resp.StatusCode, err)
			continue
		}
		got, perr := strconv.ParseInt(strings.TrimPrefix(*env.Data.FirstName, "c"), 10, 64)
		if perr != nil || got < a || got > f {
			t.Errorf("profile %d holds %q; acknowledged c%d, in flight c%d", i, *env.Data.FirstName, a, f)
		}
	}
}
