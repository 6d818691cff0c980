package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
	"github.com/waymark-dev/waymark/store"
)

// historyEvent is a decoded Product Viewed of device anon with messageId msg at ts (RFC 3339).
func historyEvent(t *testing.T, anon, msg, ts string) ingest.Event {
	t.Helper()
	raw, _ := json.Marshal(map[string]string{"type": "track", "event": "Product Viewed", "anonymousId": anon, "messageId": msg, "timestamp": ts})
	e, err := ingest.Decode(raw, "shop", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestHistorySharedMessageID: two devices whose clients sent the same messageId (a buggy
// integration). Each customer's restored history must not depend on which other keys are
// restored with it: grouped by source and messageId alone, the event went to one of them, and a
// restore then deleted the other's session and wrote it again without the event.
func TestHistorySharedMessageID(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ctx := context.Background()
	evs := []ingest.Event{
		historyEvent(t, "dupA", "shared-1", "2026-11-02T10:00:00Z"),
		historyEvent(t, "dupA", "own-A", "2026-11-02T10:01:00Z"),
		historyEvent(t, "dupB", "shared-1", "2026-11-02T10:00:00Z"),
		historyEvent(t, "dupB", "own-B", "2026-11-02T10:01:00Z"),
	}
	if err := st.Write(ctx, sessionize.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
	count := func(keys ...string) map[string]int {
		events, _, err := st.History(ctx, keys)
		if err != nil {
			t.Fatal(err)
		}
		n := map[string]int{}
		for _, e := range events {
			n[e.CustomerKey()]++
		}
		return n
	}
	alone := map[string]int{"dupA": count("dupA")["dupA"], "dupB": count("dupB")["dupB"]}
	together := count("dupA", "dupB")
	if together["dupA"] != alone["dupA"] || together["dupB"] != alone["dupB"] {
		t.Errorf("events restored per customer: alone %v, restored together %v", alone, together)
	}
}

// TestHistoryOddKeys: the keys go to ClickHouse as an external table; keys with odd bytes
// (quotes, backslashes, NUL, 30,000 bytes, \N, control characters), duplicate and empty keys,
// and 200,000 keys with nothing stored come back exact, in one restore.
func TestHistoryOddKeys(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ctx := context.Background()
	// No NUL: ingest refuses it in ids (c1fdc3f), and a stored event with one no longer decodes,
	// so a restore leaves it out as it leaves out every such event (historyEvents).
	odd := []string{"it's", `back\slash`, "ctl\x01byte", strings.Repeat("L", 30000), "\\N", "a\tb\nc", "\u00fc\U0001F600", " padded "}
	var evs []ingest.Event
	for i, k := range odd {
		evs = append(evs, historyEvent(t, k, fmt.Sprint("m", i), "2026-11-02T10:00:00Z"))
	}
	if err := st.Write(ctx, sessionize.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
	keys := append([]string{"", "", "missing"}, odd...)
	keys = append(keys, odd...) // each twice
	for i := range 200000 {
		keys = append(keys, fmt.Sprint("nobody-", i))
	}
	events, _, err := st.History(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, e := range events {
		got[e.CustomerKey()]++
	}
	for _, k := range odd {
		if got[k] != 1 {
			t.Errorf("key %.20q: %d events restored, want 1", k, got[k])
		}
	}
	if ev, ss, err := st.History(ctx, nil); err != nil || ev != nil || ss != nil {
		t.Errorf("History(nil) = %v %v %v", ev, ss, err)
	}
}

// TestStoredKeysFilter: a store rules out keys it knows have no stored events without a query
// (see storedKeys), so a key another process stored after the filter was loaded stays unknown
// until RefreshStoredKeys, which the consumer calls at each rebalance; keys it stores itself are
// known at once, and keys stored before the first restore are found by the load.
// ForeignHistory reads without the filter.
func TestStoredKeysFilter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var database string
	a := openStoreWith(t, func(c *store.Config) { database = c.Database })
	b := openStoreWith(t, func(c *store.Config) { c.Database = database }) // another process
	write := func(st *store.Store, key string) {
		t.Helper()
		if err := st.Write(ctx, sessionize.Batch{Events: []ingest.Event{historyEvent(t, key, "m-"+key, "2026-11-02T10:00:00Z")}}); err != nil {
			t.Fatal(err)
		}
	}
	restored := func(st *store.Store, keys ...string) []string {
		t.Helper()
		events, _, err := st.History(ctx, keys)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range events {
			got = append(got, e.CustomerKey())
		}
		slices.Sort(got)
		return got
	}
	write(a, "before")
	if got := restored(b, "before", "new"); !slices.Equal(got, []string{"before"}) {
		t.Errorf("first restore: %v, want [before] (the load finds what was stored before)", got)
	}
	write(b, "own")
	if got := restored(b, "own"); !slices.Equal(got, []string{"own"}) {
		t.Errorf("a key the store wrote itself: %v, want [own]", got)
	}
	write(a, "other")
	at := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	visit := sessionize.Session{ID: "s-other", CustomerKey: "other", PersonID: "other", Start: at, End: at, Events: 1, Version: 1}
	if err := a.Write(ctx, sessionize.Batch{Sessions: []sessionize.Session{visit}, Version: 1}); err != nil {
		t.Fatal(err)
	}
	if got := restored(b, "other"); len(got) != 0 {
		t.Errorf("a key another process stored after the load: %v, want none until a refresh", got)
	}
	// ForeignHistory asks no filter: it finds the other process's key at once, with its
	// session (a consumer reads with it the other partitions' keys of its batches' persons).
	if events, sessions, err := b.ForeignHistory(ctx, []string{"other", "new"}); err != nil || len(events) != 1 || events[0].CustomerKey() != "other" ||
		len(sessions) != 1 || sessions[0].CustomerKey != "other" {
		t.Errorf("ForeignHistory of another process's key: %v, %v (%v), want its one event and session", events, sessions, err)
	}
	b.RefreshStoredKeys()
	if got := restored(b, "other", "before", "own", "new"); !slices.Equal(got, []string{"before", "other", "own"}) {
		t.Errorf("after a refresh: %v, want [before other own]", got)
	}
	// While b's consumer reads every partition, ForeignHistory trusts the filter as History
	// does: no other process stores events (here a does all the same, to tell the two apart).
	foreign := func(key string) int {
		t.Helper()
		events, _, err := b.ForeignHistory(ctx, []string{key})
		if err != nil {
			t.Fatal(err)
		}
		return len(events)
	}
	b.Rebalanced(true)
	restored(b, "own") // loads the filter
	write(a, "sole")
	if n := foreign("sole"); n != 0 {
		t.Errorf("ForeignHistory of a key stored by another process while b's consumer was sole: %d events, want none (the filter asked)", n)
	}
	b.Rebalanced(false)
	restored(b, "own")
	write(a, "shared")
	if n := foreign("shared"); n != 1 {
		t.Errorf("ForeignHistory of a key another process stored, partitions shared: %d events, want 1", n)
	}
}

// TestHistoryKeepsTheStoredTime: an event is restored at the time it was stored. A message
// produced straight to Kafka by a client whose clock is 2 h slow is corrected by the consumer
// (ingest.DecodeClient, against the time Kafka got it) while its stored bytes keep the client's
// times; it comes back at the time it was sessionized, to the nanosecond, as a stamped event does.
func TestHistoryKeepsTheStoredTime(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ctx := context.Background()
	kafkaTime := time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)
	skewed, err := ingest.DecodeClient([]byte(`{"type":"track","event":"Product Viewed","anonymousId":"skewed","messageId":"s1",`+
		`"timestamp":"2026-11-02T09:50:00Z","sentAt":"2026-11-02T10:00:00.000400Z","receivedAt":12345}`), "kafka", kafkaTime)
	if err != nil {
		t.Fatal(err)
	}
	fine := historyEvent(t, "fine", "f1", "2026-11-02T10:00:00.000250Z")
	want := map[string]time.Time{"skewed": time.Date(2026, 11, 2, 11, 49, 59, 999600000, time.UTC), "fine": fine.Timestamp}
	if !skewed.Timestamp.Equal(want["skewed"]) {
		t.Fatalf("decoded at %s, want %s", skewed.Timestamp, want["skewed"])
	}
	if err := st.Write(ctx, sessionize.Batch{Events: []ingest.Event{skewed, fine}}); err != nil {
		t.Fatal(err)
	}
	events, _, err := st.History(ctx, []string{"skewed", "fine"})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 {
		t.Fatalf("restored %d events, want 2", len(events))
	}
	for _, e := range events {
		if !e.Timestamp.Equal(want[e.CustomerKey()]) {
			t.Errorf("%s restored at %s, want %s, the time stored", e.CustomerKey(), e.Timestamp, want[e.CustomerKey()])
		}
	}
}

// TestARestoreReadsOtherProcessesKeys: two processes (two Stores on one database, a Runner each).
// B has loaded its filter of stored keys; A then stores a server's order under the userId u
// alone. B gets a device d's identify of u, then a copy of that order (same messageId, a later
// time) under d: B restores u's key with d's, u being the other key of the person the identify
// makes, and drops the later copy, so one copy of the order is stored. Before, B's filter ruled
// out u's key, which another process stored after B loaded it, and B stored the copy as a new
// event.
func TestARestoreReadsOtherProcessesKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var database string
	a := openStoreWith(t, func(c *store.Config) { database = c.Database })
	b := openStoreWith(t, func(c *store.Config) { c.Database = database })
	runner := func(st *store.Store) *sessionize.Runner {
		t.Helper()
		sz, err := sessionize.New(sessionize.Config{}, defaultMap(t))
		if err != nil {
			t.Fatal(err)
		}
		r, err := sessionize.NewRunner(sz, st, st, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	event := func(msg string) ingest.Event {
		t.Helper()
		e, err := ingest.Decode([]byte(msg), "shop", time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	ra, rb := runner(a), runner(b)
	if err := rb.Write(ctx, []ingest.Event{historyEvent(t, "early", "m-early", "2026-11-02T09:00:00Z")}); err != nil {
		t.Fatal(err) // B's first restore loads its filter
	}
	order := `{"type":"track","event":"Order Completed","messageId":"m-order","timestamp":"2026-11-02T10:00:00Z",%s}`
	if err := ra.Write(ctx, []ingest.Event{event(fmt.Sprintf(order, `"userId":"u"`))}); err != nil {
		t.Fatal(err)
	}
	identify := event(`{"type":"identify","userId":"u","anonymousId":"d","messageId":"m-identify","timestamp":"2026-11-02T10:05:00Z"}`)
	copyLater := event(strings.Replace(fmt.Sprintf(order, `"userId":"u","anonymousId":"d"`), "10:00:00", "10:10:00", 1))
	if err := rb.Write(ctx, []ingest.Event{identify, copyLater}); err != nil {
		t.Fatal(err)
	}
	var copies uint64
	if err := rawConn(t).QueryRow(ctx, "SELECT count() FROM `"+database+"`.events WHERE message_id = 'm-order'").Scan(&copies); err != nil {
		t.Fatal(err)
	}
	if copies != 1 {
		t.Errorf("%d copies of the order stored, want 1: the later copy under d is the one under u's, which B did not restore", copies)
	}
}
