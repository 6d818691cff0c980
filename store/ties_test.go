package store_test

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
	"github.com/waymark-dev/waymark/store"
)

// TestTieIDIsCityHash64: the id the sessionizer orders ties by (sessionize.TieID) is the number
// the engine computes for cityHash64 of the messageId, the id the store's scans order theirs by,
// over ids of every length CityHash treats apart (0, 1–3, 4–8, 9–16, 17–32, 33–64, longer), long
// ones (past 1 KB), UUIDs and derived ids as clients and the collector make them, unicode, and
// bytes that are no UTF-8 (the collector refuses such a message, but message_id is a String of
// bytes, whatever stored it).
func TestTieIDIsCityHash64(t *testing.T) {
	t.Parallel()
	ids := []string{"", "a", "ab", "abc", "wm-d124108846a87268fbb6245ac779552d",
		"4b5e7c1a-2f3d-4e6a-9b8c-0d1e2f3a4b5c", "ajs-next-1733140800000-4b5e7c1a2f3d",
		"café", "日本語のメッセージ", "🛒🛍️", "a\ufffdb", "\xff", "\xff\xfe\xfd", "ok\x00nul", "\xc3\x28 bad",
		strings.Repeat("x", 1025), strings.Repeat("é", 700), strings.Repeat("0123456789", 500)}
	for n := range 130 {
		ids = append(ids, strings.Repeat("m", n), fmt.Sprintf("%0*d", n, n))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		b := make([]byte, rng.IntN(200))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		ids = append(ids, string(b))
	}
	conn, ctx := rawConn(t), context.Background()
	// In chunks of about 64 KB of SQL: a query is at most 256 KiB (max_query_size).
	for len(ids) > 0 {
		var hexes []string
		size := 0
		for len(ids) > 0 && size < 1<<15 {
			hexes = append(hexes, "'"+hex.EncodeToString([]byte(ids[0]))+"'")
			size += 2 * len(ids[0])
			ids = ids[1:]
		}
		rows, err := conn.Query(ctx, "SELECT h, cityHash64(unhex(h)) FROM (SELECT arrayJoin(["+strings.Join(hexes, ",")+"]) AS h)")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			var h string
			var engine uint64
			if err := rows.Scan(&h, &engine); err != nil {
				t.Fatal(err)
			}
			id, err := hex.DecodeString(h)
			if err != nil {
				t.Fatal(err)
			}
			if got := sessionize.TieID(string(id)); got != engine {
				t.Errorf("TieID of %d bytes %.40q… = %d, the engine's cityHash64 %d", len(id), id, got, engine)
			}
			n++
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		if n != len(hexes) {
			t.Fatalf("the engine hashed %d ids of %d", n, len(hexes))
		}
	}
}

// TestTiesOfOneSeqInOneOrder: events of one device at one µs with one seq, as rows stored
// before seq existed read (seq 0), are in the same order in the sessionizer's sessions as in the
// store's answers, both ordering them last by the messageId's cityHash64 (sessionize.TieID, the
// store's compareScanned): a sessionizer that starts again restores such rows and cuts their
// session again when a new event of the device comes (an order): its session's entry and the
// order of its events are the sessions summary's entry channel and the paths' and next's order,
// and the channel its live metrics count the order by (the device's first touch) is retention's
// acquisition channel. The messageIds were picked so that their FNV-1a hashes, which the
// sessionizer ordered by before, order them the other way.
func TestTiesOfOneSeqInOneOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	track := func(name, id, ts, medium string) string {
		m := map[string]any{"type": "track", "anonymousId": "ps", "event": name, "messageId": id, "timestamp": ts}
		if medium != "" {
			m["context"] = map[string]any{"campaign": map[string]string{"source": "news", "medium": medium}}
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	stored := decodeArrivals(t, []string{
		track("PS Email", "ps-a", "2025-06-02T10:00:00Z", "email"),
		track("PS Direct", "ps-b", "2025-06-02T10:00:00Z", ""),
	})
	for i := range stored {
		stored[i].Seq = 0 // stored before seq existed
	}
	later := decodeArrivals(t, []string{track("Order Completed", "ps-c", "2025-06-02T10:05:00Z", "")})
	later[0].Seq = 9

	var db string
	s := openStoreWith(t, func(c *store.Config) { db, c.FunnelMatching = c.Database, store.MatchProcess })
	// The same database, matched in ClickHouse where the engine has the function (chdb).
	auto := openStoreWith(t, func(c *store.Config) { c.Database = db })
	// A sessionizer each, as a restart between the old rows and the new event.
	var reg *prometheus.Registry // the second's, whose live metrics count the order
	for _, events := range [][]ingest.Event{stored, later} {
		sz, err := sessionize.New(sessionize.Config{}, defaultMap(t))
		if err != nil {
			t.Fatal(err)
		}
		reg = prometheus.NewRegistry()
		runner, err := sessionize.NewRunner(sz, s, s, reg)
		if err != nil {
			t.Fatal(err)
		}
		if err := runner.Write(ctx, events); err != nil {
			t.Fatal(err)
		}
	}

	// The sessionizer's answer, as stored.
	_, sessions, err := s.History(ctx, []string{"ps"})
	if err != nil {
		t.Fatal(err)
	}
	if len(sessions) != 1 || sessions[0].Events != 3 || sessions[0].ExitEvent != "Order Completed" {
		t.Fatalf("sessions %+v, want one of the three events, exiting at Order Completed", sessions)
	}
	entry, channel := sessions[0].EntryEvent, sessions[0].EntryChannel
	second := map[string]string{"PS Email": "PS Direct", "PS Direct": "PS Email"}[entry]
	if second == "" {
		t.Fatalf("the session enters at %q, want one of the two events of 10:00", entry)
	}
	// The live orders count by the device's first touch, by the tie rule for restored events.
	orders := `waymark_journey_orders_total{channel="` + channel + `"}`
	if got := gatherCounters(t, reg); got[orders] != 1 {
		t.Errorf("live metrics %v, want %s 1, the session's entry channel", got, orders)
	}

	// The store's answers.
	for name, st := range map[string]*store.Store{"in Waymark": s, "auto matching": auto} {
		sum, err := st.Sessions(ctx, defaultMap(t), store.SessionsQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]uint64{channel: 1}; !maps.Equal(sum.ByEntryChannel, want) {
			t.Errorf("%s: the sessions summary's entry channels %v, the sessionizer's session enters by %s", name, sum.ByEntryChannel, channel)
		}
		retention, err := st.Retention(ctx, defaultMap(t), store.RetentionQuery{Conversion: "Order Completed", Return: "Order Completed"})
		if err != nil {
			t.Fatal(err)
		}
		if by := retention.ByChannel; len(by) != 1 || by[0].Channel != channel {
			t.Errorf("%s: retention by acquisition channel %+v, the sessionizer's first touch %s", name, by, channel)
		}
		paths, err := st.Paths(ctx, defaultMap(t), store.PathsQuery{Anchor: entry, Depth: 3, Convert: "Order Completed"})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{entry, second, "Order Completed"}; len(paths.Paths) != 1 || !slices.Equal(paths.Paths[0].Touchpoints, want) {
			t.Errorf("%s: paths from %s %+v, want %v as the sessionizer ordered them", name, entry, paths.Paths, want)
		}
		for anchor, want := range map[string]string{entry: second, second: "Order Completed"} {
			next, err := st.Next(ctx, defaultMap(t), store.NextQuery{Anchor: anchor, Window: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			if len(next.Touchpoints) != 1 || next.Touchpoints[0].Value != want {
				t.Errorf("%s: next after %s %+v, want %s as the sessionizer ordered them", name, anchor, next.Touchpoints, want)
			}
		}
	}
}

// TestPathsConvertLikeTheFunnel: "viewed, then ordered within the window" gets one answer in
// paths and in the funnel when the order has the view's very time but was sent before it: the
// funnel takes a step at its previous step's time in either order, and paths counts such an
// order as a conversion (tester 30's F8: 6 of 8 converted in the funnel, 5 of 8 in paths). An
// order before the view's time converts in neither. Matched in Waymark and, where the engine
// has the function (chdb), in ClickHouse.
func TestPathsConvertLikeTheFunnel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tied := func(user, name string, offset int, seq int64) ingest.Event {
		e := ev(user, name, offset)
		e.Seq = seq
		return e
	}
	events := []ingest.Event{
		tied("tie", "Order Completed", 0, 1), tied("tie", "Product Viewed", 0, 2), // sent order first
		tied("after", "Product Viewed", 0, 3), tied("after", "Order Completed", 60, 4),
		tied("before", "Order Completed", 0, 5), tied("before", "Product Viewed", 10, 6),
		tied("none", "Product Viewed", 0, 7),
	}
	var db string
	process := openStoreWith(t, func(c *store.Config) { db, c.FunnelMatching = c.Database, store.MatchProcess })
	writeEvents(t, process, events)
	auto := openStoreWith(t, func(c *store.Config) { c.Database = db })
	jm := defaultMap(t)
	for name, s := range map[string]*store.Store{"process": process, "auto": auto} {
		funnel, err := s.Funnel(ctx, jm, store.FunnelQuery{Steps: []string{"Product Viewed", "Order Completed"}, Window: 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		paths, err := s.Paths(ctx, jm, store.PathsQuery{Anchor: "Product Viewed", Direction: "start", Depth: 2, Window: 24 * time.Hour, Convert: "Order Completed", Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		converted := int64(0)
		for _, p := range paths.Paths {
			converted += p.Converted
		}
		if got := fmt.Sprintf("funnel %d→%d, paths %d→%d", funnel.Steps[0].Customers, funnel.Steps[1].Customers, paths.Persons, converted); got != "funnel 4→2, paths 4→2" {
			t.Errorf("%s: %s, want funnel 4→2, paths 4→2", name, got)
		}
	}
}

// TestDropoffReadsTiesInTheTieRulesOrder: a drop-off reads what a unit did after its step in the
// one tie rule's order (time, then as sent), as next and paths read it (tester 37's F1): a size
// guide opened in the second of a product view and sent after it is the view's next touchpoint
// and the last; sent before it, it is neither. Of several events of one time that can take the
// steps, the steps take them in step order, each the first it can: two views of one second
// with a coupon entered between them are steps 1 and 2, the coupon between. Matched in Waymark
// and, where the engine has the function (chdb), in ClickHouse.
func TestDropoffReadsTiesInTheTieRulesOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	seq := int64(0)
	tied := func(user, name string, offset int) ingest.Event {
		seq++
		e := ev(user, name, offset)
		e.Seq, e.MessageID = seq, fmt.Sprintf("%s-%d", user, seq)
		return e
	}
	events := []ingest.Event{
		tied("guide", "Product Viewed", 0), tied("guide", "Size Guide Opened", 0),
		tied("before", "Size Guide Opened", 0), tied("before", "Product Viewed", 0),
		tied("twice", "Product Viewed", 0), tied("twice", "Wishlist Added", 0), tied("twice", "Product Viewed", 0), tied("twice", "Shared", 60),
		tied("double", "Product Viewed", 0), tied("double", "Coupon Entered", 0), tied("double", "Product Viewed", 0), tied("double", "Coupon Removed", 0),
		tied("other", "Product Added", 0), tied("other", "Order Completed", 0), // the steps' names stored
	}
	var db string
	process := openStoreWith(t, func(c *store.Config) { db, c.FunnelMatching = c.Database, store.MatchProcess })
	writeEvents(t, process, events)
	auto := openStoreWith(t, func(c *store.Config) { c.Database = db })
	jm := defaultMap(t)
	ranked := func(rows []store.Ranked) string {
		var out []string
		for _, r := range rows {
			out = append(out, fmt.Sprintf("%s=%d", cmp.Or(r.Value, "("+r.Marker+")"), r.Count))
		}
		slices.Sort(out)
		return strings.Join(out, " ")
	}
	for _, tt := range []struct {
		steps      []string
		step       int
		last, next string
	}{
		{[]string{"Product Viewed", "Product Added"}, 1,
			"Coupon Removed=1 Product Viewed=1 Shared=1 Size Guide Opened=1", "(exit)=1 Coupon Entered=1 Size Guide Opened=1 Wishlist Added=1"},
		{[]string{"Product Viewed", "Product Viewed", "Order Completed"}, 2, "Coupon Removed=1 Shared=1", "Coupon Removed=1 Shared=1"},
	} {
		for name, s := range map[string]*store.Store{"process": process, "auto": auto} {
			res, err := s.Dropoff(ctx, jm, store.DropoffQuery{Funnel: store.FunnelQuery{Steps: tt.steps, Window: time.Hour}, Step: tt.step, Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			if last, next := ranked(res.LastEvents), ranked(res.NextEvents); last != tt.last || next != tt.next {
				t.Errorf("%s: %v, step %d: last %s, next %s; want last %s, next %s", name, tt.steps, tt.step, last, next, tt.last, tt.next)
			}
		}
	}
}
