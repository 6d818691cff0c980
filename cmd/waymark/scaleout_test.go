package main

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/ingest"
)

// TestScaleOutSurvivesKill9 runs three `waymark serve --roles ingest` processes in one consumer
// group on a 6-partition topic, replays 200,000 events, kills one consumer with SIGKILL midway,
// and checks that every event is stored and every funnel answer equals a single-consumer run's
// (the Taobao known answers, times 20 passes of fresh customers).
func TestScaleOutSurvivesKill9(t *testing.T) {
	broker := startBrokerProcess(t)
	db := fmt.Sprintf("scaleout_%d", dbSeq.Add(1))
	var consumers []*server
	for range 3 {
		s := startServe(t, "--roles", "ingest", "--kafka-brokers", broker, "--clickhouse-database", db, "--batch-size", "5000")
		s.database, s.broker = db, broker
		consumers = append(consumers, s)
	}
	const passes = 20
	out := consumers[0].waymark(t, "replay", "--format", "taobao", "--file", taobaoSample, "--repeat", fmt.Sprint(passes), "--kafka-brokers", broker)
	t.Log(out)

	// Kill one consumer once some, not all, of the events are stored.
	deadline := time.Now().Add(time.Minute)
	for liveEvents(t, db) < 20000 {
		if time.Now().After(deadline) {
			t.Fatal("nothing stored after a minute")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := liveEvents(t, db); n >= passes*10000 {
		t.Fatalf("all %d events were stored before the kill; the test proves nothing", n)
	}
	victim := consumers[1]
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := ingest.WaitCaughtUp(ctx, []string{broker}, "waymark", "waymark.events"); err != nil {
		t.Fatal(err)
	}
	if n := liveEvents(t, db); n != passes*10000 {
		t.Errorf("stored %d distinct events, want %d", n, passes*10000)
	}
	s := consumers[0]
	for _, k := range knownAnswers {
		f := s.funnel(t, k.steps, k.window)
		for i, st := range f.Steps {
			if st.Customers != passes*k.want[i] {
				t.Errorf("funnel %s window %s step %d: %d customers, want %d", k.steps, k.window, i+1, st.Customers, passes*k.want[i])
			}
		}
	}
}

// startBrokerProcess runs the dev broker (6 partitions) in its own `waymark serve --roles
// collector` process, as a stand-in for a Kafka cluster that outlives the consumers, and returns
// its address.
func startBrokerProcess(t *testing.T) string {
	t.Helper()
	s := startServe(t, "--roles", "collector", "--dev-broker-partitions", "6")
	return s.broker
}
