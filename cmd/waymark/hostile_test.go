package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/ingest/ingesttest"
	"github.com/waymark-dev/waymark/store/storetest"
)

// TestHostileHTTPInputs throws slow clients and query parameters built for SQL injection at a
// running Waymark while valid traffic flows: each bad request gets a 4xx or has its connection
// closed, nothing crashes, nothing is stored from a rejected request, and valid traffic is
// unaffected. (The collector's table of bad bodies is TestCollectorSingleCallsAndAuth in ingest.)
func TestHostileHTTPInputs(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
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
	t.Run("slow body gets 408", func(t *testing.T) {
		conn, err := net.Dial("tcp", s.http)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprint(conn, "POST /v1/track HTTP/1.1\r\nHost: x\r\nAuthorization: Basic dGVzdC1rZXk6\r\nContent-Length: 100\r\n\r\n"+
			`{"event":"A","userId":"slow","messageId":"bad-slow"`)
		conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer to a slow body: %v", err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout || strings.Contains(string(raw), "127.0.0.1") {
			t.Errorf("%d %s, want 408 without the connection's addresses", resp.StatusCode, raw)
		}
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

// hostileEvents are Segment messages that hurt a running Waymark (../shared/cases/hostile, rows
// 1 and 2, and what an audit of every metric and every use of an event's values found of the
// same kind). Each is stored or dead-lettered with its reason, and none may crash or stall the
// consumer or leave a metric NaN or infinite. In msg, %[1]s is replaced by a unique message id.
var hostileEvents = []struct {
	name string
	msg  string
	dlq  string // the dead-letter reason; "" when the event is stored
	// ignored is the reason the event's amount stays out of the revenue metrics, if it does.
	ignored string
	refund  float64 // the amount it refunds
}{
	{name: "refund: negative revenue", msg: `{"type":"track","event":"Order Completed","userId":"h1","messageId":"%[1]s","properties":{"revenue":-5}}`, refund: 5},
	{name: "refund: negative total", msg: `{"type":"track","event":"Order Completed","userId":"h1","messageId":"%[1]s","properties":{"total":-1}}`, refund: 1},
	{name: "refund: Order Refunded", msg: `{"type":"track","event":"Order Refunded","userId":"h1","messageId":"%[1]s","properties":{"order_id":"o1","total":3}}`, refund: 3},
	{name: "revenue NaN as a string", msg: `{"type":"track","event":"Order Completed","userId":"h2","messageId":"%[1]s","properties":{"revenue":"NaN"}}`, ignored: "not_finite"},
	{name: "revenue Infinity as a string", msg: `{"type":"track","event":"Order Completed","userId":"h2","messageId":"%[1]s","properties":{"revenue":"Infinity"}}`, ignored: "not_finite"},
	{name: "revenue -Infinity as a string", msg: `{"type":"track","event":"Order Completed","userId":"h2","messageId":"%[1]s","properties":{"revenue":"-Infinity"}}`, ignored: "not_finite"},
	{name: "revenue beyond float64", msg: `{"type":"track","event":"Order Completed","userId":"h2","messageId":"%[1]s","properties":{"revenue":1e999}}`, ignored: "not_finite"},
	{name: "huge revenue (twice overflows a counter)", msg: `{"type":"track","event":"Order Completed","userId":"h3","messageId":"%[1]s","properties":{"revenue":1e308}}`, ignored: "out_of_range"},
	{name: "huge revenue again", msg: `{"type":"track","event":"Order Completed","userId":"h3","messageId":"%[1]s","properties":{"revenue":1.7e308}}`, ignored: "out_of_range"},
	// Above MaxOrderAmount as written, though the float64 nearest it is 1e12 (tester 58's F1).
	{name: "revenue just above the bound", msg: `{"type":"track","event":"Order Completed","userId":"h3","messageId":"%[1]s","properties":{"revenue":1000000000000.0000000000001}}`, ignored: "out_of_range"},
	{name: "revenue with a currency", msg: `{"type":"track","event":"Order Completed","userId":"h3","messageId":"%[1]s","properties":{"revenue":"12 EUR"}}`, ignored: "not_a_number"},
	{name: "revenue an array", msg: `{"type":"track","event":"Order Completed","userId":"h3","messageId":"%[1]s","properties":{"revenue":[5]}}`, ignored: "not_a_number"},
	{name: "timestamp year 1 (Go's zero time)", msg: `{"type":"track","event":"Product Viewed","userId":"h4","messageId":"%[1]s","timestamp":"0001-01-01T00:00:00Z"}`, dlq: "invalid_timestamp"},
	{name: "timestamp year 9999", msg: `{"type":"track","event":"Product Viewed","userId":"h4","messageId":"%[1]s","timestamp":"9999-12-31T23:59:59Z"}`, dlq: "invalid_timestamp"},
	// The correction for its skew would put it after it was received: its own time stands (2026).
	{name: "device clock at year 1", msg: `{"type":"track","event":"Product Viewed","userId":"h4","messageId":"%[1]s","originalTimestamp":"2026-01-01T00:00:00Z","sentAt":"0001-01-01T00:00:00Z"}`},
	{name: "sentAt decades before timestamp", msg: `{"type":"track","event":"Product Viewed","userId":"h4","messageId":"%[1]s","timestamp":"2024-05-15T10:00:00Z","sentAt":"2000-01-01T00:00:00Z"}`},
	// The correction would put it before 2000: its own time stands too (2000-01-01 00:00:05).
	{name: "sentAt decades after originalTimestamp", msg: `{"type":"track","event":"Product Viewed","userId":"h4","messageId":"%[1]s","originalTimestamp":"2000-01-01T00:00:05Z","sentAt":"2099-12-31T00:00:00Z"}`},
	{name: "timestamp in 2100, which no query can name", msg: `{"type":"track","event":"Product Viewed","userId":"h4","messageId":"%[1]s","timestamp":"2100-12-31T23:59:59Z"}`, dlq: "invalid_timestamp"},
	{name: "one-digit hour", msg: `{"type":"track","event":"Product Viewed","userId":"h4","messageId":"%[1]s","timestamp":"2024-05-15T1:00:00Z"}`, dlq: "invalid_timestamp"},
	// Deeper than encoding/json (10,000) and the scanner (512) accept.
	{name: "nesting 10,500 deep", msg: `{"type":"track","event":"Product Viewed","userId":"h5","messageId":"%[1]s","properties":{"a":` + strings.Repeat(`[`, 10500) + strings.Repeat(`]`, 10500) + `}}`, dlq: "invalid_json"},
	{name: "event name of the wrong type", msg: `{"type":"track","event":5,"userId":"h5","messageId":"%[1]s"}`, dlq: "invalid_field"},
	// Bytes that are not UTF-8 are read as encoding/json reads them (U+FFFD) in a name, and
	// refuse the message in an id, which they would merge with others.
	{name: "invalid UTF-8 in an id", msg: "{\"type\":\"track\",\"event\":\"Product \xff\xfe Viewed\",\"userId\":\"h6\xc3\",\"messageId\":\"%[1]s\"}", dlq: "invalid_field"},
	{name: "invalid UTF-8 in a name", msg: "{\"type\":\"track\",\"event\":\"Product \xff\xfe Viewed\",\"userId\":\"h6\",\"messageId\":\"%[1]s\"}"},
	{name: "invalid UTF-8 outside a string", msg: "{\"type\":\"track\",\"event\":\"Product Viewed\",\xff\"userId\":\"h6\",\"messageId\":\"%[1]s\"}", dlq: "invalid_json"},
	{name: "event over 32 KiB", msg: `{"type":"track","event":"Product Viewed","userId":"h6","messageId":"%[1]s","properties":{"blob":"` + strings.Repeat("x", 40<<10) + `"}}`, dlq: "too_large"},
	{name: "userId a number beyond float64", msg: `{"type":"track","event":"Product Viewed","userId":1e999,"messageId":"%[1]s"}`},
	// A name no query could ask about (ingest.MaxNameBytes) is refused; one at the limit is stored.
	{name: "event name of 20 KB", msg: `{"type":"track","event":"` + strings.Repeat("x", 20<<10) + `","userId":"h7","messageId":"%[1]s"}`, dlq: "name_too_long"},
	{name: "event name of 1 KiB", msg: `{"type":"track","event":"` + strings.Repeat("x", 1<<10) + `","userId":"h7","messageId":"%[1]s"}`},
	{name: "page name of 2 KiB", msg: `{"type":"page","name":"` + strings.Repeat("x", 2<<10) + `","userId":"h7","messageId":"%[1]s"}`, dlq: "name_too_long"},
	{name: "2,000 properties", msg: `{"type":"track","event":"Product Viewed","userId":"h7","messageId":"%[1]s","properties":{` + manyProperties(2000) + `}}`},
	{name: "empty strings", msg: `{"type":"page","name":"","userId":"h8","anonymousId":"","messageId":"%[1]s","properties":{"":"","path":""},"context":{"page":{"path":"","referrer":""},"campaign":{"medium":""}}}`},
}

func manyProperties(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"p%d":%d`, i, i)
	}
	return b.String()
}

// produceHostile writes every hostile event straight to Kafka, each followed by a good event of
// the same customer key (so in the same partition, behind it), with message ids prefixed by
// prefix. It returns the ids of the good events and of the hostile ones that must be stored.
func produceHostile(t *testing.T, broker, prefix string) (good, stored []string) {
	t.Helper()
	w := &kafka.Writer{Transport: ingesttest.Transport(t), Addr: kafka.TCP(broker), Topic: "waymark.events", RequiredAcks: kafka.RequireAll, Balancer: &kafka.Murmur2Balancer{}}
	defer w.Close()
	var msgs []kafka.Message
	for i, h := range hostileEvents {
		id, next := fmt.Sprintf("%shostile-%d", prefix, i), fmt.Sprintf("%sgood-%d", prefix, i)
		msgs = append(msgs,
			kafka.Message{Key: []byte("hostile"), Value: fmt.Appendf(nil, h.msg, id)},
			kafka.Message{Key: []byte("hostile"), Value: fmt.Appendf(nil, `{"type":"track","event":"Product Viewed","userId":"good","messageId":%q}`, next)})
		good = append(good, next)
		if h.dlq == "" {
			stored = append(stored, id)
		}
	}
	// A message that came straight to Kafka may claim its own receivedAt: one of year 1 is stored
	// (its event time is its timestamp) but must not feed the lag histogram.
	id := prefix + "received-year-1"
	msgs = append(msgs, kafka.Message{Key: []byte("hostile"), Value: fmt.Appendf(nil,
		`{"type":"track","event":"Product Viewed","userId":"h10","messageId":%q,"timestamp":"2026-01-01T00:00:00Z","receivedAt":"0001-01-02T00:00:00Z"}`, id)})
	stored = append(stored, id)
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	return good, stored
}

// checkHostileOutcome checks, on a Waymark whose consumer took each hostile event copies times
// (one of them from produceHostile with kafkaPrefix):
// what must be stored is, the rest is in the dead-letter topic with its reason, amounts are
// counted as refunds or left out by reason, and every metric is finite.
func checkHostileOutcome(t *testing.T, s *server, database, kafkaPrefix string, wantStored []string, copies int) {
	t.Helper()
	got := map[string]bool{}
	for _, id := range queryStrings(t, "SELECT DISTINCT message_id FROM "+database+".events") {
		got[id] = true
	}
	for _, id := range wantStored {
		if !got[id] {
			t.Errorf("event %s is not stored", id)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a hang guard: on a busy machine the read takes long
	defer cancel()
	dead, err := ingesttest.ReadTopic(ctx, s.broker, "waymark.dlq")
	if err != nil {
		t.Fatalf("read dead letters: %v", err)
	}
	reasons := map[string][]string{} // message id → reasons it was dead-lettered with
	for _, m := range dead {
		_, rest, _ := strings.Cut(string(m.Value), `"messageId":"`) // read from the bytes: some do not decode
		id, _, _ := strings.Cut(rest, `"`)
		for _, h := range m.Headers {
			if h.Key == ingest.HeaderDLQReason {
				reasons[id] = append(reasons[id], string(h.Value))
			}
		}
	}
	metrics := scrape(t, s.http)
	var refunds float64
	ignored := map[string]int{}
	for i, h := range hostileEvents {
		id := fmt.Sprintf("%shostile-%d", kafkaPrefix, i)
		switch {
		case h.dlq != "" && !slices.Contains(reasons[id], h.dlq):
			t.Errorf("%s: dead-lettered with %v, want reason %s", h.name, reasons[id], h.dlq)
		case h.dlq == "" && len(reasons[id]) > 0:
			t.Errorf("%s: dead-lettered with %v, want it stored", h.name, reasons[id])
		}
		refunds += float64(copies) * h.refund
		if h.ignored != "" {
			ignored[h.ignored] += copies
		}
	}
	if line := fmt.Sprintf(`waymark_journey_refunds_total{channel="direct",currency="USD"} %g`, refunds); !strings.Contains(metrics, line+"\n") {
		t.Errorf("metrics lack %s", line)
	}
	for reason, n := range ignored {
		if line := fmt.Sprintf(`waymark_journey_amounts_ignored_total{reason=%q} %d`, reason, n); !strings.Contains(metrics, line+"\n") {
			t.Errorf("metrics lack %s", line)
		}
	}
	for _, line := range strings.Split(metrics, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			t.Errorf("metric not a finite number: %s", line)
		}
	}
	// Lag: every event here was stored within minutes of reaching Kafka.
	if sum, n := metricValue(t, metrics, "waymark_pipeline_stored_lag_seconds_sum"), metricValue(t, metrics, "waymark_pipeline_stored_lag_seconds_count"); sum > 3600*n {
		t.Errorf("stored lag: %g s over %g events: a claimed receivedAt fed the histogram", sum, n)
	}
}

// TestHostileEventsAreStoredOrDeadLettered sends each hostile event through the collector and
// straight to Kafka, each followed by a good event, to a running Waymark: the collector answers
// 200 or 400, the consumer stores or dead-letters each with its reason, the good events behind
// them are stored, and the metrics stay finite. (TestPoisonCannotCrashLoop sends the same
// events through an outside broker, with restarts.)
func TestHostileEventsAreStoredOrDeadLettered(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	var wantStored []string
	for i, h := range hostileEvents {
		id := fmt.Sprintf("http-hostile-%d", i)
		// Each to its type's endpoint (/v1/page for a page): the endpoint sets a call's type.
		typ, _, _ := strings.Cut(strings.TrimPrefix(h.msg, `{"type":"`), `"`)
		req, _ := http.NewRequest(http.MethodPost, "http://"+s.http+"/v1/"+typ, strings.NewReader(fmt.Sprintf(h.msg, id)))
		req.SetBasicAuth("test-key", "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", h.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := 200
		switch h.dlq {
		case "":
		case "too_large": // a body over the limit is refused as too large (413) before it is read
			want = http.StatusRequestEntityTooLarge
		default:
			want = 400
		}
		if want == 200 {
			wantStored = append(wantStored, id)
		}
		if resp.StatusCode != want {
			t.Errorf("%s: POST /v1/%s answered %d %s, want %d", h.name, typ, resp.StatusCode, body, want)
		}
	}
	good, stored := produceHostile(t, s.broker, "kafka-")
	wantStored = append(append(wantStored, good...), stored...)
	s.waitStored(t)
	select {
	case err := <-s.exited:
		s.exited <- err
		t.Fatalf("waymark serve exited: %v", err)
	default:
	}
	checkHostileOutcome(t, s, s.database, "kafka-", wantStored, 2) // through the collector and straight to Kafka
}

// TestOverlongRequestHeadsAnswerJSON sends requests whose URL or header fields are too long to
// the tracking API and the query API of a running Waymark: each is answered 414 (URL) or 431
// (header fields) with the API's JSON error body naming the longest parameter, "url", or the
// header that alone is the cause (TestHeaderFieldsTooLargeNameTheCauseOnly has the rule), as every
// other bad request is; just within the limits, the API itself answers.
func TestOverlongRequestHeadsAnswerJSON(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	var values []string
	for i := range 20000 {
		values = append(values, strconv.Itoa(i))
	}
	hugeFilter := url.QueryEscape("Order Completed[q=" + strings.Join(values, "|") + "]")
	pad := func(n int) string { return strings.Repeat("x", n) }
	const readKey, writeKey = "Authorization: Bearer " + testReadKey, "X-Write-Key: test-key"
	event := `{"userId":"long-heads","event":"Product Viewed"}`
	tests := []struct {
		name, method, target, header, body string
		status                             int
		key, name2                         string // the JSON member naming what is at fault, and its value
	}{
		{"a 20,000-value filter in steps", "GET", "/api/v1/funnel?steps=" + hugeFilter + "&from=2024-01-01", readKey, "", 414, "param", "steps"},
		{"a long from", "GET", "/api/v1/funnel?steps=A&from=" + pad(70<<10), readKey, "", 414, "param", "from"},
		{"a long encoded parameter name", "GET", "/api/v1/funnel?steps=A&" + url.QueryEscape("bad name") + "=" + pad(70<<10), readKey, "", 414, "param", "bad name"},
		{"a long path", "GET", "/api/v1/" + pad(70<<10) + "?steps=A", readKey, "", 414, "param", "url"},
		{"a long header", "GET", "/api/v1/funnel?steps=A", readKey + "\nX-Padding: " + pad(100<<10), "", 431, "param", "X-Padding"},
		{"many headers, none long", "GET", "/api/v1/funnel?steps=A", readKey + strings.Repeat("\nX-Padding: "+pad(1000), 70), "", 431, "param", "X-Padding"},
		{"a long from, within the limit", "GET", "/api/v1/funnel?steps=A&from=" + pad(60<<10), readKey, "", 400, "param", "from"},
		{"tracking: a long query string", "POST", "/v1/track?pad=" + pad(70<<10), writeKey, event, 414, "field", "pad"},
		{"tracking: a long cookie", "POST", "/v1/batch", writeKey + "\nCookie: a=" + pad(100<<10), `{"batch":[` + event + `]}`, 431, "field", "Cookie"},
		{"tracking: a long header, within the limit", "POST", "/v1/track", writeKey + "\nX-Padding: " + pad(60<<10), event, 200, "", ""},
		// A name that is itself too long is named by its first 256 bytes, so the answer stays small.
		{"a long parameter name", "GET", "/api/v1/funnel?steps=A&" + pad(70<<10) + "=1", readKey, "", 414, "param", pad(256) + "…"},
		{"a long header name", "GET", "/api/v1/funnel?steps=A", readKey + "\nX-" + pad(70<<10) + ": 1", "", 431, "param", "X-X" + pad(253) + "…"}, // canonical: X-Xxx…
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, "http://"+s.http+"/", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.URL.Opaque = strings.SplitN(tt.target, "?", 2)[0]
			if _, q, ok := strings.Cut(tt.target, "?"); ok {
				req.URL.RawQuery = q
			}
			for _, h := range strings.Split(tt.header, "\n") {
				k, v, _ := strings.Cut(h, ": ")
				req.Header.Add(k, v)
			}
			const origin = "https://shop.example"
			req.Header.Set("Origin", origin) // a browser's page reads the tracking API's answers
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var body map[string]any
			if resp.StatusCode != tt.status || resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &body) != nil {
				t.Fatalf("%d %s %.300s, want %d in JSON", resp.StatusCode, resp.Header.Get("Content-Type"), b, tt.status)
			}
			if tt.key != "" && body[tt.key] != tt.name2 {
				t.Errorf("%s = %.300v, want %.300q: %.300s", tt.key, body[tt.key], tt.name2, b)
			}
			if len(b) > 4<<10 {
				t.Errorf("the answer is %d bytes: %.300s…", len(b), b)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); !strings.HasPrefix(tt.target, "/api/") && got != origin {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q: a page cannot read a tracking answer without it", got, origin)
			}
			if vary := strings.Join(resp.Header.Values("Vary"), ","); strings.Count(vary, "Origin") > 1 {
				t.Errorf("Vary %q names Origin twice (tester 28's F7)", vary)
			}
		})
	}
}

// TestSettingsDoNotReflectAHostileHost: the settings analytics.js loads name where it sends every
// visitor's events. A request's Host is the client's to choose, so without --public-url a Host
// that is no plain host is a 400 naming Host, and the answer for a plain one (the tester's
// evil.example) may not be cached nor served for another Host; with --public-url the answer names that address whatever the Host and X-Forwarded-Proto.
// Each request is written on the wire, so the Host reaches serve as sent.
func TestSettingsDoNotReflectAHostileHost(t *testing.T) {
	t.Parallel()
	settings := func(t *testing.T, s *server, host string) (*http.Response, map[string]any) {
		t.Helper()
		conn, err := net.Dial("tcp", s.http)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET /v1/projects/test-key/settings HTTP/1.1\r\nHost: %s\r\nX-Forwarded-Proto: http\r\nConnection: close\r\n\r\n", host)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp, body
	}
	apiHost := func(body map[string]any) (any, any) {
		integrations, _ := body["integrations"].(map[string]any)
		seg, _ := integrations["Segment.io"].(map[string]any)
		return seg["apiHost"], seg["protocol"]
	}

	open := startServe(t)
	resp, body := settings(t, open, "evil.example")
	if host, _ := apiHost(body); resp.StatusCode != 200 || host != "evil.example/v1" || resp.Header.Get("Cache-Control") != "no-store" ||
		!strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Host") {
		t.Errorf("Host evil.example without --public-url: %d %v %v, want it named but not to be cached, varying by Host", resp.StatusCode, resp.Header, body)
	}
	for _, host := range []string{"evil.example;x", "evil.example'", "x(y)", "a..b", "h:99999"} {
		if resp, body := settings(t, open, host); resp.StatusCode != 400 || body["field"] != "Host" {
			t.Errorf("Host %q: %d %v, want 400 naming Host", host, resp.StatusCode, body)
		}
	}

	fixed := startServe(t, "--public-url", "https://collect.shop.example")
	for _, host := range []string{"evil.example", fixed.http} {
		resp, body := settings(t, fixed, host)
		if h, proto := apiHost(body); resp.StatusCode != 200 || h != "collect.shop.example/v1" || proto != "https" || resp.Header.Get("Cache-Control") != "public, max-age=300" {
			t.Errorf("--public-url set, Host %s: %d %v %v, want collect.shop.example/v1 over https", host, resp.StatusCode, resp.Header, body)
		}
	}
}
