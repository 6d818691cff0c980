package sessionize

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/ingest"
)

// storedRows plays the store for a sessionizer: the events table (rows in insertion order, as a
// ReplacingMergeTree without version keeps the last inserted of a sort key on merge, within a
// month's partition), the superseded copies, and every session row emitted.
type storedRows struct {
	events     []ingest.Event
	superseded []Copy
	sessions   []Session
	links      [][2]string              // the identity links stored (Output.Links)
	signIns    map[string]DeviceSignIns // the latest stored of each device
}

// isSuperseded reports whether the row e is a superseded copy, which queries leave out: one of
// its customer key, messageId and time, whatever its source.
func (st *storedRows) isSuperseded(e ingest.Event) bool {
	return slices.Contains(st.superseded, Copy{e.CustomerKey(), e.MessageID, e.Timestamp.UTC()})
}

// push pushes batch as a Runner does (each event's seq is its place in the partition, rewritten
// to Output.Seqs; LaterCopies are not stored) and returns its stats.
func (st *storedRows) push(s *Sessionizer, now time.Time, batch []ingest.Event) Stats {
	out, stats := s.Push(now, batch)
	for i, e := range batch {
		if !slices.Contains(out.LaterCopies, i) {
			e.Seq = out.Seqs[i]
			st.events = append(st.events, e)
		}
	}
	st.sessions = append(st.sessions, out.Sessions...)
	st.superseded = append(st.superseded, out.Superseded...)
	st.superseded = append(st.superseded, nameCopies(out.unnamed, st.events)...) // as a Runner does
	st.links = append(st.links, out.Links...)
	for _, d := range out.SignIns {
		if st.signIns == nil {
			st.signIns = map[string]DeviceSignIns{}
		}
		st.signIns[d.Device] = d
	}
	return stats
}

// restart is a new sessionizer that restores every customer from the rows (see history).
func (st *storedRows) restart(t *testing.T) *Sessionizer {
	t.Helper()
	keys, history, sessions := st.history(nil)
	s := newTestSessionizer(t)
	s.RestoreHistory(keys, history, sessions)
	return s
}

// restartAsARunner is a new sessionizer that knows what a Runner reads when it starts: the
// identity links and the shared devices' sign-ins (customers are restored per push, restoreFor).
func (st *storedRows) restartAsARunner(t *testing.T) *Sessionizer {
	t.Helper()
	s := newTestSessionizer(t)
	s.RestoreLinks(st.links)
	s.RestoreSharedDevices(slices.Collect(maps.Values(st.signIns)))
	return s
}

// keysHolding is the customer keys of the stored rows of messageId id that queries read (not
// superseded), sorted.
func (st *storedRows) keysHolding(id string) []string {
	var keys []string
	for _, e := range st.events {
		if e.MessageID == id && !st.isSuperseded(e) {
			keys = append(keys, e.CustomerKey())
		}
	}
	slices.Sort(keys)
	return keys
}

// restoreFor restores, before batch is pushed, what a Runner restores: the keys s.toRestore
// names, from one load of their history.
func (st *storedRows) restoreFor(s *Sessionizer, batch []ingest.Event) {
	keys := s.toRestore(batch)
	_, history, sessions := st.history(keys)
	s.RestoreHistory(keys, history, sessions)
	if len(keys) == 0 {
		return
	}
	// The second read (see Runner.restore): the person a shared device's sign-ins give its event.
	more := slices.DeleteFunc(s.toRestore(batch), func(k string) bool { return slices.Contains(keys, k) })
	if len(more) == 0 {
		return
	}
	_, history, sessions = st.history(more)
	s.RestoreHistory(more, history, sessions)
}

// history is what store.History reads of the rows of customers keys (nil: all of them): each
// message once per time it is stored at, with its smallest seq, but the superseded copies, and
// the live sessions. It returns the keys with stored events too.
func (st *storedRows) history(of []string) ([]string, []ingest.Event, []Session) {
	type at struct {
		key, id string
		us      int64
	}
	byCopy := map[at]ingest.Event{}
	for _, e := range st.events {
		if st.isSuperseded(e) || of != nil && !slices.Contains(of, e.CustomerKey()) {
			continue
		}
		k := at{e.CustomerKey(), e.MessageID, e.Timestamp.UnixMicro()}
		if prev, ok := byCopy[k]; !ok || e.Seq < prev.Seq {
			byCopy[k] = e
		}
	}
	var history []ingest.Event
	var keys []string
	for _, k := range slices.SortedFunc(maps.Keys(byCopy), func(a, b at) int { return strings.Compare(fmt.Sprint(b), fmt.Sprint(a)) }) {
		history = append(history, byCopy[k]) // newest first: Restore must not keep the first it reads
		if !slices.Contains(keys, k.key) {
			keys = append(keys, k.key)
		}
	}
	var sessions []Session
	for _, ss := range live(st.sessions) {
		if of == nil || slices.Contains(of, ss.CustomerKey) {
			sessions = append(sessions, ss)
		}
	}
	return keys, history, sessions
}

// merged is what queries read of the events table after ClickHouse merges its parts: per
// (customer key, source, messageId) and month (the partition), the row inserted last, but the
// superseded copies; as "key id time seq" lines, sorted. A message's copies by two paths (two
// sources) are two rows for good: at most one of them is not superseded.
func (st *storedRows) merged() []string {
	last := map[string]ingest.Event{}
	for _, e := range st.events {
		last[e.CustomerKey()+" "+e.Source+" "+e.MessageID+" "+e.Timestamp.Format("2006-01")] = e
	}
	var out []string
	for _, e := range last {
		if st.isSuperseded(e) {
			continue
		}
		out = append(out, fmt.Sprintf("%s %s %s seq=%d", e.CustomerKey(), e.MessageID, e.Timestamp.Format(time.RFC3339), e.Seq))
	}
	slices.Sort(out)
	return out
}

// earliest is the events table had only each message's earliest copy (by time, then its first
// delivery), by whatever path, been sent: what merged must be.
func earliest(events []ingest.Event) []string {
	first := map[string]ingest.Event{}
	for _, e := range events {
		k := e.CustomerKey() + " " + e.MessageID
		if f, ok := first[k]; !ok || e.Timestamp.Before(f.Timestamp) || e.Timestamp.Equal(f.Timestamp) && e.Seq < f.Seq {
			first[k] = e
		}
	}
	return (&storedRows{events: slices.Collect(maps.Values(first))}).merged()
}

// by is e as it came by another path: source is the one the consumer gives it (the collector's
// write key's source name, "kafka" for a message produced straight to Kafka, "replay-segment"
// for `waymark replay --format segment`).
func by(source string, e ingest.Event) ingest.Event {
	e.Source = source
	return e
}

// permutations returns every order of n items, as index lists.
func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{nil}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			out = append(out, slices.Insert(slices.Clone(p), i, n-1))
		}
	}
	return out
}

// TestEarliestCopyIsTheEvent: copies of a message on one customer key (same messageId, stamped
// again: seconds later, in another visit, in the next month; three copies; a copy delivered
// twice; each of those by other paths too, as a message the collector took and then produced to
// Kafka or replayed is, and the same bytes at the same time by another path) make the same sessions, the same rows for queries once ClickHouse merges
// them (the earliest copy, with its first delivery's seq; superseded copies left out, which stay
// when their month is not the earliest's) and the same live order count in every
// arrival order: all in one push, one push each, one push each with the customer kept cold
// between them, and with a restart from the stored rows after each push.
func TestEarliestCopyIsTheEvent(t *testing.T) {
	oneGoroutine(t)
	copyAt := func(e ingest.Event, ts time.Time) ingest.Event {
		e.Timestamp = ts
		return e
	}
	order := at("a", "Order Completed", 5)
	monthEnd := at("b", "Order Completed", 0)
	monthEnd.Timestamp = time.Date(2026, 2, 28, 23, 59, 58, 0, time.UTC)
	inVisit := at("c", "Order Completed", 20)
	tests := []struct {
		name   string
		events []ingest.Event // in time order, each message's earliest copy first
		orders int            // distinct Order Completed messages
	}{
		{"re-stamped seconds later, in the visit", []ingest.Event{
			at("a", "Product Viewed", 0), order, copyAt(order, order.Timestamp.Add(7*time.Second)),
		}, 1},
		{"re-stamped into the next month", []ingest.Event{
			monthEnd, copyAt(monthEnd, monthEnd.Timestamp.Add(5*time.Second)),
		}, 1},
		{"an earlier copy inside the visit of the later", []ingest.Event{
			at("c", "Product Viewed", 0), copyAt(inVisit, base.Add(5*time.Minute)), at("c", "Product Added", 10), inVisit,
		}, 1},
		{"three copies in three visits", []ingest.Event{
			at("a", "Product Viewed", 0), order, at("a", "Product Viewed", 45),
			copyAt(order, base.Add(50*time.Minute)), copyAt(order, base.Add(200*time.Minute)),
		}, 1},
		{"a copy delivered twice", []ingest.Event{
			order, order, copyAt(order, base.Add(90*time.Minute)),
		}, 1},
		{"re-stamped seconds later, by Kafka and a replay", []ingest.Event{
			at("a", "Product Viewed", 0), order, by("kafka", copyAt(order, order.Timestamp.Add(7*time.Second))),
			by("replay-segment", copyAt(order, order.Timestamp.Add(12*time.Second))),
		}, 1},
		{"re-stamped into the next month, by Kafka", []ingest.Event{
			monthEnd, by("kafka", copyAt(monthEnd, monthEnd.Timestamp.Add(5*time.Second))),
		}, 1},
		{"an earlier copy by a replay inside the visit of the later", []ingest.Event{
			at("c", "Product Viewed", 0), by("replay-segment", copyAt(inVisit, base.Add(5*time.Minute))), at("c", "Product Added", 10), inVisit,
		}, 1},
		{"the same bytes at the same time by another path", []ingest.Event{
			at("a", "Product Viewed", 0), order, by("kafka", order),
		}, 1},
		{"three copies by three paths in three visits", []ingest.Event{
			at("a", "Product Viewed", 0), order, at("a", "Product Viewed", 45),
			by("kafka", copyAt(order, base.Add(50*time.Minute))), by("replay-segment", copyAt(order, base.Add(200*time.Minute))),
		}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The reference: in time order, in one push.
			ref := &storedRows{}
			reference := slices.Clone(tc.events)
			for i := range reference {
				reference[i].Seq = int64(i)
			}
			ref.push(newTestSessionizer(t), base, reference)
			want := describe(live(ref.sessions))
			wantRows := earliest(reference)
			if got := ref.merged(); !slices.Equal(got, wantRows) {
				t.Fatalf("in time order: merged rows %q, want %q", got, wantRows)
			}
			for _, perm := range permutations(len(tc.events)) {
				arrivals := make([]ingest.Event, len(perm))
				for i, j := range perm {
					arrivals[i] = tc.events[j]
					arrivals[i].Seq = int64(i) // its place in the partition
				}
				wantRows := earliest(arrivals)
				for _, mode := range []string{"one push", "one push each", "cold between pushes", "restart after each push"} {
					st := &storedRows{}
					s := newTestSessionizer(t)
					if mode == "cold between pushes" {
						s.hotCap = 0
					}
					now := base
					orders := 0
					batches := [][]ingest.Event{arrivals}
					if mode != "one push" {
						batches = nil
						for i := range arrivals {
							batches = append(batches, arrivals[i:i+1])
						}
					}
					for _, b := range batches {
						now = now.Add(time.Second) // versions rise, across restarts too
						stats := st.push(s, now, b)
						orders += stats.Orders[ChannelDirect]
						if mode == "restart after each push" {
							s = st.restart(t)
						}
					}
					name := fmt.Sprintf("%s, arrival order %v", mode, perm)
					if got := describe(live(st.sessions)); !slices.Equal(got, want) {
						t.Errorf("%s: sessions\n%s\nwant (in time order)\n%s", name, strings.Join(got, "\n"), strings.Join(want, "\n"))
					}
					if got := st.merged(); !slices.Equal(got, wantRows) {
						t.Errorf("%s: merged rows %q, want %q", name, got, wantRows)
					}
					if orders != tc.orders {
						t.Errorf("%s: live orders %d, want %d", name, orders, tc.orders)
					}
				}
			}
		})
	}
}

// sinkFunc adapts a function to Sink.
type sinkFunc func(ctx context.Context, b Batch) error

func (f sinkFunc) Write(ctx context.Context, b Batch) error { return f(ctx, b) }

// TestRunnerKeepsSupersededCopiesOfAFailedWrite: the write of the batch whose earlier copy
// replaced a stored one fails, and the batch comes again (the consumer retries it). The
// sessionizer has absorbed the earlier copy, so it replaces nothing the second time: the
// superseded copy must still reach the store, with the retried batch, and the earlier copy be
// stored.
func TestRunnerKeepsSupersededCopiesOfAFailedWrite(t *testing.T) {
	order := at("a", "Order Completed", 5)
	restamped := order
	restamped.Timestamp = time.Date(2026, 3, 1, 0, 0, 3, 0, time.UTC) // the next month
	var stored []Batch
	fail := false
	r, err := NewRunner(newTestSessionizer(t), sinkFunc(func(_ context.Context, b Batch) error {
		if fail {
			return errors.New("ClickHouse is down")
		}
		stored = append(stored, b)
		return nil
	}), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := r.Write(ctx, []ingest.Event{restamped}); err != nil {
		t.Fatal(err)
	}
	fail = true
	if err := r.Write(ctx, []ingest.Event{order}); err == nil {
		t.Fatal("the failing write returned no error")
	}
	fail = false
	if err := r.Write(ctx, []ingest.Event{order}); err != nil {
		t.Fatal(err)
	}
	want := []Copy{{"a", order.MessageID, restamped.Timestamp}}
	if got := stored[len(stored)-1]; !slices.Equal(got.Superseded, want) || len(got.Events) != 1 || !got.Events[0].Timestamp.Equal(order.Timestamp) {
		t.Errorf("the retried batch stores events %v and superseded %v; want the order at %s and superseded %v",
			got.Events, got.Superseded, order.Timestamp, want)
	}
}

// TestSameTimeCopyKeepsTheFirstToArrive: two copies of a message (same messageId) at the same
// time but with other payloads (another amount, another event name), or with the same bytes by
// another path (produced straight to Kafka besides through the collector), are two Kafka
// messages; the first to arrive is the event, as Segment drops a repeated messageId at ingest.
// In both arrival orders, in one push, one push each, kept cold between them and restarted from
// the stored rows between them (which hold the copy's bytes, Raw), every stored row of the message is the first copy's (so
// whichever ClickHouse keeps when it merges them, and whichever a read meets first, is the
// first), the sessions and live orders and revenue are those of the first copy alone, and the
// second copy is counted as a duplicate. A delivery of the first copy again (the same Kafka
// message, same bytes: a redelivery, a retried write) is stored again, as before.
func TestSameTimeCopyKeepsTheFirstToArrive(t *testing.T) {
	withRevenue := func(e ingest.Event, revenue string) ingest.Event {
		e.PropertyKeys, e.PropertyValues = []string{"revenue"}, []string{revenue}
		e.Raw = fmt.Appendf(nil, `{"event":%q,"properties":{"revenue":%s}}`, e.Event, revenue)
		return e
	}
	renamed := func(e ingest.Event, name string) ingest.Event {
		e.Event = name
		e.Raw = fmt.Appendf(nil, `{"event":%q}`, name)
		return e
	}
	order := renamed(at("a", "Order Completed", 5), "Order Completed")
	view := at("a", "Product Viewed", 0)
	tests := []struct {
		name          string
		copies        [2]ingest.Event // two copies of one message at one time
		before, after []ingest.Event  // other events of the customer, sent before and after them
	}{
		{"another amount", [2]ingest.Event{withRevenue(order, "10"), withRevenue(order, "20")}, []ingest.Event{view}, nil},
		{"another event name", [2]ingest.Event{order, renamed(order, "Product Added")}, []ingest.Event{view}, []ingest.Event{at("a", "Product Viewed", 10)}},
		{"first in a visit of its own", [2]ingest.Event{order, renamed(order, "Product Viewed")}, nil, nil},
		{"another path, the same bytes", [2]ingest.Event{order, by("kafka", order)}, []ingest.Event{view}, nil},
		{"another path, another amount", [2]ingest.Event{withRevenue(order, "10"), by("replay-segment", withRevenue(order, "20"))}, []ingest.Event{view}, nil},
	}
	payload := func(e ingest.Event) string { return fmt.Sprintf("%s %s %v", e.Source, e.Event, e.PropertyValues) }
	for _, tc := range tests {
		for _, firstIdx := range []int{0, 1} {
			first, second := tc.copies[firstIdx], tc.copies[1-firstIdx]
			var sent []ingest.Event // in arrival order, each its place in the partition as seq
			sent = append(sent, tc.before...)
			sent = append(sent, first, second)
			sent = append(sent, tc.after...)
			sent = append(sent, first) // the first copy's Kafka message delivered again
			for i := range sent {
				sent[i].Seq = int64(i)
			}
			sent[len(sent)-1].Seq = sent[len(tc.before)].Seq
			first = sent[len(tc.before)]
			// The reference: the first copy alone.
			ref := &storedRows{}
			alone := slices.DeleteFunc(slices.Clone(sent), func(e ingest.Event) bool { return e.Seq == sent[len(tc.before)+1].Seq })
			refStats := ref.push(newTestSessionizer(t), base, alone[:len(alone)-1])
			want := describe(live(ref.sessions))
			for _, mode := range []string{"one push", "one push each", "cold between pushes", "restart after each push"} {
				name := fmt.Sprintf("%s, %s first, %s", tc.name, payload(first), mode)
				t.Run(name, func(t *testing.T) {
					st := &storedRows{}
					s := newTestSessionizer(t)
					if mode == "cold between pushes" {
						s.hotCap = 0
					}
					batches := pushesOf(sent, mode)
					now := base
					var orders, duplicates int
					var revenue float64
					for _, b := range batches {
						now = now.Add(time.Second)
						stats := st.push(s, now, b)
						orders, revenue, duplicates = orders+stats.Orders[ChannelDirect], revenue+stats.Revenue[ChannelCurrency{ChannelDirect, "USD"}], duplicates+stats.Duplicates
						if mode == "restart after each push" {
							s = st.restart(t)
						}
					}
					if got := describe(live(st.sessions)); !slices.Equal(got, want) {
						t.Errorf("sessions\n%s\nwant (the first copy alone)\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
					}
					stored := 0
					for _, e := range st.events {
						if e.MessageID != order.MessageID {
							continue
						}
						if stored++; payload(e) != payload(first) || e.Seq != first.Seq {
							t.Errorf("stored a copy %s seq %d, want only the first to arrive: %s seq %d", payload(e), e.Seq, payload(first), first.Seq)
						}
					}
					if stored != 2 {
						t.Errorf("the message is stored %d times, want 2 (the first copy and its redelivery)", stored)
					}
					if orders != refStats.Orders[ChannelDirect] || revenue != refStats.Revenue[ChannelCurrency{ChannelDirect, "USD"}] {
						t.Errorf("live orders %d, revenue %v; want the first copy's: %d, %v", orders, revenue, refStats.Orders[ChannelDirect], refStats.Revenue[ChannelCurrency{ChannelDirect, "USD"}])
					}
					if duplicates != 2 {
						t.Errorf("%d duplicates counted, want 2 (the second copy and the redelivery)", duplicates)
					}
				})
			}
		}
	}
}

// TestRunnerStoresARetriedWriteButNotASameTimeCopy: the write of a batch fails and the consumer
// writes the same messages again (the same bytes): the sessionizer has absorbed them, and they
// are stored all the same; a copy at the same time with other bytes (another Kafka message), in
// the retried batch or after it, is not.
func TestRunnerStoresARetriedWriteButNotASameTimeCopy(t *testing.T) {
	order := at("a", "Order Completed", 5)
	order.Seq, order.Raw = 7, []byte(`{"event":"Order Completed"}`)
	other := order
	other.Event, other.Seq, other.Raw = "Product Viewed", 8, []byte(`{"event":"Product Viewed"}`)
	var stored []Batch
	fail := true
	r, err := NewRunner(newTestSessionizer(t), sinkFunc(func(_ context.Context, b Batch) error {
		if fail {
			return errors.New("ClickHouse is down")
		}
		stored = append(stored, b)
		return nil
	}), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := r.Write(ctx, []ingest.Event{order, other}); err == nil {
		t.Fatal("the failing write returned no error")
	}
	fail = false
	for _, b := range [][]ingest.Event{{order, other}, {other}} {
		if err := r.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, b := range stored {
		for _, e := range b.Events {
			got = append(got, fmt.Sprintf("%s seq %d", e.Event, e.Seq))
		}
	}
	if want := []string{"Order Completed seq 7"}; !slices.Equal(got, want) {
		t.Errorf("stored %q, want %q", got, want)
	}
}

// TestCopiesOnOtherKeysCountOnceLive is field case 01's kind in the live journey metrics: one
// order sent from the browser (anonymousId and userId), retried by the server under the userId
// alone, and copied from the person's laptop, in every arrival order, one push each. The live
// orders, revenue and stage entries count it once, as the funnel does, and as they count the
// order alone.
func TestCopiesOnOtherKeysCountOnceLive(t *testing.T) {
	order := func(anon string, seconds int) ingest.Event {
		e := call("track", "Order Completed", anon, "u", float64(seconds)/60)
		e.MessageID = "o"
		e.PropertyKeys, e.PropertyValues = []string{"revenue"}, []string{"50"}
		return e
	}
	events := []ingest.Event{order("web", 0), order("", 2), order("lap", 5)}
	entries := func(st Stats) int {
		n := 0
		for _, v := range st.StageEntries {
			n += v
		}
		return n
	}
	_, alone := newTestSessionizer(t).Push(base, events[:1])
	if alone.Orders[ChannelDirect] != 1 || entries(alone) == 0 {
		t.Fatalf("one order alone: %+v", alone)
	}
	for _, perm := range permutations(len(events)) {
		s := newTestSessionizer(t)
		orders, revenue, stages := 0, 0.0, 0
		for _, i := range perm {
			_, st := s.Push(base, events[i:i+1])
			orders, revenue, stages = orders+st.Orders[ChannelDirect], revenue+st.Revenue[ChannelCurrency{ChannelDirect, "USD"}], stages+entries(st)
		}
		if orders != 1 || revenue != 50 || stages != entries(alone) {
			t.Errorf("arrival order %v: live orders %d, revenue %v, stage entries %d; want 1, 50, %d", perm, orders, revenue, stages, entries(alone))
		}
	}
}

// TestCopiesOnOtherKeysKeepTheFirst is field case 01's kind for the stored rows: one message
// (same messageId) sent under two customer keys of one person, the device and the userId, with
// another name and coupon, by one path or by two (the collector's and Kafka's). The earliest copy is the event, of copies at one time
// the first to arrive; the other is not stored (or, stored before, is superseded), in every
// arrival order, all in one push, one push each, cold between pushes, and restarted after
// each push (every customer restored, or only those a Runner restores before a push), and
// evicted after each push (restored as a Runner does), whether an identify joined the keys
// before or the copy carrying both ids does. The sessions are those of the event alone. On a
// shared device whose sign-ins give the device's copy to another user than the userId copy's
// (apart), the two are two persons' events, both stored, as queries keep them (tester 47's F1):
// the sessions are those of two messageIds.
func TestCopiesOnOtherKeysKeepTheFirst(t *testing.T) {
	copyOf := func(anon, user, name, coupon string, minutes float64) ingest.Event {
		e := call("track", name, anon, user, minutes)
		e.MessageID = "m"
		e.PropertyKeys, e.PropertyValues = []string{"coupon"}, []string{coupon}
		e.Raw = fmt.Appendf(nil, `{"anonymousId":%q,"userId":%q,"event":%q,"coupon":%q}`, anon, user, name, coupon)
		return e
	}
	identify := call("identify", "", "dev", "u", -60)
	// A family laptop another user signed in on first: in the identity graph the device is v's,
	// and u reaches it by its sign-ins alone (identities.sharedDevices; tester 45's F1).
	shared := []ingest.Event{call("identify", "", "dev", "v", -90), call("page", "", "dev", "", -89), call("identify", "", "dev", "u", -60)}
	tests := []struct {
		name   string
		before []ingest.Event // sent before the copies, in this order
		a, b   ingest.Event   // the copies; a is on the device
		// apart says a and b are two persons' messages, both stored and neither a duplicate
		// (the device's sign-ins give a to another user than b's): the rows and sessions are
		// those of two messageIds.
		apart bool
	}{
		{"same time", []ingest.Event{identify}, copyOf("dev", "", "C A", "A", 0), copyOf("", "u", "C B", "B", 0), false},
		{"userId copy later", []ingest.Event{identify}, copyOf("dev", "", "C A", "A", 0), copyOf("", "u", "C B", "B", 5), false},
		{"userId copy earlier", []ingest.Event{identify}, copyOf("dev", "", "C A", "A", 5), copyOf("", "u", "C B", "B", 0), false},
		{"same time, joined by the copy", nil, copyOf("dev", "u", "C A", "A", 0), copyOf("", "u", "C B", "B", 0), false},
		{"later, joined by the copy", nil, copyOf("dev", "u", "C A", "A", 0), copyOf("", "u", "C B", "B", 45), false},
		{"earlier, joined by the copy", nil, copyOf("dev", "u", "C A", "A", 45), copyOf("", "u", "C B", "B", 0), false},
		{"same time, by Kafka", []ingest.Event{identify}, copyOf("dev", "", "C A", "A", 0), by("kafka", copyOf("", "u", "C B", "B", 0)), false},
		{"userId copy earlier, by Kafka", []ingest.Event{identify}, copyOf("dev", "", "C A", "A", 5), by("kafka", copyOf("", "u", "C B", "B", 0)), false},
		{"later, joined by the copy, by a replay", nil, copyOf("dev", "u", "C A", "A", 0), by("replay-segment", copyOf("", "u", "C B", "B", 45)), false},
		{"shared device, userId copy later", shared, copyOf("dev", "u", "C A", "A", 0), copyOf("", "u", "C B", "B", 1), false},
		{"shared device, userId copy earlier", shared, copyOf("dev", "u", "C A", "A", 1), copyOf("", "u", "C B", "B", 0), false},
		{"shared device, same time", shared, copyOf("dev", "u", "C A", "A", 0), copyOf("", "u", "C B", "B", 0), false},
		{"shared device, anonymous copy, userId copy later", shared, copyOf("dev", "", "C A", "A", 0), copyOf("", "u", "C B", "B", 1), false},
		{"shared device, anonymous copy, userId copy earlier", shared, copyOf("dev", "", "C A", "A", 1), copyOf("", "u", "C B", "B", 0), false},
		{"shared device, userId copy later, by Kafka", shared, copyOf("dev", "u", "C A", "A", 0), by("kafka", copyOf("", "u", "C B", "B", 1)), false},
		// v, the device's first user, whose person has the device in the graph, sends a message
		// again from its server: the device's copy is u's by the device's sign-ins (tester 47's F1).
		{"shared device, its first user's userId copy later", shared, copyOf("dev", "", "C A", "A", 0), copyOf("", "v", "C B", "B", 1), true},
		{"shared device, its first user's userId copy earlier", shared, copyOf("dev", "", "C A", "A", 1), copyOf("", "v", "C B", "B", 0), true},
		{"shared device, signed-in copy, its first user's userId copy later", shared, copyOf("dev", "u", "C A", "A", 0), copyOf("", "v", "C B", "B", 1), true},
		{"shared device, signed-in copy, its first user's userId copy earlier", shared, copyOf("dev", "u", "C A", "A", 1), copyOf("", "v", "C B", "B", 0), true},
	}
	for _, tc := range tests {
		for _, aFirst := range []bool{true, false} {
			sent := slices.Clone(tc.before)
			if aFirst {
				sent = append(sent, tc.a, tc.b)
			} else {
				sent = append(sent, tc.b, tc.a)
			}
			for i := range sent {
				sent[i].Seq = int64(i)
			}
			event := sent[len(tc.before)] // the first to arrive, unless the other is earlier
			if other := sent[len(tc.before)+1]; other.Timestamp.Before(event.Timestamp) {
				event = other
			}
			kept, wantDuplicates := []ingest.Event{event}, 1
			if tc.apart {
				kept, wantDuplicates = []ingest.Event{tc.a, tc.b}, 0
			}
			ref := &storedRows{}
			refSent := append(slices.Clone(tc.before), kept...)
			if tc.apart { // two messageIds
				refSent[len(refSent)-1].MessageID = "m2"
			}
			ref.push(newTestSessionizer(t), base, refSent)
			want := describe(live(ref.sessions))
			var wantRows []string
			for _, e := range kept {
				wantRows = append(wantRows, fmt.Sprintf("%s %s %v", e.CustomerKey(), e.Event, e.PropertyValues))
			}
			slices.Sort(wantRows)
			for _, mode := range []string{"one push", "one push each", "cold between pushes", "restart after each push",
				"restart after each push, restoring as a Runner", "evicted between pushes, restoring as a Runner",
				"evicted by each push, restoring as a Runner"} {
				t.Run(fmt.Sprintf("%s, %s first, %s", tc.name, sent[len(tc.before)].Event, mode), func(t *testing.T) {
					st := &storedRows{}
					s := newTestSessionizer(t)
					switch mode {
					case "cold between pushes":
						s.hotCap = 0
					case "evicted between pushes, restoring as a Runner", "evicted by each push, restoring as a Runner":
						s.cfg.MaxCustomers = 1
					}
					// Another customer, newer than the person: after the push that has it, it is
					// the one customer held.
					other := func(i int) []ingest.Event {
						return []ingest.Event{at(fmt.Sprint("other-", i), "Product Viewed", 1000+float64(i))}
					}
					batches := pushesOf(sent, mode)
					now, duplicates := base, 0
					for i, b := range batches {
						now = now.Add(time.Second)
						if mode == "evicted by each push, restoring as a Runner" {
							// The person's keys the push changes are kept aside for the next (see evict).
							b = append(slices.Clone(b), other(i)...)
						}
						if strings.HasSuffix(mode, "restoring as a Runner") {
							st.restoreFor(s, b)
						}
						duplicates += st.push(s, now, b).Duplicates
						switch mode {
						case "restart after each push":
							s = st.restart(t)
						case "restart after each push, restoring as a Runner":
							s = st.restartAsARunner(t)
						case "evicted between pushes, restoring as a Runner":
							st.restoreFor(s, other(i))
							st.push(s, now, other(i))
						}
					}
					var rows []string
					for _, e := range st.events {
						if e.MessageID == "m" && !st.isSuperseded(e) {
							rows = append(rows, fmt.Sprintf("%s %s %v", e.CustomerKey(), e.Event, e.PropertyValues))
						}
					}
					if slices.Sort(rows); !slices.Equal(rows, wantRows) {
						t.Errorf("rows read %q, want only %q", rows, wantRows)
					}
					sessions := live(st.sessions)
					maps.DeleteFunc(sessions, func(_ string, ss Session) bool { return strings.HasPrefix(ss.CustomerKey, "other-") })
					if got := describe(sessions); !slices.Equal(got, want) {
						t.Errorf("sessions\n%s\nwant (the event alone, or apart both)\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
					}
					if s.cfg.MaxCustomers == 1 && s.Customers() > 1 {
						t.Errorf("%d customers held, want 1: the test needs them evicted", s.Customers())
					}
					if duplicates != wantDuplicates {
						t.Errorf("%d duplicates counted, want %d", duplicates, wantDuplicates)
					}
				})
			}
		}
	}
}

// TestCopyOnASharedDeviceIsItsSignedInUsers: a shared device's copy of a message counts as a
// copy of one under a user's key only when the device's sign-ins give it to that user, as
// queries dedupe per person: the device's anonymous event while v was signed in again, and a
// message with its messageId under u's key (u signed in on the device before), are two
// events, stored both, in either arrival order, with a restart before the second.
func TestCopyOnASharedDeviceIsItsSignedInUsers(t *testing.T) {
	copyOf := func(anon, user string, minutes float64) ingest.Event {
		e := call("track", "Order Completed", anon, user, minutes)
		e.MessageID = "m"
		return e
	}
	signIns := []ingest.Event{call("identify", "", "dev", "v", -90), call("identify", "", "dev", "u", -60), call("identify", "", "dev", "v", -30)}
	for _, devFirst := range []bool{true, false} {
		copies := []ingest.Event{copyOf("dev", "", 0), copyOf("", "u", 1)}
		if !devFirst {
			copies[0], copies[1] = copies[1], copies[0]
		}
		for _, restart := range []bool{false, true} {
			t.Run(fmt.Sprintf("device copy first %v, restart %v", devFirst, restart), func(t *testing.T) {
				st := &storedRows{}
				s := newTestSessionizer(t)
				duplicates := 0
				for i, b := range [][]ingest.Event{signIns, copies[:1], copies[1:]} {
					if restart && i == 2 {
						s = st.restartAsARunner(t)
						st.restoreFor(s, b)
					}
					duplicates += st.push(s, base.Add(time.Duration(i)*time.Second), b).Duplicates
				}
				if rows := st.keysHolding("m"); !slices.Equal(rows, []string{"dev", "u"}) || duplicates != 0 {
					t.Errorf("rows of m under %q, %d duplicates; want under [dev u], 0 (v's event and u's)", rows, duplicates)
				}
			})
		}
	}
}

// TestCopiesJoinedOnASharedDeviceStayApart is tester 47's F1 where a merge brings the copies
// under one person of the graph: v signed in first on the family laptop dev (the graph's person
// of v holds dev), u after; the laptop's anonymous copy, while u was signed in, is u's, and v's
// phone's copy of the same messageId is v's, two events, stored both when v's identify on the
// phone then joins the phone to v, in either arrival order of the copies, in one push, one push
// each, and restarted before each push (restored as a Runner does).
func TestCopiesJoinedOnASharedDeviceStayApart(t *testing.T) {
	copyOf := func(anon string, minutes float64) ingest.Event {
		e := call("track", "Order Completed", anon, "", minutes)
		e.MessageID = "m"
		return e
	}
	signIns := []ingest.Event{call("identify", "", "dev", "v", -90), call("identify", "", "dev", "u", -60)}
	link := call("identify", "", "phone", "v", 10)
	for _, laptopFirst := range []bool{true, false} {
		copies := []ingest.Event{copyOf("dev", 0), copyOf("phone", 1)}
		if !laptopFirst {
			copies[0], copies[1] = copies[1], copies[0]
		}
		sent := slices.Concat(signIns, copies, []ingest.Event{link})
		for i := range sent {
			sent[i].Seq = int64(i)
		}
		for _, mode := range []string{"one push", "one push each", "restart after each push, restoring as a Runner"} {
			t.Run(fmt.Sprintf("laptop copy first %v, %s", laptopFirst, mode), func(t *testing.T) {
				st := &storedRows{}
				s := newTestSessionizer(t)
				duplicates := 0
				for i, b := range pushesOf(sent, mode) {
					if i > 0 && mode == "restart after each push, restoring as a Runner" {
						s = st.restartAsARunner(t)
						st.restoreFor(s, b)
					}
					duplicates += st.push(s, base.Add(time.Duration(i)*time.Second), b).Duplicates
				}
				if rows := st.keysHolding("m"); !slices.Equal(rows, []string{"dev", "phone"}) || duplicates != 0 {
					t.Errorf("rows of m under %q, %d duplicates; want under [dev phone], 0 (u's event and v's)", rows, duplicates)
				}
			})
		}
	}
}

// TestCopiesJoinedAfterBothArriveKeepTheEarliest is field case 01's kind where the two keys
// holding copies of one message become one person only after both copies arrived (tester4's
// t4b2, t4b3, t4b7): a device's anonymous copy and a copy under the userId, or on a second
// device, then the identify or alias joining them. At the merge the earliest copy (by time) is
// the event and the other is superseded, in either arrival order of the copies, all in one push,
// one push each, and restarted or evicted after each push (restored as a Runner does): the rows
// read and the sessions are those of a run that received the earliest copy alone.
func TestCopiesJoinedAfterBothArriveKeepTheEarliest(t *testing.T) {
	copyOf := func(anon, user, coupon string, minutes float64) ingest.Event {
		e := call("track", "Order", anon, user, minutes)
		e.MessageID = "m"
		e.PropertyKeys, e.PropertyValues = []string{"coupon"}, []string{coupon}
		e.Raw = fmt.Appendf(nil, `{"anonymousId":%q,"userId":%q,"coupon":%q}`, anon, user, coupon)
		return e
	}
	alias := call("alias", "", "", "new", 10)
	alias.PreviousID = "old"
	tests := []struct {
		name   string
		early  ingest.Event   // the earliest copy
		late   ingest.Event   // the later copy, under another key
		others []ingest.Event // sent before the copies
		links  []ingest.Event // sent after both copies, joining their keys
		cfg    Config         // AliasJoinsUsers for the alias of two userIds, which joins them with it alone
	}{
		{"device, then userId, identify", copyOf("a1", "", "A", 0), copyOf("", "u", "B", 5),
			[]ingest.Event{call("page", "", "a1", "", -1)}, []ingest.Event{call("identify", "", "a1", "u", 10)}, Config{}},
		{"two devices, identified one by one", copyOf("a1", "", "A", 0), copyOf("a2", "", "B", 5),
			[]ingest.Event{call("page", "", "a1", "", -1)},
			[]ingest.Event{call("identify", "", "a1", "u", 10), call("identify", "", "a2", "u", 11)}, Config{}},
		{"two userIds, alias", copyOf("", "old", "A", 0), copyOf("", "new", "B", 5),
			[]ingest.Event{call("page", "", "", "new", 4)}, []ingest.Event{alias}, Config{AliasJoinsUsers: true}},
		{"device, then userId by Kafka, identify", copyOf("a1", "", "A", 0), by("kafka", copyOf("", "u", "B", 5)),
			[]ingest.Event{call("page", "", "a1", "", -1)}, []ingest.Event{call("identify", "", "a1", "u", 10)}, Config{}},
		{"device by a replay, then userId, identify", by("replay-segment", copyOf("a1", "", "A", 0)), copyOf("", "u", "B", 5),
			[]ingest.Event{call("page", "", "a1", "", -1)}, []ingest.Event{call("identify", "", "a1", "u", 10)}, Config{}},
	}
	for _, tc := range tests {
		for _, earlyFirst := range []bool{true, false} {
			copies := []ingest.Event{tc.early, tc.late}
			if !earlyFirst {
				copies = []ingest.Event{tc.late, tc.early}
			}
			sent := slices.Concat(tc.others, copies, tc.links)
			for i := range sent {
				sent[i].Seq = int64(i)
			}
			ref := &storedRows{}
			ref.push(newSessionizerWith(t, tc.cfg), base, slices.DeleteFunc(slices.Clone(sent), func(e ingest.Event) bool {
				return e.MessageID == tc.late.MessageID && e.CustomerKey() == tc.late.CustomerKey()
			}))
			want := describe(live(ref.sessions))
			for _, mode := range []string{"one push", "one push each", "restart after each push, restoring as a Runner",
				"evicted by each push, restoring as a Runner"} {
				t.Run(fmt.Sprintf("%s, earliest first %v, %s", tc.name, earlyFirst, mode), func(t *testing.T) {
					st := &storedRows{}
					s := newSessionizerWith(t, tc.cfg)
					if strings.HasPrefix(mode, "evicted") {
						s.cfg.MaxCustomers = 1
					}
					batches := pushesOf(sent, mode)
					now, duplicates := base, 0
					for i, b := range batches {
						now = now.Add(time.Second)
						if strings.HasPrefix(mode, "evicted") {
							b = append(slices.Clone(b), at(fmt.Sprint("other-", i), "Product Viewed", 1000+float64(i)))
						}
						if strings.HasSuffix(mode, "restoring as a Runner") {
							st.restoreFor(s, b)
						}
						duplicates += st.push(s, now, b).Duplicates
						if strings.HasPrefix(mode, "restart") {
							s = newSessionizerWith(t, tc.cfg)
							s.RestoreLinks(st.links)
						}
					}
					var rows []string
					for _, e := range st.events {
						if e.MessageID == "m" && !st.isSuperseded(e) {
							rows = append(rows, fmt.Sprintf("%s %v %s", e.CustomerKey(), e.PropertyValues, e.Timestamp.Format(time.TimeOnly)))
						}
					}
					e := tc.early
					if wantRow := fmt.Sprintf("%s %v %s", e.CustomerKey(), e.PropertyValues, e.Timestamp.Format(time.TimeOnly)); !slices.Equal(rows, []string{wantRow}) {
						t.Errorf("rows read %q, want only %q", rows, wantRow)
					}
					sessions := live(st.sessions)
					maps.DeleteFunc(sessions, func(_ string, ss Session) bool { return strings.HasPrefix(ss.CustomerKey, "other-") })
					if got := describe(sessions); !slices.Equal(got, want) {
						t.Errorf("sessions\n%s\nwant (the earliest copy alone)\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
					}
					if duplicates != 1 {
						t.Errorf("%d duplicates counted, want 1", duplicates)
					}
				})
			}
		}
	}
}

// TestToRestoreNamesThePersonsOtherKeys: before a push, a Runner restores the keys the sessionizer
// does not hold of the batch and of its events' persons (the userId's, the anonymousId's, an
// alias's previousId's), each once, the batch's own first; a person at the id cap adds no more
// than the cap.
func TestToRestoreNamesThePersonsOtherKeys(t *testing.T) {
	links := [][2]string{{"u:u", "a:web"}, {"u:u", "a:phone"}, {"u:v", "a:tablet"}}
	alias := call("alias", "", "", "v", 0)
	alias.PreviousID = "old"
	tests := []struct {
		name  string
		held  []ingest.Event // pushed before
		batch []ingest.Event
		want  []string
	}{
		{"a retry under the userId", nil, []ingest.Event{call("track", "Order Completed", "", "u", 0)}, []string{"u", "web", "phone"}},
		{"a second device", nil, []ingest.Event{call("track", "Order Completed", "laptop", "u", 0)}, []string{"laptop", "u", "web", "phone"}},
		{"other keys held", []ingest.Event{call("track", "Product Viewed", "web", "", 0)},
			[]ingest.Event{call("track", "Order Completed", "", "u", 0)}, []string{"u", "phone"}},
		{"two persons the event joins", nil, []ingest.Event{call("identify", "", "tablet", "u", 0)}, []string{"tablet", "u", "web", "phone", "v"}},
		{"ids linked to none", nil, []ingest.Event{call("track", "Order Completed", "kiosk", "w", 0)}, []string{"kiosk", "w"}},
		{"an alias's previousId", nil, []ingest.Event{alias}, []string{"v", "tablet", "old"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestSessionizer(t)
			s.RestoreLinks(links)
			s.Push(base, tc.held)
			if got := s.toRestore(tc.batch); !slices.Equal(got, tc.want) {
				t.Errorf("toRestore = %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("a person at the id cap", func(t *testing.T) {
		s := newTestSessionizer(t)
		var links [][2]string
		for i := range 2 * s.cfg.MaxIDsPerPerson {
			links = append(links, [2]string{"u:big", fmt.Sprint("a:device-", i)})
		}
		s.RestoreLinks(links)
		got := s.toRestore([]ingest.Event{call("track", "Order Completed", "", "big", 0)})
		if len(got) != s.cfg.MaxIDsPerPerson || got[0] != "big" {
			t.Errorf("toRestore named %d keys (first %q), want the person's %d ids, its own key first", len(got), got[0], s.cfg.MaxIDsPerPerson)
		}
	})
}

// TestStageEntriesCountPersonsAfterRestore: after a restart, the customers a batch brings back
// (its keys and its persons' other keys, see toRestore) are restored from the stored events, and
// the live stage entries go on counting persons (see Stats.StageEntries): the stages a person
// entered before are not entered again, a shared device's users stay apart, and a person's
// other device, restored with the batch, counts towards a repeat order.
func TestStageEntriesCountPersonsAfterRestore(t *testing.T) {
	order := func(anon string, minutes float64) ingest.Event {
		return call("track", "Order Completed", anon, "", minutes)
	}
	cases := []struct {
		name          string
		before, after []ingest.Event
		want          map[string]int // entries of the after events, by stage
	}{
		{"shared device", []ingest.Event{
			call("identify", "", "kiosk", "alice", 0), order("kiosk", 1), call("identify", "", "kiosk", "bob", 60),
		}, []ingest.Event{order("kiosk", 61)}, map[string]int{"conversion": 1}}, // bob's first order
		{"repeat order", []ingest.Event{
			order("phone", 0), call("identify", "", "phone", "carol", 1),
		}, []ingest.Event{order("phone", 60)}, map[string]int{"loyalty": 1}},
		{"the person's other device", []ingest.Event{
			call("page", "", "phone", "", 0), order("phone", 1), call("identify", "", "phone", "carol", 2),
			call("identify", "", "laptop", "carol", 60),
		}, []ingest.Event{order("laptop", 62)}, map[string]int{"loyalty": 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newTestSessionizer(t)
			out, _ := s.Push(base, c.before)
			restarted := newTestSessionizer(t)
			restarted.RestoreLinks(out.Links)
			restarted.RestoreHistory(restarted.toRestore(c.after), c.before, out.Sessions)
			_, st := restarted.Push(base, c.after)
			got := map[string]int{}
			for k, n := range st.StageEntries {
				got[k.Stage] += n
			}
			if !maps.Equal(got, c.want) {
				t.Errorf("stage entries after the restart %v, want %v", got, c.want)
			}
		})
	}
}

// pushesOf returns the pushes that send events: all in one for the mode "one push", else one push
// each.
func pushesOf(events []ingest.Event, mode string) [][]ingest.Event {
	if mode == "one push" {
		return [][]ingest.Event{events}
	}
	var pushes [][]ingest.Event
	for i := range events {
		pushes = append(pushes, events[i:i+1])
	}
	return pushes
}

// TestLaterCopyStillLinks: an identify and a track sent under one messageId, the track stamped
// earlier (the event), the identify a later copy: the identify's link of its device to its user
// counts in every arrival order, whether the copy arrived first (its link stays when the track
// supersedes it) or second (not stored, it links all the same), with the track on the device's
// key (x) or on the userId's (y, a copy on another key of the person); in one push, one push
// each, and one push each with a restart before each (links restored as stored, Output.Links,
// then the keys a Runner restores). Neither identify makes a sign-in: the track is the event.
func TestLaterCopyStillLinks(t *testing.T) {
	msg := func(typ, anon, user, event, id string, minutes int) ingest.Event {
		return ingest.Event{Source: "t", Type: typ, AnonymousID: anon, UserID: user, Event: event, MessageID: id,
			Timestamp: base.Add(time.Duration(minutes) * time.Minute)}
	}
	events := []ingest.Event{
		msg("track", "xD", "", "Order Completed", "x-Z", 0),
		msg("identify", "xD", "xu", "", "x-Z", 5),
		msg("track", "", "yw", "Order Completed", "y-Z", 0),
		msg("identify", "yE", "yw", "", "y-Z", 5),
	}
	for _, order := range permutations(len(events)) {
		sent := make([]ingest.Event, len(order))
		for i, j := range order {
			sent[i] = events[j]
			sent[i].Seq = int64(i + 1)
		}
		for _, mode := range []string{"one push", "one push each", "restart before each"} {
			st := &storedRows{}
			s := newTestSessionizer(t)
			for _, batch := range pushesOf(sent, mode) {
				if mode == "restart before each" {
					s = newTestSessionizer(t)
					s.RestoreLinks(st.links)
					st.restoreFor(s, batch)
				}
				st.push(s, base, batch)
			}
			restarted := newTestSessionizer(t)
			restarted.RestoreLinks(st.links)
			for name, g := range map[string]*Sessionizer{"live": s, "restored from the stored links": restarted} {
				for device, user := range map[string]string{"a:xD": "u:xu", "a:yE": "u:yw"} {
					if got := g.ids.personOf(device); got != user {
						t.Errorf("%v, %s, %s: %s is person %s, want %s", order, mode, name, device, got, user)
					}
				}
			}
			if len(st.signIns) != 0 || len(s.ids.users) != 0 {
				t.Errorf("%v, %s: sign-ins %v, stored %v, want none", order, mode, s.ids.users, st.signIns)
			}
			if got, want := st.merged(), earliest([]ingest.Event{sent[slices.Index(order, 0)], sent[slices.Index(order, 2)]}); !slices.Equal(got, want) {
				t.Errorf("%v, %s: rows %v, want the tracks only %v", order, mode, got, want)
			}
		}
	}
}

// TestEnteredStages: a person enters the stages reached past the furthest they reached before;
// a stage reached after a further one is skipped (bit i: stage i).
func TestEnteredStages(t *testing.T) {
	tests := []struct {
		name                  string
		before, reached, want uint64
	}{
		{"first stage", 0, 0b1, 0b1},
		{"a stage passed over on the way", 0b1, 0b100, 0b100},
		{"one time's events enter together", 0b1, 0b110, 0b110},
		{"a cart after an order", 0b101, 0b10, 0},
		{"browsing after an order sent first", 0b100, 0b1, 0},
		{"the same stage again", 0b100, 0b100, 0},
		{"a lower and a further stage at once", 0b100, 0b1001, 0b1000},
		{"nothing reached", 0b11, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := EnteredStages(tt.before, tt.reached); got != tt.want {
				t.Errorf("EnteredStages(%b, %b) = %b, want %b", tt.before, tt.reached, got, tt.want)
			}
		})
	}
}

// TestLiveEntriesSkipStagesBehind: the live entries follow the stages query's rule
// (EnteredStages): a customer who ordered and then adds to a cart enters no consideration; and a
// survey answered before the person's first stage is counted as ScoreNoStage, as the query
// leaves it out, whatever order the pushes come in.
func TestLiveEntriesSkipStagesBehind(t *testing.T) {
	survey := func(user string, score string, minutes float64) ingest.Event {
		e := call("track", "NPS Submitted", "", user, minutes)
		e.PropertyKeys, e.PropertyValues = []string{ingest.PropertyKey(ScoreProperty)}, []string{score}
		return e
	}
	events := []ingest.Event{
		call("page", "", "", "ann", 0), call("track", "Order Completed", "", "ann", 1), call("track", "Product Added", "", "ann", 2),
		survey("bo", "9", 0), call("track", "Order Completed", "", "bo", 1), survey("bo", "3", 2),
		survey("cy", "70", 0), // out of scale: its own reason
	}
	for _, mode := range []string{"one push", "one push each"} {
		s := newTestSessionizer(t)
		got, ignored := map[string]int{}, map[string]int{}
		for _, push := range pushesOf(events, mode) {
			_, st := s.Push(base, push)
			for k, n := range st.StageEntries {
				got[k.Stage] += n
			}
			for k, n := range st.IgnoredScores {
				ignored[k] += n
			}
		}
		if want := map[string]int{"awareness": 1, "conversion": 2}; !maps.Equal(got, want) {
			t.Errorf("%s: entries %v, want %v", mode, got, want)
		}
		if want := map[string]int{ScoreNoStage: 1, ScoreOutOfScale: 1}; !maps.Equal(ignored, want) {
			t.Errorf("%s: ignored scores %v, want %v", mode, ignored, want)
		}
	}
}
