package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/store/storetest"
)

// TestCollectorLoad60s offers up to 10,000 events/s (100 batches of 100 per second, from 16
// clients that each wait for their answer) to the collector for 60 seconds, on loopback: every
// request must be answered 200 (no 5xx), and every event sent must be stored once. How many
// batches go out depends on how fast the machine is at the time, so the test logs the rate it
// reached and asserts none: speed is measured by `waymark bench` and the benchmarks, not here.
// (20,000 until 2026-12-05: that cost 98 CPU-s of the suite's 15 minutes on 2 cores; a shop's
// peak is far below either, and a minute of it is what the test is about.)
func TestCollectorLoad60s(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	const (
		duration  = 60 * time.Second
		perSecond = 100
		perBatch  = 100
		workers   = 16
	)
	s := startServe(t)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}, Timeout: 30 * time.Second}
	jobs := make(chan int, perSecond)
	var mu sync.Mutex
	codes := map[int]int{}
	var latencies []time.Duration
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range jobs {
				var body bytes.Buffer
				body.WriteString(`{"batch":[`)
				for i := range perBatch {
					if i > 0 {
						body.WriteByte(',')
					}
					fmt.Fprintf(&body, `{"type":"track","event":"Product Viewed","userId":"load-%d","messageId":"load-%d-%d","properties":{"product_id":"p%d"}}`, (n*perBatch+i)%20000, n, i, i)
				}
				body.WriteString(`]}`)
				req, _ := http.NewRequest(http.MethodPost, "http://"+s.http+"/v1/batch", &body)
				req.SetBasicAuth("test-key", "")
				start := time.Now()
				resp, err := client.Do(req)
				code := 0
				if err == nil {
					code = resp.StatusCode
					io.Copy(io.Discard, resp.Body) // read to the end, so the connection is kept
					resp.Body.Close()
				}
				mu.Lock()
				codes[code]++
				latencies = append(latencies, time.Since(start))
				mu.Unlock()
			}
		}()
	}
	tick := time.NewTicker(time.Second / perSecond)
	sent := 0
	for deadline := time.Now().Add(duration); time.Now().Before(deadline); sent++ {
		<-tick.C
		jobs <- sent
	}
	tick.Stop()
	close(jobs)
	wg.Wait()
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	p99 := latencies[len(latencies)*99/100]
	t.Logf("sent %d batches (%d events, %.0f events/s of the %d offered) in %s: %v, p99 %s",
		sent, sent*perBatch, float64(sent*perBatch)/duration.Seconds(), perSecond*perBatch, duration, codes, p99)
	if codes[200] != sent {
		t.Errorf("answers %v: want all %d batches answered 200", codes, sent)
	}
	if sent == 0 {
		t.Fatal("no batch sent")
	}
	s.waitStoredWithin(t, 15*time.Minute) // a hang guard, not a speed bound
	if n := liveEvents(t, s.database); n != uint64(sent*perBatch) {
		t.Errorf("stored %d distinct events, want %d", n, sent*perBatch)
	}
}
