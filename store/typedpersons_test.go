package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/store"
)

// TestMigrateTypesStoredPersonIDs stores rows as builds before schema version 18 wrote them (a
// device's person under its anonymousId as sent) in a database recorded at version 17, then
// migrates: a device-only person, an anonymous device merged into its user, two devices merged
// with no userId, a user's server calls, a device's lost sign-ins and a shop that sends one text
// as a customer's anonymousId and userId. The devices' person ids must come out typed
// (ingest.DevicePerson) in events, sessions and the persons table, the rest as they were, and
// every answer as before (the persons a drop-off lists with their devices typed). Migrating again
// after the version's record was lost (a process died in between) changes nothing.
func TestMigrateTypesStoredPersonIDs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, db := rawConn(t), testDatabase(t)
	openStoreWith(t, func(c *store.Config) { c.Database = db })
	atVersion17(t, conn, db)

	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	at := func(minute int) uint64 { return uint64(day.Add(time.Duration(minute) * time.Minute).UnixMilli()) }
	lost := ingest.Internal + "kiosk"
	type row struct{ id, typ, event, user, anon, person string }
	rows := []row{
		{"e1", "track", "Product Viewed", "", "d-only", "d-only"},          // a device that never signed in
		{"e2", "track", "Product Viewed", "", "d-merged", "d-merged"},      // stored before its identify
		{"e3", "identify", "", "alice", "d-merged", "alice"},               // merged it into alice
		{"e4", "track", "Order Completed", "alice", "d-merged", "alice"},   //
		{"e5", "track", "Product Viewed", "bob", "", "bob"},                // a server's calls
		{"e6", "track", "Order Completed", "bob", "", "bob"},               //
		{"e7", "track", "Product Viewed", "", "d-y", "d-y"},                // two devices, one person named d-x
		{"e8", "track", "Order Completed", "", "d-x", "d-x"},               //
		{"e9", "track", "Product Viewed", "", "kiosk", lost},               // a span of lost sign-ins
		{"e10", "track", "Product Viewed", "", "c1", "c1"},                 // the shop's one text, before
		{"e11", "identify", "", "c1", "c1", "c1"},                          // its identify
		{"e12", "track", "Order Completed", "c1", "c1", "c1"},              //
		{"e13", "track", "Product Viewed", "", "d-late", "d-late"},         // merged into carol later
		{"e14", "track", "Order Completed", "carol", "d-late2", "carol"},   //
		{"e15", "identify", "", "carol", "d-late", "carol"},                //
		{"e16", "track", "Product Added", "", "d-only", "d-only"},          //
		{"e17", "track", "Product Viewed", "", "d-only-too", "d-only-too"}, // another never signed in
		{"e18", "track", "Checkout Started", "b1", "", "b1"},               // two one-time buyers, userId only
		{"e19", "track", "Order Completed", "b1", "", "b1"},                //
		{"e20", "track", "Checkout Started", "b2", "", "b2"},               //
		{"e21", "track", "Order Completed", "b2", "", "b2"},                //
		{"e22", "identify", "", "b2", "b1", "b2"},                          // forged: b2 signs in on "device" b1
	}
	var evs [][]any
	for i, r := range rows {
		key := r.anon
		if key == "" {
			key = r.user
		}
		evs = append(evs, []any{"web", r.id, r.typ, r.event, r.user, r.anon, key, r.person, at(i), day, "{}"})
	}
	insert(t, conn, db+".events", "source, message_id, type, event, user_id, anonymous_id, customer_key, person_id, ts_ms, date, raw", evs...)
	insert(t, conn, db+".sessions", "session_id, customer_key, person_id, start_ms, end_ms, date, events, version",
		[]any{"s1", "d-only", "d-only", at(0), at(15), day, uint32(2), uint64(1)},
		[]any{"s2", "d-merged", "alice", at(1), at(3), day, uint32(2), uint64(1)},
		[]any{"s3", "bob", "bob", at(4), at(5), day, uint32(2), uint64(1)},
		[]any{"s4", "d-y", "d-y", at(6), at(6), day, uint32(1), uint64(1)},
		[]any{"s5", "kiosk", lost, at(8), at(8), day, uint32(1), uint64(1)},
		[]any{"s6", "c1", "c1", at(9), at(11), day, uint32(2), uint64(1)})
	insert(t, conn, db+".persons", "customer_key, person_id, version",
		[]any{"d-merged", "alice", uint64(1)}, []any{"alice", "alice", uint64(1)},
		[]any{"d-y", "d-x", uint64(1)}, []any{"d-x", "d-x", uint64(1)},
		[]any{"c1", "c1", uint64(1)},
		[]any{"d-late", "d-late", uint64(1)}, // its own person first, then carol's
		[]any{"d-late", "carol", uint64(2)}, []any{"carol", "carol", uint64(2)}, []any{"d-late2", "carol", uint64(2)},
		// The forged identify joined the device a:b1 into u:b2's person, and the old code keyed
		// the device's row by its untyped text: the user b1's own events moved to b2 too.
		[]any{"b1", "b2", uint64(1)}, []any{"b2", "b2", uint64(1)})
	insert(t, conn, db+".identity_links", "a, b, version",
		[]any{"a:d-merged", "u:alice", uint64(1)}, []any{"a:d-x", "a:d-y", uint64(1)}, []any{"a:c1", "u:c1", uint64(1)},
		[]any{"a:c1", "a:c1", uint64(1)}, []any{"a:d-late2", "u:carol", uint64(2)}, []any{"a:d-late", "u:carol", uint64(2)},
		[]any{"u:b2", "a:b1", uint64(1)}) // the forged sign-in, userId first as sessionize stores it

	jm := defaultMap(t)
	funnel := store.FunnelQuery{Steps: []string{"Product Viewed", "Order Completed"}, Window: 24 * time.Hour}
	answers := func(s *store.Store) map[string]string {
		t.Helper()
		out := map[string]string{}
		for name, ask := range map[string]func() (any, error){
			"funnel": func() (any, error) { return s.Funnel(ctx, jm, funnel) },
			"dropoff": func() (any, error) {
				return s.Dropoff(ctx, jm, store.DropoffQuery{Funnel: funnel, Step: 1, Limit: 1000, IDsLimit: 1000})
			},
			"retention": func() (any, error) {
				return s.Retention(ctx, jm, store.RetentionQuery{Conversion: "Product Viewed", Return: "Order Completed"})
			},
			"sessions": func() (any, error) { return s.Sessions(ctx, jm, store.SessionsQuery{}) },
			"funnel by sessions": func() (any, error) {
				q := funnel
				q.CountBy = store.CountSessions
				return s.Funnel(ctx, jm, q)
			},
		} {
			res, err := ask()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			b, err := json.Marshal(res)
			if err != nil {
				t.Fatal(err)
			}
			out[name] = string(b)
		}
		return out
	}
	// The buyers' funnel: b1 and b2 are two persons, whom the old rows counted as one (b1's
	// orders moved to b2 by the device a:b1's override, keyed "b1").
	checkout := store.FunnelQuery{Steps: []string{"Checkout Started", "Order Completed"}, Window: 24 * time.Hour}
	buyers := func(s *store.Store) []int64 {
		t.Helper()
		res, err := s.Funnel(ctx, jm, checkout)
		if err != nil {
			t.Fatalf("checkout funnel: %v", err)
		}
		var n []int64
		for _, st := range res.Steps {
			n = append(n, st.Customers)
		}
		return n
	}
	old := openRaw(t, db) // no Migrate: the answers the old rows gave
	before := answers(old)
	if got, want := buyers(old), []int64{1, 1}; !slices.Equal(got, want) {
		t.Fatalf("before the migration the checkout funnel counts %v, want %v (the forgery's fault)", got, want)
	}
	if got, want := dropoffPersons(t, before["dropoff"]), []string{lost, "d-only", "d-only-too"}; !slices.Equal(got, want) {
		t.Fatalf("before the migration the drop-off lists %q, want %q", got, want)
	}

	s := openStoreWith(t, func(c *store.Config) { c.Database = db }) // migrates to 18
	dev := ingest.DevicePerson
	wantEvents := map[string]string{
		"e1": dev("d-only"), "e2": dev("d-merged"), "e3": "alice", "e4": "alice", "e5": "bob", "e6": "bob",
		"e7": dev("d-y"), "e8": dev("d-x"), "e9": lost, "e10": "c1", "e11": "c1", "e12": "c1",
		"e13": dev("d-late"), "e14": "carol", "e15": "carol", "e16": dev("d-only"), "e17": dev("d-only-too"),
		"e18": "b1", "e19": "b1", "e20": "b2", "e21": "b2", "e22": "b2",
	}
	wantSessions := map[string]string{"s1": dev("d-only"), "s2": "alice", "s3": "bob", "s4": dev("d-y"), "s5": lost, "s6": "c1"}
	wantPersons := []string{ // key → person, version
		dev("d-late") + "→carol 2", dev("d-late2") + "→carol 2",
		dev("d-merged") + "→alice 1", dev("d-x") + "→" + dev("d-x") + " 1", dev("d-y") + "→" + dev("d-x") + " 1",
		"alice→alice 1", "c1→c1 1", "carol→carol 2",
		dev("b1") + "→b2 1", "b2→b2 1", // the device a:b1's override no longer meets the user b1's events
	}
	slices.Sort(wantPersons)
	check := func(what string) {
		t.Helper()
		for table, want := range map[string]map[string]string{"events": wantEvents, "sessions": wantSessions} {
			id := map[string]string{"events": "message_id", "sessions": "session_id"}[table]
			for _, r := range persons(t, conn, db, table, id) {
				if r.person != want[r.id] {
					t.Errorf("%s: %s %s: person_id %q, want %q", what, table, r.id, r.person, want[r.id])
				}
			}
		}
		if got := personsRows(t, conn, db); !slices.Equal(got, wantPersons) {
			t.Errorf("%s: persons rows\n%q, want\n%q", what, got, wantPersons)
		}
		if got, want := buyers(s), []int64{2, 2}; !slices.Equal(got, want) {
			t.Errorf("%s: the checkout funnel counts %v, want %v (b1's own order is b1's)", what, got, want)
		}
		after := answers(s)
		for name, b := range before {
			if name == "dropoff" { // its persons are ids: the devices' typed, the rest as they were
				if got, want := dropoffPersons(t, after[name]), []string{dev("d-only"), dev("d-only-too"), lost}; !slices.Equal(got, want) {
					t.Errorf("%s: the drop-off lists %q, want %q", what, got, want)
				}
				b, after[name] = withoutPersons(t, b), withoutPersons(t, after[name])
			}
			if after[name] != b {
				t.Errorf("%s: %s answers\n%s\nwant (as before)\n%s", what, name, after[name], b)
			}
		}
	}
	check("migrated")
	if t.Failed() {
		return
	}
	atVersion17(t, conn, db) // the record of 18 lost: a process died before writing it
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	check("migrated twice")
}

// atVersion17 records versions 1 to 17 alone in db's schema_migrations, as a database the builds
// before typed person ids left (its tables have every column of 18, which added none).
func atVersion17(t testing.TB, conn driver.Conn, db string) {
	t.Helper()
	exec(t, conn, "DROP TABLE `"+db+"`.`schema_migrations`")
	exec(t, conn, "CREATE TABLE `"+db+"`.`schema_migrations` (version UInt32, applied_at DateTime) ENGINE = MergeTree() ORDER BY version")
	var rows [][]any
	for v := 1; v <= 17; v++ {
		rows = append(rows, []any{uint32(v), time.Now().UTC()})
	}
	insert(t, conn, db+".schema_migrations", "version, applied_at", rows...)
}

// personsRows lists the overrides of db's persons table as "key→person version", the newest
// version of each key (as queries read them), sorted.
func personsRows(t testing.TB, conn driver.Conn, db string) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT customer_key, argMax(person_id, version), max(version) FROM `"+db+"`.`persons` GROUP BY customer_key")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var key, person string
		var version uint64
		if err := rows.Scan(&key, &person, &version); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s→%s %d", key, person, version))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// dropoffPersons returns the persons a drop-off answer (JSON) lists, sorted.
func dropoffPersons(t testing.TB, answer string) []string {
	t.Helper()
	var d struct{ Persons []string }
	if err := json.Unmarshal([]byte(answer), &d); err != nil {
		t.Fatal(err)
	}
	slices.Sort(d.Persons)
	return d.Persons
}

// withoutPersons returns a drop-off answer (JSON) without its list of persons.
func withoutPersons(t testing.TB, answer string) string {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal([]byte(answer), &d); err != nil {
		t.Fatal(err)
	}
	delete(d, "persons")
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// typesAt17 stores, in a database recorded at version 17, a device's event and session as builds
// before version 18 wrote them (its person under its anonymousId as sent), and returns the
// database's name.
func typesAt17(t testing.TB, conn driver.Conn) string {
	t.Helper()
	db := testDatabase(t)
	openStoreWith(t, func(c *store.Config) { c.Database = db })
	atVersion17(t, conn, db)
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	ms := uint64(day.UnixMilli())
	insert(t, conn, db+".events", "source, message_id, type, event, user_id, anonymous_id, customer_key, person_id, ts_ms, date, raw",
		[]any{"web", "e1", "track", "Product Viewed", "", "d", "d", "d", ms, day, "{}"})
	insert(t, conn, db+".sessions", "session_id, customer_key, person_id, start_ms, end_ms, date, events, version",
		[]any{"s1", "d", "d", ms, ms, day, uint32(1), uint64(1)})
	return db
}

// TestMigrateStopsAtAForeignMutation migrates a database at version 17 whose sessions table has
// an unfinished mutation that is not the migration's and cannot finish. mutate waits until no
// mutation of the table is unfinished, and ClickHouse 18.16 reports no failure: Migrate must fail
// naming it before its first statement, not wait for ever with the store half migrated.
func TestMigrateStopsAtAForeignMutation(t *testing.T) {
	t.Parallel()
	conn := rawConn(t)
	db := typesAt17(t, conn)
	// Current releases (the embedded engine) wait for it and return its failure, 18.16 returns
	// at once: either way it stays unfinished, which the read of system.mutations below checks.
	_ = conn.Exec(context.Background(), "ALTER TABLE `"+db+"`.`sessions` UPDATE events = events + throwIf(start_ms > 0) WHERE 1")
	t.Cleanup(func() { // current releases retry it until killed; 18.16 has no KILL MUTATION, and the database is dropped
		_ = conn.Exec(context.Background(), "KILL MUTATION WHERE database = '"+db+"'")
	})
	var id string
	if err := conn.QueryRow(context.Background(), "SELECT mutation_id FROM system.mutations WHERE database = ? AND table = 'sessions' AND is_done = 0", db).Scan(&id); err != nil {
		t.Fatalf("the stuck mutation: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a hang guard only
	defer cancel()
	err := openRaw(t, db).Migrate(ctx)
	if err == nil {
		t.Fatal("Migrate succeeded past a mutation that cannot finish")
	}
	for _, want := range []string{db + ".sessions", "mutation_id " + id, "throwIf(start_ms > 0)", "KILL MUTATION", "DETACH TABLE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Migrate's error does not say %q: %v", want, err)
		}
	}
	if got := persons(t, conn, db, "events", "message_id"); len(got) != 1 || got[0].person != "d" {
		t.Errorf("events after the failed Migrate: %+v, want e1 untouched (person_id \"d\")", got)
	}
}

// TestMigrateTypesConcurrently migrates a database at version 17 from several stores at once: each
// sees the others' mutations as the migration's own (ownMutations, as ClickHouse stores their
// text) and waits for them, so every Migrate succeeds and the device's ids come out typed once.
func TestMigrateTypesConcurrently(t *testing.T) {
	t.Parallel()
	const migrators = 4
	conn := rawConn(t)
	db := typesAt17(t, conn)
	errs := make([]error, migrators)
	var wg sync.WaitGroup
	for i := range migrators {
		s := openRaw(t, db)
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a hang guard only
			defer cancel()
			errs[i] = s.Migrate(ctx)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Migrate %d of %d at once: %v", i+1, migrators, err)
		}
	}
	for _, table := range []string{"events", "sessions"} {
		id := map[string]string{"events": "message_id", "sessions": "session_id"}[table]
		for _, r := range persons(t, conn, db, table, id) {
			if r.person != ingest.DevicePerson("d") {
				t.Errorf("%s %s: person_id %q, want %q", table, r.id, r.person, ingest.DevicePerson("d"))
			}
		}
	}
}
