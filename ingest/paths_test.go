package ingest

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestOneOutcomeWhicheverPath: a client's message gets the same event (times, ids, page fields)
// or the same rejection whether it is posted to the collector (whose output the consumer reads
// with the collector's header) or produced straight to Kafka (read by the consumer as a
// client's, received when Kafka got it). Both paths run the real code: the collector's prepare
// and the consumer's decode. waymark replay (DecodeAt) stores the same times when the message has
// no sentAt (replay keeps an export's times).
func TestOneOutcomeWhicheverPath(t *testing.T) {
	now := time.Date(2026, 12, 1, 22, 0, 0, 0, time.UTC)
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	tests := []struct {
		name   string
		fields string // members of a track call besides type, event and messageId
		want   string // the event time (RFC 3339), or the rejection reason
	}{
		{"clock 2 h slow", `"userId":"u","timestamp":"` + at(-130*time.Minute) + `","sentAt":"` + at(-120*time.Minute) + `"`, at(-10 * time.Minute)},
		{"clock 2 h slow, originalTimestamp", `"userId":"u","originalTimestamp":"` + at(-130*time.Minute) + `","sentAt":"` + at(-120*time.Minute) + `"`, at(-10 * time.Minute)},
		{"clock right", `"userId":"u","timestamp":"` + at(-10*time.Minute) + `","sentAt":"` + at(0) + `"`, at(-10 * time.Minute)},
		{"clock 20 s slow", `"userId":"u","timestamp":"` + at(-10*time.Minute) + `","sentAt":"` + at(-20*time.Second) + `"`, at(-10*time.Minute + 20*time.Second)},
		{"a second in transit", `"userId":"u","timestamp":"` + at(-10*time.Minute) + `","sentAt":"` + at(-time.Second) + `"`, at(-10 * time.Minute)},
		{"no sentAt", `"userId":"u","timestamp":"2024-10-02T10:00:00Z"`, "2024-10-02T10:00:00Z"},
		{"sentAt decades before", `"userId":"u","timestamp":"2024-05-15T10:00:00Z","sentAt":"2000-01-01T00:00:00Z"`, "2024-05-15T10:00:00Z"},
		{"receivedAt a number", `"userId":"u","timestamp":"2024-11-07T10:00:00Z","receivedAt":12345`, "2024-11-07T10:00:00Z"},
		{"receivedAt garbage", `"userId":"u","timestamp":"2024-11-07T10:00:00Z","receivedAt":"garbage"`, "2024-11-07T10:00:00Z"},
		{"receivedAt an object", `"userId":"u","receivedAt":{"at":1}`, now.Format(time.RFC3339)},
		{"receivedAt claimed", `"userId":"u","receivedAt":"2001-01-01T00:00:00Z"`, now.Format(time.RFC3339)},
		{"userId 4200", `"userId":4200,"timestamp":"2024-11-07T10:00:00Z"`, "2024-11-07T10:00:00Z"},
		{"userId 4.2e3", `"userId":4.2e3,"anonymousId":4200.0,"timestamp":"2024-11-07T10:00:00Z"`, "2024-11-07T10:00:00Z"},
		{"timestamp a number", `"userId":"u","timestamp":12345`, ReasonInvalidTimestamp},
		{"40 KB", `"userId":"u","properties":{"blob":"` + strings.Repeat("x", 40<<10) + `"}`, ReasonTooLarge},
	}
	c, cons := offlineCollector(), offlineConsumer(t)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := fmt.Sprintf(`{"type":"track","event":"View","messageId":"m%d",%s}`, i, tt.fields)
			req, err := parseRequest([]byte(`{"batch":[`+msg+`]}`), "batch")
			if err != nil {
				t.Fatal(err)
			}
			var viaHTTP Event
			var httpErr error
			accepted, rejected := c.prepare(req, "web", now)
			switch {
			case len(accepted) == 1:
				// The consumer reads it later, with the collector's header.
				viaHTTP, httpErr = cons.decode(kafka.Message{Value: accepted[0].raw, Time: now.Add(time.Hour),
					Headers: []kafka.Header{{Key: HeaderSource, Value: []byte("web")}}})
			case len(rejected) == 1:
				httpErr = rejected[0].err
			}
			viaKafka, kafkaErr := cons.decode(kafka.Message{Value: []byte(msg), Time: now})
			if RejectReason(httpErr) != RejectReason(kafkaErr) {
				t.Fatalf("collector: %v; straight to Kafka: %v", httpErr, kafkaErr)
			}
			if kafkaErr != nil {
				if RejectReason(kafkaErr) != tt.want {
					t.Errorf("rejected as %v, want %s", kafkaErr, tt.want)
				}
				return
			}
			if got := viaKafka.Timestamp.Format(time.RFC3339); got != tt.want {
				t.Errorf("event time %s, want %s", got, tt.want)
			}
			type seen struct {
				Timestamp, OriginalTimestamp, SentAt, ReceivedAt time.Time
				UserID, AnonymousID, MessageID, CustomerKey      string
			}
			see := func(e Event) seen {
				return seen{e.Timestamp, e.OriginalTimestamp, e.SentAt, e.ReceivedAt, e.UserID, e.AnonymousID, e.MessageID, e.CustomerKey()}
			}
			if h, k := see(viaHTTP), see(viaKafka); h != k {
				t.Errorf("collector: %+v\nstraight to Kafka: %+v", h, k)
			}
			// waymark replay keeps an export's times (no skew correction), so with no sentAt
			// it stores the same times too.
			if !strings.Contains(tt.fields, "sentAt") {
				viaReplay, err := DecodeAt([]byte(msg), "web", now)
				if err != nil {
					t.Fatalf("replay: %v", err)
				}
				if r, k := see(viaReplay), see(viaKafka); r.Timestamp != k.Timestamp || r.OriginalTimestamp != k.OriginalTimestamp {
					t.Errorf("replay: %+v\nstraight to Kafka: %+v", r, k)
				}
			}
		})
	}
}

// TestConsumerLimitsEveryMessage: the consumer holds a message carrying the collector's header to
// the event limit plus what the collector's stamps add, not trusting the header to have been
// checked; one without the header to the event limit.
func TestConsumerLimitsEveryMessage(t *testing.T) {
	cons, err := NewConsumer(ConsumerConfig{Brokers: []string{"unused:9092"}}, SinkFunc(nil), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	event := func(size int) []byte {
		head := `{"type":"track","event":"A","userId":"u","properties":{"blob":"`
		return []byte(head + strings.Repeat("x", size-len(head)-3) + `"}}`)
	}
	stamped := []kafka.Header{{Key: HeaderSource, Value: []byte("web")}}
	tests := []struct {
		name    string
		size    int
		headers []kafka.Header
		want    string // rejection reason, "" when decoded
	}{
		{"at the limit", DefaultMaxEventBytes, nil, ""},
		{"over the limit", DefaultMaxEventBytes + 1, nil, ReasonTooLarge},
		{"collector's, stamped", DefaultMaxEventBytes + MaxStampBytes, stamped, ""},
		{"collector's header, 40 KB", 40 << 10, stamped, ReasonTooLarge},
	}
	for _, tt := range tests {
		_, err := cons.decode(kafka.Message{Value: event(tt.size), Headers: tt.headers, Time: recv})
		if got := RejectReason(err); got != tt.want {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestCollectorStampsWithinTheLimit: an event the collector takes (at most the event limit) is
// still within what the consumer reads after the collector's stamps, with the most the stamps
// can add; an event that a batch's context makes larger is refused as too_large.
func TestCollectorStampsWithinTheLimit(t *testing.T) {
	c := offlineCollector()
	head := `{"type":"identify","userId":"u","timestamp":"2026-05-01T09:59:00.123456789+00:00","traits":{"blob":"`
	big := head + strings.Repeat("x", DefaultMaxEventBytes-len(head)-3) + `"}}`
	tests := []struct {
		name, body string
		want       string
	}{
		{"event at the limit, every stamp", `{"batch":[` + big + `],"sentAt":"2026-05-01T10:00:00.123456789+00:00"}`, ""},
		{"batch context over the limit", `{"batch":[` + big + `],"context":{"x":"` + strings.Repeat("y", 2*MaxStampBytes) + `"}}`, ReasonTooLarge},
	}
	for _, tt := range tests {
		req, err := parseRequest([]byte(tt.body), "batch")
		if err != nil {
			t.Fatal(err)
		}
		accepted, rejected := c.prepare(req, "web", recv)
		switch {
		case tt.want == "" && (len(accepted) != 1 || len(accepted[0].raw) > DefaultMaxEventBytes+MaxStampBytes):
			t.Errorf("%s: accepted %d, rejected %v; want it accepted within the limit", tt.name, len(accepted), rejected)
		case tt.want != "" && (len(rejected) != 1 || rejected[0].reason != tt.want):
			t.Errorf("%s: rejected %v, want %s", tt.name, rejected, tt.want)
		}
	}
}

// TestRefusedEventsKeepTheirKey: an event the collector refuses goes to the dead-letter topic
// under the key it would have had (its anonymousId, else its userId), as the consumer's dead
// letters keep their message's key, so a re-drive reaches its device's partition.
func TestRefusedEventsKeepTheirKey(t *testing.T) {
	c := offlineCollector()
	tests := []struct{ event, key string }{
		{`{"type":"track","event":"A","anonymousId":"d1","userId":"u1","timestamp":"yesterday"}`, "d1"},
		{`{"type":"track","event":"A","userId":"u1","timestamp":12345}`, "u1"},
		{`{"type":"track","anonymousId":"d1"}`, "d1"}, // no event name
		{`{"type":"track","event":"A","anonymousId":"undefined","userId":"u1","timestamp":"x"}`, "u1"},
		{`{"type":"track","event":"A","timestamp":"x"}`, ""},
	}
	for _, tt := range tests {
		req, err := parseRequest([]byte(`{"batch":[`+tt.event+`]}`), "batch")
		if err != nil {
			t.Fatal(err)
		}
		accepted, rejected := c.prepare(req, "web", time.Now())
		if len(accepted) != 0 || len(rejected) != 1 {
			t.Fatalf("%s: accepted %d, refused %d; want it refused", tt.event, len(accepted), len(rejected))
		}
		if rejected[0].key != tt.key {
			t.Errorf("%s: dead letter key %q, want %q", tt.event, rejected[0].key, tt.key)
		}
	}
}

// TestEventTimeOfEveryCombination: which of a message's times is its event time, and whether it
// is corrected for the client clock's skew (eventTime), for each combination of timestamp,
// originalTimestamp, sentAt and receivedAt, on every path: posted to the collector (prepare,
// then the consumer's decode with the collector's header), produced straight to Kafka (the
// consumer's decode of a client's message) and `waymark replay --format segment` (ReadDataset,
// then the consumer's decode with replay's header). The client's clock is an hour fast unless a
// case says otherwise. A message stating both timestamp and originalTimestamp carries the
// correction already and keeps its timestamp on every path (tester 45's F5: corrected again by
// its sentAt, it was stored an hour early by the collector, and straight to Kafka without a
// receivedAt).
func TestEventTimeOfEveryCombination(t *testing.T) {
	now := time.Date(2026, 12, 1, 22, 0, 0, 0, time.UTC)
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339Nano) }
	const hour = time.Hour
	s := time.Second
	tests := []struct {
		name   string
		fields string
		client time.Duration // the event time, from now, by the collector and straight to Kafka
		replay time.Duration // by waymark replay, which keeps an export's times
	}{
		{"timestamp, sentAt", `"timestamp":"` + at(hour-10*s) + `","sentAt":"` + at(hour) + `"`, -10 * s, hour - 10*s},
		{"timestamp", `"timestamp":"` + at(hour-10*s) + `"`, hour - 10*s, hour - 10*s},
		{"timestamp, sentAt, receivedAt", `"timestamp":"` + at(hour-10*s) + `","sentAt":"` + at(hour) + `","receivedAt":"` + at(0) + `"`, -10 * s, hour - 10*s},
		{"originalTimestamp, sentAt", `"originalTimestamp":"` + at(hour-10*s) + `","sentAt":"` + at(hour) + `"`, -10 * s, hour - 10*s},
		{"originalTimestamp", `"originalTimestamp":"` + at(hour-10*s) + `"`, hour - 10*s, hour - 10*s},
		{"originalTimestamp, sentAt, receivedAt", `"originalTimestamp":"` + at(hour-10*s) + `","sentAt":"` + at(hour) + `","receivedAt":"` + at(0) + `"`, -10 * s, -10 * s},
		// Segment's processed output (p2 without receivedAt, p1 with): timestamp stands.
		{"both, sentAt", `"originalTimestamp":"` + at(hour-10*s) + `","timestamp":"` + at(-10*s) + `","sentAt":"` + at(hour) + `"`, -10 * s, -10 * s},
		{"both, sentAt, receivedAt", `"originalTimestamp":"` + at(hour-10*s) + `","timestamp":"` + at(-10*s) + `","sentAt":"` + at(hour) + `","receivedAt":"` + at(-9*s) + `"`, -10 * s, -10 * s},
		{"both", `"originalTimestamp":"` + at(hour-10*s) + `","timestamp":"` + at(-10*s) + `"`, -10 * s, -10 * s},
		{"both, receivedAt", `"originalTimestamp":"` + at(hour-10*s) + `","timestamp":"` + at(-10*s) + `","receivedAt":"` + at(-9*s) + `"`, -10 * s, -10 * s},
		{"both, 2 days ahead", `"originalTimestamp":"` + at(hour-10*s) + `","timestamp":"` + at(48*hour) + `","sentAt":"` + at(hour) + `"`, 0, 0},
		{"sentAt alone", `"sentAt":"` + at(hour) + `"`, 0, 0},
		{"no time", ``, 0, 0},
		// The ramp: a clock 5 s slow is corrected by (5 − 2) × 1.2 = 3.6 s; a correction stated
		// already is not applied again.
		{"ramp, timestamp", `"timestamp":"` + at(-60*s) + `","sentAt":"` + at(-5*s) + `"`, -56400 * time.Millisecond, -60 * s},
		{"ramp, originalTimestamp", `"originalTimestamp":"` + at(-60*s) + `","sentAt":"` + at(-5*s) + `"`, -56400 * time.Millisecond, -60 * s},
		{"ramp, both", `"originalTimestamp":"` + at(-60*s) + `","timestamp":"` + at(-56400*time.Millisecond) + `","sentAt":"` + at(-5*s) + `"`, -56400 * time.Millisecond, -56400 * time.Millisecond},
		{"ramp, in transit", `"timestamp":"` + at(-60*s) + `","sentAt":"` + at(-2*s) + `"`, -60 * s, -60 * s},
	}
	c, cons := offlineCollector(), offlineConsumer(t)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := fmt.Sprintf(`{"type":"track","event":"Product Viewed","anonymousId":"p%d","messageId":"m%d"`, i, i)
			if tt.fields != "" {
				msg += "," + tt.fields
			}
			msg += "}"
			req, err := parseRequest([]byte(msg), "track")
			if err != nil {
				t.Fatal(err)
			}
			accepted, rejected := c.prepare(req, "web", now)
			if len(accepted) != 1 {
				t.Fatalf("collector refused it: %+v", rejected)
			}
			later := now.Add(hour) // the consumer reads it later: the times must not move by it
			viaHTTP, err := cons.decode(kafka.Message{Value: accepted[0].raw, Time: later,
				Headers: []kafka.Header{{Key: HeaderSource, Value: []byte("web")}}})
			if err != nil {
				t.Fatalf("collector's output: %v", err)
			}
			viaKafka, err := cons.decode(kafka.Message{Value: []byte(msg), Time: now})
			if err != nil {
				t.Fatalf("straight to Kafka: %v", err)
			}
			var lines []Message
			err = ReadDataset(strings.NewReader(msg+"\n"), "segment", func(m Message) error { lines = append(lines, m); return nil },
				func(sk Skip) { t.Errorf("replay skipped it: %+v", sk) })
			if err != nil || len(lines) != 1 {
				t.Fatalf("replay read %d lines: %v", len(lines), err)
			}
			viaReplay, err := cons.decode(kafka.Message{Value: lines[0].Value, Time: now,
				Headers: []kafka.Header{{Key: HeaderSource, Value: []byte(replaySourcePrefix + "segment")}}})
			if err != nil {
				t.Fatalf("replay: %v", err)
			}
			for _, p := range []struct {
				path string
				e    Event
				want time.Duration
			}{{"collector", viaHTTP, tt.client}, {"straight to Kafka", viaKafka, tt.client}, {"replay", viaReplay, tt.replay}} {
				if want := now.Add(p.want); !p.e.Timestamp.Equal(want) {
					t.Errorf("%s: event time %s, want %s (now %+v)", p.path, p.e.Timestamp.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano), p.want)
				}
			}
		})
	}
}

// TestCollectorKeepsAStatedCorrection: tester 45's F5 through the collector's HTTP handler. A
// message whose timestamp is corrected already, beside the originalTimestamp and sentAt of a
// device clock an hour fast (Segment's processed output, relayed), is produced with that
// timestamp, not an hour earlier; a client's timestamp alone with the same sentAt is corrected.
func TestCollectorKeepsAStatedCorrection(t *testing.T) {
	env := startCollector(t, nil)
	now := time.Now().UTC().Truncate(time.Millisecond)
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339Nano) }
	for _, body := range []string{
		`{"type":"track","anonymousId":"p2","event":"Product Viewed","messageId":"p2-m","originalTimestamp":"` + at(time.Hour-10*time.Second) + `","timestamp":"` + at(-10*time.Second) + `","sentAt":"` + at(time.Hour) + `"}`,
		`{"type":"track","anonymousId":"p1","event":"Product Viewed","messageId":"p1-m","originalTimestamp":"` + at(time.Hour-10*time.Second) + `","timestamp":"` + at(-10*time.Second) + `","sentAt":"` + at(time.Hour) + `","receivedAt":"` + at(-9*time.Second) + `"}`,
		`{"type":"track","anonymousId":"p3","event":"Product Viewed","messageId":"p3-m","timestamp":"` + at(time.Hour-10*time.Second) + `","sentAt":"` + at(time.Hour) + `"}`,
	} {
		if code, _, resp := env.do(t, call{path: "/v1/track", headers: map[string]string{"Authorization": "Basic a2V5LXdlYjo="}, body: []byte(body)}); code != 200 {
			t.Fatalf("POST /v1/track: %d %v", code, resp)
		}
	}
	msgs := topicMessages(t, env.broker.Addr(), "events")
	if len(msgs) != 3 {
		t.Fatalf("%d messages produced, want 3", len(msgs))
	}
	for _, m := range msgs {
		e, err := Decode(m.Value, "web", now)
		if err != nil {
			t.Fatal(err)
		}
		// The receipt is the collector's clock, a moment after now: the corrected time is
		// within a second of now − 10 s.
		if d := e.Timestamp.Sub(now.Add(-10 * time.Second)); d < 0 || d > time.Second {
			t.Errorf("%s stored at %s, want about %s (now − 10 s)", e.MessageID, e.Timestamp.Format(time.RFC3339Nano), at(-10*time.Second))
		}
	}
}

// offlineCollector is a collector with default settings whose checks and preparation run without
// a broker (its brokers are never dialled).
func offlineCollector() *Collector {
	c := &Collector{cfg: CollectorConfig{Brokers: []string{"unused:9092"}}}
	c.cfg.setDefaults()
	return c
}

// offlineConsumer is a consumer whose decoding runs without a broker (never dialled).
func offlineConsumer(t *testing.T) *Consumer {
	t.Helper()
	cons, err := NewConsumer(ConsumerConfig{Brokers: []string{"unused:9092"}}, SinkFunc(nil), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	return cons
}
