package main

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/store/storetest"
)

// TestQueryRequestsCountClientErrorsApart: every request to the query API is counted in
// waymark_query_requests_total by endpoint and status, so the client's errors (a parameter
// misspelt, a query string that does not parse, a path that is no endpoint, a missing read key)
// are counted, and apart from the store's failures, which waymark_store_query_errors_total counts
// (tester 24: typos raised that counter; a request refused before the store was counted
// nowhere).
func TestQueryRequestsCountClientErrorsApart(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	s := startServe(t)
	base := "http://" + s.http + "/api/v1/"
	for _, path := range []string{
		"sessions", "stages", // answered
		"funnel?steps=Never+Stored,Order+Completed", "funnel?steps=Product+Viewed&windw=1h", // refused by the store
		"funnel?steps=%zz",  // refused before it: the query string does not parse
		"funel", "funnel/x", // no endpoint
		"/funnel", "./sessions", "../../x/../api/v1/funnel", // not served as sent (404, not a redirect)
	} {
		httpGet(t, base+path)
	}
	resp, err := http.Get(base + "sessions") // no read key
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	checkScraped(t, s.http, map[string]float64{
		`waymark_query_requests_total{code="200",endpoint="sessions"}`: 1,
		`waymark_query_requests_total{code="200",endpoint="stages"}`:   1,
		`waymark_query_requests_total{code="400",endpoint="funnel"}`:   3,
		`waymark_query_requests_total{code="404",endpoint="unknown"}`:  5,
		`waymark_query_requests_total{code="401",endpoint="sessions"}`: 1,
		`waymark_store_query_param_errors_total{query="funnel"}`:       2,
		`waymark_store_query_errors_total{query="funnel"}`:             0,
	})
}

// TestRequestsAreCountedWhateverAnswers: a request to either API is counted by that API's
// counter whatever answers it: the server's limits on a request's head (414, 431), the
// settings document (and its 405), a client that closes its connection before its body's end
// (499, as nginx counts it; it was a 400, the client's fault), as well as the API's own answers
// (testers 25 and 26: those were counted nowhere).
func TestRequestsAreCountedWhateverAnswers(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	s := startServe(t)
	long := strings.Repeat("a", maxURLBytes)
	for _, tc := range []struct {
		method, path string
		header       string // a header field's value over maxHeaderBytes, when "big"
		want         int
	}{
		{"GET", "/api/v1/funnel?steps=" + long, "", http.StatusRequestURITooLong},
		{"GET", "/api/v1/sessions", "big", http.StatusRequestHeaderFieldsTooLarge},
		{"POST", "/v1/batch?x=" + long, "", http.StatusRequestURITooLong},
		{"POST", "/v1/track", "big", http.StatusRequestHeaderFieldsTooLarge},
		{"GET", "/v1/projects/test-key/settings", "", http.StatusOK},
		{"POST", "/v1/projects/test-key/settings", "", http.StatusMethodNotAllowed},
		{"DELETE", "/v1/projects/test-key/settings", "", http.StatusMethodNotAllowed},
	} {
		req, err := http.NewRequest(tc.method, "http://"+s.http+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+testReadKey)
		if tc.header == "big" {
			req.Header.Set("X-Big", strings.Repeat("b", maxHeaderBytes))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %.60s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
	}
	// Two bodies cut short: the connection closes 10 bytes into a 100-byte body.
	for _, tc := range []struct{ path, auth string }{
		{"/api/v1/batch", "Bearer " + testReadKey},
		{"/v1/batch", "Basic " + base64.StdEncoding.EncodeToString([]byte("test-key:"))},
	} {
		conn, err := net.Dial("tcp", s.http)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"queries\"", tc.path, tc.auth)
		conn.Close()
	}
	// The server reads those in its own time: wait for their counts (the guard only stops a hang).
	cut := []string{`waymark_query_requests_total{code="499",endpoint="batch"}`, `waymark_collector_requests_total{code="499",endpoint="batch"}`}
	for guard := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		metrics := scrape(t, s.http)
		if scrapedValue(metrics, cut[0]) > 0 && scrapedValue(metrics, cut[1]) > 0 || time.Now().After(guard) {
			break
		}
	}
	checkScraped(t, s.http, map[string]float64{
		cut[0]: 1,
		cut[1]: 1,
		`waymark_query_requests_total{code="400",endpoint="batch"}`:        0,
		`waymark_collector_requests_total{code="400",endpoint="batch"}`:    0,
		`waymark_query_requests_total{code="414",endpoint="funnel"}`:       1,
		`waymark_query_requests_total{code="431",endpoint="sessions"}`:     1,
		`waymark_collector_requests_total{code="414",endpoint="batch"}`:    1,
		`waymark_collector_requests_total{code="431",endpoint="track"}`:    1,
		`waymark_collector_requests_total{code="200",endpoint="settings"}`: 1,
		`waymark_collector_requests_total{code="405",endpoint="settings"}`: 2,
	})
}
