package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// What soak reads from the server under load: its memory from /proc, and
// from Caddy's admin endpoint the Go heap and the token-cache counters.

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
