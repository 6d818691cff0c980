package ingest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkCollector posts batches of 100 events from concurrent clients to a collector backed
// by the in-process broker (8 clients), all on loopback, and reports events/s and request latency percentiles.
// Each iteration is one batch; the run is bounded by -benchtime.
//
//	go test -run '^$' -bench Collector -benchtime 3000x ./ingest
func BenchmarkCollector(b *testing.B) {
	e := startCollector(b, nil)
	const perBatch, clients = 100, 8
	bodies := make([][]byte, 64)
	for i := range bodies {
		var buf bytes.Buffer
		buf.WriteString(`{"batch":[`)
		for j := range perBatch {
			if j > 0 {
				buf.WriteByte(',')
			}
			fmt.Fprintf(&buf, `{"type":"track","event":"Product Viewed","userId":"u%d","timestamp":"2026-05-01T10:00:00Z","properties":{"product_id":"p%d","price":12.5}}`, (i*perBatch+j)%5000, j)
		}
		buf.WriteString(`],"sentAt":"2026-05-01T10:00:00Z"}`)
		bodies[i] = buf.Bytes()
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	var mu sync.Mutex
	var latencies []time.Duration
	jobs := make(chan int)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for i := range jobs {
				t0 := time.Now()
				req, _ := http.NewRequest(http.MethodPost, e.url+"/v1/batch", bytes.NewReader(bodies[i%len(bodies)]))
				req.SetBasicAuth("key-web", "")
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					continue
				}
				io.Copy(io.Discard, resp.Body) // read to the end, so the connection is kept
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("status %d", resp.StatusCode)
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		}()
	}
	for i := range b.N {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(latencies)
	pct := func(p float64) float64 { return latencies[int(p*float64(len(latencies)-1))].Seconds() * 1000 }
	b.ReportMetric(float64(b.N*perBatch)/elapsed.Seconds(), "events/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
