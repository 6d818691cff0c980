package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/waymark-dev/waymark/ingest/ingesttest"
)

func startBroker(t testing.TB) *DevBroker {
	t.Helper()
	b, err := StartDevBroker("127.0.0.1:0", 3, "events", "dlq")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func produce(t *testing.T, broker string, values ...string) {
	t.Helper()
	w := &kafka.Writer{Transport: ingesttest.Transport(t), Addr: kafka.TCP(broker), Topic: "events", RequiredAcks: kafka.RequireAll, Balancer: partitionBalancer{}}
	defer w.Close()
	var msgs []kafka.Message
	for i, v := range values {
		// Keyed as the collector keys them, so that none is forwarded (see Consumer.Run): the
		// device's id, or for a message that does not decode any key.
		key := fmt.Sprintf("k%d", i)
		if e, err := DecodeClient([]byte(v), "test", time.Now()); err == nil {
			key = e.CustomerKey()
		}
		msgs = append(msgs, kafka.Message{Key: []byte(key), Value: []byte(v)})
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

func totalLag(t *testing.T, broker string) int64 {
	t.Helper()
	lag, err := GroupLag(context.Background(), []string{broker}, "g", "events")
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, l := range lag {
		n += l
	}
	return n
}

// TestConsumerCommitsOnlyAfterTheSink runs the consumer against a real Kafka-protocol broker with a
// sink that fails until it is allowed to succeed: nothing may be committed before that. Meanwhile
// the stall shows: in waymark_consumer_stalled_seconds and, past StallAfter, in a warning, and
// the recovery in an info line.
func TestConsumerCommitsOnlyAfterTheSink(t *testing.T) {
	b := startBroker(t)
	const n = 50
	var values []string
	for i := range n {
		values = append(values, fmt.Sprintf(`{"type":"track","event":"E","userId":"u%d","messageId":"m%d"}`, i%7, i))
	}
	values = append(values, `{"broken"`)
	produce(t, b.Addr(), values...)

	var mu sync.Mutex
	failing := true
	attempts := 0
	stored := map[string]bool{}
	sink := SinkFunc(func(ctx context.Context, events []Event) error {
		mu.Lock()
		defer mu.Unlock()
		attempts++
		if failing {
			return errors.New("store unavailable")
		}
		for _, e := range events {
			stored[e.MessageID] = true
		}
		return nil
	})
	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	c, err := NewConsumer(ConsumerConfig{
		Brokers: []string{b.Addr()}, Topic: "events", DLQTopic: "dlq", Group: "g",
		FlushInterval: 20 * time.Millisecond, RetryMax: 50 * time.Millisecond,
		LagInterval: 20 * time.Millisecond, StallAfter: time.Nanosecond,
	}, sink, slog.New(slog.NewTextHandler(logs, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return attempts >= 3 })
	waitFor(t, func() bool { return strings.Contains(logs.String(), "consumption stalled") })
	// The gauge is set after the warning is logged, in the same round of watch: waited for.
	waitFor(t, func() bool { return maxGauge(t, reg, "waymark_consumer_stalled_seconds") > 0 })
	if lag := totalLag(t, b.Addr()); lag != n+1 {
		t.Errorf("lag while the sink fails = %d, want %d: offsets were committed before the sink succeeded", lag, n+1)
	}
	if c.Healthy() == nil {
		t.Error("Healthy() = nil while the sink fails")
	}
	mu.Lock()
	failing = false
	mu.Unlock()
	waitFor(t, func() bool { return totalLag(t, b.Addr()) == 0 })
	waitFor(t, func() bool { return strings.Contains(logs.String(), "consumption resumed") })
	waitFor(t, func() bool { return maxGauge(t, reg, "waymark_consumer_stalled_seconds") == 0 })
	mu.Lock()
	if len(stored) != n {
		t.Errorf("stored %d distinct events, want %d", len(stored), n)
	}
	mu.Unlock()
	if err := c.Healthy(); err != nil {
		t.Errorf("Healthy() = %v after recovery", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run() = %v on a clean stop", err)
	}
}

// runUntilCaughtUp runs c until its group has committed everything on the topic of broker, then
// stops it, which must be clean.
func runUntilCaughtUp(t *testing.T, c *Consumer, broker string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitFor(t, func() bool { return totalLag(t, broker) == 0 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run() = %v on a clean stop", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConsumerConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  ConsumerConfig
		want string
	}{
		{"no brokers", ConsumerConfig{}, "kafka brokers"},
		{"dlq is the topic", ConsumerConfig{Brokers: []string{"x:1"}, Topic: "a", DLQTopic: "a"}, "dlq topic"},
		{"negative batch", ConsumerConfig{Brokers: []string{"x:1"}, BatchSize: -1}, "batch size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewConsumer(tt.cfg, SinkFunc(func(context.Context, []Event) error { return nil }), slog.New(slog.DiscardHandler), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewConsumer() = %v, want an error about %s", err, tt.want)
			}
		})
	}
}

// TestConsumerDeadLettersTheEventThatPanics: a sink that panics on one event (a test-only
// configuration) costs only that event: it goes to the dead-letter topic with reason panic, the
// other events are written, and offsets reach the end.
func TestConsumerDeadLettersTheEventThatPanics(t *testing.T) {
	b := startBroker(t)
	const n = 40
	var values []string
	for i := range n {
		values = append(values, fmt.Sprintf(`{"type":"track","event":"E","userId":"u%d","messageId":"m%d"}`, i%5, i))
	}
	values = append(values, `{"type":"track","event":"E","userId":"u1","messageId":"poison"}`)
	produce(t, b.Addr(), values...)

	var mu sync.Mutex
	stored := map[string]bool{}
	sink := SinkFunc(func(ctx context.Context, events []Event) error {
		for _, e := range events {
			if e.MessageID == "poison" {
				var m map[string]int
				m[e.MessageID]++ // a nil map: a real runtime panic
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for _, e := range events {
			stored[e.MessageID] = true
		}
		return nil
	})
	c, err := NewConsumer(ConsumerConfig{
		Brokers: []string{b.Addr()}, Topic: "events", DLQTopic: "dlq", Group: "g",
		BatchSize: 16, FlushInterval: 20 * time.Millisecond, RetryMax: 50 * time.Millisecond,
	}, sink, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	runUntilCaughtUp(t, c, b.Addr())
	mu.Lock()
	if len(stored) != n || stored["poison"] {
		t.Errorf("stored %d events (poison: %v), want the %d others", len(stored), stored["poison"], n)
	}
	mu.Unlock()

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{b.Addr()}, Topic: "dlq", GroupID: "dlq-reader", StartOffset: kafka.FirstOffset, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer rcancel()
	m, err := r.ReadMessage(rctx)
	if err != nil {
		t.Fatal(err)
	}
	if reason := headerValue(m.Headers, HeaderDLQReason, ""); reason != ReasonPanic || !strings.Contains(string(m.Value), `"poison"`) ||
		!strings.Contains(headerValue(m.Headers, HeaderDLQError, ""), "nil map") {
		t.Errorf("dead letter %s, reason %q, error %q; want the poison event, reason panic, the panic's message",
			m.Value, reason, headerValue(m.Headers, HeaderDLQError, ""))
	}
}

// TestConsumerRebalanceWithBatchInFlight: consumer A holds a batch with messages of both
// partitions, stuck in its sink, when consumer B joins the group and takes over one of them. B
// reads that partition to its end and commits. When A's sink is released, A's batch (fetched in
// the generation before) must not commit its offset on the partition that moved: that would move
// the group's offset back on a partition whose owner has nothing more to read, and the messages
// after it would stay uncommitted for good, with nobody retrying (a silent stall). In the end
// every partition is committed to its end and every event is stored.
func TestConsumerRebalanceWithBatchInFlight(t *testing.T) {
	b, err := StartDevBroker("127.0.0.1:0", 2, "events", "dlq")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	const k = 5 // messages per partition and phase
	// Three users whose events are on each partition by Waymark's rule (Partition), so that none
	// is forwarded.
	users := [2][]string{}
	for i := 0; len(users[0]) < 3 || len(users[1]) < 3; i++ {
		u := fmt.Sprintf("u%d", i)
		users[Partition(u, 2)] = append(users[Partition(u, 2)], u)
	}
	next := 0
	phase := func() {
		for p := range 2 {
			var values []string
			for range k {
				values = append(values, fmt.Sprintf(`{"type":"track","event":"E","userId":"%s","messageId":"m%d"}`, users[p][next%3], next))
				next++
			}
			produceTo(t, b.Addr(), p, values...)
		}
	}
	phase()

	var mu sync.Mutex
	stored := map[string]int{}
	record := func(events []Event) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range events {
			stored[e.MessageID]++
		}
	}
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	sinkA := SinkFunc(func(ctx context.Context, events []Event) error {
		once.Do(func() { close(entered); <-release }) // the first batch stays in flight until released
		record(events)
		return nil
	})
	sinkB := SinkFunc(func(ctx context.Context, events []Event) error { record(events); return nil })
	run := func(name string, sink Sink, cfg ConsumerConfig) (stop func()) {
		cfg.Brokers, cfg.Topic, cfg.DLQTopic, cfg.Group, cfg.RetryMax = []string{b.Addr()}, "events", "dlq", "g", 50*time.Millisecond
		c, err := NewConsumer(cfg, sink, slog.New(slog.DiscardHandler).With("consumer", name), nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("consumer %s: Run() = %v on a clean stop", name, err)
			}
		}
	}
	// A cuts batches by size only: its first batch is the first phase, both partitions, and after
	// the rebalance the partition it keeps (both phases) makes exactly one more.
	// OnRebalance says whether the consumer reads every partition: A alone does, then neither.
	var soles [2][]bool
	rebalanced := func(i int) func(bool) {
		return func(sole bool) { mu.Lock(); soles[i] = append(soles[i], sole); mu.Unlock() }
	}
	stopA := run("A", sinkA, ConsumerConfig{BatchSize: 2 * k, FlushInterval: time.Hour, OnRebalance: rebalanced(0)})
	defer stopA()
	<-entered

	stopB := run("B", sinkB, ConsumerConfig{BatchSize: 2 * k, FlushInterval: 20 * time.Millisecond, OnRebalance: rebalanced(1)})
	defer stopB()
	// A commits nothing while its first batch is stuck, so a partition committed to its end was
	// read by B, after the rebalance. Each consumer has one partition.
	moved, kept := -1, -1
	waitFor(t, func() bool {
		for p, l := range groupLag(t, b.Addr()) {
			if l == 0 {
				moved, kept = p, 1-p
			}
		}
		return moved >= 0
	})
	phase() // B commits the moved partition past what A's stuck batch holds
	waitFor(t, func() bool { return groupLag(t, b.Addr())[moved] == 0 })
	close(release)

	// A's kept partition committed to its end means A is done with its stuck batch: it comes
	// first in A's pipeline.
	waitFor(t, func() bool { return groupLag(t, b.Addr())[kept] == 0 })
	if l := groupLag(t, b.Addr())[moved]; l != 0 {
		t.Errorf("partition %d, moved from A to B: %d of %d messages uncommitted after both are done with it", moved, l, 2*k)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range next {
		if id := fmt.Sprintf("m%d", i); stored[id] == 0 {
			t.Errorf("event %s never stored", id)
		}
	}
	if a, b := soles[0], soles[1]; len(a) < 2 || !a[0] || a[len(a)-1] || len(b) == 0 || b[len(b)-1] {
		t.Errorf("OnRebalance said A read every partition %v, B %v; want A alone first, then neither", a, b)
	}
}

// produceTo writes values to one partition of the topic "events".
func produceTo(t *testing.T, broker string, partition int, values ...string) {
	t.Helper()
	w := &kafka.Writer{Transport: ingesttest.Transport(t), Addr: kafka.TCP(broker), Topic: "events", RequiredAcks: kafka.RequireAll,
		Balancer: kafka.BalancerFunc(func(kafka.Message, ...int) int { return partition })}
	defer w.Close()
	var msgs []kafka.Message
	for _, v := range values {
		msgs = append(msgs, kafka.Message{Value: []byte(v)})
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

func groupLag(t *testing.T, broker string) map[int]int64 {
	t.Helper()
	lag, err := GroupLag(context.Background(), []string{broker}, "g", "events")
	if err != nil {
		t.Fatal(err)
	}
	return lag
}

// TestStallWatch: messages wait on a stalled partition since the last look at which its committed
// offset moved or nothing waited.
func TestStallWatch(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	type look struct {
		after     time.Duration // since t0
		committed int64
		end       int64
		want      time.Duration // stalled for
	}
	tests := []struct {
		name  string
		looks []look
	}{
		{"caught up", []look{{0, 10, 10, 0}, {time.Hour, 10, 10, 0}}},
		{"moving", []look{{0, 10, 50, 0}, {time.Minute, 20, 60, 0}, {2 * time.Minute, 30, 70, 0}}},
		{"stuck from the start", []look{{0, 10, 50, 0}, {time.Minute, 10, 50, time.Minute}, {10 * time.Minute, 10, 60, 10 * time.Minute}}},
		{"stuck after moving", []look{{0, 10, 50, 0}, {time.Minute, 20, 50, 0}, {2 * time.Minute, 20, 50, time.Minute}, {7 * time.Minute, 20, 50, 6 * time.Minute}}},
		{"moves again", []look{{0, 10, 50, 0}, {5 * time.Minute, 10, 50, 5 * time.Minute}, {6 * time.Minute, 11, 50, 0}, {8 * time.Minute, 11, 50, 2 * time.Minute}}},
		{"new messages after caught up", []look{{0, 10, 10, 0}, {time.Minute, 10, 30, time.Minute}, {3 * time.Minute, 10, 40, 3 * time.Minute}}},
		{"caught up by new owner", []look{{0, 10, 50, 0}, {5 * time.Minute, 10, 50, 5 * time.Minute}, {6 * time.Minute, 50, 50, 0}}},
		{"rewound", []look{{0, 50, 50, 0}, {time.Minute, 40, 50, 0}, {4 * time.Minute, 40, 50, 3 * time.Minute}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStallWatch()
			for i, l := range tt.looks {
				got, _ := s.observe(t0.Add(l.after), 5, PartitionOffsets{Committed: l.committed, End: l.end})
				if got != l.want {
					t.Errorf("look %d (committed %d, end %d at +%s): stalled for %s, want %s", i, l.committed, l.end, l.after, got, l.want)
				}
			}
		})
	}
}

// syncBuffer is a bytes.Buffer that a logger may write to while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// maxGauge returns the largest value of the gauge name in reg, over its labels (0 when absent).
func maxGauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	v := 0.0
	for _, f := range families {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				v = max(v, m.GetGauge().GetValue())
			}
		}
	}
	return v
}

// TestCommitsPerGeneration: a batch's messages are committed per generation they were fetched
// in, each partition at the offset after its last message, and the messages of a generation that
// has ended are dropped before processing.
func TestCommitsPerGeneration(t *testing.T) {
	gen := func(ended bool) *generation {
		ctx, end := context.WithCancel(context.Background())
		if ended {
			end()
		} else {
			t.Cleanup(end)
		}
		return &generation{ended: ctx}
	}
	old, cur := gen(true), gen(false)
	msg := func(g *generation, partition int, offset int64) fetchedMessage {
		return fetchedMessage{msg: kafka.Message{Partition: partition, Offset: offset}, gen: g}
	}
	tests := []struct {
		name    string
		batch   []fetchedMessage
		commits map[*generation]map[int]int64
		live    int
	}{
		{"one generation", []fetchedMessage{msg(cur, 0, 7), msg(cur, 1, 3), msg(cur, 0, 8)},
			map[*generation]map[int]int64{cur: {0: 9, 1: 4}}, 3},
		{"across a rebalance", []fetchedMessage{msg(old, 0, 7), msg(old, 1, 3), msg(cur, 0, 2), msg(cur, 0, 3)},
			map[*generation]map[int]int64{old: {0: 8, 1: 4}, cur: {0: 4}}, 2},
		{"only an ended one", []fetchedMessage{msg(old, 2, 10)}, map[*generation]map[int]int64{old: {2: 11}}, 0},
	}
	c := &Consumer{log: slog.New(slog.DiscardHandler)}
	var err error
	if c.metrics, err = newConsumerMetrics(nil); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[*generation]map[int]int64{}
			for _, g := range offsetsByGeneration(tt.batch) {
				got[g.gen] = g.next
			}
			if !maps.EqualFunc(got, tt.commits, maps.Equal) {
				t.Errorf("offsetsByGeneration() = %v, want %v", got, tt.commits)
			}
			live := c.dropStale(tt.batch)
			if len(live) != tt.live || slices.ContainsFunc(live, func(f fetchedMessage) bool { return f.gen == old }) {
				t.Errorf("dropStale() kept %d messages (ended generation among them: %v), want the %d of the live generation",
					len(live), slices.ContainsFunc(live, func(f fetchedMessage) bool { return f.gen == old }), tt.live)
			}
		})
	}
}

// TestGenerationEnded: the commit errors that mean the group has moved on are told apart from
// those worth retrying in the same generation.
func TestGenerationEnded(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{kafka.IllegalGeneration, true},
		{kafka.RebalanceInProgress, true},
		{fmt.Errorf("commit: %w", kafka.UnknownMemberId), true},
		{kafka.FencedInstanceID, true},
		{kafka.RequestTimedOut, false},
		{kafka.NotCoordinatorForGroup, false},
		{errors.New("connection reset"), false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := generationEnded(tt.err); got != tt.want {
			t.Errorf("generationEnded(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// TestConsumerSkipsAByteOrderMark: a message starting with a UTF-8 byte order mark (written by
// .NET's Encoding.UTF8 or PowerShell) is stored without it, as the collector skips one starting a
// body and replay one starting a file; it used to be dead-lettered as invalid_json. Straight to
// Kafka and stamped by a receiver (the source header) alike, through a real broker.
func TestConsumerSkipsAByteOrderMark(t *testing.T) {
	b := startBroker(t)
	bodies := map[string]string{ // message id → the message, without its mark
		"bom-client":  `{"type":"track","event":"E","userId":"u1","messageId":"bom-client","timestamp":"2026-01-01T00:00:00Z"}`,
		"bom-stamped": `{"type":"track","event":"E","userId":"u2","messageId":"bom-stamped","timestamp":"2026-01-01T00:00:00Z","receivedAt":"2026-01-01T00:00:01Z"}`,
		"plain":       `{"type":"track","event":"E","userId":"u3","messageId":"plain"}`,
	}
	var msgs []kafka.Message
	for id, body := range bodies {
		e, err := DecodeClient([]byte(body), "test", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		m := kafka.Message{Key: []byte(e.CustomerKey()), Value: []byte(body)}
		if id != "plain" {
			m.Value = append([]byte(byteOrderMark), body...)
		}
		if id == "bom-stamped" {
			m.Headers = []kafka.Header{{Key: HeaderSource, Value: []byte("replay-segment")}}
		}
		msgs = append(msgs, m)
	}
	w := &kafka.Writer{Transport: ingesttest.Transport(t), Addr: kafka.TCP(b.Addr()), Topic: "events", RequiredAcks: kafka.RequireAll, Balancer: partitionBalancer{}}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()

	sink, recorded := recordEvents()
	reg := prometheus.NewRegistry()
	c, err := NewConsumer(ConsumerConfig{
		Brokers: []string{b.Addr()}, Topic: "events", DLQTopic: "dlq", Group: "g",
		FlushInterval: 20 * time.Millisecond, RetryMax: 50 * time.Millisecond,
	}, sink, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	runUntilCaughtUp(t, c, b.Addr())
	stored := recorded()
	for id, body := range bodies {
		e, ok := stored[id]
		switch {
		case !ok:
			t.Errorf("%s is not stored", id)
		case string(e.Raw) != body:
			t.Errorf("%s stored as %q, want %q", id, e.Raw, body)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			if f.GetName() == "waymark_dlq_messages_total" && m.GetCounter().GetValue() != 0 {
				t.Errorf("waymark_dlq_messages_total%v = %g, want 0", m.GetLabel(), m.GetCounter().GetValue())
			}
		}
	}
}

// TestDrainBoundsTheLastBatch: when Drain's StopTimeout runs out (the sink keeps failing), the
// batch Run writes on its stop gets what is left of that timeout, not a StopTimeout of its own:
// serve, with ClickHouse down, took twice --stop-timeout to exit (tester 19's T3).
func TestDrainBoundsTheLastBatch(t *testing.T) {
	b := startBroker(t)
	produce(t, b.Addr(), `{"type":"track","event":"E","userId":"u","messageId":"m"}`)
	var mu sync.Mutex
	var calls int
	var latest time.Time // the latest deadline the sink was called with
	sink := SinkFunc(func(ctx context.Context, events []Event) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if d, ok := ctx.Deadline(); ok && d.After(latest) {
			latest = d
		}
		return errors.New("store unavailable")
	})
	const stop = 2 * time.Second
	c, err := NewConsumer(ConsumerConfig{
		Brokers: []string{b.Addr()}, Topic: "events", DLQTopic: "dlq", Group: "g",
		FlushInterval: 20 * time.Millisecond, RetryMax: 50 * time.Millisecond, StopTimeout: stop,
	}, sink, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return calls > 0 })
	if left, err := c.Drain(context.Background()); err != nil || left != 1 {
		t.Fatalf("Drain = %d, %v; want 1 message left", left, err)
	}
	drained := time.Now() // after Drain's StopTimeout ran out
	cancel()
	if err := <-done; err == nil {
		t.Error("Run returned nil; want the last batch's error")
	}
	mu.Lock()
	defer mu.Unlock()
	if latest.After(drained) {
		t.Errorf("the last batch had until %s, after Drain's StopTimeout ran out (%s)", latest.Format(time.StampMilli), drained.Format(time.StampMilli))
	}
}
