package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestHostileHTTPInputs throws slow clients and query parameters built for SQL injection at a
// running Waymark while valid traffic flows: each bad request gets a 4xx or has its connection
// closed, nothing crashes, nothing is stored from a rejected request, and valid traffic is
// unaffected. (The collector's table of bad bodies is TestCollectorSingleCallsAndAuth in ingest.)
func TestHostileHTTPInputs(t *testing.T) {
	s := startServe(t, "--http-read-header-timeout", "1s", "--http-read-timeout", "2s")
	s.replayTaobao(t)
	before := liveEvents(t, s.database)

	// Valid traffic in parallel: 60 batches, all must be answered 200.
	var wg sync.WaitGroup
	statuses := make(chan int, 60)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 60 {
			req, _ := http.NewRequest(http.MethodPost, "http://"+s.http+"/v1/batch",
				strings.NewReader(fmt.Sprintf(`{"batch":[{"type":"track","event":"Product Viewed","userId":"ok-%d","messageId":"ok-%d"}]}`, i, i)))
			req.SetBasicAuth("test-key", "")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				statuses <- 0
				continue
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
			time.Sleep(50 * time.Millisecond)
		}
	}()

	t.Run("slow headers are cut off", func(t *testing.T) {
		conn, err := net.Dial("tcp", s.http)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprint(conn, "POST /v1/track HTTP/1.1\r\nHost: x\r\n")
		// The headers never end, so only the server's --http-read-header-timeout can close the
		// connection; the client's deadline is a guard against a hang, not a measure of speed.
		conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
		if _, err := io.ReadAll(conn); err != nil {
			t.Fatalf("connection not closed by the server: %v", err)
		}
	})
	t.Run("slow body gets 400", func(t *testing.T) {
		conn, err := net.Dial("tcp", s.http)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprint(conn, "POST /v1/track HTTP/1.1\r\nHost: x\r\nAuthorization: Basic dGVzdC1rZXk6\r\nContent-Length: 100\r\n\r\n"+
			`{"event":"A","userId":"slow","messageId":"bad-slow"`)
		conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err == nil {
			defer resp.Body.Close()
			if resp.StatusCode != 400 {
				t.Errorf("status %d, want 400", resp.StatusCode)
			}
		} // a closed connection is also a refusal
	})
	t.Run("query parameters built for SQL injection", func(t *testing.T) {
		for _, q := range []struct {
			params string
			status int
		}{
			// Taken as event names nobody sent: 400 naming steps, nothing matched.
			{"steps=" + url.QueryEscape("Product Viewed' OR '1'='1"), 400},
			{"steps=" + url.QueryEscape("x') UNION ALL SELECT name, [], [], [] FROM system.tables --"), 400},
			{"steps=A&window=" + url.QueryEscape("1h; DROP TABLE events"), 400},
			{"steps=A&from=" + url.QueryEscape("2017-01-01' OR 1=1 --"), 400},
			{"steps=A&to=" + url.QueryEscape("now()"), 400},
		} {
			status, body := httpGet(t, "http://"+s.http+"/api/v1/funnel?"+q.params)
			if status != q.status {
				t.Errorf("%s: %d %s, want %d", q.params, status, body, q.status)
			}
			if status == 200 && !strings.Contains(body, `"customers":0`) {
				t.Errorf("%s matched events: %s", q.params, body)
			}
		}
	})
	t.Run("person ids without a read key", func(t *testing.T) {
		for name, auth := range map[string]string{"none": "", "write key": "Basic dGVzdC1rZXk6", "wrong key": "Bearer guess"} {
			req, _ := http.NewRequest(http.MethodGet, "http://"+s.http+"/api/v1/dropoff?steps="+url.QueryEscape("Product Viewed,Order Completed"), nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 401 || strings.Contains(string(body), `"persons"`) {
				t.Errorf("%s: %d %s, want 401 and no person ids", name, resp.StatusCode, body)
			}
		}
	})
	wg.Wait()
	close(statuses)
	for st := range statuses {
		if st != 200 {
			t.Errorf("valid traffic got %d during the abuse", st)
		}
	}
	s.waitStored(t)
	if n := liveEvents(t, s.database); n != before+60 {
		t.Errorf("stored %d events, want the %d before plus the 60 valid ones", n, before)
	}
	if bad := queryStrings(t, "SELECT message_id FROM "+s.database+".events WHERE message_id LIKE 'bad-%'"); len(bad) > 0 {
		t.Errorf("stored events of rejected requests: %v", bad)
	}
}
