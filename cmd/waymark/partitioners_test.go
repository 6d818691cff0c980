package main

import (
	"context"
	"fmt"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/store/storetest"
)

// splitVisit is one device's visit: dev-split browses, signs in as u-split and orders, with
// messageIds and times, as a shop's own producer sends it straight to Kafka.
var splitVisit = []string{
	`{"type":"page","name":"Home","anonymousId":"dev-split","messageId":"sv-1","timestamp":"2026-11-20T10:00:00Z"}`,
	`{"type":"track","event":"Product Viewed","anonymousId":"dev-split","messageId":"sv-2","timestamp":"2026-11-20T10:01:00Z"}`,
	`{"type":"track","event":"Product Viewed","anonymousId":"dev-split","messageId":"sv-3","timestamp":"2026-11-20T10:02:00Z"}`,
	`{"type":"identify","userId":"u-split","anonymousId":"dev-split","messageId":"sv-4","timestamp":"2026-11-20T10:03:00Z","traits":{"plan":"free"}}`,
	`{"type":"track","event":"Product Added","userId":"u-split","anonymousId":"dev-split","messageId":"sv-5","timestamp":"2026-11-20T10:04:00Z"}`,
	`{"type":"track","event":"Checkout Started","userId":"u-split","anonymousId":"dev-split","messageId":"sv-6","timestamp":"2026-11-20T10:05:00Z"}`,
	`{"type":"track","event":"Order Completed","userId":"u-split","anonymousId":"dev-split","messageId":"sv-7","timestamp":"2026-11-20T10:06:00Z"}`,
}

// TestVisitsSplitAcrossPartitionersAreOneSession: a shop that produces straight to Kafka with its
// own producer may put one device's events on several partitions (librdkafka's default
// partitioner, no key, the userId as key once signed in). With two `waymark serve --roles ingest`
// in one group on a 6-partition topic, each partition's events are cut into sessions by the
// process that owns it, so the visit was split between them. The consumers forward each event to
// its device's partition (ingest.Partition): kcat spreads the visit over all six partitions with
// three kinds of key, and the sessions, funnel and stored events equal those of the same events
// posted to the collector.

func TestVisitsSplitAcrossPartitionersAreOneSession(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	want := startServe(t)
	want.sendBatch(t, splitVisit...)
	want.waitStored(t)

	consumers := startConsumerGroup(t, 2)
	broker, db := consumers[0].broker, consumers[0].database
	for i, line := range splitVisit {
		key := []string{"dev-split", "u-split", ""}[i%3] // anonymousId, userId, no key
		in := line + "\n"
		if key != "" {
			in = key + "\t" + in
		}
		args := []string{"-P", "-b", broker, "-t", "waymark.events", "-p", fmt.Sprint(i % 6)}
		if key != "" {
			args = append(args, "-K", "\t")
		}
		cmd := exec.Command("kcat", args...)
		cmd.Stdin = strings.NewReader(in)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kcat: %v\n%s", err, out)
		}
	}
	got := consumers[0]
	got.waitStored(t)
	if g, w := sessionRows(t, chServer.Addr, db), sessionRows(t, chServer.Addr, want.database); !slices.Equal(g, w) {
		t.Errorf("sessions of the visit produced over six partitions:\n%s\nwant, as through the collector:\n%s", strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
	if g, w := got.sessions(t), want.sessions(t); !reflect.DeepEqual(g, w) {
		t.Errorf("sessions --json: %+v, want %+v", g, w)
	}
	for _, steps := range []string{"Home,Product Viewed,Order Completed", "Product Viewed,Checkout Started"} {
		if g, w := got.funnel(t, steps, "1h"), want.funnel(t, steps, "1h"); !slices.Equal(customersOf(g), customersOf(w)) {
			t.Errorf("funnel %s: %v, want %v", steps, customersOf(g), customersOf(w))
		}
	}
	forwarded := 0.0
	for _, s := range consumers {
		forwarded += metricValue(t, scrape(t, s.http), "waymark_consumer_forwarded_total")
	}
	if forwarded == 0 {
		t.Error("waymark_consumer_forwarded_total is 0 on both consumers")
	}

}

// produceTo writes msg to one partition of the events topic and returns its offset.
func produceTo(t *testing.T, broker string, partition int, msg kafka.Message) int64 {
	t.Helper()
	conn, err := kafka.DialLeader(context.Background(), "tcp", broker, "waymark.events", partition)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.WriteMessages(msg); err != nil {
		t.Fatal(err)
	}
	end, err := conn.ReadLastOffset()
	if err != nil {
		t.Fatal(err)
	}
	return end - 1
}

// TestForwardedEventIsStoredOnceAfterARestart starts from the state a consumer leaves when it
// stops after forwarding an event to its device's partition and before committing the original:
// an event without messageId or timestamp (its id and time come from its receipt) on a partition
// not its device's, and its copy already on the device's partition. The consumers forward it once
// more and store the copies as one event, the original's, in one session.
func TestForwardedEventIsStoredOnceAfterARestart(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	consumers := startConsumerGroup(t, 2)
	got, broker, db := consumers[0], consumers[0].broker, consumers[0].database
	const key = "dev-crash"
	home := ingest.Partition(key, 6)
	away := (home + 1) % 6
	value := []byte(`{"type":"page","name":"Home","anonymousId":"dev-crash"}`)
	received := time.Now().Truncate(time.Millisecond)
	offset := produceTo(t, broker, away, kafka.Message{Value: value, Time: received})
	produceTo(t, broker, home, kafka.Message{Key: []byte(key), Value: value, Time: received.Add(time.Second), Headers: []kafka.Header{
		{Key: ingest.HeaderForwarded, Value: []byte(ingest.Receipt(received, ingest.KafkaPlace(away, offset)))},
	}})
	got.waitStored(t)
	if n := liveEventsOn(t, chServer.Addr, db); n != 1 {
		t.Errorf("%d events stored, want 1", n)
	}
	if sum := got.sessions(t); sum.Sessions != 1 || sum.Events != 1 {
		t.Errorf("sessions --json: %+v, want 1 session of 1 event", sum)
	}
	stored := queryStringsOn(t, chServer.Addr, "SELECT DISTINCT concat(toString(ts_ms), ' ', toString(received_at_ms)) FROM "+db+".events")
	if ms := fmt.Sprint(received.UnixMilli()); !slices.Equal(stored, []string{ms + " " + ms}) {
		t.Errorf("event time and receipt %v, want the original's receipt %d twice", stored, received.UnixMilli())
	}
}

// startConsumerGroup starts n `waymark serve --roles ingest` in one consumer group on one
// database, reading a 6-partition topic of a broker process, once they share its partitions.
func startConsumerGroup(t *testing.T, n int) []*server {
	t.Helper()
	broker := startBrokerProcess(t)
	db := newDatabase(t, "split")
	var consumers []*server
	for range n {
		s := startServe(t, "--roles", "ingest", "--kafka-brokers", broker, "--clickhouse-database", db)
		s.database, s.broker = db, broker
		consumers = append(consumers, s)
	}
	waitGroupStable(t, broker, "waymark", n)
	return consumers
}
