package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
	"github.com/waymark-dev/waymark/store/queryapi"
)

// front is serve's HTTP server without ClickHouse or Kafka: newHTTPServer over countedByAPI with
// a collector whose broker is never reached (write key test-key), a query API without a store,
// /metrics and /healthz. What is asked of it here is answered before either would be needed.
type front struct {
	addr string
}

func startFront(t testing.TB, readTimeout time.Duration) *front {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	collector, err := ingest.NewCollector(ingest.CollectorConfig{Brokers: []string{"127.0.0.1:1"}, WriteKeys: map[string]string{"test-key": "test"}}, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { collector.Close() })
	jm, err := sessionize.LoadMap("")
	if err != nil {
		t.Fatal(err)
	}
	queries, err := queryapi.New(nil, jm, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	mux, apiMux := http.NewServeMux(), http.NewServeMux()
	queries.Register(apiMux)
	mux.Handle("/api/v1/", apiMux)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	notFound := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such path"})
	})
	mux.Handle("/", notFound)
	srv := newHTTPServer(countedByAPI(collector, queries, mux, notFound), httpTimeouts{readHeader: time.Minute, read: readTimeout, write: readTimeout + time.Minute})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &front{addr: ln.Addr().String()}
}

// exchange writes head (its lines separated by "\n") and then body on a new connection, all of
// it before it reads, as python's urllib and most hand-written clients do, and reads the answer.
// A write that fails (the server closed the connection before it read the body) is an error,
// as a client sees it. The deadline is a guard against a hang, not a measure of speed.
func exchange(t *testing.T, addr, head string, body []byte) (*http.Response, map[string]any, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A send buffer a network's in-flight bytes might hold, not loopback's megabytes: the client
	// is still writing when the server stops reading, as a client on a network is.
	if err := conn.(*net.TCPConn).SetWriteBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	if _, err := io.WriteString(conn, strings.ReplaceAll(head, "\n", "\r\n")+"\r\n\r\n"); err != nil {
		return nil, nil, fmt.Errorf("write the head: %w", err)
	}
	if _, err := conn.Write(body); err != nil {
		return nil, nil, fmt.Errorf("write the body: %w", err)
	}
	method, _, _ := strings.Cut(head, " ")
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		return nil, nil, fmt.Errorf("read the answer: %w", err)
	}
	defer resp.Body.Close()
	var answer map[string]any
	b, err := io.ReadAll(resp.Body)
	if err != nil { // the answer must arrive whole, not wait for the body's drain
		return nil, nil, fmt.Errorf("%d: read the answer's body: %w", resp.StatusCode, err)
	}
	if len(b) > 0 && json.Unmarshal(b, &answer) != nil {
		return resp, nil, fmt.Errorf("%d %s: not JSON: %.200s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	return resp, answer, nil
}

// chunked is body in the chunked transfer coding, in chunks of 64 KiB.
func chunked(body []byte) []byte {
	var b strings.Builder
	for len(body) > 0 {
		n := min(len(body), 64<<10)
		fmt.Fprintf(&b, "%x\r\n%s\r\n", n, body[:n])
		body = body[n:]
	}
	b.WriteString("0\r\n\r\n")
	return []byte(b.String())
}

var basicTestKey = "Basic " + base64.StdEncoding.EncodeToString([]byte("test-key:"))

// TestBodyOverItsLimitIsAnsweredToAClientThatWritesItFirst: a body over the tracking API's
// limits (500 KB a batch, 32 KB a single call) or the query API's batch limit (1 MiB) gets its
// 413 naming body even from a client that writes its whole body before it reads (tester F7: it
// got a reset, which Segment's libraries retry forever), whether its Content-Length says so or
// it is chunked; and an answer decided before the body (a 413 by Content-Length, a 401) is not
// held back by a body that never comes.
func TestBodyOverItsLimitIsAnsweredToAClientThatWritesItFirst(t *testing.T) {
	t.Parallel()
	f := startFront(t, 10*time.Minute) // a read timeout no answer here may wait for
	big := []byte(strings.Repeat("x", 3<<20))
	for _, tc := range []struct {
		name, path, auth string
		size             int
		chunked          bool
		member           string // the JSON member naming body
	}{
		{"batch, Content-Length", "/v1/batch", basicTestKey, 2 << 20, false, "field"},
		{"batch, chunked", "/v1/batch", basicTestKey, 2 << 20, true, "field"},
		{"import, chunked, no write key", "/v1/import", "", 2 << 20, true, "field"},
		{"track, Content-Length", "/v1/track", basicTestKey, 1 << 20, false, "field"},
		{"query batch, Content-Length", "/api/v1/batch", "", 3 << 20, false, "param"},
		{"query batch, chunked", "/api/v1/batch", "", 3 << 20, true, "param"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			head := "POST " + tc.path + " HTTP/1.1\nHost: x\nContent-Type: application/json"
			if tc.auth != "" {
				head += "\nAuthorization: " + tc.auth
			}
			body := big[:tc.size]
			if tc.chunked {
				head, body = head+"\nTransfer-Encoding: chunked", chunked(body)
			} else {
				head += fmt.Sprintf("\nContent-Length: %d", len(body))
			}
			resp, answer, err := exchange(t, f.addr, head, body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusRequestEntityTooLarge || answer[tc.member] != "body" || !resp.Close {
				t.Errorf("%d %v (Connection: %s), want 413 naming body, the connection closed after it", resp.StatusCode, answer, resp.Header.Get("Connection"))
			}
		})
	}
	for _, tc := range []struct {
		name, head string
		status     int
	}{
		{"a 413 by Content-Length, the body never sent", "POST /api/v1/batch HTTP/1.1\nHost: x\nContent-Length: 3000000", http.StatusRequestEntityTooLarge},
		{"a 401 before the body, which never comes", "POST /v1/batch HTTP/1.1\nHost: x\nX-Write-Key: wrong\nContent-Length: 5000", http.StatusUnauthorized},
		{"a 405 before the body, which never comes", "PUT /v1/batch HTTP/1.1\nHost: x\nContent-Length: 5000", http.StatusMethodNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, _, err := exchange(t, f.addr, tc.head, []byte(`{"batch":[`))
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status || !resp.Close {
				t.Errorf("%d (Connection: %s), want %d at once, the connection closed after it", resp.StatusCode, resp.Header.Get("Connection"), tc.status)
			}
		})
	}
}

// TestGetWithABodyIsRefusedAtOnce: a GET or HEAD of the query API or the settings whose head
// declares a body (Content-Length over 0, or chunked) is answered 400 naming body, in the JSON of
// the API asked, at once: the body, which a GET may not carry (RFC 9110 §9.3.1), is not waited
// for (tester F6: a query that declared Content-Length: 5000 and sent 10 bytes got its 200 after
// the read timeout). Elsewhere (a 404, /healthz) the body is ignored, the answer not waiting for
// it either. Content-Length: 0 declares none.
func TestGetWithABodyIsRefusedAtOnce(t *testing.T) {
	t.Parallel()
	f := startFront(t, 10*time.Minute) // a read timeout no answer here may wait for
	for _, tc := range []struct {
		name, head string
		status     int
		member     string // the JSON member naming body; "" when the answer is not a refusal
	}{
		{"a query", "GET /api/v1/funnel?steps=A HTTP/1.1\nHost: x\nContent-Length: 5000", 400, "param"},
		{"the map", "GET /api/v1/map HTTP/1.1\nHost: x\nContent-Length: 5000", 400, "param"},
		{"the map, chunked", "GET /api/v1/map HTTP/1.1\nHost: x\nTransfer-Encoding: chunked", 400, "param"},
		{"HEAD of the map", "HEAD /api/v1/map HTTP/1.1\nHost: x\nContent-Length: 5000", 400, ""},
		{"settings", "GET /v1/projects/test-key/settings HTTP/1.1\nHost: x\nContent-Length: 5000", 400, "field"},
		{"no tracking endpoint", "GET /v1/nope HTTP/1.1\nHost: x\nContent-Length: 5000", 404, ""},
		{"no query endpoint", "GET /api/v1/nope HTTP/1.1\nHost: x\nContent-Length: 5000", 404, ""},
		{"healthz", "GET /healthz HTTP/1.1\nHost: x\nContent-Length: 5000", 200, ""},
		{"Content-Length: 0", "GET /api/v1/map HTTP/1.1\nHost: x\nContent-Length: 0", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte("0123456789") // less than declared; the rest never comes
			if strings.Contains(tc.head, "Content-Length: 0") {
				body = nil
			}
			resp, answer, err := exchange(t, f.addr, tc.head, body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("%d %v, want %d", resp.StatusCode, answer, tc.status)
			}
			if tc.member != "" && (answer[tc.member] != "body" || !strings.Contains(answer["error"].(string), "takes no body")) {
				t.Errorf("%v, want %s: body and why", answer, tc.member)
			}
		})
	}
}
