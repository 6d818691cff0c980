package store_test

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/ingest/ingesttest"
	"github.com/waymark-dev/waymark/sessionize"
	"github.com/waymark-dev/waymark/store"
)

// panickingStore is the real store in a test-only configuration: writing a batch that holds the
// event with message id poisonWrite panics, and so does loading the history of the customer
// poisonCustomer. Everything else goes to ClickHouse.
type panickingStore struct {
	*store.Store
	poisonWrite, poisonCustomer string
}

func (p panickingStore) Write(ctx context.Context, b sessionize.Batch) error {
	for _, e := range b.Events {
		if e.MessageID == p.poisonWrite {
			panic("test: writing " + e.MessageID)
		}
	}
	return p.Store.Write(ctx, b)
}

func (p panickingStore) History(ctx context.Context, keys []string) ([]ingest.Event, []sessionize.Session, error) {
	if slices.Contains(keys, p.poisonCustomer) {
		panic("test: loading " + p.poisonCustomer)
	}
	return p.Store.History(ctx, keys)
}

// TestPanicsAreRecoveredAndTheirEventsDeadLettered runs the consumer, the sessionizer's runner and
// the store (ClickHouse) on a stream with two events that make a part panic: one when its batch
// is written, one when its customer's history is loaded (so once while a batch is stored, once
// while one is prepared). Each goes to the dead-letter topic with the reason "panic", counted; the
// rest of the stream is stored, offsets move on to the end, and the stored sessions are exactly
// those of the good events alone.
func TestPanicsAreRecoveredAndTheirEventsDeadLettered(t *testing.T) {
	t.Parallel()
	broker, err := ingest.StartDevBroker("127.0.0.1:0", 3, "events", "dlq")
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	st := openStore(t)
	sink := panickingStore{Store: st, poisonWrite: "boom-write", poisonCustomer: "boom-customer"}

	// 20 customers browse anonymously, log in (identify), and go on; sessions break on 40-minute gaps.
	base := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	var good []ingest.Event
	var msgs []kafka.Message
	add := func(raw string) {
		e, err := ingest.Decode([]byte(raw), "kafka", base)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, kafka.Message{Key: []byte(e.CustomerKey()), Value: []byte(raw)})
		if !strings.HasPrefix(e.MessageID, "boom") {
			good = append(good, e)
		}
	}
	for i := range 30 {
		for c := range 20 {
			ts := base.Add(time.Duration(i*(c%3+1)*7) * time.Minute).Format(time.RFC3339)
			switch {
			case i < 5:
				add(fmt.Sprintf(`{"type":"page","anonymousId":"a%d","messageId":"p-%d-%d","timestamp":%q}`, c, c, i, ts))
			case i == 5:
				add(fmt.Sprintf(`{"type":"identify","userId":"c%d","anonymousId":"a%d","messageId":"i-%d","timestamp":%q}`, c, c, c, ts))
			default:
				add(fmt.Sprintf(`{"type":"track","event":"Product Viewed","userId":"c%d","messageId":"v-%d-%d","timestamp":%q}`, c, c, i, ts))
			}
			if i == 12 && c == 3 {
				add(fmt.Sprintf(`{"type":"track","event":"Order Completed","userId":"c3","messageId":"boom-write","timestamp":%q}`, ts))
			}
			if i == 20 && c == 7 {
				add(fmt.Sprintf(`{"type":"track","event":"Product Viewed","userId":"boom-customer","messageId":"boom-history","timestamp":%q}`, ts))
			}
		}
	}
	w := &kafka.Writer{Transport: ingesttest.Transport(t), Addr: kafka.TCP(broker.Addr()), Topic: "events", RequiredAcks: kafka.RequireAll, Balancer: &kafka.Murmur2Balancer{}}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()

	jm, err := sessionize.LoadMap("")
	if err != nil {
		t.Fatal(err)
	}
	sz, err := sessionize.New(sessionize.Config{}, jm)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	runner, err := sessionize.NewRunner(sz, sink, sink, reg)
	if err != nil {
		t.Fatal(err)
	}
	// Batches of 50: several in flight, so the panics meet the pipelined path.
	c, err := ingest.NewConsumer(ingest.ConsumerConfig{
		Brokers: []string{broker.Addr()}, Topic: "events", DLQTopic: "dlq", Group: "g",
		BatchSize: 50, FlushInterval: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond,
	}, runner, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer wcancel()
	if err := ingest.WaitCaughtUp(wctx, []string{broker.Addr()}, "g", "events"); err != nil {
		t.Fatalf("offsets did not reach the end: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run() = %v", err)
	}

	// The dead-letter topic holds the two events, with the reason.
	dead := readTopic(t, broker.Addr(), "dlq")
	var deadIDs []string
	for _, m := range dead {
		if r := header(m, ingest.HeaderDLQReason); r != ingest.ReasonPanic {
			t.Errorf("dead letter %s with reason %q, want %q", m.Value, r, ingest.ReasonPanic)
		}
		if e := header(m, ingest.HeaderDLQError); !strings.Contains(e, "test: ") {
			t.Errorf("dead letter error %q does not say what panicked", e)
		}
		e, _ := ingest.Decode(m.Value, "kafka", base)
		deadIDs = append(deadIDs, e.MessageID)
	}
	slices.Sort(deadIDs)
	if fmt.Sprint(deadIDs) != "[boom-history boom-write]" {
		t.Errorf("dead letters %v, want the two poison events", deadIDs)
	}
	metrics := gatherCounters(t, reg)
	if n := metrics[`waymark_dlq_messages_total{path="consumer",reason="panic"}`]; n != 2 {
		t.Errorf("dead letters counted with reason panic: %v, want 2", n)
	}
	if n := metrics["waymark_consumer_panics_total"]; n < 2 {
		t.Errorf("panics counted: %v, want at least 2", n)
	}

	// Everything else is stored, and the sessions are those of the good events alone.
	keys := map[string]bool{}
	for _, e := range good {
		keys[e.CustomerKey()] = true
	}
	storedEvents, storedSessions, err := st.History(context.Background(), slices.Sorted(mapKeys(keys)))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, e := range storedEvents {
		ids[e.MessageID] = true
	}
	if len(ids) != len(good) {
		t.Errorf("stored %d distinct events, want the %d good ones", len(ids), len(good))
	}
	ref, err := sessionize.New(sessionize.Config{}, jm)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := ref.Push(base, good)
	if got, want := sessionLines(storedSessions), sessionLines(out.Sessions); got != want {
		t.Errorf("stored sessions differ from those of the good events alone:\n%s\nwant\n%s", got, want)
	}
}

func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// sessionLines prints the live sessions, without versions, sorted.
func sessionLines(sessions []sessionize.Session) string {
	latest := map[string]sessionize.Session{}
	for _, s := range sessions {
		if old, ok := latest[s.ID]; !ok || s.Version >= old.Version {
			latest[s.ID] = s
		}
	}
	var lines []string
	for _, s := range latest {
		if s.Deleted {
			continue
		}
		lines = append(lines, fmt.Sprintf("%s %s %s-%s %d %s>%s %v %s", s.ID, s.CustomerKey, s.Start.Format(time.TimeOnly),
			s.End.Format(time.TimeOnly), s.Events, s.EntryEvent, s.ExitEvent, s.Stages, s.EndReason))
	}
	slices.SortFunc(lines, cmp.Compare)
	return strings.Join(lines, "\n")
}

// readTopic reads every message of a topic, all partitions.
func readTopic(t *testing.T, broker, topic string) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a hang guard
	defer cancel()
	msgs, err := ingesttest.ReadTopic(ctx, broker, topic)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// gatherCounters returns the counters of a registry as `name{label="value"}` → value.
func gatherCounters(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			name := f.GetName()
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			out[name] = m.GetCounter().GetValue()
		}
	}
	return out
}

// TestRunnerPreparesAgainABatchPreparedBeforeAPanic takes the runner through the consumer's
// order of steps when a store panics while the next batch is already prepared: batch A (with the
// poison event) and batch B are prepared, A's store panics, A's good events are prepared and
// stored again, then B's store runs. B was prepared on the state the panic made the runner forget
// (it held the poison event), so B is prepared again on the restored state before it is stored:
// the stored sessions are those of the good events alone.
func TestRunnerPreparesAgainABatchPreparedBeforeAPanic(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	sink := panickingStore{Store: st, poisonWrite: "boom-write"}
	jm, err := sessionize.LoadMap("")
	if err != nil {
		t.Fatal(err)
	}
	sz, err := sessionize.New(sessionize.Config{}, jm)
	if err != nil {
		t.Fatal(err)
	}
	runner, err := sessionize.NewRunner(sz, sink, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	track := func(id, user string, minute int) ingest.Event {
		raw := fmt.Sprintf(`{"type":"track","event":"Product Viewed","userId":%q,"messageId":%q,"timestamp":%q}`,
			user, id, base.Add(time.Duration(minute)*time.Minute).Format(time.RFC3339))
		e, err := ingest.Decode([]byte(raw), "kafka", base)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	goodA := []ingest.Event{track("a1", "u", 0), track("a2", "u", 10), track("a3", "v", 0)}
	poison := track("boom-write", "u", 100) // would open a second session of u
	b := []ingest.Event{track("b1", "u", 20), track("b2", "v", 50), track("b3", "w", 0)}

	ctx := context.Background()
	storeA, err := runner.Prepare(ctx, append(slices.Clone(goodA), poison))
	if err != nil {
		t.Fatal(err)
	}
	storeB, err := runner.Prepare(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("storing the batch with the poison event did not panic")
			}
		}()
		storeA(ctx)
	}()
	againA, err := runner.Prepare(ctx, goodA)
	if err != nil {
		t.Fatal(err)
	}
	if err := againA(ctx); err != nil {
		t.Fatal(err)
	}
	if err := storeB(ctx); err != nil {
		t.Fatal(err)
	}

	_, stored, err := st.History(ctx, []string{"u", "v", "w"})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := sessionize.New(sessionize.Config{}, jm)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := ref.Push(base, append(slices.Clone(goodA), b...))
	if got, want := sessionLines(stored), sessionLines(out.Sessions); got != want {
		t.Errorf("stored sessions:\n%s\nwant those of the good events alone:\n%s", got, want)
	}
}

// TestHistoryLeavesOutEventsThatNoLongerDecode: an event stored by a version with a more lenient
// decoder must not make restoring its customer fail (which stalled every batch with one of the
// customer's events, forever): it stays stored and is left out of the history.
func TestHistoryLeavesOutEventsThatNoLongerDecode(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ctx := context.Background()
	good, err := ingest.Decode([]byte(`{"type":"track","event":"A","userId":"u","messageId":"ok","timestamp":"2026-03-01T09:00:00Z"}`), "s", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	stale := good
	stale.MessageID, stale.Raw = "stale", []byte(`{"type":"track","event":"A","userId":"u","messageId":"stale","timestamp":"0001-01-01T00:00:00Z"}`)
	if err := st.Write(ctx, sessionize.Batch{Events: []ingest.Event{good, stale}}); err != nil {
		t.Fatal(err)
	}
	events, _, err := st.History(ctx, []string{"u"})
	if err != nil {
		t.Fatalf("History() = %v", err)
	}
	if len(events) != 1 || events[0].MessageID != "ok" {
		t.Errorf("history %v, want the event that decodes", events)
	}
}
