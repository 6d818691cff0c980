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
)

// TestCollectorLoad60s sends 20,000 events/s (200 batches of 100 per second) to the collector for
// 60 seconds, on loopback: every request must be answered 200 (no 5xx), and every event stored.
func TestCollectorLoad60s(t *testing.T) {
	const (
		duration  = 60 * time.Second
		perSecond = 200
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
	t.Logf("sent %d batches (%d events) in %s: %v, p99 %s", sent, sent*perBatch, duration, codes, p99)
	if codes[200] != sent {
		t.Errorf("answers %v: want all %d batches answered 200", codes, sent)
	}
	if sent < int(duration.Seconds())*perSecond*9/10 {
		t.Errorf("only %d batches sent: the rate was not held", sent)
	}
	s.waitStoredWithin(t, 5*time.Minute)
	if n := liveEvents(t, s.database); n != uint64(sent*perBatch) {
		t.Errorf("stored %d distinct events, want %d", n, sent*perBatch)
	}
}
