package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/segmentio/kafka-go"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/ingest/ingesttest"
	"github.com/waymark-dev/waymark/sessionize"
)

// casesDir holds the field cases beside the repository (../shared/cases): small inputs from
// situations real shops hit, with the answers users expect.
const casesDir = "../../../shared/cases"

// readCase returns a file of a field case.
func readCase(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(casesDir, name))
	if err != nil {
		t.Fatalf("read field case (the shared cases live beside the repository): %v", err)
	}
	return b
}

// TestCaseTimestampForms runs field case identity/11 through the collector and straight through
// Kafka: every RFC 3339 form and the ISO 8601 forms SDKs send are stored at the time they say
// (2024-05-15 10:00 UTC); an epoch number is refused loudly (listed in the response with
// invalid_timestamp, and dead-lettered from Kafka), never stored at another time.
func TestCaseTimestampForms(t *testing.T) {
	t.Parallel()
	body := readCase(t, "identity/11-timestamp-forms/batch.json")
	var batch struct{ Batch []json.RawMessage }
	if err := json.Unmarshal(body, &batch); err != nil {
		t.Fatal(err)
	}
	s := startServe(t)

	// HTTP: one /v1/batch call with the case's body.
	status, answer := s.track(t, "/v1/batch", string(body))
	var got struct {
		Accepted int
		Rejected []struct {
			Index         int
			Reason, Field string
		}
	}
	if err := json.Unmarshal([]byte(answer), &got); err != nil || status != 200 {
		t.Fatalf("POST /v1/batch: %d %s", status, answer)
	}
	if got.Accepted != 6 || len(got.Rejected) != 1 || got.Rejected[0].Index != 3 ||
		got.Rejected[0].Reason != "invalid_timestamp" || got.Rejected[0].Field != "batch[3].timestamp" {
		t.Errorf("POST /v1/batch answered %s; want 6 accepted and batch[3] (an epoch number) rejected as invalid_timestamp", answer)
	}

	// Kafka: the same messages produced as they are, one per line, each with a messageId of its
	// own: with the collector's messageIds they would be copies of the messages stored already
	// (a message is its messageId whatever path brought it) and store nothing new.
	var lines strings.Builder
	for _, m := range batch.Batch {
		line := strings.Replace(strings.ReplaceAll(string(m), "\n", ""), `"messageId":"`, `"messageId":"kafka-`, 1)
		if !strings.Contains(line, `"messageId":"kafka-`) {
			t.Fatalf("the case's message has no messageId to make its own: %s", line)
		}
		lines.WriteString("k\t" + line + "\n")
	}
	cmd := exec.Command("kcat", "-P", "-b", s.broker, "-t", "waymark.events", "-K", "\t")
	cmd.Stdin = strings.NewReader(lines.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	s.waitStored(t)

	want := time.Date(2024, 5, 15, 10, 0, 0, 0, time.UTC)
	for _, source := range []string{"test", "kafka"} {
		rows := queryStrings(t, "SELECT concat(user_id, ' ', toString(ts_ms)) FROM "+s.database+".events WHERE source = ? ORDER BY user_id", source)
		var users []string
		for _, r := range rows {
			user, ms, _ := strings.Cut(r, " ")
			users = append(users, user)
			n, err := strconv.ParseInt(ms, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			if at := time.UnixMilli(n).UTC(); at.Truncate(time.Second) != want {
				t.Errorf("%s: %s stored at %s, want %s", source, user, at, want)
			}
		}
		if got := strings.Join(users, ","); got != "t1,t2,t3,t5,t6,t7" {
			t.Errorf("%s: stored %s, want t1,t2,t3,t5,t6,t7", source, got)
		}
	}
	// Both paths dead-letter the epoch-number message: the collector's copy and Kafka's.
	dead, err := ingesttest.ReadTopic(t.Context(), s.broker, "waymark.dlq")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{`"messageId":"f4"`, `"messageId":"kafka-f4"`} {
		found := false
		for _, m := range dead {
			for _, h := range m.Headers {
				found = found || h.Key == "waymark-dlq-reason" && string(h.Value) == "invalid_timestamp" && strings.Contains(string(m.Value), id)
			}
		}
		if !found {
			t.Errorf("no dead letter invalid_timestamp for the epoch-number message %s (%d dead letters)", id, len(dead))
		}
	}
}

// TestInvalidTimestampsAreRefusedLoudly holds the kind of field case identity/11 the case itself
// does not show: a time member sent as "" (never taken for an absent one and replaced by the
// receive time), with an offset beyond 23:59 (RFC 3339 §5.6), with a field narrower than RFC 3339's
// (a one-digit hour) or at a time no query can name (2100) is refused as invalid_timestamp on
// every path, through /v1/batch (listed with batch[i].field, or sentAt for the batch's own), a
// single call (400 naming the field) and straight through Kafka, dead-lettered with its reason
// and counted; never stored. Times that disagree with each other (a sentAt decades off, either
// way) keep the client's own time on every path.
func TestInvalidTimestampsAreRefusedLoudly(t *testing.T) {
	t.Parallel()
	const at = `"2024-05-15T10:00:00Z"`
	tests := []struct {
		name, times string // the time members of a track call
		field       string // the member refused; "": stored at 2024-05-15 10:00 UTC
	}{
		{"empty timestamp", `"timestamp":""`, "timestamp"},
		{"empty timestamp beside an originalTimestamp", `"timestamp":"","originalTimestamp":` + at, "timestamp"},
		{"empty originalTimestamp", `"originalTimestamp":""`, "originalTimestamp"},
		{"empty sentAt", `"timestamp":` + at + `,"sentAt":""`, "sentAt"},
		{"empty sentAt beside an originalTimestamp", `"originalTimestamp":` + at + `,"sentAt":""`, "sentAt"},
		{"offset +24:00", `"timestamp":"2024-05-16T10:00:00+24:00"`, "timestamp"},
		{"offset -24:00", `"originalTimestamp":"2024-05-14T10:00:00-24:00"`, "originalTimestamp"},
		{"offset -25:00", `"timestamp":"2024-05-14T09:00:00-25:00"`, "timestamp"},
		{"offset +2400", `"timestamp":` + at + `,"sentAt":"2024-05-16T10:00:00+2400"`, "sentAt"},
		{"offset +24:00 in lower case", `"timestamp":"2024-05-16t10:00:00+24:00"`, "timestamp"},
		{"offset +23:59", `"timestamp":"2024-05-16T09:59:00+23:59"`, ""},
		{"offset -23:59", `"timestamp":"2024-05-14T10:01:00-23:59"`, ""},
		{"empty receivedAt, which is Waymark's to set", `"timestamp":` + at + `,"receivedAt":""`, ""},
		// RFC 3339's field widths: Go's time.Parse reads a one-digit hour.
		{"one-digit hour", `"timestamp":"2024-05-15T1:00:00Z"`, "timestamp"},
		{"one-digit hour in lower case", `"timestamp":"2024-05-15t1:00:00z"`, "timestamp"},
		{"one-digit hour with a space", `"originalTimestamp":"2024-05-15 1:00:00"`, "originalTimestamp"},
		{"one-digit hour in sentAt", `"timestamp":` + at + `,"sentAt":"2024-05-15T1:00:00Z"`, "sentAt"},
		// Event times end at 2100-01-01, where a query's to does: what is stored can be read.
		{"2100", `"timestamp":"2100-12-31T23:59:59Z"`, "timestamp"},
		{"2100 by its offset", `"timestamp":"2099-12-31T23:59:59-01:00"`, "timestamp"},
		{"originalTimestamp in 2100", `"originalTimestamp":"2100-01-01T00:00:00Z"`, "originalTimestamp"},
		// Times that disagree with each other, either way: the client's own time stands.
		{"sentAt decades ahead of timestamp", `"timestamp":` + at + `,"sentAt":"2099-12-31T00:00:00Z"`, ""},
		{"sentAt decades behind timestamp", `"timestamp":` + at + `,"sentAt":"2000-01-01T00:00:05Z"`, ""},
		{"sentAt decades ahead of originalTimestamp", `"originalTimestamp":` + at + `,"sentAt":"2099-12-31T00:00:00Z"`, ""},
		{"sentAt decades behind originalTimestamp", `"originalTimestamp":` + at + `,"sentAt":"2000-01-01T00:00:05Z"`, ""},
	}
	message := func(path string, i int) string {
		return fmt.Sprintf(`{"type":"track","userId":"%s%d","event":"Product Viewed","messageId":"%s-%d",%s}`, path, i, path, i, tests[i].times)
	}
	s := startServe(t)
	bad, want := map[string]string{}, []string{} // refused: messageId to field; stored: messageIds
	note := func(id, field string) {
		if field == "" {
			want = append(want, id)
		} else {
			bad[id] = field
		}
	}

	// HTTP: all in one /v1/batch; each alone on /v1/track; and a batch whose own sentAt is "".
	var batch []string
	for i := range tests {
		batch = append(batch, message("b", i))
		note(fmt.Sprintf("b-%d", i), tests[i].field)
	}
	status, answer := s.track(t, "/v1/batch", `{"batch":[`+strings.Join(batch, ",")+`]}`)
	var got struct {
		Rejected []struct {
			Index         int
			Reason, Field string
		}
	}
	if err := json.Unmarshal([]byte(answer), &got); err != nil || status != 200 {
		t.Fatalf("POST /v1/batch: %d %s", status, answer)
	}
	var gotRejected, wantRejected []string
	for _, r := range got.Rejected {
		gotRejected = append(gotRejected, fmt.Sprintf("%d %s %s", r.Index, r.Reason, r.Field))
	}
	for i, tt := range tests {
		if tt.field != "" {
			wantRejected = append(wantRejected, fmt.Sprintf("%d invalid_timestamp batch[%d].%s", i, i, tt.field))
		}
	}
	if fmt.Sprint(gotRejected) != fmt.Sprint(wantRejected) {
		t.Errorf("POST /v1/batch rejected\n%v\nwant\n%v", gotRejected, wantRejected)
	}
	for i, tt := range tests {
		status, answer := s.track(t, "/v1/track", message("s", i))
		var body struct{ Field string }
		json.Unmarshal([]byte(answer), &body)
		switch {
		case tt.field == "" && status != 200:
			t.Errorf("%s: POST /v1/track answered %d %s, want 200", tt.name, status, answer)
		case tt.field != "" && (status != 400 || body.Field != tt.field || !strings.Contains(answer, "invalid_timestamp")):
			t.Errorf("%s: POST /v1/track answered %d %s, want 400 invalid_timestamp naming %s", tt.name, status, answer, tt.field)
		}
		note(fmt.Sprintf("s-%d", i), tt.field)
	}
	// A batch's own sentAt that cannot be read: each event that took it is refused, naming the
	// batch's sentAt, the member the client sent (not batch[i].sentAt, which it did not).
	for i, sentAt := range []string{`""`, `"2024-05-15T10:00:00+25:00"`, `"2024-05-15T1:00:00Z"`} {
		ids := []string{fmt.Sprintf("bs-%d-0", i), fmt.Sprintf("bs-%d-1", i)}
		status, answer = s.track(t, "/v1/batch", `{"sentAt":`+sentAt+`,"batch":[`+
			`{"type":"track","userId":"bs","event":"Product Viewed","messageId":"`+ids[0]+`","timestamp":`+at+`},`+
			`{"type":"track","userId":"bs","event":"Product Viewed","messageId":"`+ids[1]+`","timestamp":`+at+`}]}`)
		if status != 200 || strings.Count(answer, `"field":"sentAt"`) != 2 || strings.Contains(answer, "batch[") || strings.Count(answer, "invalid_timestamp") < 2 {
			t.Errorf("a batch whose sentAt is %s: %d %s, want both events refused as invalid_timestamp naming sentAt", sentAt, status, answer)
		}
		for _, id := range ids {
			note(id, "sentAt")
		}
	}
	collectorRefused := len(bad)

	// Kafka: each message produced as it is.
	var lines []string
	for i, tt := range tests {
		lines = append(lines, message("k", i))
		note(fmt.Sprintf("k-%d", i), tt.field)
	}
	produceWithKcat(t, s.broker, lines)
	s.waitStored(t)

	// Stored: only the good ones, at the time they say.
	var stored []string
	for _, r := range queryStrings(t, "SELECT concat(message_id, ' ', toString(ts_ms)) FROM "+s.database+".events ORDER BY message_id") {
		id, ms, _ := strings.Cut(r, " ")
		stored = append(stored, id)
		if n, _ := strconv.ParseInt(ms, 10, 64); !time.UnixMilli(n).Equal(time.Date(2024, 5, 15, 10, 0, 0, 0, time.UTC)) {
			t.Errorf("%s stored at %s, want 2024-05-15 10:00 UTC", id, time.UnixMilli(n).UTC())
		}
	}
	slices.Sort(want)
	if fmt.Sprint(stored) != fmt.Sprint(want) {
		t.Errorf("stored %v, want %v", stored, want)
	}

	// Dead-lettered: each refused message once, with its reason and the field in its error.
	dead, err := ingesttest.ReadTopic(t.Context(), s.broker, "waymark.dlq")
	if err != nil {
		t.Fatal(err)
	}
	letters := map[string]string{}
	for _, m := range dead {
		var v struct{ MessageID string }
		json.Unmarshal(m.Value, &v)
		headers := map[string]string{}
		for _, h := range m.Headers {
			headers[h.Key] = string(h.Value)
		}
		letters[v.MessageID] += headers["waymark-dlq-reason"] + " " + headers["waymark-dlq-error"] + ";"
	}
	for id, field := range bad {
		if l := letters[id]; strings.Count(l, ";") != 1 || !strings.HasPrefix(l, "invalid_timestamp invalid_timestamp (field "+field+")") {
			t.Errorf("%s: dead letters %q, want one invalid_timestamp naming %s", id, l, field)
		}
	}
	if len(letters) != len(bad) {
		t.Errorf("%d messages dead-lettered, want the %d refused", len(letters), len(bad))
	}

	// Counted: by the collector and by the consumer, with their reason.
	metrics := scrape(t, s.http)
	if n := metricValue(t, metrics, `waymark_collector_events_total{outcome="rejected",reason="invalid_timestamp"}`); int(n) != collectorRefused {
		t.Errorf("the collector counted %v events refused as invalid_timestamp, want %d", n, collectorRefused)
	}
	if n := metricValue(t, metrics, `waymark_dlq_messages_total{path="collector",reason="invalid_timestamp"}`); int(n) != collectorRefused {
		t.Errorf("the collector counted %v dead letters invalid_timestamp, want %d", n, collectorRefused)
	}
	if n := metricValue(t, metrics, `waymark_dlq_messages_total{path="consumer",reason="invalid_timestamp"}`); int(n) != len(bad)-collectorRefused {
		t.Errorf("the consumer counted %v dead letters invalid_timestamp, want %d", n, len(bad)-collectorRefused)
	}
}

// TestCaseNullAndNestedProperties runs field case identity/10 through Kafka (kcat) and asks the
// funnel API: JSON null is no value (marker "none"), never the text "null" merged with a real string
// "null"; nested properties are addressable with dots; a property never stored is a 400 naming
// the parameter, never a silent zero.
func TestCaseNullAndNestedProperties(t *testing.T) {
	t.Parallel()
	events := strings.TrimSpace(string(readCase(t, "identity/10-null-and-nested-properties/events.jsonl")))
	s := startServe(t)
	var lines strings.Builder
	for _, l := range strings.Split(events, "\n") {
		lines.WriteString("k\t" + l + "\n")
	}
	cmd := exec.Command("kcat", "-P", "-b", s.broker, "-t", "waymark.events", "-K", "\t")
	cmd.Stdin = strings.NewReader(lines.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	s.waitStored(t)

	funnel := func(params string) (int, []byte) {
		t.Helper()
		code, body := httpGet(t, "http://"+s.http+"/api/v1/funnel?window=24h&"+params)
		return code, []byte(body)
	}
	var res funnelAnswer
	for _, tt := range []struct {
		step string
		want int64
	}{
		{"Product Viewed[coupon=null]", 1}, // k4's string "null", not k1's JSON null
		{"Product Viewed[product.category=shoes]", 2},
		{"Product Viewed[category=shoes]", 1},
		{"Product Viewed[coupon=SPRING]", 1},
	} {
		code, body := funnel("steps=" + url.QueryEscape(tt.step))
		if err := json.Unmarshal(body, &res); code != 200 || err != nil || len(res.Steps) != 1 {
			t.Fatalf("funnel %s: %d %s", tt.step, code, body)
		}
		if res.Steps[0].Customers != tt.want {
			t.Errorf("funnel %s: %d customers, want %d", tt.step, res.Steps[0].Customers, tt.want)
		}
	}
	code, body := funnel("steps=Product+Viewed&breakdown=property:coupon")
	if err := json.Unmarshal(body, &res); code != 200 || err != nil {
		t.Fatalf("breakdown: %d %s", code, body)
	}
	got := map[string]int64{}
	for _, g := range res.Groups {
		got[cmp.Or(g.Marker, "value "+g.Value)] = g.Steps[0].Customers
	}
	if want := map[string]int64{"none": 2, "value SPRING": 1, "value null": 1}; !maps.Equal(got, want) {
		t.Errorf("breakdown property:coupon: %v, want %v", got, want)
	}
	for _, q := range []string{"steps=" + url.QueryEscape("Product Viewed[colour=red]"), "steps=Product+Viewed&breakdown=property:colour", "steps=Product+Viewed&breakdown=trait:colour"} {
		code, body := funnel(q)
		var e struct{ Error, Param string }
		if err := json.Unmarshal(body, &e); code != 400 || err != nil || !strings.Contains(e.Error, "colour") {
			t.Errorf("funnel?%s: %d %s; want 400 naming the property colour", q, code, body)
		}
	}
}

// TestKafkaProducerCannotMoveAnEventInTime: a message produced straight to Kafka (not through the
// collector) that claims a receivedAt that cannot be its receipt (years before the time Kafka got
// it, or after it: ingest.checkReceipt) is received when Kafka got it, as the collector drops a
// client's receivedAt; its time is never the claimed one.
func TestKafkaProducerCannotMoveAnEventInTime(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	start := time.Now()
	cmd := exec.Command("kcat", "-P", "-b", s.broker, "-t", "waymark.events", "-K", "\t")
	cmd.Stdin = strings.NewReader("r\t" + `{"type":"track","userId":"r1","event":"Product Viewed","messageId":"claims-2001","receivedAt":"2001-01-01T00:00:00Z"}` + "\n" +
		"r\t" + `{"type":"track","userId":"r1","event":"Product Viewed","messageId":"skews-by-a-year","originalTimestamp":"2026-01-01T00:00:00Z","sentAt":"2026-01-01T00:00:00Z","receivedAt":"2027-01-01T00:00:00Z"}` + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	s.waitStored(t)
	rows := s.receivedSince(t, start, "1")
	if len(rows) != 2 {
		t.Fatalf("stored %v, want both messages", rows)
	}
	for _, r := range rows {
		if r.id == "claims-2001" && r.at.Year() == 2001 {
			t.Errorf("%s stored at the receivedAt it claims, %s", r.id, r.at)
		}
		if r.id == "skews-by-a-year" && r.at.Year() == 2027 {
			t.Errorf("%s moved by the skew between its sentAt and the receivedAt it claims, to %s", r.id, r.at)
		}
	}
}

// storedTime is an event's id, time and receive time as stored.
type storedTime struct {
	id           string
	at, received time.Time
}

// receivedSince returns the stored events matching where (SQL), by message id, failing the test
// for each whose receive time is not from start (less a minute) to now (plus one): received when
// this test sent it, whatever receivedAt it claimed.
func (s *server) receivedSince(t *testing.T, start time.Time, where string) []storedTime {
	t.Helper()
	var out []storedTime
	for _, r := range queryStrings(t, "SELECT concat(message_id, ' ', toString(ts_ms), ' ', toString(received_at_ms)) FROM "+s.database+".events WHERE "+where+" ORDER BY message_id") {
		f := strings.Fields(r)
		ts, _ := strconv.ParseInt(f[1], 10, 64)
		received, _ := strconv.ParseInt(f[2], 10, 64)
		st := storedTime{f[0], time.UnixMilli(ts).UTC(), time.UnixMilli(received).UTC()}
		if st.received.Before(start.Add(-time.Minute)) || st.received.After(time.Now().Add(time.Minute)) {
			t.Errorf("%s: receivedAt %s, want when it was sent (%s)", st.id, st.received, start.UTC())
		}
		out = append(out, st)
	}
	return out
}

// TestCaseRetriedEventCountsOnce runs field case identity/01 (each of two orders has a retried
// copy, same messageId, time stamped again; one copy lands in the next month) through the
// collector and, on a second Waymark, straight through Kafka: every answer counts each messageId
// once, before and after ClickHouse merges the parts.
func TestCaseRetriedEventCountsOnce(t *testing.T) {
	t.Parallel()
	lines := strings.Split(strings.TrimSpace(string(readCase(t, "identity/01-dup-messageid-new-timestamp/events.jsonl"))), "\n")
	viaHTTP := startServe(t)
	for _, l := range lines { // one call per message, as a retrying SDK sends them
		if status, answer := viaHTTP.track(t, "/v1/track", l); status != 200 {
			t.Fatalf("POST /v1/track %s: %d %s", l, status, answer)
		}
	}
	servers := []*server{viaHTTP}
	if everyPath() {
		viaKafka := startServe(t)
		produceWithKcat(t, viaKafka.broker, lines)
		servers = append(servers, viaKafka)
	}

	for _, s := range servers {
		s.waitStored(t)
		for _, merged := range []bool{false, true} {
			if merged {
				optimizeFinal(t, s.database+".events")
			}
			for _, f := range []struct {
				steps string
				want  []int64
			}{
				{"Order Completed,Order Completed", []int64{2, 0}},
				{"conversion,loyalty", []int64{2, 0}},
			} {
				got := s.funnel(t, f.steps, "720h")
				var counts []int64
				for _, st := range got.Steps {
					counts = append(counts, st.Customers)
				}
				if !slices.Equal(counts, f.want) {
					t.Errorf("%s (merged %v): funnel %s: %v, want %v", s.database, merged, f.steps, counts, f.want)
				}
			}
			if sum := s.sessions(t); sum.Events != 3 || sum.Sessions != 2 || sum.Persons != 2 {
				t.Errorf("%s (merged %v): sessions count %d sessions, %d persons, %d events; want 2, 2, 3", s.database, merged, sum.Sessions, sum.Persons, sum.Events)
			}
			s.batchAnswersAsAlone(t, "/api/v1/funnel?steps=Order+Completed,Order+Completed&window=720h",
				"/api/v1/funnel?steps=conversion,loyalty&window=720h", "/api/v1/retention?period=month",
				"/api/v1/stages", "/api/v1/paths?anchor=Order+Completed&direction=end", "/api/v1/sessions")
			code, body := httpGet(t, "http://"+s.http+"/api/v1/retention?period=month")
			var r struct {
				Repeaters  int64   `json:"repeaters"`
				RepeatRate float64 `json:"repeat_rate"`
				Persons    int64   `json:"persons"`
			}
			if err := json.Unmarshal([]byte(body), &r); code != 200 || err != nil || r.Persons != 2 || r.Repeaters != 0 || r.RepeatRate != 0 {
				t.Errorf("%s (merged %v): retention %d %s, want 2 persons, no repeaters", s.database, merged, code, body)
			}
		}
	}
}

// optimizeFinal makes ClickHouse merge every part of a table now, as it would some day anyway.
func optimizeFinal(t *testing.T, table string) {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{chServer.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Exec(t.Context(), "OPTIMIZE TABLE "+table+" FINAL"); err != nil {
		t.Fatalf("optimize %s: %v", table, err)
	}
}

// execClickHouse runs a statement on the test ClickHouse server.
func execClickHouse(t *testing.T, statement string) {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{chServer.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Exec(t.Context(), statement); err != nil {
		t.Fatalf("%s: %v", statement, err)
	}
}

// batchAnswersAsAlone asks s the queries of gets ("/api/v1/NAME?QUERY") in one POST
// /api/v1/batch, as the journey page asks its panels, and checks that each result is what the
// query's own GET answers, byte for byte: a batch reads the events once for all of them, and
// must still count each field case as the query alone does.
func (s *server) batchAnswersAsAlone(t *testing.T, gets ...string) {
	t.Helper()
	type query struct {
		Query  string            `json:"query"`
		Params map[string]string `json:"params"`
	}
	var batch struct {
		Queries []query `json:"queries"`
	}
	for _, g := range gets {
		name, raw, _ := strings.Cut(strings.TrimPrefix(g, "/api/v1/"), "?")
		v, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatal(err)
		}
		q := query{Query: name, Params: map[string]string{}}
		for k := range v {
			q.Params[k] = v.Get(k)
		}
		batch.Queries = append(batch.Queries, q)
	}
	body, _ := json.Marshal(batch)
	req, err := http.NewRequest(http.MethodPost, "http://"+s.http+"/api/v1/batch", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testReadKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer struct {
		Results []struct {
			Status int             `json:"status"`
			Result json.RawMessage `json:"result"`
		} `json:"results"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || resp.StatusCode != 200 || len(answer.Results) != len(gets) {
		t.Fatalf("%s: batch %s: %d, %d results (%v)", s.database, body, resp.StatusCode, len(answer.Results), err)
	}
	for i, g := range gets {
		code, alone := httpGet(t, "http://"+s.http+g)
		got := answer.Results[i]
		if got.Status != code || code == 200 && compactJSON(t, string(got.Result)) != compactJSON(t, alone) {
			t.Errorf("%s: %s in a batch: %d %s\nalone: %d %s", s.database, g, got.Status, got.Result, code, alone)
		}
	}
}

// TestCaseSharedDeviceTwoUsers runs field case identity/05 (alice, then bob, log in on one browser
// without a reset) through the collector and, on a second Waymark, through kcat, in time order and
// reversed: two userIds are two persons; bob's order is not alice's, and alice's plan is not bob's;
// the Home page viewed before anyone logged in is alice's, the first to log in, in either order.
func TestCaseSharedDeviceTwoUsers(t *testing.T) {
	t.Parallel()
	lines := strings.Split(strings.TrimSpace(string(readCase(t, "identity/05-shared-device-two-users/events.jsonl"))), "\n")
	for _, s := range append(sendBothWays(t, lines), sendBothWays(t, reversed(lines))...) {
		code, body := httpGet(t, "http://"+s.http+"/api/v1/dropoff?window=24h&step=1&steps=Home,Home")
		var d struct{ Persons []string }
		if err := json.Unmarshal([]byte(body), &d); code != 200 || err != nil || !slices.Equal(d.Persons, []string{"alice"}) {
			t.Errorf("%s: the Home page went to %s (%d), want alice", s.database, body, code)
		}
		var counts []int64
		for _, st := range s.funnel(t, "Product Viewed,Order Completed", "24h").Steps {
			counts = append(counts, st.Customers)
		}
		if !slices.Equal(counts, []int64{1, 0}) {
			t.Errorf("%s: funnel Product Viewed,Order Completed: %v, want [1 0] (alice viewed, bob ordered)", s.database, counts)
		}
		if sum := s.sessions(t); sum.Persons != 2 {
			t.Errorf("%s: sessions count %d persons, want 2", s.database, sum.Persons)
		}
		got := s.breakdownGroups(t, "steps=Product+Viewed,Order+Completed&breakdown=trait:plan")
		if len(got) != 1 || !slices.Equal(got["free"], []int64{1, 0}) {
			t.Errorf("%s: breakdown trait:plan %v, want free: [1 0] only", s.database, got)
		}
		s.batchAnswersAsAlone(t, "/api/v1/funnel?steps=Product+Viewed,Order+Completed&breakdown=trait:plan",
			"/api/v1/funnel?steps=Product+Viewed,Order+Completed&window=24h",
			"/api/v1/dropoff?steps=Product+Viewed,Order+Completed&ids_limit=10", "/api/v1/next?anchor=Product+Viewed", "/api/v1/stages")
	}
}

// sendBothWays starts two Waymarks and sends lines (Segment messages) to one through the
// collector, in one batch, and to the other straight to Kafka with kcat; it returns both once
// they have stored everything. In a later pass of the run (see everyPath) it starts and returns
// the collector's only.
func sendBothWays(t *testing.T, lines []string) []*server {
	t.Helper()
	viaHTTP := startServe(t)
	viaHTTP.sendBatch(t, lines...)
	servers := []*server{viaHTTP}
	if everyPath() {
		viaKafka := startServe(t)
		produceWithKcat(t, viaKafka.broker, lines)
		servers = append(servers, viaKafka)
	}
	for _, s := range servers {
		s.waitStored(t)
	}
	return servers
}

// produceWithKcat sends Segment messages, one per line, straight to the events topic with kcat,
// keyed as the collector keys them (the device: anonymousId, else userId).
func produceWithKcat(t *testing.T, broker string, lines []string) {
	t.Helper()
	var in strings.Builder
	for _, l := range lines {
		var m struct{ UserID, AnonymousID any } // a string, or a number as a client may send
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		key := m.AnonymousID
		if key == nil || key == "" {
			key = m.UserID
		}
		in.WriteString(fmt.Sprint(key) + "\t" + l + "\n")
	}
	cmd := exec.Command("kcat", "-P", "-b", broker, "-t", "waymark.events", "-K", "\t")
	cmd.Stdin = strings.NewReader(in.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
}

// TestCaseLoginMidVisit is field case 07: a visit in which the customer logs in is one session
// of one person, entered at Home; it converts whether funnels count persons or sessions.
func TestCaseLoginMidVisit(t *testing.T) {
	t.Parallel()
	lines := strings.Split(strings.TrimSpace(string(readCase(t, "identity/07-login-mid-session/events.jsonl"))), "\n")
	for _, s := range sendBothWays(t, lines) {
		sum := s.sessions(t)
		if sum.Sessions != 1 || sum.Persons != 1 || sum.Events != 4 {
			t.Errorf("%s: %d sessions, %d persons, %d events; want 1, 1, 4 (identify is not a touchpoint)", s.database, sum.Sessions, sum.Persons, sum.Events)
		}
		entries := queryStrings(t, "SELECT entry_event || '>' || exit_event || '@' || person_id FROM "+s.database+".sessions FINAL WHERE deleted = 0")
		if !slices.Equal(entries, []string{"Home>Order Completed@user-314"}) {
			t.Errorf("%s: sessions %v, want one from Home to Order Completed of user-314", s.database, entries)
		}
		// The answer names the one entry (Home) and the one exit, through the API and the CLI.
		code, body := httpGet(t, "http://"+s.http+"/api/v1/sessions")
		var api sessionsJSON
		if err := json.Unmarshal([]byte(body), &api); code != 200 || err != nil {
			t.Fatalf("%s: sessions: %d %s", s.database, code, body)
		}
		home, order := []rankedJSON{{Value: "Home", Step: "Home", Count: 1}}, []rankedJSON{{Value: "Order Completed", Step: "Order Completed", Count: 1}}
		if !slices.Equal(api.ByEntryTouchpoint, home) || !slices.Equal(api.ByExitTouchpoint, order) {
			t.Errorf("%s: sessions by entry touchpoint %+v, by exit touchpoint %+v; want Home 1, Order Completed 1", s.database, api.ByEntryTouchpoint, api.ByExitTouchpoint)
		}
		if !slices.Equal(sum.ByEntryTouchpoint, home) || !slices.Equal(sum.ByExitTouchpoint, order) {
			t.Errorf("%s: sessions --json by entry touchpoint %+v, by exit touchpoint %+v; want the API's", s.database, sum.ByEntryTouchpoint, sum.ByExitTouchpoint)
		}
		if out := s.waymark(t, "sessions"); !regexp.MustCompile(`(?m)^by entry touchpoint: Home +1$`).MatchString(out) ||
			!regexp.MustCompile(`(?m)^by exit touchpoint: Order Completed +1$`).MatchString(out) {
			t.Errorf("%s: waymark sessions:\n%s\nwant the entry Home and the exit Order Completed", s.database, out)
		}
		for _, countBy := range []string{"persons", "sessions"} {
			code, body := httpGet(t, "http://"+s.http+"/api/v1/funnel?window=24h&count_by="+countBy+"&steps="+url.QueryEscape("Product Viewed,Product Added,Order Completed"))
			var f funnelJSON
			if err := json.Unmarshal([]byte(body), &f); code != 200 || err != nil {
				t.Fatalf("%s: funnel by %s: %d %s", s.database, countBy, code, body)
			}
			var counts []int64
			for _, st := range f.Steps {
				counts = append(counts, st.Customers)
			}
			if !slices.Equal(counts, []int64{1, 1, 1}) {
				t.Errorf("%s: funnel by %s: %v, want [1 1 1]", s.database, countBy, counts)
			}
		}
		// One Product Viewed: the person drops off after step 1, listed by their userId.
		code, body = httpGet(t, "http://"+s.http+"/api/v1/dropoff?window=24h&step=1&steps="+url.QueryEscape("Product Viewed,Product Viewed"))
		var d struct{ Persons []string }
		if err := json.Unmarshal([]byte(body), &d); code != 200 || err != nil || !slices.Equal(d.Persons, []string{"user-314"}) {
			t.Errorf("%s: dropoff: %d %s; want the person listed as user-314", s.database, code, body)
		}
		s.batchAnswersAsAlone(t, "/api/v1/funnel?window=24h&count_by=sessions&steps="+url.QueryEscape("Product Viewed,Product Added,Order Completed"),
			"/api/v1/funnel?window=24h&steps="+url.QueryEscape("Product Viewed,Product Added,Order Completed"),
			"/api/v1/dropoff?window=24h&step=1&steps="+url.QueryEscape("Product Viewed,Product Viewed"),
			"/api/v1/paths?anchor=Home&depth=4&collapse=true", "/api/v1/stages", "/api/v1/sessions")
	}
}

// TestAcquisitionChannelIsTheFirstTouchpoints (field case 07's kind: identify is not a
// touchpoint): retention's repeat rate by channel and the live metrics' first-touch channel come
// from the first track, page or screen, as a session's entry channel does, never from an identify
// call's campaign. Alice signs in from a newsletter and orders with no campaign (direct); bob
// signs in on the same device with none and orders from a paid search ad (paid_search).
func TestAcquisitionChannelIsTheFirstTouchpoints(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	batch := `{"batch":[
 {"type":"identify","anonymousId":"rd1","userId":"rd-alice","messageId":"rd-1","timestamp":"2024-10-21T09:00:00Z","context":{"campaign":{"source":"nl","medium":"email"}}},
 {"type":"track","anonymousId":"rd1","event":"Order Completed","messageId":"rd-2","timestamp":"2024-10-21T09:05:00Z"},
 {"type":"identify","anonymousId":"rd1","userId":"rd-bob","messageId":"rd-3","timestamp":"2024-10-29T09:00:00Z"},
 {"type":"track","anonymousId":"rd1","event":"Order Completed","messageId":"rd-4","timestamp":"2024-10-29T09:05:00Z","context":{"campaign":{"source":"g","medium":"cpc"}}}]}`
	if code, body := s.track(t, "/v1/batch", batch); code != 200 {
		t.Fatalf("POST /v1/batch: %d %s", code, body)
	}
	s.waitStored(t)
	if sum := s.sessions(t); !maps.Equal(sum.ByEntryChannel, map[string]uint64{"direct": 1, "paid_search": 1}) {
		t.Errorf("sessions by entry channel %v, want direct 1, paid_search 1", sum.ByEntryChannel)
	}
	code, body := httpGet(t, "http://"+s.http+"/api/v1/retention?conversion=Order+Completed&from=2024-10-01&to=2024-11-01")
	var r struct {
		ByChannel []struct {
			Channel, Marker string
			Persons         int64
		} `json:"by_acquisition_channel"`
	}
	if err := json.Unmarshal([]byte(body), &r); code != 200 || err != nil {
		t.Fatalf("retention: %d %s", code, body)
	}
	var got []string
	for _, c := range r.ByChannel {
		got = append(got, fmt.Sprintf("%s%s=%d", c.Channel, c.Marker, c.Persons))
	}
	if want := []string{"direct=1", "paid_search=1"}; !slices.Equal(got, want) {
		t.Errorf("retention by acquisition channel %v, want %v", got, want)
	}
	// The device's first touchpoint was direct: both orders count there, none under email.
	metrics := scrape(t, s.http)
	if v := metricValue(t, metrics, `waymark_journey_orders_total{channel="direct"}`); v != 2 || strings.Contains(metrics, `waymark_journey_orders_total{channel="email"}`) {
		t.Errorf("orders by first-touch channel: direct %v, want 2 and none under email:\n%s", v, metrics)
	}
}

// TestInSiteNavigationIsNoReferral: analytics.js sends document.referrer with every call, so a
// page reached by a link on the shop itself has the shop as referrer. That is no referral (as
// Amplitude's browser SDK and Google Analytics treat a referrer from the page's own site): such
// an event, and a visit resumed from an internal link, is direct unless a campaign or click id
// says otherwise. The page's own site is its registrable domain (checkout.shop.example is
// www.shop.example's), and --own-domains adds others (a payment site); a look-alike domain is a
// referral still. The same in a funnel's channel breakdown and in the sessions' entry channels.
func TestInSiteNavigationIsNoReferral(t *testing.T) {
	t.Parallel()
	s := startServe(t, "--own-domains", "pay.example")
	page := func(id, device, event, at, url, referrer string) string {
		return fmt.Sprintf(`{"type":"track","anonymousId":%q,"event":%q,"messageId":%q,"timestamp":"2025-04-08T%s:00Z","context":{"page":{"url":%q,"referrer":%q}}}`, device, event, id, at, url, referrer)
	}
	lines := []string{
		page("rf-1", "rf1", "RF Viewed", "10:01", "https://www.shop.example/p/1", "https://www.shop.example/"),
		page("rf-2", "rf2", "RF Viewed", "10:01", "https://www.shop.example/p/2", "https://checkout.shop.example/"),
		page("rf-3", "rf3", "RF Viewed", "10:01", "https://www.shop.example/thanks", "https://pay.example/return"),
		page("rf-4", "rf4", "RF Viewed", "10:01", "https://www.shop.example/p/3?gclid=1", "https://www.shop.example/"),
		page("rf-5", "rf5", "RF Viewed", "10:01", "https://www.shop.example/p/4", "https://blog.example/post"),
		page("rf-6", "rf6", "RF Viewed", "10:01", "https://www.shop.example/p/5", "https://evilshop.example/"),
		// rf7 lands from a search, leaves, and resumes three hours later from an internal link.
		page("rf-7", "rf7", "RF Page", "10:00", "https://www.shop.example/", "https://www.google.com/"),
		page("rf-8", "rf7", "RF Page", "13:00", "https://www.shop.example/p/6", "https://www.shop.example/"),
	}
	s.sendBatch(t, lines...)
	s.waitStored(t)
	got := map[string]int64{}
	for value, reached := range s.breakdownGroups(t, "steps=RF+Viewed&breakdown=channel&from=2025-04-01&to=2025-05-01") {
		got[value] = reached[0]
	}
	if want := map[string]int64{"direct": 3, "paid_search": 1, "referral": 2}; !maps.Equal(got, want) {
		t.Errorf("RF Viewed by channel %v, want %v", got, want)
	}
	if sum := s.sessions(t); !maps.Equal(sum.ByEntryChannel, map[string]uint64{"direct": 4, "paid_search": 1, "referral": 2, "search": 1}) {
		t.Errorf("sessions by entry channel %v, want direct 4 (rf1-3, rf7's resumed visit), paid_search 1, referral 2, search 1", sum.ByEntryChannel)
	}
}

// TestSharedDeviceAnswersDoNotDependOnArrivalOrder: on devices several users sign in on without
// a reset (testdata/shared-devices.jsonl), an anonymous event goes to the user signed in last
// before it, and one before the device's first sign-in to the first user to sign in, by event
// time; a device one user signed in on becomes shared when a second one signs in later, after
// its anonymous events were stored (testdata/shared-devices-later.jsonl). Every query answers
// the same whatever order the events reach Waymark in, one HTTP call each: in order, reversed,
// the devices' later users last, and shuffled (the queries matched in ClickHouse for some orders
// and in Waymark for others, where the engine can).
func TestSharedDeviceAnswersDoNotDependOnArrivalOrder(t *testing.T) {
	t.Parallel()
	first, later := readLines(t, "testdata/shared-devices.jsonl"), readLines(t, "testdata/shared-devices-later.jsonl")
	// Whose each anonymous page view is.
	want := map[string]string{
		"Home": "carl", "Lobby": "alice", // before the first sign-in: the first user
		"Cart": "alice", "Checkout": "bob", "Reviews": "alice", "Wishlist": "alice", // between and after sign-ins
		"Promo": "gina", "Landing": "gina", "Pricing": "gina", "Support": "hank", // shared later
	}
	queries := []string{
		"/api/v1/funnel?window=24h&steps=Home,Product+Viewed",
		"/api/v1/funnel?window=24h&steps=Home,Product+Viewed&breakdown=trait:plan",
		"/api/v1/funnel?window=24h&steps=Lobby,Cart,Reviews&breakdown=trait:plan",
		"/api/v1/funnel?window=24h&steps=Promo,Landing,Support&count_by=sessions",
		"/api/v1/dropoff?window=24h&steps=Home,Product+Viewed,Order+Completed",
		"/api/v1/next?anchor=Product+Viewed&direction=previous",
		"/api/v1/paths?anchor=Order+Completed&direction=end&depth=4",
		"/api/v1/paths?anchor=Promo&depth=4",
		"/api/v1/retention?period=week&conversion=Product+Viewed&return=Order+Completed",
		"/api/v1/stages",
		"/api/v1/sessions",
	}
	for step := range want {
		// A single view: its person drops off after step 1 and is listed.
		queries = append(queries, "/api/v1/dropoff?window=24h&step=1&steps="+url.QueryEscape(step+","+step))
	}
	firstUsers := map[string]bool{"carl": true, "alice": true, "gina": true}
	laterUsersLast := slices.Clone(first)
	slices.SortStableFunc(laterUsersLast, func(a, b string) int { return cmp.Compare(laterUser(t, a, firstUsers), laterUser(t, b, firstUsers)) })
	orders := []struct {
		name         string
		first, later []string
	}{
		{"in order", first, later},
		{"later users last", laterUsersLast, later},
		{"reversed", reversed(first), reversed(later)},
	}
	r := rand.New(rand.NewPCG(5, 5))
	for i := range 3 {
		o := struct {
			name         string
			first, later []string
		}{fmt.Sprintf("shuffle %d", i), slices.Clone(first), slices.Clone(later)}
		r.Shuffle(len(o.first), func(i, j int) { o.first[i], o.first[j] = o.first[j], o.first[i] })
		r.Shuffle(len(o.later), func(i, j int) { o.later[i], o.later[j] = o.later[j], o.later[i] })
		orders = append(orders, o)
	}
	if !everyReordering() {
		orders = orders[:2] // the device's sign-ins stored before and after the later users' events
	}
	// Each order to a serve of its own, the serves' calls side by side (see sendSideBySide).
	servers := make([]*server, len(orders))
	for n := range orders {
		if n%2 == 1 && chServer.FunnelUDF {
			servers[n] = startServe(t, "--funnel-matching", "process")
		} else {
			servers[n] = startServe(t)
		}
	}
	for _, later := range []bool{false, true} {
		for n, o := range orders {
			part := o.first
			if later {
				part = o.later
			}
			for _, line := range part {
				servers[n].sendBatch(t, line)
			}
		}
		for _, s := range servers {
			s.waitStored(t) // the later part comes once the first is stored
		}
	}
	var answers map[string]string // of the first order
	for n, o := range orders {
		s := servers[n]
		got := map[string]string{}
		for _, q := range queries {
			code, body := httpGet(t, "http://"+s.http+q)
			if code != 200 {
				t.Fatalf("%s: %s: %d %s", o.name, q, code, body)
			}
			got[q] = compactJSON(t, body)
		}
		for step, person := range want {
			var d struct{ Persons []string }
			body := got["/api/v1/dropoff?window=24h&step=1&steps="+url.QueryEscape(step+","+step)]
			if err := json.Unmarshal([]byte(body), &d); err != nil || !slices.Equal(d.Persons, []string{person}) {
				t.Errorf("%s: %s went to %s, want %s", o.name, step, body, person)
			}
		}
		if answers == nil {
			answers = got
			continue
		}
		for _, q := range queries {
			if got[q] != answers[q] {
				t.Errorf("%s: %s answers\n%s\nin order:\n%s", o.name, q, got[q], answers[q])
			}
		}
	}
}

// laterUser is 1 for a message of a user not in firstUsers, else 0.
func laterUser(t *testing.T, line string, firstUsers map[string]bool) int {
	t.Helper()
	var m struct{ UserID string }
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatal(err)
	}
	if m.UserID != "" && !firstUsers[m.UserID] {
		return 1
	}
	return 0
}

// readLines returns the lines of a file.
func readLines(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// oneCallEach makes each line a call of its own: the calls of a /v1/batch test, each a list of lines.
func oneCallEach(lines ...string) [][]string {
	calls := make([][]string, len(lines))
	for i, l := range lines {
		calls[i] = []string{l}
	}
	return calls
}

// feed is the calls one serve gets (see sendSideBySide), each a list of lines.
type feed struct {
	s     *server
	calls [][]string
}

// sendSideBySide sends each feed's calls to its serve, each call stored before the serve gets
// its next (the arrival order the tests compare), the serves' calls side by side: every feed's
// k-th call, then the wait for each. The serves share nothing but the ClickHouse server (each
// has its own broker and database), so where one serve's calls fall among another's changes
// neither's arrival order. A call and its wait take about 0.2 s, most of it the serve's flush
// interval and ingest.WaitCaughtUp's poll, and little CPU: the tests that sent a reference
// serve's and each arrival's calls one serve after another spent most of their time waiting
// (TestCopiesOnOtherKeysAnswerAsTheFirst about 80 calls, 23.6 s alone on 18.16, 13.3 CPU-s,
// 2026-12-07), and a test holds one of go test's -parallel slots while it waits.
func sendSideBySide(t *testing.T, feeds ...feed) {
	t.Helper()
	for k := 0; ; k++ {
		var sent []*server
		for _, f := range feeds {
			if k < len(f.calls) {
				f.s.sendBatch(t, f.calls[k]...)
				sent = append(sent, f.s)
			}
		}
		if len(sent) == 0 {
			return
		}
		waitAllStored(t, sent)
	}
}

// reversed returns a reversed copy of lines.
func reversed(lines []string) []string {
	r := slices.Clone(lines)
	slices.Reverse(r)
	return r
}

// TestCopyFromAnotherDeviceCountsOnce: an order resent with the same messageId from another
// device of the customer (another anonymousId, so another partition key), seconds later, is one
// order, not a repeat purchase.
func TestCopyFromAnotherDeviceCountsOnce(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	order := `{"type":"track","anonymousId":"%s","userId":"hu","event":"Order Completed","messageId":"mh1","timestamp":"2024-06-14T10:00:%s","properties":{"revenue":10}}`
	for _, copy := range []string{fmt.Sprintf(order, "dA", "00Z"), fmt.Sprintf(order, "dB", "05Z")} {
		s.sendBatch(t, copy)
	}
	s.waitStored(t)
	var counts []int64
	for _, st := range s.funnel(t, "Order Completed,Order Completed", "24h").Steps {
		counts = append(counts, st.Customers)
	}
	if !slices.Equal(counts, []int64{1, 0}) {
		t.Errorf("funnel Order Completed twice: %v, want [1 0] (one order)", counts)
	}
	// The second device's session holds only the copy: no session of its own.
	if sum := s.sessions(t); sum.Sessions != 1 || sum.Events != 1 || sum.Persons != 1 {
		t.Errorf("sessions: %d sessions, %d events, %d persons; want 1, 1, 1 (one order)", sum.Sessions, sum.Events, sum.Persons)
	}
}

// TestCopiesOnOtherKeysCountOnceInSessions: a message stored under several device keys (sent with
// an anonymousId and the userId, then with the userId alone; from a second device; re-stamped
// into another visit, day or month; the later copy arriving first; three copies) counts once in
// sessions, as in every other answer. Each answer of a Waymark that got every copy, through the
// collector one call each, equals that of a Waymark that got each message once (its earliest
// copy): sessions over all time and from a time that leaves the earliest copy out, funnels and
// retention, before and after ClickHouse merges the parts.
func TestCopiesOnOtherKeysCountOnceInSessions(t *testing.T) {
	t.Parallel()
	msg := func(anon, user, event, id, ts string) string {
		m := map[string]any{"type": "track", "event": event, "messageId": id, "timestamp": ts}
		return messageJSON(m, anon, user)
	}
	cases := []struct {
		name     string
		arrivals []string // in the order they are sent
		from     string   // a time after the earliest copy of a message, before a later one
	}{
		{"copy on the userId alone, two weeks later (the tester's)", []string{
			msg("dk-anon", "dk-user", "Order Completed", "dk-o1", "2024-07-02T10:00:00Z"),
			msg("", "dk-user", "Order Completed", "dk-o1", "2024-07-15T10:00:00Z"),
		}, "2024-07-10"},
		{"copy at the same time from another device", []string{
			msg("hA", "hu", "Order Completed", "hu-o1", "2024-06-14T10:00:00Z"),
			msg("hB", "hu", "Order Completed", "hu-o1", "2024-06-14T10:00:00Z"),
		}, "2024-06-14T10:00:00Z"},
		{"copy inside another visit", []string{
			msg("", "vu", "Product Viewed", "vu-1", "2024-06-20T10:00:00Z"),
			msg("dv", "vu", "Product Added", "vu-2", "2024-06-20T10:04:00Z"),
			msg("", "vu", "Product Added", "vu-2", "2024-06-20T10:05:00Z"),
			msg("", "vu", "Order Completed", "vu-3", "2024-06-20T10:10:00Z"),
		}, "2024-06-20T10:02:00Z"},
		{"copy re-stamped into the next month", []string{
			msg("mb-anon", "mb", "Order Completed", "mb-o1", "2024-05-31T23:59:58Z"),
			msg("", "mb", "Order Completed", "mb-o1", "2024-06-01T00:00:03Z"),
		}, "2024-06-01"},
		{"the later copy arrives first", []string{
			msg("", "lu", "Order Completed", "lu-o1", "2024-08-03T10:00:00Z"),
			msg("", "lu", "Product Viewed", "lu-v2", "2024-08-03T10:01:00Z"),
			msg("ld", "lu", "Product Viewed", "lu-v1", "2024-08-01T09:00:00Z"),
			msg("ld", "lu", "Order Completed", "lu-o1", "2024-08-01T09:02:00Z"),
		}, "2024-08-02"},
		{"three copies on three keys", []string{
			msg("t2", "tu", "Order Completed", "tu-o1", "2024-09-02T10:00:00Z"),
			msg("", "tu", "Order Completed", "tu-o1", "2024-10-11T10:00:00Z"),
			msg("t1", "tu", "Order Completed", "tu-o1", "2024-09-01T10:00:00Z"),
			msg("t1", "tu", "Product Viewed", "tu-v1", "2024-09-01T09:59:00Z"),
		}, "2024-09-01T12:00:00Z"},
		// A family laptop first signed in on by sv, so the graph gives it to sv: su's order on it,
		// retried by the server under su's userId, stamped later (a copy that would join su's
		// visits at 09:40 and 10:26 into one) or earlier (tester 45's F1).
		{"a server's retry of an order on a shared device", []string{
			msg("", "su", "Product Viewed", "s-a", "2024-07-05T09:40:00Z"),
			msg("", "su", "Order Completed", "s-b", "2024-07-05T10:26:00Z"),
			`{"type":"identify","anonymousId":"sdev","userId":"sv","messageId":"s-iv","timestamp":"2024-07-05T09:00:00Z"}`,
			msg("sdev", "", "Product Viewed", "s-vv", "2024-07-05T09:01:00Z"),
			`{"type":"identify","anonymousId":"sdev","userId":"su","messageId":"s-i","timestamp":"2024-07-05T10:00:00Z"}`,
			msg("sdev", "su", "Product Viewed", "s-v", "2024-07-05T10:01:00Z"),
			msg("sdev", "su", "Order Completed", "s-x", "2024-07-05T10:02:00Z"),
			msg("", "su", "Order Completed", "s-x", "2024-07-05T10:03:00Z"),
			msg("sdev", "su", "Order Completed", "s-y", "2024-07-05T12:12:00Z"),
			msg("", "su", "Order Completed", "s-y", "2024-07-05T12:11:00Z"),
		}, "2024-07-05T10:02:30Z"},
		{"a whole visit sent again from a second device", []string{
			msg("w1", "wu", "Product Viewed", "wu-1", "2024-11-05T10:00:00Z"),
			msg("w1", "wu", "Order Completed", "wu-2", "2024-11-05T10:02:00Z"),
			msg("w2", "wu", "Product Viewed", "wu-1", "2024-11-05T11:00:00Z"),
			msg("w2", "wu", "Order Completed", "wu-2", "2024-11-05T11:02:00Z"),
		}, "2024-11-05T10:30:00Z"},
	}
	every, once := startServe(t), startServe(t)
	gets := []string{"/api/v1/sessions", "/api/v1/funnel?steps=Order+Completed,Order+Completed&window=720h",
		"/api/v1/retention?period=month", "/api/v1/stages"}
	for _, c := range cases {
		for _, l := range c.arrivals {
			path := "/v1/track"
			if strings.Contains(l, `"type":"identify"`) {
				path = "/v1/identify"
			}
			if status, answer := every.track(t, path, l); status != 200 {
				t.Fatalf("%s: POST %s %s: %d %s", c.name, path, l, status, answer)
			}
		}
		for _, l := range earliestCopiesOnly(t, c.arrivals) { // an identify among them (the links of a later copy)
			once.sendBatch(t, l)
		}
		gets = append(gets, "/api/v1/sessions?from="+url.QueryEscape(c.from))
	}
	every.waitStored(t)
	once.waitStored(t)
	// once's answers are read once: only every's parts are merged below, and asking once's
	// unchanged store the same questions again cost a quarter of the test's queries.
	want := answersOf(t, once, gets)
	for _, merged := range []bool{false, true} {
		if merged {
			optimizeFinal(t, every.database+".events")
			optimizeFinal(t, every.database+".sessions")
		}
		got := answersOf(t, every, gets)
		for _, g := range gets {
			if !strings.HasPrefix(got[g], "200 ") || got[g] != want[g] {
				t.Errorf("merged %v: %s: %s\ndelivered once: %s", merged, g, got[g], want[g])
			}
		}
		every.batchAnswersAsAlone(t, gets[:4]...)
	}
}

// TestCopiesOnOtherKeysCountOnceAfterRestartAndEviction: the other key of a person that holds a
// copy of a message is restored with the key a later copy comes under, after a restart of serve
// (same database) and after an eviction (--max-customers 1, other customers' visits between the
// copies): a server's retry under the userId of an order the device sent anonymously before
// identify; the same order from the user's second device; the later copy arriving first; a
// server's retry under the userId of a shared device's second user, whose sign-in on it the
// identity links do not hold (the restarted serve reads it from the stored sign-ins). The
// copies carry other payloads (coupon A at the earliest, B at the later) and fall on both sides
// of a query's from. Every answer (funnels over all time, from after the earliest copy, with the
// filter of either coupon; sessions; retention; stages), before and after ClickHouse merges the
// parts, equals that of a serve that got each message once (its earliest copy), and the live
// order count counts each order once.
func TestCopiesOnOtherKeysCountOnceAfterRestartAndEviction(t *testing.T) {
	t.Parallel()
	msg := func(typ, anon, user, id, ts, coupon string) string {
		m := map[string]any{"type": typ, "messageId": id, "timestamp": ts}
		if typ == "track" {
			m["event"], m["properties"] = "Order Completed", map[string]string{"coupon": coupon}
		}
		return messageJSON(m, anon, user)
	}
	const earliest, later = "2024-07-02T10:00:00Z", "2024-07-15T10:00:00Z"
	// before are sent before the restart or the other customers' visits; after, after them.
	var before, after []string
	for _, c := range []struct{ before, after []string }{
		{ // a server's retry under the userId
			[]string{msg("track", "ra", "", "r-o1", earliest, "A"), msg("identify", "ra", "ru", "r-id", "2024-07-02T10:01:00Z", "")},
			[]string{msg("track", "", "ru", "r-o1", later, "B")},
		},
		{ // the user's second device
			[]string{msg("track", "da", "du", "d-o1", earliest, "A")},
			[]string{msg("track", "db", "du", "d-o1", later, "B")},
		},
		{ // the later copy arrives first
			[]string{msg("track", "la", "lu", "l-o1", later, "B")},
			[]string{msg("track", "", "lu", "l-o1", earliest, "A")},
		},
		{ // a server's retry under the userId of the second user of a shared device (tester 45's F1)
			[]string{msg("identify", "sa", "sv", "s-iv", "2024-07-02T09:00:00Z", ""), msg("identify", "sa", "su", "s-iu", "2024-07-02T09:30:00Z", ""),
				msg("track", "sa", "su", "s-o1", earliest, "A")},
			[]string{msg("track", "", "su", "s-o1", later, "B")},
		},
	} {
		before, after = append(before, c.before...), append(after, c.after...)
	}
	var visits []string // other customers, active after the copies' persons: evicted last
	for i := range 3 {
		visits = append(visits, fmt.Sprintf(`{"type":"track","event":"Product Viewed","anonymousId":"visitor-%d","messageId":"v-%d","timestamp":"2024-08-0%dT10:00:00Z"}`, i, i, i+1))
	}
	all := slices.Concat(before, visits, after)
	orders := func(s *server) float64 { // the live order count, over channels
		n := 0.0
		for _, line := range strings.Split(scrape(t, s.http), "\n") {
			if v, ok := strings.CutPrefix(line, "waymark_journey_orders_total{"); ok {
				f, err := strconv.ParseFloat(v[strings.Index(v, "} ")+2:], 64)
				if err != nil {
					t.Fatalf("%s: %v", line, err)
				}
				n += f
			}
		}
		return n
	}
	// One call each, each stored before the next: the evictions come between them.
	once, restarted, evicting := startServe(t), startServe(t), startServe(t, "--max-customers", "1")
	sendSideBySide(t, feed{once, oneCallEach(earliestCopiesOnly(t, all)...)},
		feed{restarted, oneCallEach(slices.Concat(before, visits)...)}, feed{evicting, oneCallEach(all...)})
	wantOrders := orders(once)

	liveOrders := orders(restarted)
	restarted.stop(t)
	database := restarted.database
	restarted = startServe(t, "--clickhouse-database", database)
	restarted.database = database
	sendSideBySide(t, feed{restarted, oneCallEach(after...)})
	if n := metricValue(t, scrape(t, restarted.http), "waymark_sessionizer_duplicates_total"); n != float64(len(after)) {
		t.Errorf("restarted: %v duplicates counted, want %d (the second copies)", n, len(after))
	}
	restoredLoads(t, "restarted", scrape(t, restarted.http), len(before))
	if got := liveOrders + orders(restarted); got != wantOrders {
		t.Errorf("restarted: %v orders counted live before and after the restart, want %v (each once)", got, wantOrders)
	}

	metrics := scrape(t, evicting.http)
	if n := metricValue(t, metrics, "waymark_sessionizer_evictions_total"); n == 0 {
		t.Errorf("evicting: no evictions with --max-customers 1: the test needs them")
	}
	if n := metricValue(t, metrics, "waymark_sessionizer_duplicates_total"); n != float64(len(after)) {
		t.Errorf("evicting: %v duplicates counted, want %d (the second copies)", n, len(after))
	}
	restoredLoads(t, "evicting", metrics, len(before))
	if got := orders(evicting); got != wantOrders {
		t.Errorf("evicting: %v orders counted live, want %v (each once)", got, wantOrders)
	}

	gets := []string{
		"/api/v1/funnel?steps=Order+Completed&window=720h",
		"/api/v1/funnel?steps=Order+Completed&window=720h&from=2024-07-10",
		"/api/v1/funnel?steps=" + url.QueryEscape("Order Completed[coupon=A]") + "&window=720h",
		"/api/v1/funnel?steps=" + url.QueryEscape("Order Completed[coupon=B]") + "&window=720h",
		"/api/v1/sessions",
		"/api/v1/sessions?from=2024-07-10",
		"/api/v1/retention?period=month",
		"/api/v1/stages",
	}
	want := answersOf(t, once, gets)
	var f funnelJSON // the earliest copies: coupon A, all four before from
	if err := json.Unmarshal([]byte(strings.TrimPrefix(want[gets[2]], "200 ")), &f); err != nil || len(f.Steps) != 1 || f.Steps[0].Customers != 4 {
		t.Fatalf("delivered once: %s answers %s, want 4 customers", gets[2], want[gets[2]])
	}
	answerAsDeliveredOnce(t, want, gets, namedServer{"restarted", restarted}, namedServer{"evicting", evicting})
}

// TestCopiesJoinedAfterBothArriveCountOnce is field case 01's kind where the two keys holding
// copies of one message become one person only after both copies are stored (tester4's finding
// 1: t4b2, t4b3, t4b7): an order sent anonymously from a device (coupon A, the earliest copy) and
// again under the userId, or from a second device, or under a second userId (coupon B, seconds
// later), in either arrival order, then the identify or alias joining them; with a restart of
// serve between the copies or between a copy and the link. Every answer (funnels over all
// time, from between the copies, with either coupon's filter, the coupon B step before another
// order; drop-off; sessions; stages; retention), before and after ClickHouse merges the parts,
// equals that of a serve that got each message once (its earliest copy). Every serve runs with
// --alias-joins-users, with which alone the alias joins the two userIds.
func TestCopiesJoinedAfterBothArriveCountOnce(t *testing.T) {
	t.Parallel()
	msg := func(typ, anon, user, id, ts, coupon string) string {
		m := map[string]any{"type": typ, "messageId": id, "timestamp": ts}
		switch typ {
		case "track":
			m["event"], m["properties"] = "Order Completed", map[string]string{"coupon": coupon}
		case "view":
			m["type"], m["event"] = "track", "Product Viewed"
		}
		return messageJSON(m, anon, user)
	}
	alias := func(user, previous, id, ts string) string {
		return fmt.Sprintf(`{"type":"alias","userId":%q,"previousId":%q,"messageId":%q,"timestamp":%q}`, user, previous, id, ts)
	}
	// Each case on its own day, d: a view at 10:00, copy A at 10:05:00, copy B at 10:05:05, the
	// links from 10:06. The restarted serve gets every case's before, restarts, then the afters.
	at := func(d int, hms string) string { return fmt.Sprintf("2024-03-%02dT%sZ", d, hms) }
	cases := []struct{ before, after []string }{
		{ // device, then the userId; identify (t4b2's order, no restart between copies)
			[]string{msg("view", "c1a", "", "c1v", at(1, "10:00:00"), ""), msg("track", "c1a", "", "c1m", at(1, "10:05:00"), "A")},
			[]string{msg("track", "", "c1u", "c1m", at(1, "10:05:05"), "B"), msg("identify", "c1a", "c1u", "c1i", at(1, "10:06:00"), "")},
		},
		{ // the later copy first, under the userId
			[]string{msg("track", "", "c2u", "c2m", at(2, "10:05:05"), "B")},
			[]string{msg("view", "c2a", "", "c2v", at(2, "10:00:00"), ""), msg("track", "c2a", "", "c2m", at(2, "10:05:00"), "A"),
				msg("identify", "c2a", "c2u", "c2i", at(2, "10:06:00"), "")},
		},
		{ // a second device identified only afterwards (t4b3, t4b7)
			[]string{msg("view", "c3a", "", "c3v", at(3, "10:00:00"), ""), msg("track", "c3a", "", "c3m", at(3, "10:05:00"), "A"),
				msg("identify", "c3a", "c3u", "c3i", at(3, "10:06:00"), "")},
			[]string{msg("track", "c3b", "", "c3m", at(3, "10:05:05"), "B"), msg("identify", "c3b", "c3u", "c3j", at(3, "10:07:00"), "")},
		},
		{ // two userIds, both copies stored, then alias
			[]string{msg("page", "", "c4old", "c4v", at(4, "10:00:00"), ""), msg("track", "", "c4old", "c4m", at(4, "10:05:00"), "A"),
				msg("track", "", "c4new", "c4m", at(4, "10:05:05"), "B")},
			[]string{alias("c4new", "c4old", "c4l", at(4, "10:06:00"))},
		},
		{ // the identify after the restart, then the userId's copy (t4b2)
			[]string{msg("view", "c5a", "", "c5v", at(5, "10:00:00"), ""), msg("track", "c5a", "", "c5m", at(5, "10:05:00"), "A")},
			[]string{msg("identify", "c5a", "c5u", "c5i", at(5, "10:06:00"), ""), msg("track", "", "c5u", "c5m", at(5, "10:05:05"), "B")},
		},
	}
	var inOrder, before, after []string
	for _, c := range cases {
		inOrder = slices.Concat(inOrder, c.before, c.after)
		before, after = append(before, c.before...), append(after, c.after...)
	}
	joins := "--alias-joins-users"
	once, every, restarted := startServe(t, joins), startServe(t, joins), startServe(t, joins)
	// One call each, each stored before the next: both copies are stored before the link.
	sendSideBySide(t, feed{once, oneCallEach(earliestCopiesOnly(t, inOrder)...)}, feed{every, oneCallEach(inOrder...)},
		feed{restarted, oneCallEach(before...)})
	restarted.stop(t)
	database := restarted.database
	restarted = startServe(t, "--clickhouse-database", database, joins)
	restarted.database = database
	sendSideBySide(t, feed{restarted, oneCallEach(after...)})

	order := url.QueryEscape("Order Completed")
	couponA, couponB := url.QueryEscape("Order Completed[coupon=A]"), url.QueryEscape("Order Completed[coupon=B]")
	gets := []string{
		"/api/v1/funnel?steps=" + order + "&window=720h",
		"/api/v1/funnel?steps=" + couponA + "&window=720h",
		"/api/v1/funnel?steps=" + couponB + "&window=720h",
		"/api/v1/funnel?steps=" + couponB + "," + order + "&window=720h",
		"/api/v1/funnel?steps=Product+Viewed," + couponB + "&window=720h",
		"/api/v1/funnel?steps=" + order + "&breakdown=property:coupon",
		"/api/v1/dropoff?steps=Product+Viewed," + couponB + "&step=1&window=720h",
		"/api/v1/dropoff?steps=Product+Viewed," + couponA + "&step=1&window=720h",
		"/api/v1/sessions",
		"/api/v1/retention?period=week",
		"/api/v1/stages",
	}
	for d := range len(cases) {
		from := url.QueryEscape(at(d+1, "10:05:02")) + "&to=" + url.QueryEscape(at(d+2, "00:00:00"))
		gets = append(gets, "/api/v1/funnel?steps="+order+"&from="+from, "/api/v1/sessions?from="+from,
			"/api/v1/stages?from="+from)
	}
	want := answersOf(t, once, gets)
	var f funnelJSON // the earliest copies: coupon A, one order a person
	if err := json.Unmarshal([]byte(strings.TrimPrefix(want[gets[1]], "200 ")), &f); err != nil || len(f.Steps) != 1 || f.Steps[0].Customers != int64(len(cases)) {
		t.Fatalf("delivered once: %s answers %s, want %d customers", gets[1], want[gets[1]], len(cases))
	}
	answerAsDeliveredOnce(t, want, gets, namedServer{"in order", every}, namedServer{"restarted", restarted})
}

// answersOf returns the status and compact JSON body s answers to each of gets.
func answersOf(t *testing.T, s *server, gets []string) map[string]string {
	t.Helper()
	answers := map[string]string{}
	for _, g := range gets {
		code, body := httpGet(t, "http://"+s.http+g)
		answers[g] = fmt.Sprintf("%d %s", code, compactJSON(t, body))
	}
	return answers
}

type namedServer struct {
	name string
	s    *server
}

// answerAsDeliveredOnce checks that each server answers every one of gets as a serve that got
// each message once did (want, from answersOf), before and after ClickHouse merges their events
// and sessions (OPTIMIZE FINAL).
func answerAsDeliveredOnce(t *testing.T, want map[string]string, gets []string, servers ...namedServer) {
	t.Helper()
	for _, merged := range []bool{false, true} {
		for _, s := range servers {
			if merged {
				optimizeFinal(t, s.s.database+".events")
				optimizeFinal(t, s.s.database+".sessions")
			}
			got := answersOf(t, s.s, gets)
			for _, g := range gets {
				if got[g] != want[g] {
					t.Errorf("%s (merged %v): %s answers\n%s\ndelivered once:\n%s", s.name, merged, g, got[g], want[g])
				}
			}
		}
	}
}

// restoredLoads checks that the restores of a serve loaded want stored events (those of the
// persons whose copies came again, each once, and none of the other customers'), and logs what
// they loaded.
func restoredLoads(t *testing.T, name, metrics string, want int) {
	t.Helper()
	customers := metricValue(t, metrics, "waymark_sessionizer_customers_restored_total")
	events := metricValue(t, metrics, "waymark_sessionizer_restored_events_total")
	t.Logf("%s: %v customers restored, %v stored events loaded", name, customers, events)
	if events != float64(want) {
		t.Errorf("%s: restores loaded %v stored events, want %d (the copied persons' events, once)", name, events, want)
	}
}

// earliestCopiesOnly is lines (Segment messages, in the order they are sent) without the later
// copies of each messageId: it keeps the earliest by timestamp, the first sent at equal times. A
// later copy's identity links count all the same (sessionize.Output.LaterCopies): one that carries
// links the kept copy does not (an identify, an alias, an event with both ids) is replaced, where
// it was sent, by a message of its own (its messageId suffixed "-links") carrying only those: an
// identify of its ids, or the alias itself. Identify and alias calls are no touchpoints, so that
// message changes the answers by its links alone.
func earliestCopiesOnly(t *testing.T, lines []string) []string {
	t.Helper()
	type message struct {
		Type, MessageID                 string
		UserID, AnonymousID, PreviousID any // a string, or a number as a client may send
		Timestamp                       time.Time
	}
	id := func(v any) string {
		if v == nil {
			return ""
		}
		return fmt.Sprint(v)
	}
	// links names the identity links m carries, "" for none.
	links := func(m message) string {
		user, anon, previous := id(m.UserID), id(m.AnonymousID), ""
		if m.Type == "alias" {
			previous = id(m.PreviousID)
		}
		if user == "" || anon == "" && previous == "" {
			return ""
		}
		return user + "|" + anon + "|" + previous
	}
	first := map[string]int{} // by messageId: the index of the copy kept
	msgs := make([]message, len(lines))
	for i, l := range lines {
		m := &msgs[i]
		if err := json.Unmarshal([]byte(l), m); err != nil {
			t.Fatal(err)
		}
		if f, ok := first[m.MessageID]; !ok || m.Timestamp.Before(msgs[f].Timestamp) {
			first[m.MessageID] = i
		}
	}
	var out []string
	for i, l := range lines {
		m := msgs[i]
		kept := msgs[first[m.MessageID]]
		switch {
		case first[m.MessageID] == i:
			out = append(out, l)
		case links(m) == "" || links(m) == links(kept):
		case m.Type == "alias":
			var raw map[string]any
			if err := json.Unmarshal([]byte(l), &raw); err != nil {
				t.Fatal(err)
			}
			raw["messageId"] = m.MessageID + "-links"
			b, _ := json.Marshal(raw)
			out = append(out, string(b))
		default:
			b, _ := json.Marshal(map[string]any{"type": "identify", "userId": m.UserID, "anonymousId": m.AnonymousID,
				"messageId": m.MessageID + "-links", "timestamp": m.Timestamp})
			out = append(out, string(b))
		}
	}
	return out
}

// TestEqualTimesKeepTheClientsOrder: SDKs stamp events to the second, so a visit's events often
// share a timestamp. Sessions, paths and next take them in the order the client sent them (their
// place in the partition), one device forwards and one backwards, through HTTP and through kcat.
func TestEqualTimesKeepTheClientsOrder(t *testing.T) {
	t.Parallel()
	event := func(device, typ, name, id string) string {
		field := "event"
		if typ == "page" {
			field = "name"
		}
		return fmt.Sprintf(`{"type":%q,"anonymousId":%q,%q:%q,"messageId":%q,"timestamp":"2024-07-01T12:00:00Z"}`, typ, device, field, name, id)
	}
	lines := []string{
		event("fwd", "page", "Home", "f1"), event("fwd", "track", "Product Viewed", "f2"), event("fwd", "track", "Product Added", "f3"),
		event("bwd", "track", "Product Added", "b1"), event("bwd", "track", "Product Viewed", "b2"), event("bwd", "page", "Home", "b3"),
	}
	for _, s := range sendBothWays(t, lines) {
		got := queryStrings(t, "SELECT customer_key || ': ' || entry_event || ' > ' || exit_event FROM "+s.database+".sessions FINAL WHERE deleted = 0 ORDER BY customer_key")
		if want := []string{"bwd: Product Added > Home", "fwd: Home > Product Added"}; !slices.Equal(got, want) {
			t.Errorf("%s: sessions %v, want %v", s.database, got, want)
		}
		code, body := httpGet(t, "http://"+s.http+"/api/v1/next?window=1h&anchor="+url.QueryEscape("Product Viewed"))
		var next struct {
			Touchpoints []struct {
				Value string
				Count int64
			}
		}
		if err := json.Unmarshal([]byte(body), &next); code != 200 || err != nil {
			t.Fatalf("%s: next: %d %s", s.database, code, body)
		}
		gotNext := map[string]int64{}
		for _, tp := range next.Touchpoints {
			gotNext[tp.Value] = tp.Count
		}
		if gotNext["Product Added"] != 1 || gotNext["Home"] != 1 || len(gotNext) != 2 {
			t.Errorf("%s: next after Product Viewed %v, want Product Added 1 (fwd), Home 1 (bwd)", s.database, gotNext)
		}
		code, body = httpGet(t, "http://"+s.http+"/api/v1/paths?window=1h&depth=3&anchor=Home&convert="+url.QueryEscape("Product Added"))
		var paths struct {
			Paths []struct {
				Touchpoints []string
				Marker      string
			}
		}
		if err := json.Unmarshal([]byte(body), &paths); code != 200 || err != nil {
			t.Fatalf("%s: paths: %d %s", s.database, code, body)
		}
		var gotPaths []string
		for _, p := range paths.Paths {
			gotPaths = append(gotPaths, strings.Join(append(p.Touchpoints, "<"+p.Marker+">"), " > "))
		}
		slices.Sort(gotPaths)
		if want := []string{"Home > <exit>", "Home > Product Viewed > Product Added > <>"}; !slices.Equal(gotPaths, want) {
			t.Errorf("%s: paths from Home %v, want %v (fwd goes on, bwd ends at Home)", s.database, gotPaths, want)
		}
	}
}

// TestCaseRetriedEventAnswersAlikeInAnyArrivalOrder runs field case identity/01 and
// testdata/copy-inside-visit.jsonl (an order re-stamped to a time inside the same visit) in time
// order and reversed, so the re-stamped copy of each order arrives before the original: one
// /v1/track call each, reversed in one /v1/batch call, and reversed straight to Kafka. The
// earliest copy of a message is the event whatever order its copies arrive in: every answer
// (funnels over all time and per month, sessions, retention, stages, drop-off, paths) is the
// same, byte for byte, before and after ClickHouse merges the events' parts.
func TestCaseRetriedEventAnswersAlikeInAnyArrivalOrder(t *testing.T) {
	t.Parallel()
	lines := append(readLines(t, casesDir+"/identity/01-dup-messageid-new-timestamp/events.jsonl"), readLines(t, "testdata/copy-inside-visit.jsonl")...)
	inOrder, reversedCalls, reversedBatch := startServe(t), startServe(t), startServe(t)
	// Each message stored on its own, and kept apart until the test merges them: the copies of
	// an order are two rows, as when ClickHouse has not merged them yet.
	execClickHouse(t, "SYSTEM STOP MERGES "+reversedCalls.database+".events")
	for _, send := range []struct {
		s     *server
		lines []string
	}{{inOrder, lines}, {reversedCalls, reversed(lines)}} {
		for _, l := range send.lines { // one call per message, as a retrying SDK sends them
			if status, answer := send.s.track(t, "/v1/track", l); status != 200 {
				t.Fatalf("POST /v1/track %s: %d %s", l, status, answer)
			}
			send.s.waitStored(t)
		}
	}
	if rows := queryStrings(t, "SELECT toString(count()) FROM "+reversedCalls.database+".events"); !slices.Equal(rows, []string{strconv.Itoa(len(lines))}) {
		// Seen once in CI (6 of 10, 18.16) and not reproduced in 31 runs since: what was stored
		// and where the consumer group stood tell which step lost or merged the rows.
		stored := queryStrings(t, "SELECT message_id || ' ' || toString(ts_ms) || ' ' || _part FROM "+reversedCalls.database+".events ORDER BY _part, message_id")
		offsets, err := ingest.GroupOffsets(t.Context(), []string{reversedCalls.broker}, "waymark", "waymark.events")
		t.Fatalf("reversed, one call each: %v rows stored, want one per message sent (%d): the test needs them unmerged\nstored (id, ts_ms, part): %q\ngroup offsets: %+v (%v)", rows, len(lines), stored, offsets, err)
	}
	reversedBatch.sendBatch(t, reversed(lines)...)
	servers := []namedServer{{"in order", inOrder}, {"reversed, one call each", reversedCalls}, {"reversed, one batch", reversedBatch}}
	if everyPath() {
		viaKafka := startServe(t)
		produceWithKcat(t, viaKafka.broker, reversed(lines))
		servers = append(servers, namedServer{"reversed, through kcat", viaKafka})
	}
	for _, s := range servers {
		s.s.waitStored(t)
	}
	gets := []string{
		"/api/v1/funnel?steps=Order+Completed,Order+Completed&window=720h",
		"/api/v1/funnel?steps=Order+Completed,Order+Completed&window=720h&from=2024-05-01&to=2024-06-01",
		"/api/v1/funnel?steps=Order+Completed,Order+Completed&window=720h&from=2024-06-01&to=2024-07-01",
		"/api/v1/funnel?steps=conversion,loyalty&window=720h",
		"/api/v1/funnel?steps=Product+Viewed,Order+Completed,Product+Added&window=24h",
		"/api/v1/sessions",
		"/api/v1/sessions?from=2024-05-01&to=2024-06-01",
		"/api/v1/sessions?from=2024-06-01&to=2024-07-01",
		"/api/v1/retention?period=month",
		"/api/v1/stages",
		"/api/v1/dropoff?steps=Product+Viewed,Order+Completed,Checkout+Started&window=24h",
		"/api/v1/paths?anchor=Order+Completed&direction=end&depth=4",
		"/api/v1/paths?anchor=Product+Viewed&depth=4",
	}
	want := map[string]string{} // in order, before the merge
	for _, merged := range []bool{false, true} {
		for _, s := range servers {
			if merged {
				execClickHouse(t, "SYSTEM START MERGES "+s.s.database+".events")
				optimizeFinal(t, s.s.database+".events")
			}
			for _, g := range gets {
				code, body := httpGet(t, "http://"+s.s.http+g)
				if code != 200 {
					t.Fatalf("%s (merged %v): %s: %d %s", s.name, merged, g, code, body)
				}
				got := compactJSON(t, body)
				if w, ok := want[g]; !ok {
					want[g] = got
				} else if got != w {
					t.Errorf("%s (merged %v): %s answers\n%s\nin order, unmerged:\n%s", s.name, merged, g, got, w)
				}
			}
		}
	}
	// Each order in the month of its earliest copy: cust-b's on May 31, none in June.
	for g, steps := range map[string][]int64{gets[1]: {3, 0}, gets[2]: {0, 0}} {
		var f funnelJSON
		if err := json.Unmarshal([]byte(want[g]), &f); err != nil {
			t.Fatal(err)
		}
		var counts []int64
		for _, st := range f.Steps {
			counts = append(counts, st.Customers)
		}
		if !slices.Equal(counts, steps) {
			t.Errorf("%s: %v, want %v", g, counts, steps)
		}
	}
	if sum := inOrder.sessions(t); sum.Sessions != 3 || sum.Events != 7 {
		t.Errorf("sessions: %d sessions, %d events; want 3 and 7 (cust-a 2, cust-b 1, cust-v 4)", sum.Sessions, sum.Events)
	}
}

// TestSameTimeCopyAnswersAsTheFirstToArrive: two messages with one messageId and one timestamp
// but other payloads (testdata/same-time-copies.jsonl: cust-s's order of 10 resent as 20,
// cust-t's order resent as a Product Added) are one event, the first to arrive, as Segment keeps
// the first copy of a messageId. Every answer is, byte for byte, what Waymark answers when only
// the first copies were sent: in both orders (the first copies first, the second copies first),
// one call each, in one batch, through kcat, and with serve restarted (same database) between the
// copies, so the customers are restored from the store; before ClickHouse merges the events'
// parts (merges stopped) and after (OPTIMIZE FINAL). Each message's stored rows carry the first
// copy's payload, and the live revenue is the first copy's.
func TestSameTimeCopyAnswersAsTheFirstToArrive(t *testing.T) {
	t.Parallel()
	lines := readLines(t, "testdata/same-time-copies.jsonl")
	view, copies := lines[0], [2][]string{lines[1:3], lines[3:5]} // copies[0]: the orders; [1]: their copies
	gets := []string{
		"/api/v1/funnel?steps=" + url.QueryEscape("Product Viewed,Order Completed[revenue>=15]") + "&window=24h",
		"/api/v1/funnel?steps=Order+Completed&window=720h",
		"/api/v1/funnel?steps=Product+Added,Order+Completed&window=720h",
		"/api/v1/funnel?steps=conversion,loyalty&window=720h",
		"/api/v1/sessions",
		"/api/v1/retention?period=month",
		"/api/v1/stages",
		"/api/v1/dropoff?steps=Product+Viewed,Order+Completed&window=24h",
		"/api/v1/paths?anchor=Order+Completed&direction=end&depth=4",
	}
	type payload struct{ event, revenue string }
	stored := func(s *server) map[string][]payload { // each message's distinct stored payloads
		out := map[string][]payload{}
		for _, r := range queryStrings(t, "SELECT DISTINCT message_id || ' ' || event || ' ' || arrayStringConcat(prop_values, ',') FROM "+s.database+".events WHERE message_id != 'm-s-view' ORDER BY 1") {
			f := strings.SplitN(r, " ", 2)
			event, revenue, _ := strings.Cut(f[1], " ")
			out[f[0]] = append(out[f[0]], payload{event, revenue})
		}
		return out
	}
	// Each arrival, and each order's first copies alone, to a serve of its own, their calls side
	// by side (sendSideBySide); the restarted serves' second copies once they restarted. Sent one
	// serve after another (28 calls, each waited for), the test took 12.7–14.1 s alone on 18.16
	// under the race detector, side by side 7.9–9.0 s (2026-12-07).
	type arrival struct {
		name string
		s    *server
	}
	type order struct {
		name      string
		alone     *server
		arrivals  []arrival
		restarted int // the arrival restarted between the copies
	}
	var orders []order
	var feeds, restarts []feed
	for first := range 2 {
		second := 1 - first
		o := order{name: map[int]string{0: "the orders first", 1: "their copies first"}[first], alone: startServe(t)}
		feeds = append(feeds, feed{o.alone, oneCallEach(append([]string{view}, copies[first]...)...)})
		for _, how := range []string{"one call each", "one batch", "restart between the copies"} {
			if how == "one batch" && !everyReordering() {
				continue // one call each's messages, taken in another order
			}
			s := startServe(t)
			// Each message stored on its own and kept apart until the test merges them, as
			// when ClickHouse has not merged the copies' parts yet.
			execClickHouse(t, "SYSTEM STOP MERGES "+s.database+".events")
			switch how {
			case "one call each":
				feeds = append(feeds, feed{s, oneCallEach(append(append([]string{view}, copies[first]...), copies[second]...)...)})
			case "one batch":
				feeds = append(feeds, feed{s, [][]string{append(append([]string{view}, copies[first]...), copies[second]...)}})
			case "restart between the copies":
				feeds = append(feeds, feed{s, oneCallEach(append([]string{view}, copies[first]...)...)})
				restarts = append(restarts, feed{s, oneCallEach(copies[second]...)})
				o.restarted = len(o.arrivals)
			}
			o.arrivals = append(o.arrivals, arrival{o.name + ", " + how, s})
		}
		orders = append(orders, o)
	}
	sendSideBySide(t, feeds...)
	for i, o := range orders {
		for j, a := range o.arrivals {
			if j == o.restarted {
				continue
			}
			metrics := scrape(t, a.s.http)
			if n := metricValue(t, metrics, "waymark_sessionizer_duplicates_total"); n != 2 {
				t.Errorf("%s: %v duplicates counted, want 2 (the copies)", a.name, n)
			}
			want := metricValue(t, scrape(t, o.alone.http), `waymark_journey_revenue_total{channel="direct",currency="USD"}`)
			if got := metricValue(t, metrics, `waymark_journey_revenue_total{channel="direct",currency="USD"}`); got != want {
				t.Errorf("%s: live revenue %v, want the first copies' %v", a.name, got, want)
			}
		}
		s := o.arrivals[o.restarted].s
		s.stop(t)
		database := s.database
		s = startServe(t, "--clickhouse-database", database)
		s.database = database
		o.arrivals[o.restarted].s, restarts[i].s = s, s
	}
	sendSideBySide(t, restarts...)
	if everyPath() {
		var produced []*server
		for i, first := range []int{0, 1} {
			viaKafka := startServe(t)
			produceWithKcat(t, viaKafka.broker, append(append([]string{view}, copies[first]...), copies[1-first]...))
			produced = append(produced, viaKafka)
			orders[i].arrivals = append(orders[i].arrivals, arrival{orders[i].name + ", through kcat", viaKafka})
		}
		waitAllStored(t, produced)
	}
	var revenues []string
	for _, o := range orders {
		alone, arrivals := o.alone, o.arrivals
		wantStored := stored(alone)
		want := map[string]string{} // code and answer: an event name never stored is refused
		for _, g := range gets {
			code, body := httpGet(t, "http://"+alone.http+g)
			want[g] = fmt.Sprintf("%d %s", code, compactJSON(t, body))
		}
		revenues = append(revenues, want[gets[0]])
		for _, merged := range []bool{false, true} {
			for _, a := range arrivals {
				if merged {
					execClickHouse(t, "SYSTEM START MERGES "+a.s.database+".events")
					optimizeFinal(t, a.s.database+".events")
				}
				for _, g := range gets {
					code, body := httpGet(t, "http://"+a.s.http+g)
					if got := fmt.Sprintf("%d %s", code, compactJSON(t, body)); got != want[g] {
						t.Errorf("%s (merged %v): %s answers\n%s\nthe first copies alone:\n%s", a.name, merged, g, got, want[g])
					}
				}
				if got := stored(a.s); !maps.EqualFunc(got, wantStored, slices.Equal) {
					t.Errorf("%s (merged %v): stored payloads %v, want the first copies' %v", a.name, merged, got, wantStored)
				}
			}
		}
	}
	if revenues[0] == revenues[1] {
		t.Errorf("the orders and their copies answer the revenue funnel alike (%s): the test cannot tell which copy counts", revenues[0])
	}
}

// TestSignInsAtOneTimeFollowTheClientsOrder is defect 2 of the second tester's report: three users
// sign in on one device at the same timestamp, in separate calls (testdata/shared-device-ties.jsonl),
// between two anonymous page views. By the one tie rule the first sign-in sent is the first, so the
// view before them is its user's, and the view after them the last sent's, in both client orders
// and in every arrival order that keeps the client's order of the sign-ins: one call each in
// order, the views first, the sign-ins in one batch, through kcat, and with serve restarted (on
// the same database) between the sign-ins and the views, so the device is restored from the store.
// Each arrival has a serve of its own, their calls side by side (arriveSideBySide).
func TestSignInsAtOneTimeFollowTheClientsOrder(t *testing.T) {
	t.Parallel()
	lines := readLines(t, "testdata/shared-device-ties.jsonl")
	view, signIns, after := lines[0], lines[1:4], lines[4]
	type arrival struct {
		what  string
		users []string // in the order they signed in
	}
	var arrivals []arrival
	var calls []callByCall
	for _, users := range [][]string{{"bob", "alice", "carl"}, {"carl", "alice", "bob"}} {
		sent := slices.Clone(signIns)
		if users[0] == "carl" {
			slices.Reverse(sent)
		}
		name := "sent " + strings.Join(users, ", ") + ", "
		for _, a := range []struct {
			name  string
			parts [][][]string // parts, each of calls, each of lines; serve restarts between parts
			kcat  []string
		}{
			{name: "one call each", parts: [][][]string{oneCallEach(append(append([]string{view}, sent...), after)...)}},
			{name: "views first", parts: [][][]string{oneCallEach(append([]string{after, view}, sent...)...)}},
			{name: "sign-ins in one batch", parts: [][][]string{{sent, {after}, {view}}}},
			{name: "restart before the views", parts: [][][]string{oneCallEach(sent...), oneCallEach(after, view)}},
			{name: "through kcat", kcat: append(append([]string{view}, sent...), after)},
		} {
			if a.kcat != nil && !everyPath() {
				continue
			}
			arrivals = append(arrivals, arrival{name + a.name, users})
			calls = append(calls, callByCall{a.kcat, a.parts})
		}
	}
	servers := arriveSideBySide(t, calls)
	for i, a := range arrivals {
		servers[i].checkTies(t, a.what, a.users)
	}
}

// checkTies checks the answers of TestSignInsAtOneTimeFollowTheClientsOrder: users signed in at
// one time in that order.
func (s *server) checkTies(t *testing.T, what string, users []string) {
	t.Helper()
	for page, want := range map[string]string{"Tie View": users[0], "Tie After": users[2]} {
		code, body := httpGet(t, "http://"+s.http+"/api/v1/dropoff?window=24h&step=1&steps="+url.QueryEscape(page+","+page))
		var d struct{ Persons []string }
		if err := json.Unmarshal([]byte(body), &d); code != 200 || err != nil || !slices.Equal(d.Persons, []string{want}) {
			t.Errorf("%s: %s went to %d %s, want %s", what, page, code, body, want)
		}
	}
	stored := queryStrings(t, "SELECT arrayStringConcat(argMax(users, version), ',') FROM "+s.database+".device_sign_ins WHERE device = 'tie-dev'")
	if want := strings.Join(users, ","); !slices.Equal(stored, []string{want}) {
		t.Errorf("%s: stored sign-ins %v, want %s", what, stored, want)
	}
	sessions := queryStrings(t, "SELECT entry_event || '>' || exit_event || '@' || person_id FROM "+s.database+".sessions FINAL WHERE deleted = 0")
	if want := "Tie View>Tie After@" + users[2]; !slices.Equal(sessions, []string{want}) {
		t.Errorf("%s: sessions %v, want %s (one visit, its last touchpoint's person)", what, sessions, want)
	}
}

// TestEveryAcceptedTimeCanBeQueried: the event times ingest accepts end where the times a query
// can name do (2100-01-01, one constant): an event in the last second accepted, received then (a
// live event's time is at most 23 hours after its receive time: TestFutureTimestamps, and a
// receipt after the message reached Waymark is none: TestReplayedReceiptAfterTheReplayIsNone), as
// a receiver's message straight through Kafka, produced then (its CreateTime), is counted by a
// funnel whose to is that end; one a second later is refused (TestInvalidTimestampsAreRefusedLoudly).
func TestEveryAcceptedTimeCanBeQueried(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	lastMs := time.Date(2099, 12, 31, 23, 59, 59, 999e6, time.UTC)
	// Keyed as the collector keys (Murmur2Balancer): a copy forwarded to another partition is
	// produced now, and a receipt after it cannot be the original's.
	last := func(id, anon, timestamp string) kafka.Message {
		return kafka.Message{Key: []byte(anon), Time: lastMs, Headers: []kafka.Header{{Key: ingest.HeaderSource, Value: []byte("a-receiver")}},
			Value: []byte(`{"type":"track","anonymousId":"` + anon + `","event":"Last View","messageId":"` + id + `","timestamp":"` + timestamp + `","receivedAt":"2099-12-31T23:59:59.999Z"}`)}
	}
	w := &kafka.Writer{Transport: ingesttest.Transport(t), Addr: kafka.TCP(s.broker), Topic: "waymark.events", RequiredAcks: kafka.RequireAll, Balancer: &kafka.Murmur2Balancer{}}
	defer w.Close()
	if err := w.WriteMessages(t.Context(), last("l1", "dev-one", "2099-12-31T23:59:59.999Z"),
		last("l2", "dev-offset", "2099-12-31T22:59:59-01:00"), last("l3", "dev-kafka", "2099-12-31T23:59:59.999Z")); err != nil {
		t.Fatal(err)
	}
	s.waitStored(t)
	code, body := httpGet(t, "http://"+s.http+"/api/v1/funnel?steps=Last+View&from=2099-12-31&to=2100-01-01")
	var f funnelJSON
	if err := json.Unmarshal([]byte(body), &f); code != 200 || err != nil || len(f.Steps) != 1 || f.Steps[0].Customers != 3 {
		t.Errorf("funnel to 2100-01-01: %d %s, want the 3 events of the last second counted", code, body)
	}
}

// TestReplayedReceiptAfterTheReplayIsNone: an export's line whose receivedAt is after the replay
// (a server's clock that was wrong, tester 18's F7) is read as received when replayed, through
// `waymark replay` straight to Kafka and as a receiver's message produced now: its timestamp
// stands (and one in 2099 is moved to the receive time, the 23-hour rule), and a line with no
// other time is skipped naming receivedAt, where each was stored at the impossible receipt.
func TestReplayedReceiptAfterTheReplayIsNone(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	line := func(id, times string) string {
		return `{"type":"track","userId":"f7-` + id + `","event":"F7 View","messageId":"` + id + `",` + times + `,"receivedAt":"2099-12-31T23:59:59Z"}`
	}
	start := time.Now()
	out := s.replayLines(t, []string{line("r1", `"timestamp":"2026-01-02T03:04:05Z"`), line("r2", `"timestamp":"2099-12-31T23:59:00Z"`), line("r3", `"context":{}`)})
	if !strings.Contains(out, "skipped 1 event") || !strings.Contains(out, "receivedAt") {
		t.Errorf("replay: %s; want line 3 skipped naming receivedAt", out)
	}
	w := &kafka.Writer{Transport: ingesttest.Transport(t), Addr: kafka.TCP(s.broker), Topic: "waymark.events", RequiredAcks: kafka.RequireAll, Balancer: &kafka.Murmur2Balancer{}}
	defer w.Close()
	if err := w.WriteMessages(t.Context(), kafka.Message{Key: []byte("k1"), Value: []byte(line("k1", `"timestamp":"2026-01-02T03:04:05Z"`)),
		Headers: []kafka.Header{{Key: ingest.HeaderSource, Value: []byte("a-receiver")}}}); err != nil {
		t.Fatal(err)
	}
	s.waitStored(t)
	rows := s.receivedSince(t, start, "event = 'F7 View'")
	if len(rows) != 3 {
		t.Fatalf("stored %v, want r1, r2 and k1", rows)
	}
	for _, r := range rows {
		want := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		if r.id == "r2" {
			want = r.received // moved to its receipt
		}
		if !r.at.Equal(want) {
			t.Errorf("%s stored at %s, want %s", r.id, r.at, want)
		}
	}
}

// TestAliasFromASharedDeviceIsASignIn is field case 05's kind made by an alias
// (testdata/shared-device-alias.jsonl): alice signs in on a kiosk and views a page; then the
// kiosk's alias, whose previousId is its anonymousId (analytics.js), names carol, who orders. An
// alias from an anonymousId is that user signing in on the device (Segment: like identify;
// PostHog refuses to merge two identified persons), so alice and carol stay two persons, in time
// order and reversed, through the collector and kcat: alice's view is hers and carol's the order,
// the refused link is counted, and the kiosk's id is no userId. A server's alias of an earlier
// userId (old → new) joins no one either (without --alias-joins-users, see
// TestAliasOfAnotherUserJoinsNoOne): old's phone and its Offer page stay old's, new orders alone.
func TestAliasFromASharedDeviceIsASignIn(t *testing.T) {
	t.Parallel()
	lines := readLines(t, "testdata/shared-device-alias.jsonl")
	wantPersons := map[string]string{"View": "alice", "Cart": "carol", "Offer": "old"} // dropoff after step 1 lists the viewer
	for _, s := range append(sendBothWays(t, lines), sendBothWays(t, reversed(lines))...) {
		for step, want := range wantPersons {
			code, body := httpGet(t, "http://"+s.http+"/api/v1/dropoff?window=24h&step=1&steps="+step+","+step)
			var d struct{ Persons []string }
			if err := json.Unmarshal([]byte(body), &d); code != 200 || err != nil || !slices.Equal(d.Persons, []string{want}) {
				t.Errorf("%s: %s went to %s (%d), want %s", s.database, step, body, code, want)
			}
		}
		for steps, want := range map[string][]int64{"View,Order Completed": {1, 0}, "Cart,Order Completed": {1, 1}, "Offer,Order Completed": {1, 0}} {
			var counts []int64
			for _, st := range s.funnel(t, steps, "24h").Steps {
				counts = append(counts, st.Customers)
			}
			if !slices.Equal(counts, want) {
				t.Errorf("%s: funnel %s: %v, want %v", s.database, steps, counts, want)
			}
		}
		if sum := s.sessions(t); sum.Persons != 4 {
			t.Errorf("%s: sessions count %d persons, want 4 (alice, carol, old, new)", s.database, sum.Persons)
		}
		merged := queryStrings(t, "SELECT "+readablePerson("customer_key")+" || '=' || argMax(person_id, version) AS p FROM "+s.database+
			".persons WHERE "+readablePerson("customer_key")+" IN ('alice', 'carol', 'old', 'device:phone') GROUP BY customer_key HAVING argMax(person_id, version) != customer_key ORDER BY p")
		if want := []string{"device:phone=old"}; !slices.Equal(merged, want) {
			t.Errorf("%s: persons overrides %v, want %v", s.database, merged, want)
		}
		signIns := queryStrings(t, "SELECT arrayStringConcat(argMax(users, version), ',') FROM "+s.database+".device_sign_ins WHERE device = 'kiosk'")
		if want := []string{"alice,carol"}; !slices.Equal(signIns, want) {
			t.Errorf("%s: kiosk sign-ins %v, want %v", s.database, signIns, want)
		}
		if n := metricValue(t, scrape(t, s.http), "waymark_sessionizer_identity_conflicts_total"); n == 0 {
			t.Errorf("%s: no identity conflict counted", s.database)
		}
	}
}

// TestSharedDeviceKeepsEveryUsersSignIn is field case 05 on busy shared devices: on a shop's
// kiosk 70 customers sign in one after another, each viewing a page anonymously 30 s later; on a
// family laptop alice and bob take turns 80 times. Through the collector and kcat, in time order
// and reversed, the kiosk's views are 70 persons', every laptop view is the viewer's (each names
// who viewed it), and no sign-in is lost.
func TestSharedDeviceKeepsEveryUsersSignIn(t *testing.T) {
	t.Parallel()
	var lines []string
	at := func(minutes int, seconds int) string {
		return time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC).Add(time.Duration(minutes)*time.Minute + time.Duration(seconds)*time.Second).Format(time.RFC3339)
	}
	for i := range 70 {
		lines = append(lines,
			fmt.Sprintf(`{"type":"identify","anonymousId":"kiosk1","userId":"kU%02d","messageId":"ki%d","timestamp":%q}`, i, i, at(10*i, 0)),
			fmt.Sprintf(`{"type":"track","anonymousId":"kiosk1","event":"KI View","messageId":"kv%d","timestamp":%q}`, i, at(10*i, 30)))
	}
	for i := range 160 {
		who := []string{"kj-alice", "kj-bob"}[i%2]
		lines = append(lines,
			fmt.Sprintf(`{"type":"identify","anonymousId":"kj1","userId":%q,"messageId":"ji%d","timestamp":%q}`, who, i, at(5*i, 0)),
			fmt.Sprintf(`{"type":"track","anonymousId":"kj1","event":"KJ View","properties":{"who":%q},"messageId":"jv%d","timestamp":%q}`, who, i, at(5*i, 30)))
	}
	for _, s := range append(sendBothWays(t, lines), sendBothWays(t, reversed(lines))...) {
		if got := s.funnel(t, "KI View", "24h").Steps[0].Customers; got != 70 {
			t.Errorf("%s: the kiosk's views are %d persons', want 70", s.database, got)
		}
		for _, who := range []string{"kj-alice", "kj-bob"} {
			step := url.QueryEscape("KJ View[who=" + who + "]")
			code, body := httpGet(t, "http://"+s.http+"/api/v1/dropoff?window=24h&step=1&steps="+step+",KI+View")
			var d struct{ Persons []string }
			if err := json.Unmarshal([]byte(body), &d); code != 200 || err != nil || !slices.Equal(d.Persons, []string{who}) {
				t.Errorf("%s: %s's views went to %s (%d), want %s only", s.database, who, body, code, who)
			}
		}
		if n := metricValue(t, scrape(t, s.http), "waymark_sessionizer_sign_ins_lost_total"); n != 0 {
			t.Errorf("%s: %v sign-ins lost", s.database, n)
		}
	}
}

// TestSignInsPastTheBoundGoToNoUser: a device keeps sessionize.MaxDeviceSignIns sign-ins. Three
// users take turns on one device, each turn three sign-ins (identify, then two events with both
// ids) around an anonymous view, until even each turn's first and last sign-in are more than it
// keeps: the sign-ins inside turns are dropped first, who was signed in when staying exact, then
// the oldest but the first, counted. In every query the anonymous views of the dropped span go
// to no user (a person of its own), never to the first user nor to anyone but the viewer; the
// rest to the viewer. Through the collector and kcat. No client can join that person: a userId of
// NUL and the device's id (its person's id) is refused naming userId, and dead-lettered from
// Kafka (were it stored, the no-user person would not drop off before BV End).
func TestSignInsPastTheBoundGoToNoUser(t *testing.T) {
	t.Parallel()
	const turns = sessionize.MaxDeviceSignIns/2 + 40
	users := []string{"bu0", "bu1", "bu2"}
	var lines []string
	for i := range turns {
		at := func(seconds int) string {
			return time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i)*time.Minute + time.Duration(seconds)*time.Second).Format(time.RFC3339)
		}
		lines = append(lines,
			fmt.Sprintf(`{"type":"identify","anonymousId":"busy","userId":%q,"messageId":"bi%d","timestamp":%q}`, users[i%3], i, at(0)),
			fmt.Sprintf(`{"type":"track","anonymousId":"busy","userId":%q,"event":"BT","messageId":"bs%d","timestamp":%q}`, users[i%3], i, at(10)),
			fmt.Sprintf(`{"type":"track","anonymousId":"busy","event":"BV","properties":{"who":%q},"messageId":"bv%d","timestamp":%q}`, users[i%3], i, at(20)),
			fmt.Sprintf(`{"type":"track","anonymousId":"busy","userId":%q,"event":"BT","messageId":"bt%d","timestamp":%q}`, users[i%3], i, at(30)))
	}
	lines = append(lines, `{"type":"track","userId":"other","event":"BV End","messageId":"be","timestamp":"2024-06-01T00:00:00Z"}`)
	const forged = `{"type":"track","userId":"\u0000busy","event":"BV End","messageId":"bn","timestamp":"2024-06-01T01:00:00Z"}`
	lines = append(lines, forged)
	viaHTTP := startServe(t)
	for batch := range slices.Chunk(lines[:len(lines)-1], 1000) { // a batch is at most 500 KB
		viaHTTP.sendBatch(t, batch...)
	}
	if status, answer := viaHTTP.track(t, "/v1/track", forged); status != 400 || !strings.Contains(answer, `"field":"userId"`) {
		t.Errorf("POST /v1/track with a userId of NUL and the device's id: %d %s, want 400 naming userId", status, answer)
	}
	servers := []*server{viaHTTP}
	if everyPath() { // the consumer's own checks (the forged userId dead-lettered) too
		viaKafka := startServe(t)
		produceWithKcat(t, viaKafka.broker, lines)
		servers = append(servers, viaKafka)
	}
	for _, s := range servers {
		s.waitStored(t)
		for _, who := range users {
			step := url.QueryEscape("BV[who=" + who + "]")
			code, body := httpGet(t, "http://"+s.http+"/api/v1/dropoff?step=1&ids_limit=10&steps="+step+",BV+End&from=2024-06-01&to=2024-06-05")
			var d struct{ Persons []string }
			if err := json.Unmarshal([]byte(body), &d); code != 200 || err != nil || !slices.Equal(d.Persons, []string{who, "\x00busy"}) {
				t.Errorf("%s: %s's views went to %s (%d), want %s and no user", s.database, who, body, code, who)
			}
		}
		if n := metricValue(t, scrape(t, s.http), "waymark_sessionizer_sign_ins_lost_total"); n == 0 {
			t.Errorf("%s: no sign-in counted lost", s.database)
		}
		if n := metricValue(t, scrape(t, s.http), `waymark_dlq_messages_total{path="`+map[bool]string{true: "collector", false: "consumer"}[s == viaHTTP]+`",reason="invalid_field"}`); n != 1 {
			t.Errorf("%s: %v dead letters invalid_field, want the forged userId's", s.database, n)
		}
		// The sign-ins inside turns went first: about 40 turns are lost, not the 700 that
		// dropping the oldest sign-ins alone would lose.
		runs := queryStrings(t, "SELECT toString(length(argMax(users, version))) FROM "+s.database+".device_sign_ins WHERE device = 'busy'")
		if n, err := strconv.Atoi(strings.Join(runs, "")); err != nil || n < turns-100 || n >= turns {
			t.Errorf("%s: %v runs of users stored, want fewer than the %d turns, by less than 100", s.database, runs, turns)
		}
	}
}

// TestCopiesOnOtherKeysCountOnceLive is field case 01's kind in the live journey metrics: one
// order sent from the browser (anonymousId and userId), retried by the server under the userId
// 2 s later, and copied from the person's laptop. The funnel counts it once, and so do the live
// orders, revenue and conversion stage entries, through the collector and kcat, in time order
// and reversed.
func TestCopiesOnOtherKeysCountOnceLive(t *testing.T) {
	t.Parallel()
	lines := []string{
		`{"type":"identify","anonymousId":"r4web","userId":"r4u","messageId":"r4-i","timestamp":"2024-12-08T09:00:00Z"}`,
		`{"type":"track","anonymousId":"r4web","userId":"r4u","event":"Order Completed","messageId":"r4-o","timestamp":"2024-12-08T10:00:00Z","properties":{"revenue":50}}`,
		`{"type":"track","userId":"r4u","event":"Order Completed","messageId":"r4-o","timestamp":"2024-12-08T10:00:02Z","properties":{"revenue":50}}`,
		`{"type":"track","anonymousId":"r4lap","userId":"r4u","event":"Order Completed","messageId":"r4-o","timestamp":"2024-12-08T10:00:05Z","properties":{"revenue":50}}`,
	}
	for _, s := range append(sendBothWays(t, lines), sendBothWays(t, reversed(lines))...) {
		if got := s.funnel(t, "Order Completed", "24h").Steps[0].Customers; got != 1 {
			t.Errorf("%s: funnel Order Completed %d, want 1", s.database, got)
		}
		metrics := scrape(t, s.http)
		got := map[string]float64{}
		for _, line := range strings.Split(metrics, "\n") {
			for _, name := range []string{"waymark_journey_orders_total{", "waymark_journey_revenue_total{", "waymark_journey_stage_entries_total{"} {
				if strings.HasPrefix(line, name) && (!strings.Contains(name, "stage") || strings.Contains(line, `stage="conversion"`)) {
					v, err := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
					if err != nil {
						t.Fatalf("%s: %v", line, err)
					}
					got[strings.TrimSuffix(name, "{")] += v
				}
			}
		}
		want := map[string]float64{"waymark_journey_orders_total": 1, "waymark_journey_revenue_total": 50, "waymark_journey_stage_entries_total": 1}
		if !maps.Equal(got, want) {
			t.Errorf("%s: live metrics %v, want %v", s.database, got, want)
		}
	}
}

// TestCopiesOnOtherKeysAnswerAsTheFirst is the tester's N1, field case 01's kind with other
// payloads: one message (same messageId) sent under the device key and under the userId of one
// person, with another name and coupon. The earliest copy is the event, of copies at one time
// the first to arrive (Segment keeps the first copy of a messageId): whether an identify joined
// the keys before or the copy carrying both ids does, in either arrival order, at one time or
// at two. Funnels, next, filters on the coupon and sessions of a Waymark that got every copy
// (one call each, or all in one batch) answer, byte for byte, as one that got the events only,
// before and after ClickHouse merges the events' parts.
func TestCopiesOnOtherKeysAnswerAsTheFirst(t *testing.T) {
	t.Parallel()
	msg := func(typ, anon, user, event, id, ts, coupon string) string {
		m := map[string]any{"type": typ, "messageId": id, "timestamp": ts}
		if event != "" {
			m["event"], m["properties"] = event, map[string]string{"coupon": coupon}
		}
		return messageJSON(m, anon, user)
	}
	// copies sends, in this order: an identify of x's device and user when joined, x's device's
	// view, and the copies (a, b) of x's order: a on the device (with the userId when not joined
	// before), b on the userId alone.
	copies := func(x string, joined, aFirst bool, aTime, bTime string) []string {
		dev, user, anonUser := x+"dev", x+"u", ""
		var out []string
		if joined {
			out = append(out, msg("identify", dev, user, "", x+"-0", "2024-12-20T09:00:00Z", ""))
		} else {
			anonUser = user
		}
		out = append(out, msg("track", dev, "", x+" View", x+"-v", "2024-12-20T09:55:00Z", "V"))
		a := msg("track", dev, anonUser, x+" A", x+"-1", "2024-12-20T"+aTime+"Z", "A")
		b := msg("track", "", user, x+" B", x+"-1", "2024-12-20T"+bTime+"Z", "B")
		if aFirst {
			return append(out, a, b)
		}
		return append(out, b, a)
	}
	// Copies on two keys are produced to two partitions, so those of one batch arrive in no set
	// order: a case is sent in one batch too (batch) when its answers do not depend on it. They
	// do at one time (the first to arrive is the event), and when the later copy carries the
	// link: arriving first, its link is made, and stays when the earlier copy supersedes it.
	cases := []struct {
		x              string // the case's prefix of ids and event names
		joined, aFirst bool
		aTime, bTime   string
		batch          bool
	}{
		{"C5", true, true, "10:00:00", "10:00:00", false},  // the tester's
		{"C3", true, false, "10:00:00", "10:00:00", false}, // the userId copy first
		{"C6", false, true, "10:00:00", "10:00:00", false}, // joined by the copy
		{"C7", false, false, "10:00:00", "10:00:00", false},
		{"C8", true, true, "10:05:00", "10:00:00", true}, // the earlier copy arrives second
		{"C9", true, true, "10:00:00", "10:05:00", true}, // the later copy arrives second
		{"CA", false, false, "10:00:00", "10:20:00", true},
		{"CB", false, false, "10:20:00", "10:00:00", false},
	}
	// Every event name is stored by another person on another day, so that a name only a later
	// copy carried is known to every server (a superseded copy's name stays known).
	// gets are the queries asked of every server; batchGets those asked of oneBatch, which got
	// the cases sent one call each as oneEach did (the same calls, stored the same): the batch
	// cases' queries and the queries of everyone's events.
	var catalog, gets, batchGets, each, batch, first []string
	for _, c := range cases {
		x, lines := c.x, copies(c.x, c.joined, c.aFirst, c.aTime, c.bTime)
		for _, name := range []string{" A", " B", " View"} {
			catalog = append(catalog, msg("track", "", "names", c.x+name, c.x+name, "2024-11-01T10:00:00Z", "Z"))
		}
		first = append(first, earliestCopiesOnly(t, lines)...)
		if !c.batch {
			each = append(each, lines...)
		} else {
			batch = append(batch, lines...)
		}
		var caseGets []string
		for _, steps := range []string{x + " A", x + " B", x + " View," + x + " A[coupon=A]", x + " View," + x + " B[coupon=B]",
			x + " A[coupon=B]", x + " B[coupon=A]", x + " B," + x + " A"} {
			caseGets = append(caseGets, "/api/v1/funnel?window=24h&steps="+url.QueryEscape(steps))
		}
		for _, anchor := range []string{x + " View", x + " A", x + " B", x + " A[coupon=A]", x + " B[coupon=B]"} {
			caseGets = append(caseGets, "/api/v1/next?window=1h&anchor="+url.QueryEscape(anchor))
		}
		gets = append(gets, caseGets...)
		if c.batch {
			batchGets = append(batchGets, caseGets...)
		}
	}
	everyone := []string{"/api/v1/sessions", "/api/v1/paths?anchor=C5+View&depth=3"}
	gets, batchGets = append(gets, everyone...), append(batchGets, everyone...)
	type arrival struct {
		name string
		s    *server
		gets []string
	}
	alone, oneEach := startServe(t), startServe(t)
	arrivals := []arrival{{"one call each", oneEach, gets}}
	if everyReordering() {
		arrivals = append(arrivals, arrival{"one batch", startServe(t), batchGets})
	}
	// Each serve gets the names in one call, then its calls one each, each stored before its
	// next: the events alone, or the cases sent one call each (and the batch cases, one call
	// each to oneEach), side by side (sendSideBySide); then the one-batch serve its batch.
	names := []feed{{alone, [][]string{catalog}}}
	for _, a := range arrivals {
		names = append(names, feed{a.s, [][]string{catalog}})
	}
	sendSideBySide(t, names...)
	feeds := []feed{{alone, oneCallEach(first...)}}
	for i, a := range arrivals {
		execClickHouse(t, "SYSTEM STOP MERGES "+a.s.database+".events")
		calls := oneCallEach(each...)
		if i == 0 {
			calls = append(calls, oneCallEach(batch...)...)
		}
		feeds = append(feeds, feed{a.s, calls})
	}
	sendSideBySide(t, feeds...)
	if len(arrivals) > 1 {
		sendSideBySide(t, feed{arrivals[1].s, [][]string{batch}})
	}
	want := map[string]string{}
	for _, g := range gets {
		code, body := httpGet(t, "http://"+alone.http+g)
		want[g] = fmt.Sprintf("%d %s", code, compactJSON(t, body))
	}
	for _, merged := range []bool{false, true} {
		for _, a := range arrivals {
			name, s := a.name, a.s
			if merged {
				execClickHouse(t, "SYSTEM START MERGES "+s.database+".events")
				optimizeFinal(t, s.database+".events")
			}
			for _, g := range a.gets {
				code, body := httpGet(t, "http://"+s.http+g)
				if got := fmt.Sprintf("%d %s", code, compactJSON(t, body)); got != want[g] {
					t.Errorf("%s (merged %v): %s answers\n%s\nthe events alone:\n%s", name, merged, g, got, want[g])
				}
			}
		}
	}
}

// TestLiveStageEntriesCountPersons is field cases 05's and 07's kinds in the live journey
// metrics (the tester's R10 and R11): waymark_journey_stage_entries_total counts persons entering
// a stage as the stages query does, a shared device's users apart (sessionize.DeviceSignIns)
// and a person's phone, laptop, server calls, shared-device visits and aliased userId (with
// --alias-joins-users, which alone joins two userIds) together,
// when each event arrives after the links that make its person one (here one HTTP call each,
// each stored before the next is sent). A merge of two keys that had both entered a stage keeps
// both entries (a counter cannot go down) and the person enters nothing again; a stage that
// only both keys' events reach (a repeat order) is entered at the merge (see
// sessionize.Stats.StageEntries).
func TestLiveStageEntriesCountPersons(t *testing.T) {
	t.Parallel()
	cases := []struct {
		file string
		// query is the persons entering each stage, by the journey map's rules: the answer the
		// stages query must give, and the live entries too unless live is set.
		query map[string]int64
		live  map[string]int64 // the live entries, when a merge came after both keys had entered
		flags []string         // serve's
	}{
		// R10: alice and bob order once each, anonymously on one browser: no repeat order.
		{"shared-device", map[string]int64{"awareness": 2, "conversion": 2}, nil, nil},
		// R11: carol orders on her phone, anonymous then identified, and on her laptop, logged in.
		{"phone-then-laptop", map[string]int64{"awareness": 1, "conversion": 1, "loyalty": 1}, nil, nil},
		// bob orders on alice's kiosk, then on his own phone.
		{"shared-device-then-own", map[string]int64{"awareness": 1, "conversion": 1, "loyalty": 1}, nil, nil},
		// dan's server sends his first order under his userId, his browser the second.
		{"server-order", map[string]int64{"awareness": 1, "conversion": 1, "loyalty": 1}, nil, nil},
		// erin orders as erin-old, is aliased to erin, and orders again on another browser.
		{"alias", map[string]int64{"conversion": 1, "loyalty": 1}, nil, []string{"--alias-joins-users"}},
		// fay orders anonymously on her phone and her laptop, then logs in on both, and orders
		// again on her tablet: both first orders entered conversion; the merge makes her loyal;
		// the tablet's order enters nothing.
		{"merge-after-both-counted", map[string]int64{"conversion": 1, "loyalty": 1}, map[string]int64{"conversion": 2, "loyalty": 1}, nil},
	}
	// Each case to a serve of its own, one call each, each stored before the next (the next event
	// arrives after this one), the serves' calls side by side (see sendSideBySide).
	servers := make([]*server, len(cases))
	var feeds []feed
	for i, c := range cases {
		servers[i] = startServe(t, c.flags...)
		feeds = append(feeds, feed{servers[i], oneCallEach(readLines(t, filepath.Join("testdata", "live-entries", c.file+".jsonl"))...)})
	}
	sendSideBySide(t, feeds...)
	for i, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			s := servers[i]
			code, body := httpGet(t, "http://"+s.http+"/api/v1/stages")
			var stages struct {
				Stages []struct {
					Stage   string
					Entered int64
				}
			}
			if err := json.Unmarshal([]byte(body), &stages); code != 200 || err != nil {
				t.Fatalf("stages: %d %s", code, body)
			}
			query := map[string]int64{}
			for _, st := range stages.Stages {
				if st.Entered != 0 {
					query[st.Stage] = st.Entered
				}
			}
			if !maps.Equal(query, c.query) {
				t.Errorf("stages query entered %v, want %v", query, c.query)
			}
			want := c.live
			if want == nil {
				want = query
			}
			if got := liveStageEntries(t, scrape(t, s.http)); !maps.Equal(got, want) {
				t.Errorf("waymark_journey_stage_entries_total %v, want %v (the stages query: %v)", got, want, query)
			}
		})
	}
}

// liveStageEntries sums waymark_journey_stage_entries_total by stage in a /metrics scrape.
func liveStageEntries(t *testing.T, metrics string) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	for _, line := range strings.Split(metrics, "\n") {
		labels, ok := strings.CutPrefix(line, "waymark_journey_stage_entries_total{")
		if !ok {
			continue
		}
		_, stage, _ := strings.Cut(labels, `stage="`)
		stage, _, _ = strings.Cut(stage, `"`)
		v, err := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		got[stage] += int64(v)
	}
	return got
}

// messageJSON is the Segment message m as JSON, with its anonymousId and userId when they are not
// empty (a call sent with the userId alone, or before any login, lacks the other).
func messageJSON(m map[string]any, anon, user string) string {
	if anon != "" {
		m["anonymousId"] = anon
	}
	if user != "" {
		m["userId"] = user
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // the tests' messages are maps of strings, numbers and maps
	}
	return string(b)
}

// TestChannelBreakdownIsTheVisitsEntry: a funnel broken down by channel or campaign counts a
// unit under the channel and campaign its step-1 event's session entered by (its person's first
// touchpoint in the visit), as GA4's session source and PostHog's $session_entry_utm_source do:
// a shopper who lands from a search ad and views a product three pages on (no campaign of its
// own) is paid_search, not direct.
func TestChannelBreakdownIsTheVisitsEntry(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	call := func(id, device, typ, event, at, campaign string) string {
		ctx := `{}`
		if campaign != "" {
			ctx = `{"campaign":{"source":"google","medium":"cpc","name":` + strconv.Quote(campaign) + `}}`
		}
		return fmt.Sprintf(`{"type":%q,"anonymousId":%q,"event":%q,"messageId":%q,"timestamp":"2025-04-%sZ","context":%s}`, typ, device, event, id, at, ctx)
	}
	lines := []string{
		// ve1 lands from a search ad, views a product five minutes on, orders.
		call("ve-1", "ve1", "page", "", "08T10:00:00", "spring"),
		call("ve-2", "ve1", "track", "VE Viewed", "08T10:05:00", ""),
		call("ve-3", "ve1", "track", "VE Ordered", "08T10:10:00", ""),
		// ve2 comes straight in, and a day later from the ad (a visit of its own).
		call("ve-4", "ve2", "track", "VE Viewed", "08T11:00:00", ""),
		call("ve-5", "ve2", "page", "", "09T11:00:00", "spring"),
		call("ve-6", "ve2", "track", "VE Viewed", "09T11:01:00", ""),
	}
	s.sendBatch(t, lines...)
	s.waitStored(t)
	for _, tt := range []struct {
		by   string
		want map[string]string // value (or marker) -> customers at each step
	}{
		{"channel", map[string]string{"paid_search": "[1 1]", "direct": "[1 0]"}},
		{"campaign", map[string]string{"spring": "[1 1]", "(none)": "[1 0]"}},
	} {
		got := map[string]string{}
		for value, reached := range s.breakdownGroups(t, "steps=VE+Viewed,VE+Ordered&window=1h&breakdown="+tt.by+"&from=2025-04-08&to=2025-04-09") {
			got[value] = fmt.Sprint(reached)
		}
		if !maps.Equal(got, tt.want) {
			t.Errorf("funnel by %s: %v, want %v", tt.by, got, tt.want)
		}
	}
}

// breakdownGroups asks s for the funnel of query (a query string) and returns each breakdown
// group's customers per step, by its value, a marker's group as "(marker)".
func (s *server) breakdownGroups(t *testing.T, query string) map[string][]int64 {
	t.Helper()
	code, body := httpGet(t, "http://"+s.http+"/api/v1/funnel?"+query)
	groups, err := parseBreakdownGroups(body)
	if code != 200 || err != nil {
		t.Fatalf("funnel %s: %d %s", query, code, body)
	}
	return groups
}

// funnelCounts asks the funnel API query and returns its customers per step.
func (s *server) funnelCounts(t *testing.T, query string) []int64 {
	t.Helper()
	code, body := httpGet(t, "http://"+s.http+"/api/v1/funnel?"+query)
	var res funnelAnswer
	if err := json.Unmarshal([]byte(body), &res); code != 200 || err != nil {
		t.Fatalf("funnel %s: %d %s", query, code, body)
	}
	var counts []int64
	for _, st := range res.Steps {
		counts = append(counts, st.Customers)
	}
	return counts
}

// funnelAnswer is the part of the funnel API's answer the tests read: customers per step, and per
// step of each breakdown group (its value, or a marker such as none).
type funnelAnswer struct {
	Steps  []struct{ Customers int64 }
	Groups []struct {
		Value, Marker string
		Steps         []struct{ Customers int64 }
	} `json:"breakdown_groups"`
}

// parseBreakdownGroups reads a funnel answer's breakdown groups: each group's customers per step,
// by its value, a marker's group as "(marker)".
func parseBreakdownGroups(body string) (map[string][]int64, error) {
	var res funnelAnswer
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		return nil, err
	}
	groups := map[string][]int64{}
	for _, g := range res.Groups {
		name := g.Value
		if g.Marker != "" {
			name = "(" + g.Marker + ")"
		}
		for _, st := range g.Steps {
			groups[name] = append(groups[name], st.Customers)
		}
	}
	return groups, nil
}

// TestHeldProductOfAnOrder sends orders as Segment's e-commerce spec has them, their products in
// products (testdata/held-products.jsonl), through the collector: holding product_id, hp-1's order
// lists the product viewed and added (beside another), so it converts, and hp-2's lists another,
// so hp-2 drops off after the add, with that order as what they did instead (tester 43's F1: no
// order took a step, and the drop-off listed the buyer). products.product_id is refused, naming
// hold and pointing to product_id.
func TestHeldProductOfAnOrder(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	if status, answer := s.track(t, "/v1/batch", `{"batch":[`+strings.Join(readLines(t, "testdata/held-products.jsonl"), ",")+`]}`); status != 200 {
		t.Fatalf("batch: %d %s", status, answer)
	}
	s.waitStored(t)
	const steps = "steps=Product+Viewed,Product+Added,Order+Completed&window=1h&from=2025-09-09&to=2025-09-10"
	code, body := httpGet(t, "http://"+s.http+"/api/v1/funnel?"+steps+"&hold=property:product_id")
	var res funnelAnswer
	if err := json.Unmarshal([]byte(body), &res); code != 200 || err != nil || len(res.Steps) != 3 {
		t.Fatalf("held funnel: %d %s", code, body)
	}
	if got := []int64{res.Steps[0].Customers, res.Steps[1].Customers, res.Steps[2].Customers}; !slices.Equal(got, []int64{2, 2, 1}) {
		t.Errorf("held funnel: %v, want [2 2 1]", got)
	}
	code, body = httpGet(t, "http://"+s.http+"/api/v1/dropoff?"+steps+"&hold=property:product_id&step=2")
	var drop struct{ Persons []string }
	if err := json.Unmarshal([]byte(body), &drop); code != 200 || err != nil || !slices.Equal(drop.Persons, []string{"hp-2"}) {
		t.Errorf("held drop-off after the add: %d %s, want hp-2 alone", code, body)
	}
	code, body = httpGet(t, "http://"+s.http+"/api/v1/funnel?"+steps+"&hold=property:products.product_id")
	var e struct{ Error, Param string }
	if err := json.Unmarshal([]byte(body), &e); code != 400 || err != nil || e.Param != "hold" || !strings.Contains(e.Error, "hold property:product_id") {
		t.Errorf("hold=property:products.product_id: %d %s, want a 400 naming hold pointing to property:product_id", code, body)
	}
}
