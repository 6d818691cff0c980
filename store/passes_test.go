package store_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
	"github.com/waymark-dev/waymark/store"
	"github.com/waymark-dev/waymark/store/storetest"
)

// identityShop is a shop's events in every identity situation that puts an event under another
// person than its customer key, in time order: persons by userId alone; devices that browse and
// then log in (later events carry both ids, and the device's first events are merged into the
// user afterwards); kiosks several users sign in on (their anonymous events go to whoever signed
// in last); users on more devices than a person may hold (the links past the limit are refused,
// so events with both ids stay with the user while their device is another person); devices that
// never log in.
func identityShop(seed uint64, persons int) []string {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	t0 := time.Date(2026, 2, 2, 8, 0, 0, 0, time.UTC)
	type raw struct {
		t    time.Time
		json string
	}
	var events []raw
	n := 0
	add := func(t time.Time, typ, event, userID, anonymousID string) {
		n++
		m := map[string]any{"type": typ, "messageId": fmt.Sprintf("m%d", n), "timestamp": t.Format(time.RFC3339Nano)}
		if event != "" {
			m["event"] = event
		}
		if userID != "" {
			m["userId"] = userID
		}
		if anonymousID != "" {
			m["anonymousId"] = anonymousID
		}
		if typ == "track" {
			m["properties"] = map[string]any{"price": float64(n%41-20) / 4} // -5 to 5, for numeric filters
		}
		b, _ := json.Marshal(m)
		events = append(events, raw{t, string(b)})
	}
	names := []string{"Product Viewed", "Product Viewed", "Product Added", "Checkout Started", "Order Completed"}
	browse := func(t time.Time, userID, anonymousID string, k int) time.Time {
		for range k {
			t = t.Add(time.Duration(rng.IntN(40)) * time.Minute) // ties too
			if rng.IntN(4) == 0 {
				add(t, "page", "", userID, anonymousID)
			} else {
				add(t, "track", names[rng.IntN(len(names))], userID, anonymousID)
			}
		}
		return t
	}
	for p := range persons {
		user, device := fmt.Sprintf("u%03d", p), fmt.Sprintf("d%03d", p)
		t := t0.Add(time.Duration(rng.IntN(20*24)) * time.Hour)
		switch p % 5 {
		case 0:
			browse(t, user, "", 3+rng.IntN(6))
		case 1:
			t = browse(t, "", device, 2+rng.IntN(4))
			add(t, "identify", "", user, device)
			browse(t, user, device, 2+rng.IntN(6))
		case 2:
			kiosk := fmt.Sprintf("kiosk%d", p%3)
			add(t, "identify", "", user, kiosk)
			t = browse(t, user, kiosk, 1+rng.IntN(4))
			browse(t, "", kiosk, 1+rng.IntN(3))
		case 3:
			for d := range 5 {
				own := fmt.Sprintf("%s-%d", device, d)
				add(t, "identify", "", user, own)
				t = browse(t, user, own, 1+rng.IntN(3))
			}
		case 4:
			browse(t, "", device, 1+rng.IntN(5))
		}
	}
	slices.SortStableFunc(events, func(a, b raw) int { return a.t.Compare(b.t) })
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.json
	}
	return out
}

// TestPassesGiveTheSameAnswers: a store that reads the events in many passes over ranges of
// persons (Config.QueryPassEvents) answers every journey query as one that reads them in one,
// whatever persons the events were stored under and merged into since.
func TestPassesGiveTheSameAnswers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	one, db, jm, nEvents := identityStore(t)
	// About eight passes: enough ranges to split persons, merged persons and visits between
	// them, few enough to keep the test's queries (each pass is several) cheap on every engine.
	passEvents := uint64(nEvents / 8)
	open := func(matching string) (*store.Store, *prometheus.Registry) {
		reg := prometheus.NewRegistry()
		s, err := store.Open(ctx, store.Config{Addr: server.Addr, Database: db, FunnelMatching: matching, QueryPassEvents: passEvents, QueryTimeout: storetest.QueryHangGuard}, slog.New(slog.DiscardHandler), reg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, reg
	}
	many, reg := open(store.MatchProcess)
	type answer func(s *store.Store) (any, error)
	funnel := store.FunnelQuery{Steps: []string{"Product Viewed", "Product Added", "Order Completed"}, Window: 7 * 24 * time.Hour}
	bounded := funnel
	bounded.Steps = []string{"Product Viewed[price>-2.5]", "Product Added[price<=1.25]", "Order Completed[price>=0]"}
	bySessions := funnel
	bySessions.Steps, bySessions.CountBy = []string{"Product Viewed", "Product Added"}, store.CountSessions
	midShop := time.Date(2026, 2, 12, 0, 0, 0, 0, time.UTC) // identityShop's persons begin over 20 days from 2026-02-02
	tests := []struct {
		name string
		ask  answer
	}{
		{"funnel", func(s *store.Store) (any, error) { return s.Funnel(ctx, jm, funnel) }},
		{"funnel with numeric filters", func(s *store.Store) (any, error) { return s.Funnel(ctx, jm, bounded) }},
		{"funnel by channel", func(s *store.Store) (any, error) {
			q := funnel
			q.Breakdown = store.Breakdown{By: "channel"}
			return s.Funnel(ctx, jm, q)
		}},
		{"dropoff", func(s *store.Store) (any, error) {
			return s.Dropoff(ctx, jm, store.DropoffQuery{Funnel: funnel, Step: 1, Limit: 1000, IDsLimit: 1000})
		}},
		{"next", func(s *store.Store) (any, error) { return s.Next(ctx, jm, store.NextQuery{Anchor: "Product Viewed"}) }},
		{"paths", func(s *store.Store) (any, error) { return s.Paths(ctx, jm, store.PathsQuery{Anchor: "Product Viewed"}) }},
		{"retention", func(s *store.Store) (any, error) {
			return s.Retention(ctx, jm, store.RetentionQuery{Conversion: "Product Viewed"})
		}},
		{"stages", func(s *store.Store) (any, error) { return s.Stages(ctx, jm, store.StagesQuery{}) }},
		{"sessions", func(s *store.Store) (any, error) { return s.Sessions(ctx, jm, store.SessionsQuery{}) }},
		{"sessions of a range", func(s *store.Store) (any, error) {
			return s.Sessions(ctx, jm, store.SessionsQuery{From: midShop, To: midShop.AddDate(0, 0, 5)})
		}},
		{"funnel by sessions", func(s *store.Store) (any, error) { return s.Funnel(ctx, jm, bySessions) }},
		{"funnel by sessions from a time", func(s *store.Store) (any, error) {
			q := bySessions
			q.From, q.Breakdown = midShop, store.Breakdown{By: "channel"}
			return s.Funnel(ctx, jm, q)
		}},
		{"dropoff by sessions", func(s *store.Store) (any, error) {
			return s.Dropoff(ctx, jm, store.DropoffQuery{Funnel: bySessions, Step: 1, Limit: 1000, IDsLimit: 1000})
		}},
	}
	text := func(s *store.Store, ask answer) string {
		t.Helper()
		res, err := ask(s)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := gatherCounters(t, reg)["waymark_store_scan_passes_total"]
			want := text(one, tt.ask)
			if got := text(many, tt.ask); got != want {
				t.Errorf("in passes:\n%s\nin one:\n%s", got, want)
			}
			if passes := gatherCounters(t, reg)["waymark_store_scan_passes_total"] - before; passes < 6 {
				t.Errorf("%v passes of %d events, want at least 6", passes, nEvents)
			}
		})
	}
	res, err := one.Funnel(ctx, jm, funnel)
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps[0].Customers < 50 || res.Steps[2].Customers == 0 {
		t.Errorf("funnel %+v: the shop is too small to say anything", res.Steps)
	}
	filtered, err := one.Funnel(ctx, jm, bounded)
	if err != nil {
		t.Fatal(err)
	}
	if filtered.Steps[2].Customers == 0 || filtered.Steps[0].Customers == res.Steps[0].Customers {
		t.Errorf("funnel %+v: the numeric filters keep nothing or drop nothing of %+v", filtered.Steps, res.Steps)
	}
	sessions, err := one.Funnel(ctx, jm, bySessions)
	if err != nil {
		t.Fatal(err)
	}
	if sessions.Steps[1].Customers == 0 || sessions.Steps[0].Customers <= res.Steps[0].Customers {
		t.Errorf("funnel by sessions %+v: fewer sessions than persons of %+v", sessions.Steps, res.Steps)
	}
	if server.FunnelUDF { // the in-engine funnel reads in the same passes
		engine, _ := open(store.MatchEngine)
		for _, q := range []store.FunnelQuery{funnel, bounded} {
			want := text(one, func(s *store.Store) (any, error) { return s.Funnel(ctx, jm, q) })
			if got := text(engine, func(s *store.Store) (any, error) { return s.Funnel(ctx, jm, q) }); got != want {
				t.Errorf("in engine, in passes:\n%s\nin process, in one:\n%s", got, want)
			}
		}
	}
}

// identityStore stores identityShop's events through the real sessionizer (every fourth one
// late, and a kiosk's events stored before its sign-ins were known) and returns a store over them
// that reads in one pass and matches funnels in Waymark, its database, the journey map and how
// many events there are.
func identityStore(t *testing.T) (*store.Store, string, *sessionize.Map, int) {
	t.Helper()
	ctx := context.Background()
	var db string
	one := openStoreWith(t, func(c *store.Config) { db, c.FunnelMatching = c.Database, store.MatchProcess })
	jm := defaultMap(t)
	sz, err := sessionize.New(sessionize.Config{MaxIDsPerPerson: 3}, jm)
	if err != nil {
		t.Fatal(err)
	}
	runner, err := sessionize.NewRunner(sz, one, one, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	received := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	lines := identityShop(5, 120)
	// Every fourth event arrives after the rest: a login can reach the sessionizer after the
	// events it gives to its user, which are then stored under another person.
	var onTime, late []ingest.Event
	for i, l := range lines {
		e, err := ingest.Decode([]byte(l), "passes", received)
		if err != nil {
			t.Fatal(err)
		}
		if i%4 == 3 {
			late = append(late, e)
		} else {
			onTime = append(onTime, e)
		}
	}
	events := append(onTime, late...)
	for batch := range slices.Chunk(events, 97) {
		if err := runner.Write(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}

	// A kiosk's anonymous events stored under the kiosk, before the sign-ins that give them to
	// two users were known: their persons come from the sign-ins alone (the first, before any
	// sign-in, is the first user's).
	kiosk := time.Date(2026, 2, 10, 9, 0, 0, 0, time.UTC)
	var b sessionize.Batch
	for i, who := range []string{"", "a-shopper", "", "b-shopper", "", ""} {
		e := ingest.Event{Source: "passes", Type: "track", Event: "Product Viewed", MessageID: fmt.Sprintf("kiosk-%d", i),
			UserID: who, AnonymousID: "zz-kiosk", Timestamp: kiosk.Add(time.Duration(i) * time.Minute), ReceivedAt: received, Raw: []byte("{}")}
		if i == 5 {
			e.Event = "Order Completed"
		}
		b.Events, b.Channels, b.PersonIDs = append(b.Events, e), append(b.Channels, ""), append(b.PersonIDs, cmp.Or(who, "zz-kiosk"))
	}
	b.SignIns = []sessionize.DeviceSignIns{{Device: "zz-kiosk", From: []int64{kiosk.Add(time.Minute).UnixMilli(), kiosk.Add(3 * time.Minute).UnixMilli()}, Users: []string{"a-shopper", "b-shopper"}}}
	if err := one.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	return one, db, jm, len(lines) + len(b.Events)
}

// TestPassesReadEventsStoredBeforePersonsOnEvents: events stored at schema version 4 have no
// person_id in their parts (ClickHouse computes its default, the customer key, when it reads
// them), and the passes select by it before any other column: they must still find every one.
func TestPassesReadEventsStoredBeforePersonsOnEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, db := v4Database(t)
	day := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	var rows [][]any
	var merges [][]any
	for c := range 40 {
		key := fmt.Sprintf("u:%02d", c)
		if c%3 == 0 { // browsed anonymously, merged into the user since
			key = fmt.Sprintf("a:%02d", c)
			merges = append(merges, []any{key, fmt.Sprintf("u:%02d", c), uint64(2)})
		}
		for i, event := range []string{"Product Viewed", "Product Added", "Order Completed"}[:1+c%3] {
			ms := uint64(day.UnixMilli()) + uint64(c*60_000+i*1000)
			rows = append(rows, []any{"web", fmt.Sprintf("m%d-%d", c, i), "track", event, "", key, ms, day})
		}
	}
	insert(t, conn, db+".events", "source, message_id, type, event, user_id, customer_key, ts_ms, date", rows...)
	insert(t, conn, db+".persons", "customer_key, person_id, version", merges...)

	one := openStoreWith(t, func(c *store.Config) { c.Database = db }) // migrates
	many := openStoreWith(t, func(c *store.Config) { c.Database, c.QueryPassEvents = db, 5 })
	jm := defaultMap(t)
	q := store.FunnelQuery{Steps: []string{"Product Viewed", "Product Added", "Order Completed"}, Window: time.Hour}
	var answers []string
	for _, s := range []*store.Store{one, many} {
		res, err := s.Funnel(ctx, jm, q)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(res.Steps)
		answers = append(answers, string(b))
		if res.Steps[0].Customers != 40 {
			t.Errorf("%d customers viewed a product, want 40", res.Steps[0].Customers)
		}
	}
	if answers[0] != answers[1] {
		t.Errorf("in passes: %s\nin one: %s", answers[1], answers[0])
	}
}

// TestPassesHoldTheirOwnVisits: a query that counts sessions loads, per pass, only the visits of
// the customer keys that pass reads, so its memory follows a pass rather than the sessions table:
// over persons who each browse on one key of their own, the passes of a many-pass store load
// every visit once between them, as one pass does, alone and in a batch, and answer the same.
func TestPassesHoldTheirOwnVisits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	jm := defaultMap(t)
	var db string
	one := openStoreWith(t, func(c *store.Config) { db, c.FunnelMatching = c.Database, store.MatchProcess })
	sz, err := sessionize.New(sessionize.Config{}, jm)
	if err != nil {
		t.Fatal(err)
	}
	runner, err := sessionize.NewRunner(sz, one, one, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 4, 6, 8, 0, 0, 0, time.UTC)
	var events []ingest.Event
	for p := range 60 {
		for visit := range 3 { // hours apart: three visits each
			for i, name := range []string{"Product Viewed", "Product Added"} {
				at := t0.Add(time.Duration(visit*3)*time.Hour + time.Duration(p*10+i)*time.Second)
				events = append(events, ingest.Event{Source: "visits", Type: "track", Event: name, MessageID: fmt.Sprintf("v%d-%d-%d", p, visit, i),
					UserID: fmt.Sprintf("u%02d", p), Timestamp: at, ReceivedAt: at, Raw: []byte("{}")})
			}
		}
	}
	slices.SortStableFunc(events, func(a, b ingest.Event) int { return a.Timestamp.Compare(b.Timestamp) })
	for batch := range slices.Chunk(events, 50) {
		if err := runner.Write(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	open := func(passEvents uint64) (*store.Store, *prometheus.Registry) {
		reg := prometheus.NewRegistry()
		s, err := store.Open(ctx, store.Config{Addr: server.Addr, Database: db, FunnelMatching: store.MatchProcess, QueryPassEvents: passEvents, QueryTimeout: storetest.QueryHangGuard}, slog.New(slog.DiscardHandler), reg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, reg
	}
	whole, wholeReg := open(0)
	many, manyReg := open(30)
	funnel := url.Values{"steps": {"Product Viewed,Product Added"}, "count_by": {"sessions"}}
	tests := []struct {
		name string
		ask  func(s *store.Store) (any, error)
	}{
		{"sessions", func(s *store.Store) (any, error) { return s.Sessions(ctx, jm, store.SessionsQuery{}) }},
		{"funnel by sessions", func(s *store.Store) (any, error) { return s.Query(ctx, jm, "funnel", funnel) }},
		{"in a batch", func(s *store.Store) (any, error) {
			answers, err := s.QueryBatch(ctx, jm, []store.BatchQuery{{Name: "sessions"}, {Name: "funnel", Params: funnel}, {Name: "stages"}})
			for _, a := range answers {
				err = cmp.Or(err, a.Err)
			}
			return answers, err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var answers []string
			var loaded, passes []float64
			for _, s := range []struct {
				store *store.Store
				reg   *prometheus.Registry
			}{{whole, wholeReg}, {many, manyReg}} {
				before := gatherCounters(t, s.reg)
				res, err := tt.ask(s.store)
				if err != nil {
					t.Fatal(err)
				}
				answers = append(answers, mustJSON(t, res))
				after := gatherCounters(t, s.reg)
				loaded = append(loaded, after["waymark_store_scan_visits_total"]-before["waymark_store_scan_visits_total"])
				passes = append(passes, after["waymark_store_scan_passes_total"]-before["waymark_store_scan_passes_total"])
			}
			if answers[0] != answers[1] {
				t.Errorf("in passes:\n%s\nin one:\n%s", answers[1], answers[0])
			}
			if loaded[0] < 180 {
				t.Errorf("one pass loaded %v visits, want the 180 of the 60 persons (or more, a batch's queries loading them each)", loaded[0])
			}
			if passes[1] < 5 || loaded[1] != loaded[0] {
				t.Errorf("%v passes loaded %v visits, want them to load the %v of one pass between them", passes[1], loaded[1], loaded[0])
			}
		})
	}
}

// TestPassesCutThePersonsAsMerged: the passes of a scan split the persons the queries count, after
// merges, about evenly, not the ids their events were stored under. Each of 40 persons browses on
// a device (ids "a00"…, which sort before every user id) and then logs in as a user ("u00"…), so
// most events are stored under a device id that is no person's any more: cut by those, every
// pass but the last held none of the persons.
func TestPassesCutThePersonsAsMerged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var db string
	s := openStoreWith(t, func(c *store.Config) { db = c.Database })
	sz, err := sessionize.New(sessionize.Config{}, defaultMap(t))
	if err != nil {
		t.Fatal(err)
	}
	runner, err := sessionize.NewRunner(sz, s, s, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	const persons, anonymous = 40, 6
	t0 := time.Date(2026, 4, 6, 8, 0, 0, 0, time.UTC)
	var events []ingest.Event
	for p := range persons {
		user, device := fmt.Sprintf("u%02d", p), fmt.Sprintf("a%02d", p)
		at := func(i int) time.Time { return t0.Add(time.Duration(p)*time.Hour + time.Duration(i)*time.Minute) }
		for i := range anonymous {
			events = append(events, ingest.Event{Source: "shop", Type: "track", Event: "Product Viewed", MessageID: fmt.Sprintf("%s-%d", device, i),
				AnonymousID: device, Timestamp: at(i), ReceivedAt: at(i), Raw: []byte("{}")})
		}
		events = append(events, ingest.Event{Source: "shop", Type: "identify", MessageID: user + "-login",
			UserID: user, AnonymousID: device, Timestamp: at(anonymous), ReceivedAt: at(anonymous), Raw: []byte("{}")})
	}
	if err := runner.Write(ctx, events); err != nil {
		t.Fatal(err)
	}
	// Passes of about 40 events: 7 or 8 of them over the 280.
	many, err := store.Open(ctx, store.Config{Addr: server.Addr, Database: db, QueryPassEvents: 40, QueryTimeout: storetest.QueryHangGuard}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { many.Close() })
	bounds, err := many.PassBounds(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(bounds) < 5 {
		t.Fatalf("%d passes, want at least 6 (passes of 40 events over %d)", len(bounds)+1, len(events))
	}
	held := make([]int, len(bounds)+1) // the persons each pass holds
	for p := range persons {
		pass, _ := slices.BinarySearch(bounds, fmt.Sprintf("u%02d", p)+"\x00") // after every bound at or below the id
		held[pass]++
	}
	if most, fair := slices.Max(held), persons/len(held); most > 2*fair {
		t.Errorf("passes beginning at %q hold %v of the %d persons, want none more than twice their share (%d)", bounds, held, persons, fair)
	}
}
