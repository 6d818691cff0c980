package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/store/storetest"
)

// TestScaleOutSurvivesKill9 runs three `waymark serve --roles ingest` processes in one consumer
// group on a 6-partition topic and kills one with SIGKILL while it holds events it has fetched
// but not stored: every event is stored once and every funnel answer equals a single-consumer
// run's (the Taobao known answers, times 20 passes of fresh customers).
//
// The work in flight at the kill is made so, not raced for: a first pass is stored and committed,
// then ClickHouse is stopped, so the consumers fetch the other passes but can neither store nor
// commit them; the victim is a consumer that has since retried storing a batch. After
// the kill ClickHouse comes back and the survivors take over the victim's partitions from its
// last committed offsets.
func TestScaleOutSurvivesKill9(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	ch := startOwnClickHouse(t)
	broker := startBrokerProcess(t)
	db := fmt.Sprintf("scaleout_%d", dbSeq.Add(1))
	var consumers []*server
	for range 3 {
		s := startServe(t, "--roles", "ingest", "--kafka-brokers", broker, "--clickhouse-addr", ch.Addr, "--clickhouse-database", db, "--batch-size", "5000")
		s.database, s.broker = db, broker
		consumers = append(consumers, s)
	}
	replay := func(passes int) {
		out := consumers[0].waymark(t, "replay", "--format", "taobao", "--file", taobaoSample, "--repeat", fmt.Sprint(passes), "--kafka-brokers", broker)
		t.Log(out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // a hang guard
	defer cancel()

	// Pass 0, stored and committed, once all three consumers share the partitions.
	waitGroupStable(t, broker, "waymark", len(consumers))
	replay(1)
	if err := ingest.WaitCaughtUp(ctx, []string{broker}, "waymark", "waymark.events"); err != nil {
		t.Fatal(err)
	}
	stuck := make([]float64, len(consumers))
	for i, s := range consumers {
		stuck[i] = storeRetries(scrape(t, s.http))
	}

	// Passes 0 (again) to 19 while ClickHouse is down: fetched, held, not committed.
	ch.Stop()
	const passes = 20
	replay(passes)
	var victim *server
	waitFor(t, "a consumer to hold events it cannot store", func() bool {
		for i, s := range consumers {
			if storeRetries(scrape(t, s.http)) > stuck[i] {
				victim = s
				return true
			}
		}
		return false
	})
	lag, err := ingest.GroupLag(ctx, []string{broker}, "waymark", "waymark.events")
	if err != nil {
		t.Fatal(err)
	}
	var pending int64
	for _, n := range lag {
		pending += n
	}
	if pending == 0 {
		t.Fatal("nothing uncommitted at the kill")
	}
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed a consumer with %d messages uncommitted in the group", pending)
	if err := ch.Restart(); err != nil {
		t.Fatal(err)
	}

	if err := ingest.WaitCaughtUp(ctx, []string{broker}, "waymark", "waymark.events"); err != nil {
		t.Fatal(err)
	}
	if n := liveEventsOn(t, ch.Addr, db); n != passes*10000 {
		t.Errorf("stored %d distinct events, want %d", n, passes*10000)
	}
	s := consumers[0]
	if s == victim {
		s = consumers[1]
	}
	for _, k := range knownAnswers {
		out := s.waymark(t, "funnel", "--clickhouse-addr", ch.Addr, "--steps", k.steps, "--window", k.window, "--json")
		var f funnelJSON
		if err := json.Unmarshal([]byte(out), &f); err != nil {
			t.Fatalf("funnel --json: %v\n%s", err, out)
		}
		for i, st := range f.Steps {
			if st.Customers != passes*k.want[i] {
				t.Errorf("funnel %s window %s step %d: %d customers, want %d", k.steps, k.window, i+1, st.Customers, passes*k.want[i])
			}
		}
	}
}

// TestQueryOnlyServeStartsNoBroker: a `waymark serve --roles query` talks to no Kafka, so it
// starts no dev broker, and two of them run side by side on one host with the same (default)
// --dev-broker-addr, here held by another process's listener. Each answers queries, and logs
// nothing of brokers or a consumer it does not have (it logged brokers=[127.0.0.1:9092] and
// "consumer flushed and committed" on shutdown).
func TestQueryOnlyServeStartsNoBroker(t *testing.T) {
	t.Parallel()
	held, err := net.Listen("tcp", "127.0.0.1:0") // the port a dev broker would take
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	for i := range 2 {
		s := startServe(t, "--roles", "query", "--dev-broker-addr", held.Addr().String())
		if status, body := httpGet(t, "http://"+s.http+"/api/v1/sessions"); status != http.StatusOK {
			t.Errorf("query-only serve %d: GET /api/v1/sessions answered %d %s", i+1, status, body)
		}
		if strings.Contains(s.log.String(), "DEV BROKER") {
			t.Errorf("query-only serve %d started the dev broker:\n%s", i+1, s.log)
		}
		s.stop(t)
		for _, kafka := range []string{"brokers=", "consumer", "Kafka"} {
			if strings.Contains(s.log.String(), kafka) {
				t.Errorf("query-only serve %d logged %q:\n%s", i+1, kafka, s.log)
			}
		}
		if !strings.Contains(s.log.String(), "closing ClickHouse clients") {
			t.Errorf("query-only serve %d logged no shutdown:\n%s", i+1, s.log)
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

// storeRetries is how often a consumer has retried preparing (sessionizing, which reads
// ClickHouse), writing or committing a batch, from a scrape of its /metrics: while ClickHouse is
// down, it grows exactly when the consumer holds a batch of fetched, uncommitted events.
func storeRetries(metrics string) float64 {
	n := 0.0
	for _, line := range strings.Split(metrics, "\n") {
		for _, step := range []string{"prepare batch", "write batch", "commit offsets"} {
			if v, ok := strings.CutPrefix(line, `waymark_consumer_retries_total{step="`+step+`"} `); ok {
				f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
				n += f
			}
		}
	}
	return n
}

// waitGroupStable waits until the consumer group is stable with n members that all have
// partitions of waymark.events, as the broker describes it.
func waitGroupStable(t *testing.T, broker, group string, n int) {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(broker), Timeout: 10 * time.Second}
	waitFor(t, fmt.Sprintf("group %s to be stable with %d members", group, n), func() bool {
		resp, err := client.DescribeGroups(context.Background(), &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
		if err != nil || len(resp.Groups) != 1 || resp.Groups[0].Error != nil || resp.Groups[0].GroupState != "Stable" || len(resp.Groups[0].Members) != n {
			return false
		}
		for _, m := range resp.Groups[0].Members {
			if len(m.MemberAssignments.Topics) == 0 || len(m.MemberAssignments.Topics[0].Partitions) == 0 {
				return false
			}
		}
		return true
	})
}
