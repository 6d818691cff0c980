package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/waymark-dev/waymark/ingest/ingesttest"
)

// TestConsumerTakesAReceiversOwnReceivedAt: a message produced straight to Kafka (no
// waymark-source header) that names its own receipt, a receivedAt from 7 days before its Kafka
// time to a minute after it (checkReceipt, the rule of waymark-forwarded), is a receiver's: a
// mirror of Segment's processed output keeps its timestamp however long after its receipt it
// reaches Kafka, and an originalTimestamp alone is corrected against that receipt (Segment's
// rule: timestamp = originalTimestamp + receivedAt − sentAt), as is a timestamp without an
// originalTimestamp (a client's). A receipt that would move the message's own time by the 23-hour
// rule is none. Any other receivedAt (outside those bounds, no time, of another type) is ignored, listed
// and counted, and the message is received when Kafka got it, as before (tester 35's F2: a
// mirror lagging more than 2 s was moved to the time it was consumed).
func TestConsumerTakesAReceiversOwnReceivedAt(t *testing.T) {
	b := startBroker(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	iso := func(t time.Time) string { return `"` + t.Format(time.RFC3339Nano) + `"` }
	ms := time.Millisecond
	// mirror is a message as Segment stores it, received at r: its client's clock right, its
	// timestamp corrected already.
	mirror := func(r time.Time) string {
		return `"originalTimestamp":` + iso(r.Add(-300*ms)) + `,"timestamp":` + iso(r.Add(-200*ms)) + `,"sentAt":` + iso(r.Add(-100*ms)) + `,"receivedAt":` + iso(r)
	}
	tests := []struct {
		id, times string
		// receipt and at are the receive and event times to store; a zero receipt: the time
		// Kafka got it (the receipt ignored), and a zero at within a minute of it.
		receipt, at time.Time
	}{
		{id: "lag-5s", times: mirror(now.Add(-5 * time.Second)), receipt: now.Add(-5 * time.Second), at: now.Add(-5*time.Second - 200*ms)},
		{id: "lag-20s", times: mirror(now.Add(-20 * time.Second)), receipt: now.Add(-20 * time.Second), at: now.Add(-20*time.Second - 200*ms)},
		{id: "lag-1h", times: mirror(now.Add(-time.Hour)), receipt: now.Add(-time.Hour), at: now.Add(-time.Hour - 200*ms)},
		{id: "lag-6d", times: mirror(now.Add(-6 * 24 * time.Hour)), receipt: now.Add(-6 * 24 * time.Hour), at: now.Add(-6*24*time.Hour - 200*ms)},
		// A producer's clock 30 s ahead of Kafka's: within MaxReceiptSkew.
		{id: "ahead-30s", times: mirror(now.Add(30 * time.Second)), receipt: now.Add(30 * time.Second), at: now.Add(30*time.Second - 200*ms)},
		// No timestamp: the client's clock an hour fast, corrected against its own receipt.
		{id: "orig-only", times: `"originalTimestamp":` + iso(now.Add(-10*time.Minute+time.Hour-time.Second)) + `,"sentAt":` + iso(now.Add(-10*time.Minute+time.Hour)) + `,"receivedAt":` + iso(now.Add(-10*time.Minute)),
			receipt: now.Add(-10 * time.Minute), at: now.Add(-10*time.Minute - time.Second)},
		// A timestamp without originalTimestamp is a client's (a relay that only adds
		// receivedAt), not Segment's corrected one: its clock 2 h fast, corrected against the
		// receipt (tester 36's F1: it was stored 2 h ahead).
		{id: "ts-only-fast", times: `"timestamp":` + iso(now.Add(-10*time.Minute+2*time.Hour-time.Second)) + `,"sentAt":` + iso(now.Add(-10*time.Minute+2*time.Hour)) + `,"receivedAt":` + iso(now.Add(-10*time.Minute)),
			receipt: now.Add(-10 * time.Minute), at: now.Add(-10*time.Minute - time.Second)},
		// No receipt of the message: ignored. A receipt more than 23 hours before the message's
		// own time would move the event back to it (tester 36's F2: an event of now stored 6 days
		// back).
		{id: "future", times: `"timestamp":` + iso(now.Add(-time.Hour).Add(30*time.Hour)) + `,"receivedAt":` + iso(now.Add(-time.Hour))},
		{id: "old-receipt", times: `"originalTimestamp":` + iso(now) + `,"receivedAt":` + iso(now.Add(-6*24*time.Hour))},
		// A mirror's receipt outside the bounds is none either, but its timestamp, stated beside
		// its originalTimestamp, is corrected already and stands (eventTime; tester 45's F5):
		// until then it was corrected again by its sentAt, moved to about the time Kafka got it.
		{id: "lag-8d", times: mirror(now.Add(-8 * 24 * time.Hour)), at: now.Add(-8*24*time.Hour - 200*ms)},
		{id: "ahead-5m", times: mirror(now.Add(5 * time.Minute)), at: now.Add(5*time.Minute - 200*ms)},
		{id: "year-1", times: `"timestamp":` + iso(now) + `,"receivedAt":"0001-01-02T00:00:00Z"`},
		{id: "not-a-time", times: `"timestamp":` + iso(now) + `,"receivedAt":"yesterday"`},
		{id: "a-number", times: `"timestamp":` + iso(now) + `,"receivedAt":1733400000000`},
		{id: "empty", times: `"receivedAt":""`},
	}
	w := &kafka.Writer{Transport: ingesttest.Transport(t), Addr: kafka.TCP(b.Addr()), Topic: "events", RequiredAcks: kafka.RequireAll, Balancer: partitionBalancer{}}
	defer w.Close()
	for _, tt := range tests {
		user := "mr-" + tt.id
		value := `{"type":"track","userId":"` + user + `","event":"E","messageId":"` + tt.id + `",` + tt.times + `}`
		if err := w.WriteMessages(context.Background(), kafka.Message{Key: []byte(user), Value: []byte(value)}); err != nil {
			t.Fatal(err)
		}
	}
	produced := time.Now()

	stored, reg := consumeRecorded(t, b.Addr())

	near := func(at time.Time) bool { d := produced.Sub(at); return d > -time.Minute && d < time.Minute }
	ignored := 0
	for _, tt := range tests {
		e, ok := stored[tt.id]
		if !ok {
			t.Errorf("%s: not stored", tt.id)
			continue
		}
		if !near(e.Arrived) {
			t.Errorf("%s: arrived %s, want the time Kafka got it (about %s)", tt.id, e.Arrived, produced.UTC())
		}
		if tt.receipt.IsZero() {
			ignored++
			if len(e.Ignored) != 1 || e.Ignored[0].Field != "receivedAt" {
				t.Errorf("%s: ignored %v, want receivedAt", tt.id, e.Ignored)
			}
			if !near(e.ReceivedAt) || (tt.at.IsZero() && !near(e.Timestamp)) {
				t.Errorf("%s: received %s, timestamp %s; want the time Kafka got it (about %s)", tt.id, e.ReceivedAt, e.Timestamp, produced.UTC())
			}
			if !tt.at.IsZero() && !e.Timestamp.Equal(tt.at) {
				t.Errorf("%s: timestamp %s, want %s", tt.id, e.Timestamp, tt.at)
			}
			continue
		}
		if !e.ReceivedAt.Equal(tt.receipt) || !e.Timestamp.Equal(tt.at) || e.FutureTimestamp || len(e.Ignored) != 0 {
			t.Errorf("%s: received %s, timestamp %s, future %t, ignored %v; want %s, %s, not future, nothing ignored",
				tt.id, e.ReceivedAt, e.Timestamp, e.FutureTimestamp, e.Ignored, tt.receipt, tt.at)
		}
	}
	if n := counterSum(t, reg, "waymark_consumer_ignored_fields_total", "field", "receivedAt"); n != float64(ignored) {
		t.Errorf(`waymark_consumer_ignored_fields_total{field="receivedAt"} = %g, want %d`, n, ignored)
	}
}
