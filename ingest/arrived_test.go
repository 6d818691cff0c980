package ingest

import (
	"log/slog"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestArrivedIsWhenWaymarkReceivedIt: the stored lag is measured from Event.Arrived. A replayed
// Segment export keeps its lines' receivedAt (2024) as ReceivedAt, and the lag counted the
// export's age; Arrived is the replay's produce time, the Kafka message's. The collector's
// events arrive at its receipt (its receivedAt, not the later Kafka time), and a message produced
// straight to Kafka when Kafka got it, whatever receivedAt it claims.
func TestArrivedIsWhenWaymarkReceivedIt(t *testing.T) {
	now := time.Date(2026, 12, 1, 22, 0, 0, 0, time.UTC)
	produced := now.Add(3 * time.Second)
	old := time.Date(2024, 3, 1, 10, 0, 1, 0, time.UTC)
	const line = `{"type":"track","userId":"u","event":"View","messageId":"m1","timestamp":"2024-03-01T10:00:00Z","receivedAt":"2024-03-01T10:00:01Z"}`

	c := offlineCollector()
	req, err := parseRequest([]byte(`{"batch":[`+line+`]}`), "batch")
	if err != nil {
		t.Fatal(err)
	}
	accepted, rejected := c.prepare(req, "web", now)
	if len(accepted) != 1 {
		t.Fatalf("collector: %d accepted, %v rejected", len(accepted), rejected)
	}
	cons, err := NewConsumer(ConsumerConfig{Brokers: []string{"unused:9092"}}, SinkFunc(nil), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	source := func(s string) []kafka.Header { return []kafka.Header{{Key: HeaderSource, Value: []byte(s)}} }
	tests := []struct {
		name                  string
		msg                   kafka.Message
		received, wantArrived time.Time
	}{
		{"collector", kafka.Message{Value: accepted[0].raw, Time: produced, Headers: source("web")}, now, now},
		{"replay straight to Kafka", kafka.Message{Value: []byte(line), Time: produced, Headers: source(replaySourcePrefix + "segment")}, old, produced},
		{"client straight to Kafka", kafka.Message{Value: []byte(line), Time: produced}, produced, produced},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := cons.decode(tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			if !e.ReceivedAt.Equal(tt.received) || !e.Arrived.Equal(tt.wantArrived) {
				t.Errorf("receivedAt %s, arrived %s; want %s and %s", e.ReceivedAt, e.Arrived, tt.received, tt.wantArrived)
			}
		})
	}
}
