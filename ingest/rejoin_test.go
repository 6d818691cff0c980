package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// joinAndDie joins consumer group g on the broker at addr as a new member, on a connection it
// closes before the answer comes: a consumer killed while its JoinGroup waits for the rebalance.
// The dev broker (kfake) keeps such a member in the group without a session timer, and gives it
// partitions that nobody reads.
func joinAndDie(t *testing.T, addr, group, topic string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	meta := kmsg.ConsumerMemberMetadata{Version: 0, Topics: []string{topic}}
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version = 2 // before KIP-394: the first join makes the member
	req.Group = group
	req.SessionTimeoutMillis = 10000
	req.RebalanceTimeoutMillis = 1000
	req.ProtocolType = "consumer"
	req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: meta.AppendTo(nil)}}
	if _, err := conn.Write(kmsg.NewRequestFormatter(kmsg.FormatterClientID("zombie")).AppendRequest(nil, req, 1)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the broker takes the join in
	conn.Close()
}

// TestConsumerRecoversPartitionsOfAMemberThatDiedJoining: a consumer group member dies while its
// JoinGroup waits, and the dev broker keeps it, with partitions, forever. The live consumer's
// stall watch reports the stall (Healthy) and rejoins the group, which drops the dead member: every
// message is stored and the consumer is healthy again.
func TestConsumerRecoversPartitionsOfAMemberThatDiedJoining(t *testing.T) {
	b := startBroker(t)
	sink, stored := recordEvents()
	storedN := func() int { return len(stored()) }
	c, err := NewConsumer(ConsumerConfig{
		Brokers: []string{b.Addr()}, Topic: "events", DLQTopic: "dlq", Group: "g",
		FlushInterval: 20 * time.Millisecond, RetryMax: 50 * time.Millisecond,
		LagInterval: 50 * time.Millisecond, StallAfter: time.Second,
	}, sink, slog.New(slog.NewTextHandler(t.Output(), nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	var values []string
	for i := range 30 {
		values = append(values, fmt.Sprintf(`{"type":"track","event":"E","userId":"u%d","messageId":"a%d"}`, i, i))
	}
	produce(t, b.Addr(), values...)
	waitFor(t, func() bool { return storedN() == 30 && totalLag(t, b.Addr()) == 0 })

	joinAndDie(t, b.Addr(), "g", "events")
	values = values[:0]
	for i := range 30 {
		values = append(values, fmt.Sprintf(`{"type":"track","event":"E","userId":"u%d","messageId":"b%d"}`, i, i))
	}
	produce(t, b.Addr(), values...)

	waitFor(t, func() bool { return c.Healthy() != nil })
	t.Logf("while stalled: Healthy() = %v", c.Healthy())
	// The rebalance that drops the dead member takes up to the group's rebalance timeout (20 s).
	deadline := time.Now().Add(90 * time.Second)
	for storedN() < 60 || totalLag(t, b.Addr()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("stored %d of 60 events, lag by partition %v, 90 s after a member died joining", storedN(), groupLag(t, b.Addr()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitFor(t, func() bool { return c.Healthy() == nil })
}
