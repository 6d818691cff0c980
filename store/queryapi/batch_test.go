package queryapi_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
	"github.com/waymark-dev/waymark/store/queryapi"
)

// postBatch sends body to srv's /api/v1/batch as contentType and returns the status and the
// JSON answer.
func postBatch(t *testing.T, srvURL, contentType, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(srvURL+"/api/v1/batch", contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d, body not JSON (%v): %s", resp.StatusCode, err, raw)
	}
	return resp.StatusCode, out
}

// TestBatchAnswersAsEachQuery: each query of a batch gets, with its status, what its GET
// answers, errors included; parameters may be JSON strings, numbers or booleans, a whole number
// written with a zero fraction or an exponent too (3.0, 3e0: tester 24's {"depth": 3.0} was a
// 400), and 3.5 is refused as depth=3.5 is.
func TestBatchAnswersAsEachQuery(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil, "Product Viewed", "Product Added", "Order Completed", "Product Viewed")
	status, body := postBatch(t, srv.URL, "application/json", `{"queries": [
		{"query": "funnel", "params": {"steps": "Product Viewed,Order Completed", "window": "1h"}},
		{"query": "stages", "params": {"limit": 3e0}},
		{"query": "paths", "params": {"anchor": "Product Viewed", "collapse": true, "depth": 3.0}},
		{"query": "paths", "params": {"anchor": "Product Viewed", "depth": 3.5}},
		{"query": "funnel", "params": {"steps": "Product Viewed,Nope"}},
		{"query": "next", "params": {"anchor": "Product Viewed", "windw": "7d"}},
		{"query": "sessions"}
	]}`)
	gets := []url.Values{
		{"steps": {"Product Viewed,Order Completed"}, "window": {"1h"}},
		{"limit": {"3"}},
		{"anchor": {"Product Viewed"}, "collapse": {"true"}, "depth": {"3"}},
		{"anchor": {"Product Viewed"}, "depth": {"3.5"}},
		{"steps": {"Product Viewed,Nope"}},
		{"anchor": {"Product Viewed"}, "windw": {"7d"}},
		{},
	}
	names := []string{"funnel", "stages", "paths", "paths", "funnel", "next", "sessions"}
	results, _ := body["results"].([]any)
	if status != 200 || len(results) != len(gets) {
		t.Fatalf("%d %v, want 200 with %d results", status, body, len(gets))
	}
	for i, v := range gets {
		wantStatus, want := getJSON(t, srv, "/api/v1/"+names[i], v)
		got := results[i].(map[string]any)
		if got["query"] != names[i] || got["status"] != float64(wantStatus) {
			t.Errorf("result %d: %v %v, want %s %d", i, got["query"], got["status"], names[i], wantStatus)
		}
		if wantStatus == 200 {
			if !reflect.DeepEqual(got["result"], any(want)) {
				t.Errorf("result %d: %v\nGET answers %v", i, got["result"], want)
			}
			continue
		}
		if got["error"] != want["error"] || got["param"] != want["param"] || got["result"] != nil {
			t.Errorf("result %d: %v, GET answers %d %v", i, got, wantStatus, want)
		}
	}
	if results[3].(map[string]any)["param"] != "depth" || results[4].(map[string]any)["param"] != "steps" || results[5].(map[string]any)["param"] != "windw" {
		t.Errorf("the failed queries name %v, %v and %v, want depth, steps and windw", results[3], results[4], results[5])
	}
}

// TestBadBatchesAre4xx: a body that is no batch is refused whole, naming the field at fault, and
// nothing runs.
func TestBadBatchesAre4xx(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil, "Product Viewed")
	nine := `{"queries": [` + strings.Repeat(`{"query": "sessions"},`, 8) + `{"query": "sessions"}]}`
	tests := []struct {
		name, body string
		status     int
		param      string
	}{
		{"not JSON", `steps=a,b`, 400, "body"},
		{"no queries", `{"queries": []}`, 400, "queries"},
		{"nothing", `{}`, 400, "queries"},
		{"too many", nine, 400, "queries"},
		{"unknown field", `{"queries": [{"query": "sessions"}], "timeout": 5}`, 400, "timeout"},
		{"unknown query field", `{"queries": [{"query": "sessions", "parms": {}}]}`, 400, "queries[0].parms"},
		{"queries not a list", `{"queries": {"query": "sessions"}}`, 400, "queries"},
		{"unknown query", `{"queries": [{"query": "sessions"}, {"query": "funel"}]}`, 400, "queries[1].query"},
		{"null value", `{"queries": [{"query": "stages", "params": {"limit": null}}]}`, 400, "queries[0].params.limit"},
		{"object value", `{"queries": [{"query": "stages", "params": {"limit": {"n": 3}}}]}`, 400, "queries[0].params.limit"},
		{"array value", `{"queries": [{"query": "stages", "params": {"limit": [3]}}]}`, 400, "queries[0].params.limit"},
		{"two objects", `{"queries": [{"query": "sessions"}]} {"queries": []}`, 400, "body"},
		{"trailing brackets", `{"queries": [{"query": "sessions"}]}]]]}}}`, 400, "body"},
		{"an array, not an object", `[]`, 400, "body"},
		{"a parameter twice", `{"queries": [{"query": "stages", "params": {"limit": 3, "limit": 4}}]}`, 400, "queries[0].params.limit"},
		{"queries twice", `{"queries": [{"query": "stages"}], "queries": [{"query": "sessions"}]}`, 400, "queries"},
		{"other letter case", `{"QUERIES": [{"query": "stages"}]}`, 400, "QUERIES"},
		{"other letter case in a query", `{"queries": [{"Query": "stages"}]}`, 400, "queries[0].Query"},
		{"no query name", `{"queries": [{"params": {}}]}`, 400, "queries[0].query"},
		{"params not an object", `{"queries": [{"query": "stages", "params": "limit=3"}]}`, 400, "queries[0].params"},
		{"over a mebibyte", `{"queries": [{"query": "stages", "params": {"limit": "` + strings.Repeat("9", 1<<20) + `"}}]}`, 413, "body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := postBatch(t, srv.URL, "application/json", tt.body)
			if status != tt.status || body["param"] != tt.param || body["error"] == "" || body["results"] != nil {
				t.Errorf("%d %v, want %d naming %q", status, body, tt.status, tt.param)
			}
		})
	}
}

// TestBatchBodyIsPlainJSON: a batch is JSON, uncompressed; another Content-Type or a
// Content-Encoding is a 415 naming the header. No Content-Type, or one with a charset, is read.
func TestBatchBodyIsPlainJSON(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil, "Product Viewed")
	body := `{"queries": [{"query": "sessions"}]}`
	for _, tt := range []struct {
		contentType, encoding string
		status                int
		param                 string
		bom                   string // before the body: a UTF-8 byte order mark is skipped
	}{
		{"", "", 200, "", ""},
		{"application/json", "", 200, "", "\ufeff"},
		{"application/json; charset=utf-8", "", 200, "", ""},
		{"text/plain", "", 415, "Content-Type", ""},
		{"application/x-www-form-urlencoded", "", 415, "Content-Type", ""},
		{"application/json", "gzip", 415, "Content-Encoding", ""},
	} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/batch", strings.NewReader(tt.bom+body))
		if tt.contentType != "" {
			req.Header.Set("Content-Type", tt.contentType)
		}
		if tt.encoding != "" {
			req.Header.Set("Content-Encoding", tt.encoding)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if resp.StatusCode != tt.status || err != nil || tt.status != 200 && got["param"] != tt.param {
			t.Errorf("Content-Type %q, Content-Encoding %q, before the body %q: %d %v (%v), want %d naming %q", tt.contentType, tt.encoding, tt.bom, resp.StatusCode, got, err, tt.status, tt.param)
		}
	}
}

// TestJourneyMap: /api/v1/map lists the journey map's stages in order.
func TestJourneyMap(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil)
	status, body := getJSON(t, srv, "/api/v1/map", nil)
	stages, _ := body["stages"].([]any)
	if status != 200 || len(stages) < 2 || stages[0].(map[string]any)["name"] != "awareness" || body["version"] == "" {
		t.Errorf("%d %v, want the stages from awareness on", status, body)
	}
	if _, ok := stages[0].(map[string]any)["description"]; !ok {
		t.Errorf("%v: a stage without a description has no description member; want it empty", stages[0])
	}
}

// TestEndpointsWithoutParameters: /api/v1/map, /api/v1/queries and POST /api/v1/batch (whose
// queries' parameters are in its body) take no parameters in the URL, and answer one (a misspelt
// parameter meant elsewhere, a query's parameter put in the batch's URL) with a 400 naming it, as
// the queries do: its error starts with the name, and one given with no name (?=x, &=x) is
// "param": "" and "a parameter with no name: …" (the member was left out, and the error began
// ": ").
func TestEndpointsWithoutParameters(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil)
	for _, path := range []string{"/api/v1/map", "/api/v1/queries", "/api/v1/batch"} {
		for _, tt := range []struct {
			query  string
			status int
			param  string
		}{
			{"", 200, ""},
			{"foo=bar", 400, "foo"},
			{"x=1&a=2", 400, "a"},
			{"steps", 400, "steps"},
			{"a;b=1", 400, "a;b"},
			{"=x", 400, ""},
			{"&=x", 400, ""},
			{"z=1&=x", 400, ""},
			{"=", 400, ""},
			{"=%zz", 400, ""},
			{"=a;b", 400, ""},
		} {
			var resp *http.Response
			var err error
			if path == "/api/v1/batch" {
				resp, err = http.Post(srv.URL+path+"?"+tt.query, "application/json", strings.NewReader(`{"queries": [{"query": "sessions"}]}`))
			} else {
				resp, err = http.Get(srv.URL + path + "?" + tt.query)
			}
			if err != nil {
				t.Fatal(err)
			}
			var body map[string]any
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			prefix := tt.param + ": "
			if tt.param == "" {
				prefix = "a parameter with no name: "
			}
			if resp.StatusCode != tt.status || err != nil || tt.status != 200 && (body["param"] != tt.param || !strings.HasPrefix(fmt.Sprint(body["error"]), prefix)) {
				t.Errorf("%s?%s: %d %v (%v), want %d naming %q", path, tt.query, resp.StatusCode, body, err, tt.status, tt.param)
			}
		}
	}
}

// TestBatchTakesStepArrays: in a batch, steps and exclude may be JSON arrays of steps, one entry
// each, where a comma needs no escape: each answer is the GET's with the list escaped. Another
// parameter given as an array, or an array of anything but strings, refuses the batch.
func TestBatchTakesStepArrays(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil, "Checkout, Step 2", "Pay|Now", "Gift[wrap]", `a\`, "Order Completed")
	status, body := postBatch(t, srv.URL, "application/json", `{"queries": [
		{"query": "funnel", "params": {"steps": ["Checkout, Step 2", "Pay|Now", "Gift\\[wrap\\]"]}},
		{"query": "funnel", "params": {"steps": ["a\\", "Order Completed"]}},
		{"query": "funnel", "params": {"steps": ["Checkout, Step 2", "Gift\\[wrap\\]"], "exclude": ["Pay|Now:1-2"]}},
		{"query": "funnel", "params": {"steps": []}}
	]}`)
	gets := []url.Values{
		{"steps": {`Checkout\, Step 2,Pay|Now,Gift\[wrap\]`}},
		{"steps": {`a\\,Order Completed`}},
		{"steps": {`Checkout\, Step 2,Gift\[wrap\]`}, "exclude": {`Pay|Now:1-2`}},
		{"steps": {""}},
	}
	wantCustomers := [][]float64{{1, 1, 1}, {1, 1}, {1, 0}, nil}
	results, _ := body["results"].([]any)
	if status != 200 || len(results) != len(gets) {
		t.Fatalf("%d %v, want 200 with %d results", status, body, len(gets))
	}
	for i, v := range gets {
		wantStatus, want := getJSON(t, srv, "/api/v1/funnel", v)
		got := results[i].(map[string]any)
		if got["status"] != float64(wantStatus) {
			t.Errorf("result %d: %v, GET answers %d %v", i, got, wantStatus, want)
			continue
		}
		if wantStatus != 200 {
			if got["param"] != "steps" || got["error"] != want["error"] {
				t.Errorf("result %d: %v, GET answers %v", i, got, want)
			}
			continue
		}
		if !reflect.DeepEqual(got["result"], any(want)) {
			t.Errorf("result %d: %v\nGET answers %v", i, got["result"], want)
		}
		var customers []float64
		for _, s := range want["steps"].([]any) {
			customers = append(customers, s.(map[string]any)["customers"].(float64))
		}
		if !reflect.DeepEqual(customers, wantCustomers[i]) {
			t.Errorf("result %d: customers %v, want %v", i, customers, wantCustomers[i])
		}
	}
	// An empty step in an array is said to be one, not as a list's empty entry between commas,
	// which an array has none of (tester 49's F4).
	for _, tt := range []struct{ body, param, says string }{
		{`{"queries": [{"query": "next", "params": {"anchor": ["Pay|Now"]}}]}`, "queries[0].params.anchor", "string"},
		{`{"queries": [{"query": "funnel", "params": {"steps": "Pay|Now", "window": ["1h"]}}]}`, "queries[0].params.window", "string"},
	} {
		status, body := postBatch(t, srv.URL, "application/json", tt.body)
		if msg, _ := body["error"].(string); status != 400 || body["param"] != tt.param || !strings.Contains(msg, tt.says) || strings.Contains(msg, "comma") {
			t.Errorf("%s: %d %v, want 400 naming %s that says %q", tt.body, status, body, tt.param, tt.says)
		}
	}
}

// TestABatchsEmptyStepFailsItsQueryAlone (tester 50's F8): an empty step in a query of a batch
// is that query's 400, naming its parameter, beside the other queries' answers, as a GET's
// steps=A,,B is a 400 of that query alone. In a JSON array of steps it failed the whole batch,
// which answered nothing else; a body that is no batch still is refused whole. The empty entry of
// an array is said to be one, not as a list's empty entry between commas, which an array has
// none of (tester 49's F4).
func TestABatchsEmptyStepFailsItsQueryAlone(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil, "Product Viewed", "Order Completed")
	status, body := postBatch(t, srv.URL, "application/json", `{"queries": [
		{"query": "funnel", "params": {"steps": "Product Viewed,Order Completed"}},
		{"query": "funnel", "params": {"steps": ["Product Viewed", " ", "Order Completed"]}},
		{"query": "funnel", "params": {"steps": "Product Viewed,,Order Completed"}},
		{"query": "dropoff", "params": {"steps": ["Product Viewed", "Order Completed"], "exclude": ["", "Pay|Now:1-2"]}},
		{"query": "stages"}
	]}`)
	results, _ := body["results"].([]any)
	if status != 200 || len(results) != 5 {
		t.Fatalf("%d %v, want 200 with 5 results", status, body)
	}
	for i, want := range []struct {
		status      float64
		param, says string
	}{
		{200, "", ""},
		{400, "steps", "steps: entry 2 of the array is empty: each is a step"},
		{400, "steps", "steps: "},
		{400, "exclude", "exclude: entry 1 of the array is empty: each is a step"},
		{200, "", ""},
	} {
		got := results[i].(map[string]any)
		msg, _ := got["error"].(string)
		switch {
		case got["status"] != want.status:
			t.Errorf("result %d: %v, want status %v", i, got, want.status)
		case want.status == 200 && got["result"] == nil:
			t.Errorf("result %d: %v, want an answer", i, got)
		case want.status != 200 && (got["param"] != want.param || !strings.HasPrefix(msg, want.says) || got["result"] != nil):
			t.Errorf("result %d: %v, want an error naming %s that says %q", i, got, want.param, want.says)
		}
	}
	// as a GET answers steps=Product Viewed,,Order Completed
	if wantStatus, want := getJSON(t, srv, "/api/v1/funnel", url.Values{"steps": {"Product Viewed,,Order Completed"}}); results[2].(map[string]any)["error"] != want["error"] || wantStatus != 400 {
		t.Errorf("result 2: %v, GET answers %d %v", results[2], wantStatus, want)
	}
}

// TestABatchsNonStringStepFailsItsQueryAlone (tester 53's F10): a number, boolean, array or
// object in a query's array of steps or exclusions is that query's 400 naming the parameter and
// the entry, the other queries answered, in words and not Go's ("cannot unmarshal number into Go
// value of type string"); it failed the whole batch.
func TestABatchsNonStringStepFailsItsQueryAlone(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil, "Product Viewed", "Order Completed")
	for _, tt := range []struct {
		params, param, says string
	}{
		{`{"steps": [1, "Order Completed"]}`, "steps", `steps: entry 1 of the array is the number 1, not a string: each is a step, its name in quotes`},
		{`{"steps": ["Product Viewed", 1.50]}`, "steps", `steps: entry 2 of the array is the number 1.50, not a string`},
		{`{"steps": ["Product Viewed", true]}`, "steps", `steps: entry 2 of the array is true, not a string`},
		{`{"steps": ["Product Viewed", {"event": "Order Completed"}]}`, "steps", `steps: entry 2 of the array is an object, not a string`},
		{`{"steps": "Product Viewed,Order Completed", "exclude": [["Pay"]]}`, "exclude", `exclude: entry 1 of the array is an array, not a string`},
	} {
		status, body := postBatch(t, srv.URL, "application/json", `{"queries": [
			{"query": "funnel", "params": `+tt.params+`},
			{"query": "funnel", "params": {"steps": ["Product Viewed", "Order Completed"]}}
		]}`)
		results, _ := body["results"].([]any)
		if status != 200 || len(results) != 2 {
			t.Errorf("%s: %d %v, want 200 with 2 results", tt.params, status, body)
			continue
		}
		bad, good := results[0].(map[string]any), results[1].(map[string]any)
		if msg, _ := bad["error"].(string); bad["status"] != 400.0 || bad["param"] != tt.param || !strings.HasPrefix(msg, tt.says) || strings.Contains(msg, "Go value") {
			t.Errorf("%s: %v, want a 400 naming %s that says %q", tt.params, bad, tt.param, tt.says)
		}
		if good["status"] != 200.0 || good["result"] == nil {
			t.Errorf("%s: the other query: %v, want it answered", tt.params, good)
		}
	}
}

// TestBatchAnswers408ToAStalledBody: a batch whose body stops arriving before the server's read
// timeout ends is answered 408 with the API's JSON error naming the body, and the connection
// closed; it was a 400 quoting the read error, with the connection's addresses in it.
func TestBatchAnswers408ToAStalledBody(t *testing.T) {
	t.Parallel()
	jm, err := sessionize.LoadMap("")
	if err != nil {
		t.Fatal(err)
	}
	api, err := queryapi.New(nil, jm, slog.New(slog.DiscardHandler), nil) // the body is never read to a query
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ReadTimeout = 2 * time.Second // long enough for the headers on a busy machine: only the body stalls
	srv.Start()
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The rest of the body never comes, so only the server's read timeout ends the read; the
	// client's deadline keeps a hang from stalling the test, it measures nothing.
	conn.SetDeadline(time.Now().Add(time.Minute))
	fmt.Fprintf(conn, "POST /api/v1/batch HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n%s", host, `{"queries": [{"query": "sessions"`)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var body map[string]string
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("%d, body not JSON: %s", resp.StatusCode, raw)
	}
	if resp.StatusCode != http.StatusRequestTimeout || body["param"] != "body" || body["error"] != ingest.ErrBodyTimeout.Error() {
		t.Errorf("%d %s, want 408 naming param body: %q", resp.StatusCode, raw, ingest.ErrBodyTimeout)
	}
	if strings.Contains(string(raw), "127.0.0.1") || strings.Contains(string(raw), host) {
		t.Errorf("the answer names the connection's addresses: %s", raw)
	}
	if !resp.Close {
		t.Error("the 408 keeps the connection open")
	}
}
