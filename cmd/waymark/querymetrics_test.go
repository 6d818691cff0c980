package main

import (
	"net/http"
	"testing"

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
		`waymark_query_requests_total{code="404",endpoint="unknown"}`:  2,
		`waymark_query_requests_total{code="401",endpoint="sessions"}`: 1,
		`waymark_store_query_param_errors_total{query="funnel"}`:       2,
		`waymark_store_query_errors_total{query="funnel"}`:             0,
	})
}
