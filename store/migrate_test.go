package store_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/store"
)

// ownPerson is the person id of a row stored at version 4 by its customer key, as version 18
// types it: alice's is hers, the anonymous device's typed.
func ownPerson(key string) string {
	if key == "alice" {
		return key
	}
	return ingest.DevicePerson(key)
}

// TestMigrateUpgradesVersion4 creates a database as schema version 4 left it (the single-node DDL
// of that release, testdata/schema-v4-single.sql, with versions 1 to 4 recorded), with rows in
// events and sessions, then opens the store on it and migrates. The database must then be at
// SchemaVersion, its old rows read person_id = customer_key (before and after a merge), a device's
// typed by version 18 (ingest.DevicePerson: the anonymous row's key is nobody's userId), a
// person_id given on insert is kept, a second Migrate changes nothing, and its columns are those
// of a database migrated from empty.
func TestMigrateUpgradesVersion4(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, db := v4Database(t)
	day := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// Rows with the columns of version 4 only.
	insert(t, conn, db+".events", "source, message_id, type, event, user_id, customer_key, ts_ms, date",
		[]any{"web", "m1", "track", "Product Viewed", "alice", "alice", uint64(1767225600000), day},
		[]any{"web", "m2", "track", "Order Completed", "", "anon-1", uint64(1767225660000), day})
	insert(t, conn, db+".sessions", "session_id, customer_key, start_ms, end_ms, date, events, version",
		[]any{"s1", "alice", uint64(1767225600000), uint64(1767225600000), day, uint32(1), uint64(1)},
		[]any{"s2", "anon-1", uint64(1767225660000), uint64(1767225660000), day, uint32(1), uint64(1)})

	s := openStoreWith(t, func(c *store.Config) { c.Database = db }) // migrates
	idColumn := map[string]string{"events": "message_id", "sessions": "session_id"}
	if got, want := versions(t, conn, db), wantVersions(); !slices.Equal(got, want) {
		t.Errorf("recorded versions after Migrate = %v, want %v", got, want)
	}
	for table, id := range idColumn {
		for _, r := range persons(t, conn, db, table, id) {
			if want := ownPerson(r.key); r.person != want {
				t.Errorf("%s %s stored at version 4: person_id %q, want %q (its customer_key's)", table, r.id, r.person, want)
			}
		}
	}

	// Sessions stored before their µs were kept read as before: from the start of start_ms
	// through the end of end_ms.
	if got := subMicros(t, conn, db); !slices.Equal(got, []string{"s1 0 999", "s2 0 999"}) {
		t.Errorf("sessions stored at version 4: (id, start_sub_us, end_sub_us) %q, want 0 and 999", got)
	}

	// Rows with an explicit person id: a key already known to belong to another person.
	insert(t, conn, db+".events", "source, message_id, customer_key, person_id, date", []any{"web", "m3", "anon-2", "alice", day})
	insert(t, conn, db+".sessions", "session_id, customer_key, person_id, date, version", []any{"s3", "anon-2", "alice", day, uint64(1)})
	for _, table := range []string{"events", "sessions"} {
		exec(t, conn, "OPTIMIZE TABLE `"+db+"`.`"+table+"` FINAL") // a merge writes the defaults
	}
	want := map[string][][3]string{
		"events":   {{"m1", "alice", "alice"}, {"m2", "anon-1", ingest.DevicePerson("anon-1")}, {"m3", "anon-2", "alice"}},
		"sessions": {{"s1", "alice", "alice"}, {"s2", "anon-1", ingest.DevicePerson("anon-1")}, {"s3", "anon-2", "alice"}},
	}
	for table, rows := range want {
		var got [][3]string
		for _, r := range persons(t, conn, db, table, idColumn[table]) {
			got = append(got, [3]string{r.id, r.key, r.person})
		}
		if !slices.Equal(got, rows) {
			t.Errorf("%s (id, customer_key, person_id) after a merge = %v, want %v", table, got, rows)
		}
	}

	state := func() string {
		return fmt.Sprint(versions(t, conn, db), columns(t, conn, db), persons(t, conn, db, "events", "message_id"), persons(t, conn, db, "sessions", "session_id"))
	}
	before := state()
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if after := state(); after != before {
		t.Errorf("a second Migrate changed the database (versions, columns, rows):\nbefore %s\nafter  %s", before, after)
	}

	freshDB := testDatabase(t)
	openStoreWith(t, func(c *store.Config) { c.Database = freshDB })
	upgraded, fresh := columns(t, conn, db), columns(t, conn, freshDB)
	for i := range max(len(upgraded), len(fresh)) {
		if i >= len(upgraded) || i >= len(fresh) || upgraded[i] != fresh[i] {
			t.Errorf("columns of the upgraded database differ from a fresh one's from column %d:\nupgraded %q\nfresh    %q", i, upgraded[i:], fresh[i:])
			break
		}
	}
}

// rawConn connects to the test server on its own, to set up and inspect databases as SQL does,
// without the store.
func rawConn(t testing.TB) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{server.Addr},
		Compression: &clickhouse.Compression{Method: clickhouse.CompressionLZ4}, // as the store connects
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func exec(t testing.TB, conn driver.Conn, stmt string) {
	t.Helper()
	if err := conn.Exec(context.Background(), stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

// v4Database creates a database of its own as schema version 4 left it (see createV4), and
// returns a connection to the test server and the database's name.
func v4Database(t testing.TB) (driver.Conn, string) {
	t.Helper()
	conn, db := rawConn(t), testDatabase(t)
	createV4(t, conn, db)
	return conn, db
}

// createV4 creates database db as Migrate at schema version 4 did: its DDL, then one row per
// version in schema_migrations.
func createV4(t testing.TB, conn driver.Conn, db string) {
	t.Helper()
	ddl, err := os.ReadFile("testdata/schema-v4-single.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range strings.Split(strings.TrimSpace(string(ddl)), ";\n\n") {
		exec(t, conn, strings.ReplaceAll(strings.TrimSuffix(stmt, ";"), "`waymark`", "`"+db+"`"))
	}
	for v := 1; v <= 4; v++ {
		insert(t, conn, db+".schema_migrations", "version, applied_at", []any{uint32(v), time.Now().UTC()})
	}
}

// insert inserts rows into table (database.table) as the store does, in one batch.
// (Exec of an INSERT … VALUES hangs with this client on ClickHouse 18.16.)
func insert(t testing.TB, conn driver.Conn, table, columns string, rows ...[]any) {
	t.Helper()
	batch, err := conn.PrepareBatch(context.Background(), "INSERT INTO "+table+" ("+columns+")")
	if err != nil {
		t.Fatalf("insert into %s: %v", table, err)
	}
	defer batch.Abort()
	for _, r := range rows {
		if err := batch.Append(r...); err != nil {
			t.Fatalf("insert into %s: %v", table, err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatalf("insert into %s: %v", table, err)
	}
}

// versions returns the schema versions recorded in db, in order.
func versions(t testing.TB, conn driver.Conn, db string) []uint32 {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT version FROM `"+db+"`.`schema_migrations` ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var vs []uint32
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return vs
}

// wantVersions is 1 to store.SchemaVersion(), each recorded once.
func wantVersions() []uint32 {
	var vs []uint32
	for v := 1; v <= store.SchemaVersion(); v++ {
		vs = append(vs, uint32(v))
	}
	return vs
}

type personRow struct{ id, key, person string }

// persons reads the customer key and person id of every row of table, by its id column.
func persons(t testing.TB, conn driver.Conn, db, table, id string) []personRow {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT "+id+", customer_key, person_id FROM `"+db+"`.`"+table+"` ORDER BY "+id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []personRow
	for rows.Next() {
		var r personRow
		if err := rows.Scan(&r.id, &r.key, &r.person); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("%s.%s has no rows", db, table)
	}
	return out
}

// columns lists every column of every table in db, as "table.name type [default]": tables by
// name, each table's columns in their order.
func columns(t testing.TB, conn driver.Conn, db string) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT table, name, type, default_kind, default_expression FROM system.columns WHERE database = ?", db)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	type col struct{ table, desc string }
	var cols []col
	for rows.Next() {
		var table, name, typ, kind, expr string
		if err := rows.Scan(&table, &name, &typ, &kind, &expr); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, col{table, strings.TrimSpace(fmt.Sprintf("%s.%s %s %s %s", table, name, typ, kind, expr))})
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.SortStableFunc(cols, func(a, b col) int { return strings.Compare(a.table, b.table) })
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.desc
	}
	return out
}

// subMicros is the sessions rows of database db as "id start_sub_us end_sub_us", by id.
func subMicros(t testing.TB, conn driver.Conn, db string) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT concat(session_id, ' ', toString(start_sub_us), ' ', toString(end_sub_us)) FROM `"+db+"`.sessions ORDER BY session_id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
