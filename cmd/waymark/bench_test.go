package main

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// BenchmarkPipeline measures end-to-end throughput: `waymark replay` sends the Taobao sample 100
// times with fresh ids (1,000,000 events) to the dev broker of a running `waymark serve`, which
// sessionizes and stores them in a real ClickHouse; the clock stops when the consumer group has
// committed everything (which it does only after ClickHouse acknowledged the rows).
//
//	go test -run '^$' -bench Pipeline -benchtime 1x ./cmd/waymark
func BenchmarkPipeline(b *testing.B) {
	const repeat = 100
	for b.Loop() {
		s := startServe(b)
		start := time.Now()
		out := s.waymark(b, "replay", "--format", "taobao", "--file", taobaoSample, "--repeat", strconv.Itoa(repeat), "--wait", "10m")
		took := time.Since(start)
		m := regexp.MustCompile(`sent (\d+),`).FindStringSubmatch(out)
		if m == nil || m[1] != strconv.Itoa(repeat*10000) {
			b.Fatalf("replay output:\n%s", out)
		}
		var stored uint64
		if n := liveEvents(b, s.database); n != repeat*10000 {
			b.Fatalf("stored %d distinct events, want %d", n, repeat*10000)
		} else {
			stored = n
		}
		b.ReportMetric(float64(stored)/took.Seconds(), "events/s")
		fmt.Printf("pipeline: %d events stored in %s = %.0f events/s\n", stored, took.Round(time.Millisecond), float64(stored)/took.Seconds())
	}
}
