package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/ingest/ingesttest"
)

// TestOneRuleOnEveryPath: a client's message gets one outcome whether it is posted to the
// collector or produced straight to Kafka (kcat), and `waymark replay` is held to the same
// limits: a client clock 2 h slow is corrected on both paths (Kafka's time as receivedAt), a
// claimed receivedAt of any type is ignored, a page call's properties.referrer makes its channel,
// numeric userIds written three ways are one person, and a 40 KB event is refused on every path
// (the collector's header on a straight message included). A Segment export replayed, straight
// to Kafka or through the collector, keeps its event times (a replay is an import), a line dated
// by receivedAt alone included.
func TestOneRuleOnEveryPath(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	start := time.Now().UTC()
	ts, sent := start.Add(-130*time.Minute).Format(time.RFC3339), start.Add(-120*time.Minute).Format(time.RFC3339)
	blob := strings.Repeat("x", 40<<10)
	// Each message is sent through the collector (messageId suffix -http) and straight to Kafka
	// (-kafka); %s is the suffix.
	type message struct{ endpoint, msg string }
	both := []message{
		{"track", `{"type":"track","userId":"p5","event":"R5 View","messageId":"skew-%s","timestamp":"` + ts + `","sentAt":"` + sent + `"}`},
		{"track", `{"type":"track","userId":"p9","event":"RC View","messageId":"rc-%s","timestamp":"2024-11-07T10:00:00Z","receivedAt":12345}`},
		{"page", `{"type":"page","userId":"pg","name":"PG Page","messageId":"pg-%s","timestamp":"2024-11-07T10:00:00Z","properties":{"path":"/shoes","referrer":"https://www.google.com/"}}`},
		{"track", `{"type":"track","userId":4200,"event":"N View","messageId":"n14-a-%s","timestamp":"2024-11-07T10:00:00Z"}`},
		{"track", `{"type":"track","userId":4.2e3,"event":"N View","messageId":"n14-b-%s","timestamp":"2024-11-07T10:01:00Z"}`},
		{"track", `{"type":"track","userId":4200.0,"event":"N View","messageId":"n14-c-%s","timestamp":"2024-11-07T10:02:00Z"}`},
		{"track", `{"type":"track","anonymousId":"dev14-%[1]s","event":"N View","messageId":"n14-d-%[1]s","timestamp":"2024-11-07T10:03:00Z"}`},
		{"identify", `{"type":"identify","anonymousId":"dev14-%[1]s","userId":4200.0,"messageId":"n14-e-%[1]s","timestamp":"2024-11-07T10:04:00Z"}`},
		{"track", `{"type":"track","userId":"big","event":"Big","messageId":"big-%s","properties":{"blob":"` + blob + `"}}`},
	}
	var lines strings.Builder
	for _, m := range both {
		status, answer := s.track(t, "/v1/"+m.endpoint, fmt.Sprintf(m.msg, "http"))
		switch big := strings.Contains(m.msg, blob); {
		case big && (status != 413 || !strings.Contains(answer, "larger than")):
			t.Errorf("40 KB event: POST /v1/track answered %d %s, want 413 naming the limit", status, answer)
		case !big && status != 200:
			t.Errorf("POST /v1/%s: %d %s", m.endpoint, status, answer)
		}
		lines.WriteString("k\t" + fmt.Sprintf(m.msg, "kafka") + "\n")
	}
	kcat := exec.Command("kcat", "-P", "-b", s.broker, "-t", "waymark.events", "-K", "\t")
	kcat.Stdin = strings.NewReader(lines.String())
	if out, err := kcat.CombinedOutput(); err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	// A producer that claims to be the collector is held to the limit too.
	w := &kafka.Writer{Transport: ingesttest.Transport(t), Addr: kafka.TCP(s.broker), Topic: "waymark.events", RequiredAcks: kafka.RequireAll}
	err := w.WriteMessages(context.Background(), kafka.Message{Key: []byte("big"), Value: fmt.Appendf(nil, both[len(both)-1].msg, "header"),
		Headers: []kafka.Header{{Key: ingest.HeaderSource, Value: []byte("test")}}})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}

	// A Segment export (a view, an order 5 minutes later, and an add dated by receivedAt alone),
	// replayed both ways, with a 40 KB line that is skipped.
	dir := t.TempDir()
	export := func(suffix string) string {
		path := filepath.Join(dir, suffix+".jsonl")
		body := `{"type":"track","userId":"ex-` + suffix + `","event":"Product Viewed","messageId":"ex-view-` + suffix + `","timestamp":"2024-10-02T10:00:00Z","originalTimestamp":"2024-10-02T10:00:00Z","sentAt":"2024-10-02T10:00:02Z","receivedAt":"2024-10-02T10:00:02.500Z"}` + "\n" +
			`{"type":"track","userId":"ex-` + suffix + `","event":"Order Completed","messageId":"ex-order-` + suffix + `","timestamp":"2024-10-02T10:05:00Z","originalTimestamp":"2024-10-02T10:05:00Z","sentAt":"2024-10-02T10:05:02Z","receivedAt":"2024-10-02T10:05:02.500Z"}` + "\n" +
			fmt.Sprintf(both[len(both)-1].msg, suffix) + "\n" +
			`{"type":"track","userId":"ex-` + suffix + `","event":"Product Added","messageId":"ex-add-` + suffix + `","receivedAt":"2024-10-02T10:02:00Z"}` + "\n"
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, replay := range [][]string{
		{"replay", "--format", "segment", "--file", export("direct")},
		{"replay", "--format", "segment", "--file", export("collector"), "--collector", "http://" + s.http, "--write-key", "test-key"},
	} {
		out := s.waymark(t, replay...)
		if !strings.Contains(out, "sent 3 events, skipped 1 event") || !strings.Contains(out, "skipped line 3: too_large") {
			t.Errorf("waymark %s:\n%s\nwant 3 sent and line 3 skipped as too_large", strings.Join(replay, " "), out)
		}
	}
	s.waitStored(t)
	end := time.Now().UTC()

	stored := map[string]string{} // messageId → "ts_ms user_id referrer channel"
	for _, r := range queryStrings(t, "SELECT concat(message_id, '|', toString(ts_ms), '|', user_id, '|', referrer, '|', channel) FROM "+s.database+".events") {
		id, rest, _ := strings.Cut(r, "|")
		stored[id] = rest
	}
	field := func(id string, i int) string {
		f := strings.Split(stored[id], "|")
		if len(f) < 4 {
			t.Fatalf("%s not stored (stored: %v)", id, slices.Sorted(maps.Keys(stored)))
		}
		return f[i]
	}
	at := func(id string) time.Time {
		ms, err := strconv.ParseInt(field(id, 0), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return time.UnixMilli(ms).UTC()
	}
	for _, path := range []string{"http", "kafka"} {
		// Corrected by receivedAt − sentAt (2 h and the time to reach Kafka or the collector):
		// stored 10 minutes before it was received, not 2 h 10 min.
		if got := at("skew-" + path); got.Before(start.Add(-10*time.Minute-time.Second)) || got.After(end.Add(-10*time.Minute+time.Second)) {
			t.Errorf("%s: a clock 2 h slow stored at %s, want between %s and %s (corrected)", path, got, start.Add(-10*time.Minute), end.Add(-10*time.Minute))
		}
		if got := at("rc-" + path); !got.Equal(time.Date(2024, 11, 7, 10, 0, 0, 0, time.UTC)) {
			t.Errorf("%s: receivedAt 12345 stored at %s, want its timestamp", path, got)
		}
		if ref, channel := field("pg-"+path, 2), field("pg-"+path, 3); ref != "https://www.google.com/" || channel != "search" {
			t.Errorf("%s: properties.referrer stored as referrer %q, channel %q; want https://www.google.com/, search", path, ref, channel)
		}
		for _, id := range []string{"n14-a-", "n14-b-", "n14-c-", "n14-e-"} {
			if user := field(id+path, 1); user != "4200" {
				t.Errorf("%s: %s stored with userId %q, want 4200", path, id+path, user)
			}
		}
		if _, ok := stored["big-"+path]; ok {
			t.Errorf("%s: the 40 KB event is stored", path)
		}
	}
	// Persons after identity stitching: a key absent from persons is its own.
	person := map[string]string{}
	for _, r := range queryStrings(t, "SELECT concat(customer_key, '|', argMax(person_id, version)) FROM "+s.database+".persons GROUP BY customer_key") {
		key, p, _ := strings.Cut(r, "|")
		person[key] = p
	}
	var persons []string
	for _, key := range []string{"4200", ingest.DevicePerson("dev14-http"), ingest.DevicePerson("dev14-kafka")} {
		persons = append(persons, cmp.Or(person[key], key))
	}
	if persons[0] != persons[1] || persons[0] != persons[2] {
		t.Errorf("the userIds 4200, 4.2e3, 4200.0 and the devices 4200.0 signed in on are persons %v, want one", persons)
	}
	for _, suffix := range []string{"direct", "collector"} {
		view, order := at("ex-view-"+suffix), at("ex-order-"+suffix)
		if !view.Equal(time.Date(2024, 10, 2, 10, 0, 0, 0, time.UTC)) || order.Sub(view) != 5*time.Minute {
			t.Errorf("export replayed %s: view at %s, order at %s; want 2024-10-02 10:00 and 10:05", suffix, view, order)
		}
		if add := at("ex-add-" + suffix); !add.Equal(time.Date(2024, 10, 2, 10, 2, 0, 0, time.UTC)) {
			t.Errorf("export replayed %s: a line dated by receivedAt alone stored at %s, want 2024-10-02 10:02", suffix, add)
		}
		if _, ok := stored["big-"+suffix]; ok {
			t.Errorf("export replayed %s: the 40 KB line is stored", suffix)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a hang guard
	defer cancel()
	dead, err := ingesttest.ReadTopic(ctx, s.broker, "waymark.dlq")
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for _, m := range dead {
		_, rest, _ := strings.Cut(string(m.Value), `"messageId":"`)
		id, _, _ := strings.Cut(rest, `"`)
		for _, h := range m.Headers {
			if h.Key == ingest.HeaderDLQReason {
				reasons[id] = string(h.Value)
			}
		}
	}
	for _, id := range []string{"big-kafka", "big-header"} { // over HTTP, the body is refused unread
		if reasons[id] != ingest.ReasonTooLarge {
			t.Errorf("%s dead-lettered as %q, want too_large", id, reasons[id])
		}
	}
	for _, id := range []string{"rc-kafka", "rc-http"} {
		if r, ok := reasons[id]; ok {
			t.Errorf("%s dead-lettered as %s, want it stored", id, r)
		}
	}
}
