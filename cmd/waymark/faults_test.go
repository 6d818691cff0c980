package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/ingest/ingesttest"
	"github.com/waymark-dev/waymark/store/storetest"
)

// TestPoisonMessagesWithTheDeadLetterTopicDown: poison messages go to the dead-letter topic; when
// that topic cannot be written, the consumer retries for --dlq-timeout, then logs each dead letter
// in full and counts it, and goes on with the good messages: it neither stalls nor skips silently.
func TestPoisonMessagesWithTheDeadLetterTopicDown(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	broker := startBrokerProcess(t)
	s := startServe(t, "--roles", "ingest", "--kafka-brokers", broker, "--dlq-topic", "absent.dlq", "--dlq-timeout", "2s")
	s.broker = broker
	w := &kafka.Writer{Transport: ingesttest.Transport(t), Addr: kafka.TCP(broker), Topic: "waymark.events", RequiredAcks: kafka.RequireAll}
	defer w.Close()
	msgs := []kafka.Message{
		{Key: []byte("p1"), Value: []byte(`{"type":"track","event":"Product Viewed","userId":"p1","messageId":"good-1","timestamp":"2026-02-01T10:00:00Z"}`)},
		{Key: []byte("p1"), Value: []byte(`{"poison": true`)},
		{Key: []byte("p1"), Value: []byte(`{"type":"track","event":"Order Completed","userId":"p1","messageId":"good-2","timestamp":"2026-02-01T10:05:00Z"}`)},
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	s.waitStored(t)
	if got := strings.Join(storedIDs(t, s.database, "kafka"), ","); got != "good-1,good-2" {
		t.Errorf("stored %q, want the two good messages", got)
	}
	if m := scrape(t, s.http); !strings.Contains(m, "waymark_consumer_dlq_write_failures_total 1") {
		t.Error("the dead letter that could not be written is not counted")
	}
	s.waitLogged(t, "dead-letter topic unavailable", `{\"poison\": true`)
}

// TestClickHouseOutage stops ClickHouse for 30 s in the middle of a stream: ingestion pauses
// (nothing committed, readiness reports it, memory bounded), resumes by itself, and nothing is lost.
func TestClickHouseOutage(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	ch := startOwnClickHouse(t)
	broker := startBrokerProcess(t)
	s := startServe(t, "--roles", "ingest", "--kafka-brokers", broker, "--clickhouse-addr", ch.Addr, "--batch-size", "2000")
	s.broker = broker
	s.waymark(t, "replay", "--format", "taobao", "--file", taobaoSample, "--kafka-brokers", broker)
	ch.Stop()
	outage := time.Now()
	// While ClickHouse is down: /readyz fails, the group's lag stays, memory stays bounded.
	waitFor(t, "/readyz to fail with ClickHouse down", func() bool {
		status, _ := httpGet(t, "http://"+s.http+"/readyz")
		return status == 503
	})
	s.waymark(t, "replay", "--format", "taobao", "--file", taobaoSample, "--repeat", "3", "--kafka-brokers", broker)
	time.Sleep(30*time.Second - time.Since(outage))
	lag, err := ingest.GroupLag(context.Background(), []string{broker}, "waymark", "waymark.events")
	if err != nil {
		t.Fatal(err)
	}
	var pending int64
	for _, n := range lag {
		pending += n
	}
	if pending < 20000 {
		t.Errorf("only %d messages uncommitted after 30 s without ClickHouse: offsets were committed for unstored events", pending)
	}
	if rss := metricValue(t, scrape(t, s.http), "process_resident_memory_bytes"); rss > 1<<30 {
		t.Errorf("resident memory %.0f MB during the outage", rss/(1<<20))
	}
	if err := ch.Restart(); err != nil {
		t.Fatal(err)
	}
	s.waitStored(t)
	status, _ := httpGet(t, "http://"+s.http+"/readyz")
	if status != 200 {
		t.Errorf("/readyz %d after ClickHouse came back", status)
	}
	// The replays hold passes 0..2 of the sample (pass 0 twice): 30,000 distinct events.
	if n := liveEventsOn(t, ch.Addr, s.database); n != 30000 {
		t.Errorf("stored %d distinct events, want 30000", n)
	}
}

// TestBrokerOutageAnalyticsNodeDeliversOnceBack: with the broker down the collector answers 503
// with Retry-After; @segment/analytics-node, which retries, delivers everything once it is back.
func TestBrokerOutageAnalyticsNodeDeliversOnceBack(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	broker, err := ingest.StartDevBroker("127.0.0.1:0", 6, "waymark.events", "waymark.dlq")
	if err != nil {
		t.Fatal(err)
	}
	addr := broker.Addr()
	s := startServe(t, "--kafka-brokers", addr)
	s.broker = addr
	dir := npmInstall(t, "@segment/analytics-node")
	broker.Close()

	req, _ := http.NewRequest(http.MethodPost, "http://"+s.http+"/v1/track", strings.NewReader(`{"userId":"x","event":"A","messageId":"down-1"}`))
	req.SetBasicAuth("test-key", "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("with the broker down: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	node := exec.Command("node", filepath.Join(mustAbs(t, "testdata"), "analytics-node-retry.js"), "http://"+s.http, "outage", "20")
	node.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"))
	var out strings.Builder
	node.Stdout, node.Stderr = &out, &out
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	// The broker comes back once the SDK has met a 503 (observed, not waited for by the clock).
	waitFor(t, "analytics-node's batches to meet a 503", func() bool {
		return strings.Contains(scrape(t, s.http), `waymark_collector_requests_total{code="503",endpoint="batch"}`)
	})
	broker, err = ingest.StartDevBroker(addr, 6, "waymark.events", "waymark.dlq")
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	if err := node.Wait(); err != nil {
		t.Fatalf("analytics-node did not deliver everything: %v\n%s", err, out.String())
	}
	s.waitStored(t)
	if n := len(storedIDs(t, s.database, "test")); n != 20 {
		t.Errorf("stored %d of the 20 events analytics-node sent during the outage\n%s", n, out.String())
	}
}

// TestCollectorReadinessFollowsTheBroker: a collector's /readyz fails while its broker is down,
// with no request coming, and is 200 again by itself once the broker is back; tracking calls
// then succeed.
func TestCollectorReadinessFollowsTheBroker(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	broker, err := ingest.StartDevBroker("127.0.0.1:0", 6, "waymark.events", "waymark.dlq")
	if err != nil {
		t.Fatal(err)
	}
	addr := broker.Addr()
	s := startServe(t, "--roles", "collector", "--kafka-brokers", addr)
	readyz := func() int {
		status, _ := httpGet(t, "http://"+s.http+"/readyz")
		return status
	}
	broker.Close()
	waitFor(t, "/readyz to fail with the broker down", func() bool { return readyz() == 503 })
	if m := scrape(t, s.http); !strings.Contains(m, "waymark_ready 0") {
		t.Error("waymark_ready is not 0 with the broker down")
	}
	broker, err = ingest.StartDevBroker(addr, 6, "waymark.events", "waymark.dlq")
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	waitFor(t, "/readyz to recover with the broker back", func() bool { return readyz() == 200 })
	if status, answer := s.track(t, "/v1/track", `{"userId":"x","event":"A","messageId":"back-1"}`); status != 200 {
		t.Errorf("tracking call once ready again: %d %s, want 200", status, answer)
	}
}

// waitFor polls cond until it holds. The limit only guards against a hang: it is far beyond what
// any working run needs, even on a busy machine, and says nothing about speed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Minute); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}

// TestQueriesWhileClickHouseIsDownAnswer503: with ClickHouse stopped, a journey query is answered 503 with Retry-After, as for a full query slot, so clients and the
// journey page try again; not 500, which says the server failed for good (the tenth tester's L1).
// Once ClickHouse is back the same query answers.
func TestQueriesWhileClickHouseIsDownAnswer503(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	ch := startOwnClickHouse(t)
	s := startServe(t, "--clickhouse-addr", ch.Addr)
	if status, answer := s.track(t, "/v1/track", `{"type":"track","userId":"down1","event":"Product Viewed","messageId":"down1-v","timestamp":"2025-11-05T10:00:00Z"}`); status != 200 {
		t.Fatalf("POST /v1/track: %d %s", status, answer)
	}
	s.waitStored(t)
	ch.Stop()
	for _, get := range []string{"/api/v1/sessions", "/api/v1/funnel?steps=Product+Viewed"} {
		status, header, answer := httpGetHeader(t, "http://"+s.http+get)
		var body struct{ Error string }
		if err := json.Unmarshal([]byte(answer), &body); status != 503 || err != nil || body.Error == "" || header.Get("Retry-After") == "" {
			t.Errorf("%s with ClickHouse down: %d, Retry-After %q, %s; want 503 with Retry-After and an error in JSON", get, status, header.Get("Retry-After"), answer)
		}
	}
	if err := ch.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the funnel to answer once ClickHouse is back", func() bool {
		status, _ := httpGet(t, "http://"+s.http+"/api/v1/funnel?steps=Product+Viewed")
		return status == 200
	})
}
