package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/ingest/ingesttest"
	"github.com/waymark-dev/waymark/store/storetest"
)

// TestPoisonCannotCrashLoop runs `waymark serve` against an outside broker (a standalone kfake
// in this process, which outlives serve, as Kafka does) and sends it the hostile events, each
// followed by a good one: first a lone refund (the case: it crashed the consumer before it
// committed, so every restart read it again and died) before serve starts, then the whole table
// while it runs, then again while it is down after a kill -9. Each serve process consumes to the
// end of the topic and keeps running; every good event and every storable hostile one is stored,
// the rest is in the dead-letter topic with its reason, and the metrics are finite.
func TestPoisonCannotCrashLoop(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	broker := devBroker(t, 3)
	addr := broker.Addr()
	database := newDatabase(t, "crashloop")
	flags := []string{"--roles", "ingest", "--kafka-brokers", addr, "--clickhouse-database", database}

	var want []string
	produce := func(round int) {
		good, stored := produceHostile(t, addr, fmt.Sprintf("round%d-", round))
		want = append(append(want, good...), stored...)
	}
	// consumed waits until serve has committed everything, failing at once if it exits.
	consumed := func(s *server) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		caught := make(chan error, 1)
		go func() { caught <- ingest.WaitCaughtUp(ctx, []string{addr}, "waymark", "waymark.events") }()
		select {
		case err := <-caught:
			if err != nil {
				t.Fatalf("serve did not consume to the end of the topic: %v", err)
			}
		case err := <-s.exited:
			s.exited <- err // for the cleanup
			t.Fatalf("serve exited while consuming: %v", err)
		}
	}

	// The case first: a lone refund (no NaN in its batch to hide it), good events behind it.
	w := &kafka.Writer{Transport: ingesttest.Transport(t), Addr: kafka.TCP(addr), Topic: "waymark.events", RequiredAcks: kafka.RequireAll, Balancer: &kafka.Murmur2Balancer{}}
	msgs := []kafka.Message{{Key: []byte("refunder"), Value: []byte(`{"type":"track","event":"Order Completed","userId":"refunder",` +
		`"messageId":"lone-refund","properties":{"revenue":-5},"context":{"campaign":{"medium":"email"}}}`)}}
	want = append(want, "lone-refund")
	for i := range 5 {
		id := fmt.Sprintf("behind-refund-%d", i)
		msgs = append(msgs, kafka.Message{Key: []byte("refunder"), Value: fmt.Appendf(nil, `{"type":"track","event":"Product Viewed","userId":"refunder","messageId":%q}`, id)})
		want = append(want, id)
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()
	first := startServe(t, flags...)
	first.broker = addr
	consumed(first)
	if m := scrape(t, first.http); !strings.Contains(m, `waymark_journey_refunds_total{channel="email",currency="USD"} 5`+"\n") {
		t.Errorf("the lone refund is not counted in waymark_journey_refunds_total{channel=\"email\",currency=\"USD\"}")
	}
	produce(1)
	consumed(first)
	checkHostileOutcome(t, first, database, "round1-", want, 1)
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.exited
	first.exited <- nil

	produce(2)
	second := startServe(t, flags...)
	second.broker = addr
	consumed(second)
	checkHostileOutcome(t, second, database, "round2-", want, 1)
	select {
	case err := <-second.exited:
		second.exited <- err
		t.Fatalf("serve exited after consuming: %v", err)
	default:
	}
}
