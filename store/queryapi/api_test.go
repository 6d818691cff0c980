package queryapi_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/waymark-dev/waymark/store"
)

// TestQueryOverItsLimitIs503: a query over its memory limit is a 503 with a message and
// Retry-After.
func TestQueryOverItsLimitIs503(t *testing.T) {
	t.Parallel()
	srv := serve(t, func(c *store.Config) { c.QueryMaxMemory = 1 << 10 }, "Product Viewed", "Order Completed")
	resp, err := http.Get(srv.URL + "/api/v1/funnel?" + url.Values{"steps": {"Product Viewed,Order Completed"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Error string }
	err = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != 503 || err != nil || body.Error == "" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("%s %+v (%v), Retry-After %q; want 503 with a message and Retry-After", resp.Status, body, err, resp.Header.Get("Retry-After"))
	}
	checkPrivate(t, "a query over its limit", resp.Header)
}

// TestUnknownPathsAndMethodsAnswerJSON: a path under /api/v1/ that is no query is a JSON 404
// naming the queries; another method than an endpoint's is a JSON 405 with Allow, saying how
// that endpoint is asked.
func TestUnknownPathsAndMethodsAnswerJSON(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil)
	for _, tt := range []struct {
		method, path string
		status       int
		says         string
	}{
		{http.MethodGet, "/api/v1/nope", 404, "/api/v1/funnel"},
		{http.MethodGet, "/api/v1/", 404, "no such query"},
		{http.MethodPost, "/api/v1/funnel", 405, "GET"},
		{http.MethodDelete, "/api/v1/dropoff", 405, "GET"},
		{http.MethodGet, "/api/v1/batch", 405, "POST"},
		{http.MethodPost, "/api/v1/map", 405, "the journey map is read with GET"}, // it said "the journey queries"
		{http.MethodPut, "/api/v1/queries", 405, "the queries' parameters are read with GET"},
	} {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Error string }
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || err != nil || !strings.Contains(body.Error, tt.says) || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %q (%v), want %d JSON saying %q", tt.method, tt.path, resp.StatusCode, body.Error, err, tt.status, tt.says)
		}
		if tt.status == 405 && resp.Header.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", tt.method, tt.path)
		}
		checkPrivate(t, tt.method+" "+tt.path, resp.Header)
	}
}

// checkPrivate fails t unless an answer's headers keep it from caches and from being read as
// another type than JSON (queryapi's private).
func checkPrivate(t *testing.T, what string, h http.Header) {
	t.Helper()
	if h.Get("Cache-Control") != "no-store" || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("%s: Cache-Control %q, X-Content-Type-Options %q; want no-store and nosniff", what, h.Get("Cache-Control"), h.Get("X-Content-Type-Options"))
	}
}

// TestNotFoundNamesEveryEndpoint: the 404's list of what the API serves named the queries only,
// not the journey map, the parameter schema and the batch (tester 24); every path it names is
// served (no 404 there) and answers another method 405 allowing the one named, and the map,
// schema and batch are among them.
func TestNotFoundNamesEveryEndpoint(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil)
	resp, err := http.Get(srv.URL + "/api/v1/nope")
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Error string }
	err = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 404 || err != nil {
		t.Fatalf("GET /api/v1/nope: %d (%v), want a JSON 404", resp.StatusCode, err)
	}
	named := regexp.MustCompile(`(?:(GET|POST) )?(/api/v1/[a-z]+)`).FindAllStringSubmatch(body.Error, -1)
	var listed []string
	for _, m := range named {
		method, path := cmp.Or(m[1], http.MethodGet), m[2]
		if path == "/api/v1/nope" {
			continue
		}
		listed = append(listed, method+" "+path)
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 404 || resp.StatusCode == 405 {
			t.Errorf("the 404 names %s %s, which answers %d", method, path, resp.StatusCode)
		}
		// Another method gets the 405 allowing the one named, from the same list.
		other := map[string]string{http.MethodGet: http.MethodPost, http.MethodPost: http.MethodGet}[method]
		req, _ = http.NewRequest(other, srv.URL+path, nil)
		if resp, err = http.DefaultClient.Do(req); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if allow := resp.Header.Get("Allow"); resp.StatusCode != 405 || !strings.HasPrefix(allow, method) {
			t.Errorf("%s %s: %d, Allow %q; want 405 allowing %s", other, path, resp.StatusCode, allow, method)
		}
	}
	for _, want := range []string{"GET /api/v1/funnel", "GET /api/v1/sessions", "GET /api/v1/map", "GET /api/v1/queries", "POST /api/v1/batch"} {
		if !slices.Contains(listed, want) {
			t.Errorf("the 404 %q does not name %s", body.Error, want)
		}
	}
}

// TestEmptyParametersAre400: a parameter given empty (window=, a bare collapse) is refused,
// naming it, when it has a default, as the CLI refuses --window="": it silently meant the
// default, and a bare collapse meant false where the CLI's bare --collapse means true (tester
// 29's F1). One without a default takes empty as none, as its flag does.
func TestEmptyParametersAre400(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil, "V", "W")
	for _, tt := range []struct {
		path, query, param, says string // says: in the error ("" for a 200)
	}{
		{"/api/v1/funnel", "steps=V,W&window=", "window", "leave it out for the default 24h"},
		{"/api/v1/funnel", "steps=V,W&mode=+", "mode", "leave it out for the default ordered"},
		{"/api/v1/funnel", "steps=V,W&count_by=", "count_by", "empty value"},
		{"/api/v1/funnel", "steps=V,W&breakdown=channel&breakdown_limit=", "breakdown_limit", "empty value"},
		{"/api/v1/dropoff", "steps=V,W&step=", "step", `"" is not a step to count drop-offs after`},
		{"/api/v1/next", "anchor=V&collapse", "collapse", "give collapse=true"},
		{"/api/v1/paths", "anchor=V&collapse=", "collapse", "give collapse=true"},
		{"/api/v1/retention", "conversion=V&period=", "period", "default week"},
		{"/api/v1/stages", "limit=", "limit", "default 5"},
		{"/api/v1/funnel", "steps=V,W&breakdown=&from=&to=&exclude=", "", ""},
		{"/api/v1/paths", "anchor=V&convert=", "", ""},
	} {
		resp, err := http.Get(srv.URL + tt.path + "?" + tt.query)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if tt.says == "" {
			if resp.StatusCode != 200 {
				t.Errorf("%s?%s: %d %v, want 200", tt.path, tt.query, resp.StatusCode, body)
			}
			continue
		}
		if resp.StatusCode != 400 || body["param"] != tt.param || !strings.Contains(fmt.Sprint(body["error"]), tt.says) {
			t.Errorf("%s?%s: %d %v, want 400 naming %s and saying %q", tt.path, tt.query, resp.StatusCode, body, tt.param, tt.says)
		}
	}
	status, body := postBatch(t, srv.URL, "application/json", `{"queries": [{"query": "funnel", "params": {"steps": "V,W", "window": ""}}]}`)
	results, _ := body["results"].([]any)
	if len(results) != 1 {
		t.Fatalf("batch with an empty window: %d %v", status, body)
	}
	if r := results[0].(map[string]any); r["status"] != float64(400) || r["param"] != "window" {
		t.Errorf("batch with an empty window: %v, want 400 naming window", r)
	}
}

// TestUnknownAndRepeatedParametersAre400: a misspelt parameter would otherwise be ignored and the
// query answer another question than the one asked; a repeated one would use one of its values.
func TestUnknownAndRepeatedParametersAre400(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil, "V", "W")
	for _, tt := range []struct {
		path  string
		v     url.Values
		param string
	}{
		{"/api/v1/funnel", url.Values{"steps": {"V,W"}, "windw": {"7d"}}, "windw"},
		// A required parameter misspelt is named, not reported missing.
		{"/api/v1/funnel", url.Values{"Steps": {"V,W"}}, "Steps"},
		{"/api/v1/dropoff", url.Values{"Steps": {"V,W"}, "step": {"1"}}, "Steps"},
		{"/api/v1/paths", url.Values{"Anchor": {"V"}}, "Anchor"},
		{"/api/v1/next", url.Values{"anchr": {"V"}}, "anchr"},
		// So is one beside a bad value of another.
		{"/api/v1/funnel", url.Values{"steps": {"V,W"}, "window": {"-1h"}, "Mode": {"any"}}, "Mode"},
		{"/api/v1/funnel", url.Values{"steps": {"V,W", "W,V"}}, "steps"},
		{"/api/v1/dropoff", url.Values{"steps": {"V,W"}, "ids-limit": {"5"}}, "ids-limit"},
		// A drop-off is not broken down: it took breakdown and answered as if none were asked
		// (tester 24's F2).
		{"/api/v1/dropoff", url.Values{"steps": {"V,W"}, "breakdown": {"channel"}}, "breakdown"},
		{"/api/v1/dropoff", url.Values{"steps": {"V,W"}, "breakdown_limit": {"1"}}, "breakdown_limit"},
		{"/api/v1/paths", url.Values{"anchor": {"V"}, "mode": {"strict"}}, "mode"},
		{"/api/v1/next", url.Values{"anchor": {"V"}, "depth": {"3"}}, "depth"},
		{"/api/v1/retention", url.Values{"period": {"week"}, "window": {"7d"}}, "window"},
		{"/api/v1/stages", url.Values{"limit": {"3", "4"}}, "limit"},
		{"/api/v1/sessions", url.Values{"limit": {"3", "4"}}, "limit"},
		{"/api/v1/sessions", url.Values{"window": {"7d"}}, "window"},
		// A range that holds no time names to, as the CLI names --to (TestEmptyRangeNamesTo).
		{"/api/v1/sessions", url.Values{"from": {"2026-02-01"}, "to": {"2026-01-01"}}, "to"},
		// Less than a microsecond apart: one time, as queries compare them (tester 19's T7).
		{"/api/v1/sessions", url.Values{"from": {"2026-01-01T10:00:00.0000001Z"}, "to": {"2026-01-01T10:00:00.0000009Z"}}, "to"},
	} {
		code, body := getJSON(t, srv, tt.path, tt.v)
		if code != 400 || body["param"] != tt.param {
			t.Errorf("%s?%s: %d %v, want 400 naming %s", tt.path, tt.v.Encode(), code, body, tt.param)
		}
	}
	// A parameter with no name (?=1, &=1) is named "" (the member was left out, so the 400 did
	// not look like a parameter's fault), and the message says it has no name; so in a batch.
	for _, query := range []string{"steps=V,W&=1", "=1&steps=V,W", "steps=V,W&=", "steps=V,W&=%zz", "steps=V,W&=a;b"} {
		resp, err := http.Get(srv.URL + "/api/v1/funnel?" + query)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if param, ok := body["param"]; resp.StatusCode != 400 || !ok || param != "" || !strings.HasPrefix(fmt.Sprint(body["error"]), "a parameter with no name: ") {
			t.Errorf("?%s: %d %v, want 400 naming the parameter with no name", query, resp.StatusCode, body)
		}
	}
	status, body := postBatch(t, srv.URL, "application/json", `{"queries": [{"query": "funnel", "params": {"steps": "V,W", "": "1"}}]}`)
	results, _ := body["results"].([]any)
	if len(results) != 1 {
		t.Fatalf("batch with a parameter with no name: %d %v", status, body)
	}
	if r := results[0].(map[string]any); r["status"] != float64(400) || r["param"] != "" || !strings.HasPrefix(fmt.Sprint(r["error"]), "a parameter with no name: ") {
		t.Errorf("batch with a parameter with no name: %v, want 400 naming it", r)
	}
	// jQuery's cache-buster (_=<ms>) is no parameter of a query: ignored, on every query.
	for _, path := range []string{"/api/v1/funnel", "/api/v1/stages"} {
		v := url.Values{"_": {"1764849600000"}}
		if path == "/api/v1/funnel" {
			v.Set("steps", "V,W")
		}
		if code, body := getJSON(t, srv, path, v); code != 200 {
			t.Errorf("%s?%s: %d %v, want the cache-buster ignored", path, v.Encode(), code, body)
		}
	}
	// What each query does take still works.
	if code, body := getJSON(t, srv, "/api/v1/dropoff", url.Values{"steps": {"V,W"}, "window": {"1h"}, "ids_limit": {"5"}, "limit": {"3"}, "mode": {"strict"}}); code != 200 {
		t.Errorf("dropoff with its own parameters: %d %v", code, body)
	}
}

// TestBadStepsAre400: steps the store cannot answer as asked are a 400 naming steps, as in the
// CLI (both read the parameters in store): an empty step ("V,,W"), which was dropped and the
// funnel answered for V,W; a regular expression holding a NUL byte, which ClickHouse's match()
// read only up to the NUL, so a filter that matches no value counted every value holding what
// came before it (tester 19's T2). re2's escape for a NUL (\x00) is no NUL byte: taken.
func TestBadStepsAre400(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil, "V", "W")
	for _, tt := range []struct{ steps, error string }{
		{"V,,W", "empty"}, {"V,W,", "empty"},
		{"V[page.path~=1\x00zzz]", "NUL"}, {"V[page.path~=\x00]", "NUL"},
		{`V[page.path~=1\x00zzz]`, ""},
	} {
		code, body := getJSON(t, srv, "/api/v1/funnel", url.Values{"steps": {tt.steps}})
		switch {
		case tt.error == "" && code != 200:
			t.Errorf("steps=%q: %d %v, want 200", tt.steps, code, body)
		case tt.error != "" && (code != 400 || body["param"] != "steps" || !strings.Contains(fmt.Sprint(body["error"]), tt.error)):
			t.Errorf("steps=%q: %d %v, want 400 naming steps (%s)", tt.steps, code, body, tt.error)
		}
	}
}

// TestTimeToConvertOnlyWhereComputed: in mode any no time from the first step to the last is
// computed, and time_to_convert is left out; it was a histogram of zeros while people converted.
func TestTimeToConvertOnlyWhereComputed(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil, "V", "W")
	for _, mode := range []string{"ordered", "strict", "any"} {
		code, body := getJSON(t, srv, "/api/v1/funnel", url.Values{"steps": {"V,W"}, "mode": {mode}})
		steps, _ := body["steps"].([]any)
		if code != 200 || len(steps) != 2 || steps[1].(map[string]any)["customers"] != 1.0 {
			t.Fatalf("mode=%s: %d %v, want a's conversion", mode, code, body)
		}
		buckets, has := body["time_to_convert"].([]any)
		switch {
		case mode == "any" && has:
			t.Errorf("mode=any: time_to_convert %v, want it left out", body["time_to_convert"])
		case mode != "any" && (len(buckets) == 0 || buckets[0].(map[string]any)["count"] != 1.0):
			t.Errorf("mode=%s: time_to_convert %v, want a's second in the first bucket", mode, body["time_to_convert"])
		}
	}
}

// TestQuerySchema: one schema of parameters gives the query string, the CLI's flags and the page's
// defaults; GET /api/v1/queries lists it, and each query reads exactly the parameters it lists.
func TestQuerySchema(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil, "V", "W")
	resp, err := http.Get(srv.URL + "/api/v1/queries")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var schema map[string][]store.Param
	if err := json.NewDecoder(resp.Body).Decode(&schema); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /api/v1/queries: %d %v", resp.StatusCode, err)
	}
	if len(schema) != len(store.QueryNames()) {
		t.Errorf("/api/v1/queries lists %d queries, want %d", len(schema), len(store.QueryNames()))
	}
	required := url.Values{"steps": {"V,W"}, "anchor": {"V"}}
	for _, name := range store.QueryNames() {
		if fmt.Sprint(schema[name]) != fmt.Sprint(store.QueryParams(name)) {
			t.Errorf("%s: /api/v1/queries lists %v, want %v", name, schema[name], store.QueryParams(name))
		}
		v := url.Values{}
		var names []string
		for _, p := range store.QueryParams(name) {
			names = append(names, p.Name)
			if r, ok := required[p.Name]; ok {
				v[p.Name] = r
			}
		}
		// A parameter the schema lists and the query does not read is reported as an error.
		if err := store.CheckParams(name, v); err != nil {
			t.Errorf("%s?%s: %v", name, v.Encode(), err)
		}
		// An unknown one names the schema's parameters.
		v.Set("nonesuch", "1")
		code, body := getJSON(t, srv, "/api/v1/"+name, v)
		slices.Sort(names)
		if want := "it takes " + strings.Join(names, ", "); code != 400 || !strings.Contains(fmt.Sprint(body["error"]), want) {
			t.Errorf("%s?%s: %d %v, want 400 saying %q", name, v.Encode(), code, body, want)
		}
	}
	if got := store.QueryParams("funnel"); len(got) == 0 || got[1].Name != "window" || got[1].Default != "24h" {
		t.Errorf("funnel's parameters: %v, want window second with default 24h", got)
	}
	var pe *store.ParamError
	if err := store.CheckParams("funnel", url.Values{"steps": {"V"}, "count_by": {"visits"}}); !errors.As(err, &pe) || pe.Param != "count_by" {
		t.Errorf("count_by=visits: %v, want a ParamError naming count_by", err)
	}
}

// TestQueryStringPairsAreNeverDropped: Go's query parser leaves out a pair with a ";" or a bad
// escape, which would answer the query without that parameter (over all time, for a dropped
// from); each is a 400 naming the parameter instead.
func TestQueryStringPairsAreNeverDropped(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil, "V", "W")
	for _, tt := range []struct{ query, param string }{
		{"steps=V&from=2024-05-31;", "from"},
		{"steps=V&window=30d;mode=bogus", "window"},
		{"steps=V&from=%zz", "from"},
		{"steps=V&wind%zzow=1h", "wind%zzow"},
	} {
		resp, err := http.Get(srv.URL + "/api/v1/funnel?" + tt.query)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 400 || body["param"] != tt.param {
			t.Errorf("?%s: %d %v, want 400 naming %s", tt.query, resp.StatusCode, body, tt.param)
		}
	}
	// Escaped, the same characters are values like any other.
	if code, body := getJSON(t, srv, "/api/v1/funnel", url.Values{"steps": {"V;W"}}); code != 400 || body["param"] != "steps" || !strings.Contains(fmt.Sprint(body["error"]), "V;W") {
		t.Errorf("steps=V%%3BW: %d %v, want the unknown step named", code, body)
	}
}

// TestAnswersHoldNoNull: every query's answer holds lists as [] and objects as {} when empty,
// never null, over a range with events and one without (tester 19's T5: retention's rates were
// null for a cohort of the period under way, beside returned []), so a client may map over any
// list it is given.
func TestAnswersHoldNoNull(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil, "V", "W", "Order Completed", "V")
	required := map[string]url.Values{"funnel": {"steps": {"V,W"}}, "dropoff": {"steps": {"V,W"}}, "correlation": {"steps": {"V,W"}}, "paths": {"anchor": {"V"}}, "next": {"anchor": {"V"}}}
	for _, name := range store.QueryNames() {
		for _, span := range [][2]string{{"2026-03-01", "2026-03-02"}, {"2025-01-01", "2025-01-02"}} {
			v := url.Values{"from": {span[0]}, "to": {span[1]}}
			for k, vs := range required[name] {
				v[k] = vs
			}
			resp, err := http.Get(srv.URL + "/api/v1/" + name + "?" + v.Encode())
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || bytes.Contains(body, []byte("null")) {
				t.Errorf("%s?%s: %d %s; want 200 without null", name, v.Encode(), resp.StatusCode, body)
			}
			checkPrivate(t, name, resp.Header)
		}
	}
}

// TestAnswersEchoCountBy: the answers of the queries that take count_by say what they counted,
// the default filled in: the drop-off's did not, where the funnel's did (a tester's finding), so
// a drop-off by sessions read as one by persons.
func TestAnswersEchoCountBy(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil, "V", "W", "V")
	for _, name := range store.QueryNames() {
		if !slices.ContainsFunc(store.QueryParams(name), func(p store.Param) bool { return p.Name == "count_by" }) {
			continue
		}
		for _, tt := range []struct{ countBy, want string }{
			{"", store.CountPersons},
			{store.CountPersons, store.CountPersons},
			{store.CountSessions, store.CountSessions},
		} {
			v := url.Values{"steps": {"V,W"}}
			if tt.countBy != "" {
				v.Set("count_by", tt.countBy)
			}
			code, body := getJSON(t, srv, "/api/v1/"+name, v)
			if code != 200 || body["count_by"] != tt.want {
				t.Errorf("%s?%s: %d, count_by %v, want 200 with count_by %q", name, v.Encode(), code, body["count_by"], tt.want)
			}
		}
	}
}

// TestTimeHintsFitWhereTheTimeWasWritten: a time whose + was read as a space gets, in a GET's
// answer, the hint to write the + as %2B in the URL (its query string read it as a space); in a
// batch, whose times come in JSON where a + is a +, it is asked whether the space was a + but
// told nothing of URLs. The store's error says neither (it knows no HTTP).
func TestTimeHintsFitWhereTheTimeWasWritten(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil, "V", "W")
	for _, tt := range []struct{ from, urlHint string }{
		{"2017-11-25T12:00:00 02:00", "In a URL write + as %2B: 2017-11-25T12%3A00%3A00%2B02%3A00"},
		{"2017-11-25 12:00:00 02:00", "In a URL write + as %2B: 2017-11-25+12%3A00%3A00%2B02%3A00"},
		{"2017-11-25 1:00:00", ""}, // no + makes it a time: no hint
	} {
		code, body := getJSON(t, srv, "/api/v1/funnel", url.Values{"steps": {"V"}, "from": {tt.from}})
		msg := fmt.Sprint(body["error"])
		if code != 400 || body["param"] != "from" || tt.urlHint != "" && !strings.HasSuffix(msg, tt.urlHint) || tt.urlHint == "" && strings.Contains(msg, "%2B") {
			t.Errorf("GET from=%q: %d %v, want a 400 naming from ending %q", tt.from, code, body, tt.urlHint)
		}
		batch, _ := json.Marshal(map[string]any{"queries": []any{map[string]any{"query": "funnel", "params": map[string]string{"steps": "V", "from": tt.from}}}})
		code, answer := postBatch(t, srv.URL, "application/json", string(batch))
		results, _ := answer["results"].([]any)
		var first map[string]any
		if len(results) == 1 {
			first, _ = results[0].(map[string]any)
		}
		msg = fmt.Sprint(first["error"])
		if code != 200 || first["param"] != "from" || strings.Contains(msg, "%2B") || strings.Contains(msg, "was the space a +") != (tt.urlHint != "") {
			t.Errorf("batch from=%q: %d %v, want from named, asked about a + when one makes it a time, and no URL hint", tt.from, code, answer)
		}
	}
}

// TestEmptyRangeNamesTo: a to not after from is refused naming to, for every query with a
// range, as the CLI names --to (store.CheckRange; the API named from, the CLI --to).
func TestEmptyRangeNamesTo(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil, "V", "W")
	required := url.Values{"steps": {"V,W"}, "anchor": {"V"}}
	for _, name := range store.QueryNames() {
		for _, rng := range [][2]string{{"2026-03-01", "2026-03-01"}, {"2026-03-01T12:00:00.000300Z", "2026-03-01T12:00:00.0003Z"}, {"2026-03-02", "2026-03-01"}} {
			v := url.Values{"from": {rng[0]}, "to": {rng[1]}}
			for _, p := range store.QueryParams(name) {
				if r, ok := required[p.Name]; ok {
					v[p.Name] = r
				}
			}
			code, body := getJSON(t, srv, "/api/v1/"+name, v)
			if code != 400 || body["param"] != "to" || !strings.Contains(fmt.Sprint(body["error"]), "is not after from") {
				t.Errorf("%s?%s: %d %v, want a 400 naming to", name, v.Encode(), code, body)
			}
		}
	}
}

// TestAPlusReadAsASpaceInANameIsHinted (tester 50's F6): a query string reads an unencoded + as
// a space (application/x-www-form-urlencoded), so a step naming a stored "Add+On Purchased",
// written so in a URL, asked for "Add On Purchased", never stored: the 400 said only that it
// is neither a stage nor a stored event. It names the stored name with the + and, in a GET's
// answer, says to write the + as %2B; a batch, whose JSON takes a + as it is, is told of the
// stored name alone. Written %2B, the name is found.
func TestAPlusReadAsASpaceInANameIsHinted(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil, "V", "Add+On Purchased", "C++ Course Viewed")
	get := func(path, rawQuery string) (int, map[string]any) {
		t.Helper()
		resp, err := http.Get(srv.URL + path + "?" + rawQuery)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("%s?%s: %d, body not JSON: %v", path, rawQuery, resp.StatusCode, err)
		}
		return resp.StatusCode, out
	}
	for _, tt := range []struct{ path, query, param, stored, hint string }{
		{"/api/v1/funnel", "steps=V,Add+On+Purchased", "steps", `"Add+On Purchased"`, "In a URL write + as %2B: Add%2BOn+Purchased"},
		{"/api/v1/funnel", "steps=C+++Course+Viewed,V", "steps", `"C++ Course Viewed"`, "In a URL write + as %2B: C%2B%2B+Course+Viewed"},
		{"/api/v1/next", "anchor=Add+On+Purchased", "anchor", `"Add+On Purchased"`, "In a URL write + as %2B: Add%2BOn+Purchased"},
		{"/api/v1/funnel", "steps=V,V&exclude=Add+On+Purchased", "exclude", `"Add+On Purchased"`, "In a URL write + as %2B: Add%2BOn+Purchased"},
	} {
		code, body := get(tt.path, tt.query)
		msg := fmt.Sprint(body["error"])
		if code != 400 || body["param"] != tt.param || !strings.Contains(msg, tt.stored) || !strings.HasSuffix(msg, tt.hint) {
			t.Errorf("GET %s?%s: %d %v, want a 400 naming %s and the stored %s, ending %q", tt.path, tt.query, code, body, tt.param, tt.stored, tt.hint)
		}
	}
	if code, body := get("/api/v1/funnel", "steps=V,Add%2BOn+Purchased"); code != 200 {
		t.Errorf("GET steps=V,Add%%2BOn+Purchased: %d %v, want 200", code, body)
	}
	// no + makes it a stored name: no hint
	if code, body := get("/api/v1/funnel", "steps=V,Add+Off+Purchased"); code != 400 || strings.Contains(fmt.Sprint(body["error"]), "%2B") {
		t.Errorf("GET steps=V,Add+Off+Purchased: %d %v, want a 400 without a hint of %%2B", code, body)
	}
	code, answer := postBatch(t, srv.URL, "application/json", `{"queries": [{"query": "funnel", "params": {"steps": "V,Add On Purchased"}}]}`)
	results, _ := answer["results"].([]any)
	var first map[string]any
	if len(results) == 1 {
		first, _ = results[0].(map[string]any)
	}
	if msg := fmt.Sprint(first["error"]); code != 200 || first["param"] != "steps" || !strings.Contains(msg, `"Add+On Purchased"`) || strings.Contains(msg, "%2B") {
		t.Errorf("batch steps V,Add On Purchased: %d %v, want steps named with the stored name, and no URL hint", code, answer)
	}
}

// TestThePlusHintIsTheStepToWrite (tester 53's F3): the hint of a + read as a space gives the
// step as it is to be written in the URL, the name escaped as a step (a comma or bracket of it
// after a backslash) and after event: when the step was written so; pasted into the URL it
// finds the event. It gave the name alone, which split at its comma or read its brackets as a
// filter, and dropped event:.
func TestThePlusHintIsTheStepToWrite(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil, "V", "Gift+Card, Bought", "Size+Guide [Opened]", "Add+On Purchased")
	get := func(rawQuery string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/api/v1/funnel?" + rawQuery)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("%s: %d, body not JSON: %v", rawQuery, resp.StatusCode, err)
		}
		msg, _ := out["error"].(string)
		return resp.StatusCode, msg
	}
	const says = "In a URL write + as %2B: "
	for _, tt := range []struct{ step, hint string }{
		{`Gift+Card%5C,+Bought`, `Gift%2BCard%5C%2C+Bought`},
		{`Size+Guide+%5C%5BOpened%5C%5D`, `Size%2BGuide+%5C%5BOpened%5C%5D`},
		{`event:Add+On+Purchased`, `event%3AAdd%2BOn+Purchased`},
	} {
		code, msg := get("steps=V," + tt.step)
		_, hint, ok := strings.Cut(msg, says)
		if code != 400 || !ok || hint != tt.hint {
			t.Errorf("steps=V,%s: %d %q, want a 400 ending %q", tt.step, code, msg, says+tt.hint)
			continue
		}
		if code, msg := get("steps=V," + hint); code != 200 {
			t.Errorf("steps=V,%s, as hinted: %d %q, want 200", hint, code, msg)
		}
	}
}
