package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// migration is one step of the schema: it creates a table (tableDef), adds columns to one
// (addColumns), or rewrites stored values (typePersons).
type migration interface {
	// ddl renders the step's statements for database db: on a single node, or with cluster set,
	// ON CLUSTER for every node of that cluster.
	ddl(db, cluster string) []string
	// apply brings the store's database to the step's end state from any state on the way to it:
	// other processes may be applying the same step at once, and one may have applied it and died
	// before recording it. A state it cannot reach (a column of another type) is an error.
	apply(ctx context.Context, s *Store) error
	// String says what the step does, for the log.
	String() string
}

// tableDef creates one of Waymark's tables, so the same definition renders single-node DDL and
// cluster DDL (Replicated* engines under Distributed tables sharded by the customer key).
type tableDef struct {
	name      string
	columns   string
	engine    string // MergeTree family engine name, e.g. "ReplacingMergeTree"
	engineArg string // e.g. the version column of a ReplacingMergeTree
	partition string
	order     string
	shardKey  string // Distributed sharding expression; default cityHash64(customer_key)
}

// migrations are applied in order; their index+1 is the schema version. Never edit one that has
// shipped: append a new one (a new column is an addColumns, never a change to a shipped
// tableDef). Statements must run on ClickHouse 18.16 and current releases (no ADD COLUMN IF NOT
// EXISTS on 18.16, hence the version table, and addColumns checking system.columns itself). Each
// must be idempotent by its end state (see migration.apply): ClickHouse has no locks, so several
// processes may apply the same one at once. An empty database gets their end state at once
// (Store.createLatest, latestTables: each table in one CREATE, its added columns appended in
// their order), so its tables are an upgraded one's (TestMigrateUpgradesVersion4 compares them).
var migrations = []migration{
	tableDef{
		name: "events",
		columns: `source String,
	message_id String,
	type String,
	event String,
	user_id String,
	anonymous_id String,
	customer_key String,
	ts_ms UInt64,
	date Date,
	original_ts_ms UInt64,
	sent_at_ms UInt64,
	received_at_ms UInt64,
	stored_at_ms UInt64,
	prop_keys Array(String),
	prop_values Array(String),
	page_path String,
	referrer String,
	campaign_source String,
	campaign_medium String,
	campaign_name String,
	channel String,
	raw String`,
		engine:    "ReplacingMergeTree",
		partition: "toYYYYMM(date)",
		order:     "(customer_key, source, message_id)",
	},
	tableDef{
		name: "sessions",
		columns: `session_id String,
	customer_key String,
	start_ms UInt64,
	end_ms UInt64,
	date Date,
	events UInt32,
	entry_event String,
	exit_event String,
	entry_channel String,
	entry_campaign String,
	stages Array(String),
	end_reason String,
	map_version String,
	version UInt64,
	deleted UInt8`,
		engine:    "ReplacingMergeTree",
		engineArg: "version",
		partition: "toYYYYMM(date)",
		order:     "(customer_key, session_id)",
	},
	tableDef{
		// Which person each customer key belongs to, after identity stitching; the row with the
		// highest version wins. Keys absent here are their own person.
		name: "persons",
		columns: `customer_key String,
	person_id String,
	version UInt64`,
		engine:    "ReplacingMergeTree",
		engineArg: "version",
		partition: "tuple()",
		order:     "customer_key",
	},
	tableDef{
		// Identity links that joined two persons, and aliases of two userIds that named one
		// ("u:"/"a:" prefixed ids), to rebuild the identity graph after a restart; device first
		// (a "a:"), users' aliases from a device's id, and a device twice for one signed in on
		// by its own events (sessionize.Output.Links states the kinds).
		name: "identity_links",
		columns: `a String,
	b String,
	version UInt64`,
		engine:    "ReplacingMergeTree",
		engineArg: "version",
		partition: "tuple()",
		order:     "(a, b)",
		shardKey:  "cityHash64(a)",
	},
	// Version 5: the person known when the event was stored. A later merge of persons is an
	// override in the persons table, applied at query time. Events stored before read their
	// customer key.
	addColumns{
		table:   "events",
		columns: []columnDef{{name: "person_id", typ: "String", def: "customer_key"}},
	},
	// Version 6: the same for sessions.
	addColumns{
		table:   "sessions",
		columns: []columnDef{{name: "person_id", typ: "String", def: "customer_key"}},
	},
	tableDef{
		// Version 7: who was signed in on a device that several userIds used, from when
		// (from_ms ascending, then from_seq (version 11); users[i] from from_ms[i]), to give its anonymous events to the user
		// signed in before them whatever order they arrived in. The row with the highest
		// version wins.
		name: "device_sign_ins",
		columns: `device String,
	from_ms Array(UInt64),
	users Array(String),
	version UInt64`,
		engine:    "ReplacingMergeTree",
		engineArg: "version",
		partition: "tuple()",
		order:     "device",
		shardKey:  "cityHash64(device)",
	},
	// Version 8: the event's place in its partition (the Kafka offset of its first stored copy):
	// a device's events with equal timestamps are in the client's order by it. Events stored
	// before have 0 and keep the old order of ties, by id.
	addColumns{
		table:   "events",
		columns: []columnDef{{name: "seq", typ: "UInt64"}},
	},
	// Version 9: the properties and traits the event set to JSON null (ingest.Event.NullKeys),
	// which are no value but clear a person's earlier value of a trait. Events stored before
	// have none: a null trait among them does not clear the trait.
	addColumns{
		table:   "events",
		columns: []columnDef{{name: "null_keys", typ: "Array(String)"}},
	},
	tableDef{
		// Version 10: stored copies of events that a copy earlier in time, arriving after them,
		// replaced (sessionize.Output.Superseded); every query leaves them out (see
		// notSuperseded). An events row with the same sort key replaces them when ClickHouse
		// merges a partition, but only within it: a copy in another month stays.
		name: "superseded_events",
		columns: `customer_key String,
	source String,
	message_id String,
	ts_ms UInt64`,
		engine:    "ReplacingMergeTree",
		partition: "tuple()",
		order:     "(customer_key, source, message_id, ts_ms)",
	},
	// Version 11: each sign-in's place in its partition (from_seq[i], the Kafka offset of its
	// first delivery, beside from_ms[i]; sessionize.DeviceSignIns.Seqs): an anonymous event in
	// the same millisecond as sign-ins goes to the user the client signed in last before it.
	// Rows stored before have none, read as 0 (see signedInRows): their sign-ins count from
	// their millisecond, as before.
	addColumns{
		table:   "device_sign_ins",
		columns: []columnDef{{name: "from_seq", typ: "Array(UInt64)"}},
	},
	// Version 12: the microseconds of the event time past ts_ms (0–999; ingest.Event.Timestamp
	// is kept to the µs): Segment's Python, Go and Java libraries send microseconds, and events
	// in one millisecond are ordered by them (eventTime), not by their arrival. A column beside
	// ts_ms rather than ts_ms in µs: ClickHouse 18.16 has no DateTime64 and cannot change a
	// column's meaning in place, and rows stored before read 0 and keep their order.
	addColumns{
		table:   "events",
		columns: []columnDef{{name: "ts_sub_us", typ: "UInt16"}},
	},
	// Version 13: the same for superseded copies, so a copy superseded by one earlier in the
	// same millisecond names only itself (see notSuperseded). Rows stored before read 0.
	addColumns{
		table:   "superseded_events",
		columns: []columnDef{{name: "ts_sub_us", typ: "UInt16"}},
	},
	// Version 14: the same for sign-ins (from_sub_us[i] beside from_ms[i]; sessionize.DeviceSignIns.From
	// is in µs). Rows stored before have none, read as 0 (see signIns).
	addColumns{
		table:   "device_sign_ins",
		columns: []columnDef{{name: "from_sub_us", typ: "Array(UInt16)"}},
	},
	// Version 15: the microseconds of a session's start and end past start_ms and end_ms (0–999;
	// sessionize.Session.Start and End are its first and last touchpoints' times to the µs): a
	// client session id changing between events 500 µs apart, or max_events, cuts two visits
	// within one millisecond, and every query places events in visits by their µs (see
	// sessionSplit.split). Rows stored before keep their meaning, a visit from the start of start_ms
	// through the end of end_ms: start_sub_us reads 0 and end_sub_us 999. The sessionizer, which
	// reads them back on a restore or resessionize, writes such a visit again once, to the µs.
	addColumns{
		table: "sessions",
		columns: []columnDef{
			{name: "start_sub_us", typ: "UInt16"},
			{name: "end_sub_us", typ: "UInt16", def: "999"},
		},
	},
	// Version 16: the Seq of a session's first touchpoint (sessionize.Session.StartSeq): with the
	// start's µs, its place in the tie rule (compareScanned), as the sessionizer can cut two visits
	// between events of one µs (a client session id changing within a second-precision timestamp,
	// max_events over a burst stamped alike), and queries place an event of that µs by its seq
	// (sessionSplit.split). Rows stored before read 0, which keeps their meaning (every event of the
	// start's µs is in the visit); a restore or resessionize writes them again once.
	addColumns{
		table:   "sessions",
		columns: []columnDef{{name: "start_seq", typ: "UInt64"}},
	},
	// Version 17: the items of the event's list properties by element (ingest.Event.ItemKeys
	// and ItemValues, a key repeated for each item), and for each key under which items are
	// numbers the smallest and largest as their sessionize.Decimal.OrderKey, which bounds
	// compare (itemNumbers): a filter matches a list when any item does (conditionSQL). Events
	// stored before have none: their lists are found by their whole text only, as before.
	addColumns{
		table: "events",
		columns: []columnDef{
			{name: "item_keys", typ: "Array(String)"},
			{name: "item_values", typ: "Array(String)"},
			{name: "item_number_keys", typ: "Array(String)"},
			{name: "item_number_mins", typ: "Array(String)"},
			{name: "item_number_maxes", typ: "Array(String)"},
		},
	},
	// Version 18: a device's person id is typed (ingest.DevicePerson), so that no device's person
	// is a user's whose userId is the device's text (tester 42's F8); the ids stored before are
	// retyped (typePersons).
	typePersons{},
}

// SchemaVersion is the schema version this build migrates to.
func SchemaVersion() int { return len(migrations) }

// ddl renders the statements that create table t in database db: one CREATE TABLE on a single
// node; with a cluster, a Replicated local table on every node and a Distributed table over them.
func (t tableDef) ddl(db, cluster string) []string {
	q := func(name string) string { return qualified(db, name) }
	body := func(engine string) string {
		return fmt.Sprintf("(\n\t%s\n) ENGINE = %s\nPARTITION BY %s\nORDER BY %s", t.columns, engine, t.partition, t.order)
	}
	if cluster == "" {
		return []string{fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s %s", q(t.name), body(t.engine+"("+t.engineArg+")"))}
	}
	shardKey := t.shardKey
	if shardKey == "" {
		shardKey = "cityHash64(customer_key)"
	}
	args := fmt.Sprintf("'/clickhouse/tables/{shard}/%s/%s_local', '{replica}'", db, t.name)
	if t.engineArg != "" {
		args += ", " + t.engineArg
	}
	on := " ON CLUSTER `" + cluster + "`"
	return []string{
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s %s", q(t.name+"_local"), on, body("Replicated"+t.engine+"("+args+")")),
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s AS %s\nENGINE = Distributed(`%s`, `%s`, `%s_local`, %s)",
			q(t.name), on, q(t.name+"_local"), cluster, db, t.name, shardKey),
	}
}

// apply creates the tables unless they exist (CREATE TABLE IF NOT EXISTS, safe to run at once).
func (t tableDef) apply(ctx context.Context, s *Store) error {
	for _, stmt := range t.ddl(s.cfg.Database, s.cfg.Cluster) {
		if err := s.conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", firstLine(stmt), err)
		}
	}
	return nil
}

func (t tableDef) String() string { return "create table " + t.name }

// addColumns adds columns at the end of an existing table. Rows stored before read each new
// column's default expression, computed from their other columns until a merge writes it.
type addColumns struct {
	table   string
	columns []columnDef
}

// columnDef is a column that addColumns adds.
type columnDef struct {
	name string
	typ  string // ClickHouse type, e.g. "String"
	def  string // DEFAULT expression, e.g. another column; empty: the type's zero value
}

// sql renders the column's definition: its name, type and DEFAULT, if it has one.
func (c columnDef) sql() string {
	if c.def == "" {
		return c.name + " " + c.typ
	}
	return c.name + " " + c.typ + " DEFAULT " + c.def
}

// ddl renders the ALTER TABLE that adds the columns in database db, one per table of tables.
func (a addColumns) ddl(db, cluster string) []string {
	var out []string
	for _, table := range a.tables(cluster) {
		out = append(out, alterAdd(db, cluster, table, a.columns))
	}
	return out
}

// tables returns the tables that get the columns, in order. With a cluster, the local tables
// change first, then the Distributed table over them: it was created AS the local table and does
// not follow it, and a column it has but they lack would fail its reads.
func (a addColumns) tables(cluster string) []string {
	if cluster == "" {
		return []string{a.table}
	}
	return []string{a.table + "_local", a.table}
}

// alterAdd renders the ALTER TABLE that adds columns to table in database db.
func alterAdd(db, cluster, table string, columns []columnDef) string {
	adds := make([]string, len(columns))
	for i, c := range columns {
		adds[i] = "ADD COLUMN " + c.sql()
	}
	return "ALTER TABLE " + qualified(db, table) + onCluster(cluster) + " " + strings.Join(adds, ", ")
}

// apply adds to each table the columns it lacks. When the ALTER fails, another process may have
// added them meanwhile (its ALTER ran first, so ours found them there): if the table now has them
// all, with the intended types, that is the end state wanted.
//
// With a cluster, the columns seen are those of the node the store is connected to, while the
// ALTER, ON CLUSTER, runs on every node: a failed ALTER accepted by this node's columns is logged
// as a warning with its error, which names any node where it failed for another reason.
func (a addColumns) apply(ctx context.Context, s *Store) error {
	db, cluster := s.cfg.Database, s.cfg.Cluster
	for _, table := range a.tables(cluster) {
		missing, err := a.missing(ctx, s, table)
		if err != nil {
			return err
		}
		if len(missing) == 0 {
			continue
		}
		stmt := alterAdd(db, cluster, table, missing)
		if err := s.conn.Exec(ctx, stmt); err != nil {
			still, checkErr := a.missing(ctx, s, table)
			if checkErr != nil {
				return fmt.Errorf("%s: %w (then: %w)", stmt, err, checkErr)
			}
			if len(still) > 0 {
				return fmt.Errorf("%s: %w", stmt, err)
			}
			if cluster == "" {
				s.log.Info("schema migration: columns added by another process", "table", table, "migration", a.String())
				continue
			}
			s.log.Warn("schema migration: ALTER failed but this node has the columns; not checked on the other nodes",
				"table", table, "migration", a.String(), "error", err)
		}
	}
	return nil
}

// missing returns the columns of a that table (in the store's database) lacks, in their order,
// or an error when it has one of them with another type.
func (a addColumns) missing(ctx context.Context, s *Store, table string) ([]columnDef, error) {
	rows, err := s.conn.Query(ctx, "SELECT name, type FROM system.columns WHERE database = ? AND table = ?", s.cfg.Database, table)
	if err != nil {
		return nil, fmt.Errorf("read the columns of %s: %w", table, err)
	}
	defer rows.Close()
	types := map[string]string{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, fmt.Errorf("read the columns of %s: %w", table, err)
		}
		types[name] = typ
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the columns of %s: %w", table, err)
	}
	return a.missingIn(types, table, s.cfg.Database)
}

// missingIn returns the columns of a that table (in database db), whose columns' types by name
// are types, lacks, in their order, or an error when it has one of them with another type.
func (a addColumns) missingIn(types map[string]string, table, db string) ([]columnDef, error) {
	var missing []columnDef
	for _, c := range a.columns {
		typ, ok := types[c.name]
		switch {
		case !ok:
			missing = append(missing, c)
		case typ != c.typ:
			return nil, fmt.Errorf("%s has a column %s of type %s, not %s", qualified(db, table), c.name, typ, c.typ)
		}
	}
	return missing, nil
}

func (a addColumns) String() string {
	names := make([]string, len(a.columns))
	for i, c := range a.columns {
		names[i] = c.name
	}
	return "add to " + a.table + ": " + strings.Join(names, ", ")
}

// qualified returns the quoted name of table in database db.
func qualified(db, table string) string { return "`" + db + "`.`" + table + "`" }

// SchemaDDL returns every statement Migrate would run on an empty database, for review and for
// golden-file tests of the cluster DDL.
func SchemaDDL(db, cluster string) []string {
	out := []string{createDatabase(db, cluster), createMigrationsTable(db, cluster)}
	for _, t := range latestTables() {
		out = append(out, t.ddl(db, cluster)...)
	}
	return out
}

func onCluster(cluster string) string {
	if cluster == "" {
		return ""
	}
	return " ON CLUSTER `" + cluster + "`"
}

func createDatabase(db, cluster string) string {
	return "CREATE DATABASE IF NOT EXISTS `" + db + "`" + onCluster(cluster)
}

// createMigrationsTable creates the table recording applied migrations. In a cluster it is
// replicated on every node (one replication path for all shards), so every node knows the version.
func createMigrationsTable(db, cluster string) string {
	engine := "MergeTree()"
	if cluster != "" {
		engine = fmt.Sprintf("ReplicatedMergeTree('/clickhouse/tables/all/%s/schema_migrations', '{replica}')", db)
	}
	return "CREATE TABLE IF NOT EXISTS `" + db + "`.`schema_migrations`" + onCluster(cluster) +
		" (version UInt32, applied_at DateTime) ENGINE = " + engine + " ORDER BY version"
}

// Migrate creates the database and tables, or upgrades them: on a database at no recorded
// version it creates the latest tables and records every version (createLatest); else it
// applies the migrations newer than the recorded schema version and records each. Any number of
// processes may migrate the same database at once (each step is idempotent by its end state),
// and a process that died between a migration and its record runs it again. A version may then
// be recorded more than once: schema_migrations is read only here, for its maximum, which
// duplicates do not change.
func (s *Store) Migrate(ctx context.Context) error {
	db, cluster := s.cfg.Database, s.cfg.Cluster
	for _, stmt := range []string{createDatabase(db, cluster), createMigrationsTable(db, cluster)} {
		if err := s.conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("migrate: %s: %w", firstLine(stmt), err)
		}
	}
	var current uint32
	if err := s.conn.QueryRow(ctx, "SELECT max(version) FROM "+s.table("schema_migrations")).Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current == 0 {
		created, err := s.createLatest(ctx)
		if err != nil {
			return err
		}
		if created {
			return nil
		}
	}
	for i := int(current); i < len(migrations); i++ {
		if err := migrations[i].apply(ctx, s); err != nil {
			return fmt.Errorf("apply migration %d (%s): %w", i+1, migrations[i], err)
		}
		record := []column{{"version", []uint32{uint32(i + 1)}}, {"applied_at", []time.Time{time.Now().UTC()}}}
		if err := s.insertColumns(ctx, "schema_migrations", record); err != nil {
			return fmt.Errorf("record migration %d: %w", i+1, err)
		}
		s.log.Info("schema migrated", "version", i+1, "migration", migrations[i].String())
	}
	return nil
}

// createLatest creates the tables of a database at no recorded version as the migrations leave
// them (latestTables: each table in one CREATE, its added columns in it) and records every
// version, in one insert: a new database takes a statement a table, where applying the
// migrations one by one takes four or five a migration (an ALTER, its checks of
// system.columns, its record), which on current ClickHouse cost a quarter of a second of CPU a
// database. It reports false, having recorded nothing, when a table was there before with
// columns the migrations add missing (a process of an older build creating it at the same time,
// or one that died before its first record): the migrations then run one by one, adding them.
func (s *Store) createLatest(ctx context.Context) (bool, error) {
	db, cluster := s.cfg.Database, s.cfg.Cluster
	for _, t := range latestTables() {
		if err := t.apply(ctx, s); err != nil {
			return false, fmt.Errorf("create the latest schema: %w", err)
		}
	}
	types, err := columnTypes(ctx, s)
	if err != nil {
		return false, err
	}
	for _, m := range migrations {
		a, ok := m.(addColumns)
		if !ok {
			continue
		}
		for _, table := range a.tables(cluster) {
			if missing, err := a.missingIn(types[table], table, db); err != nil || len(missing) > 0 {
				return false, nil // the migrations one by one add them, or report the type
			}
		}
	}
	versions := make([]uint32, len(migrations))
	applied := make([]time.Time, len(migrations))
	now := time.Now().UTC()
	for i := range migrations {
		versions[i], applied[i] = uint32(i+1), now
	}
	if err := s.insertColumns(ctx, "schema_migrations", []column{{"version", versions}, {"applied_at", applied}}); err != nil {
		return false, fmt.Errorf("record migrations 1 to %d: %w", len(migrations), err)
	}
	s.log.Info("schema created", "version", len(migrations))
	return true, nil
}

// latestTables returns every table of the schema as the migrations leave it: its tableDef, with
// the columns later addColumns steps add appended in their order (an upgraded table's order).
func latestTables() []tableDef {
	var tables []tableDef
	index := map[string]int{}
	for _, m := range migrations {
		switch m := m.(type) {
		case tableDef:
			index[m.name] = len(tables)
			tables = append(tables, m)
		case addColumns:
			t := &tables[index[m.table]]
			for _, c := range m.columns {
				t.columns += ",\n\t" + c.sql()
			}
		}
	}
	return tables
}

// columnTypes returns the type of every column of every table of the store's database, by table
// and column name.
func columnTypes(ctx context.Context, s *Store) (map[string]map[string]string, error) {
	rows, err := s.conn.Query(ctx, "SELECT table, name, type FROM system.columns WHERE database = ?", s.cfg.Database)
	if err != nil {
		return nil, fmt.Errorf("read the columns of %s: %w", s.cfg.Database, err)
	}
	defer rows.Close()
	types := map[string]map[string]string{}
	for rows.Next() {
		var table, name, typ string
		if err := rows.Scan(&table, &name, &typ); err != nil {
			return nil, fmt.Errorf("read the columns of %s: %w", s.cfg.Database, err)
		}
		if types[table] == nil {
			types[table] = map[string]string{}
		}
		types[table][name] = typ
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the columns of %s: %w", s.cfg.Database, err)
	}
	return types, nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
