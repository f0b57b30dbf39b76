package main

import (
	"fmt"
	"strconv"
	"time"
)

// What soak prints: a sample of the server's memory, the table row of
// each, and the growth summary at the end.

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
