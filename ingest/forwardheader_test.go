package ingest

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/waymark-dev/waymark/ingest/ingesttest"
)

// TestConsumerTrustsOnlyAConsistentForwardedHeader: a producer straight to Kafka can set
// waymark-forwarded. The consumer takes its receipt only when it can be a forward's (another
// partition, or earlier on this one; not after the message's Kafka time; at most MaxReceiptDelay
// before it); otherwise it ignores the header, lists it in Event.Ignored and counts it, and the
// message is received when Kafka got it, as one without the header.
func TestConsumerTrustsOnlyAConsistentForwardedHeader(t *testing.T) {
	b := startBroker(t)
	const partitions = 3
	hourAgo := time.Now().Add(-time.Hour).Truncate(time.Microsecond).UTC()
	tests := []struct {
		id, timestamp string
		receipt       func(own int) string // the header, given the message's partition
		trusted       bool
	}{
		{"future", `"2099-06-01T10:00:00Z"`, func(own int) string {
			return Receipt(time.Date(2099, 6, 1, 10, 0, 0, 0, time.UTC), KafkaPlace((own+1)%partitions, 5))
		}, false},
		{"past", `null`, func(own int) string {
			return Receipt(time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), KafkaPlace((own+1)%partitions, 6))
		}, false},
		{"own-place", `null`, func(own int) string { return Receipt(hourAgo, KafkaPlace(own, 1000)) }, false},
		{"garbled", `null`, func(int) string { return "yesterday" }, false},
		{"forward", `null`, func(own int) string { return Receipt(hourAgo, KafkaPlace((own+1)%partitions, 7)) }, true},
	}
	w := &kafka.Writer{Transport: ingesttest.Transport(t), Addr: kafka.TCP(b.Addr()), Topic: "events", RequiredAcks: kafka.RequireAll, Balancer: partitionBalancer{}}
	defer w.Close()
	for _, tt := range tests {
		user := "fwd-" + tt.id
		own := Partition(user, partitions)
		value := `{"type":"track","userId":"` + user + `","event":"E","messageId":"` + tt.id + `","timestamp":` + tt.timestamp + `}`
		err := w.WriteMessages(context.Background(), kafka.Message{Key: []byte(user), Value: []byte(value),
			Headers: []kafka.Header{{Key: HeaderForwarded, Value: []byte(tt.receipt(own))}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	produced := time.Now()

	stored, reg := consumeRecorded(t, b.Addr())

	for _, tt := range tests {
		e := stored[tt.id]
		ignored := len(e.Ignored) == 1 && e.Ignored[0].Field == "header "+HeaderForwarded
		if tt.trusted {
			if !e.ReceivedAt.Equal(hourAgo) || len(e.Ignored) != 0 {
				t.Errorf("%s: receivedAt %s, ignored %v; want the forward's receipt %s, nothing ignored", tt.id, e.ReceivedAt, e.Ignored, hourAgo)
			}
			continue
		}
		if !ignored {
			t.Errorf("%s: ignored %v, want the header %s", tt.id, e.Ignored, HeaderForwarded)
		}
		// Received when Kafka got it: within the minute of producing.
		for what, at := range map[string]time.Time{"receivedAt": e.ReceivedAt, "timestamp": e.Timestamp} {
			if d := produced.Sub(at); d < -time.Minute || d > time.Minute {
				t.Errorf("%s: %s %s, want the time Kafka received it (about %s)", tt.id, what, at, produced.UTC())
			}
		}
	}
	if n := counterSum(t, reg, "waymark_consumer_ignored_fields_total", "field", "header "+HeaderForwarded); n != 4 {
		t.Errorf("waymark_consumer_ignored_fields_total{field=%q} = %g, want 4", "header "+HeaderForwarded, n)
	}
}

// recordEvents returns a sink that keeps the events written to it, by messageId, and a function
// that returns them so far.
func recordEvents() (Sink, func() map[string]Event) {
	var mu sync.Mutex
	stored := map[string]Event{}
	sink := SinkFunc(func(ctx context.Context, events []Event) error {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range events {
			stored[e.MessageID] = e
		}
		return nil
	})
	return sink, func() map[string]Event { mu.Lock(); defer mu.Unlock(); return maps.Clone(stored) }
}

// consumeRecorded runs a consumer of the topic "events" of broker until it has caught up, and
// returns what it stored, by messageId, and its metrics.
func consumeRecorded(t *testing.T, broker string) (map[string]Event, *prometheus.Registry) {
	t.Helper()
	sink, stored := recordEvents()
	reg := prometheus.NewRegistry()
	c, err := NewConsumer(ConsumerConfig{
		Brokers: []string{broker}, Topic: "events", DLQTopic: "dlq", Group: "g",
		FlushInterval: 20 * time.Millisecond, RetryMax: 50 * time.Millisecond, LagInterval: 50 * time.Millisecond,
	}, sink, slog.New(slog.NewTextHandler(t.Output(), nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	runUntilCaughtUp(t, c, broker)
	return stored(), reg
}

// counterSum sums the counters of family name whose label has value.
func counterSum(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}
