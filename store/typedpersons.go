package store

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/waymark-dev/waymark/ingest"
)

// typePersons is schema version 18: it types the person ids stored before it (tester 42's F8).
// Builds before it stored a person that has no userId under its device's anonymousId as it was
// sent, so a device whose anonymousId is another customer's userId and that user were one
// person_id to the queries, and an override of the device (table persons) moved the user's own
// events too. Since, a device's person id is ingest.DevicePerson of its anonymousId (two
// ingest.Internal characters before it), as sessionize stores it.
//
// Which stored texts were devices is not written anywhere. In a person id column (events' and
// sessions' person_id, the persons table's person_id, which must stay alike) a text is read as a
// userId when some event carried it as its userId, or an identity link names it as one ("u:"),
// and as a device otherwise (untypedDevice). A person that has a userId is named by it, and the
// person a device's lost sign-ins go to starts with ingest.Internal: those stay as they are. A
// text that was both there (the collision itself) stays a userId: those rows cannot be told apart.
//
// The persons table's key (customer_key) is read by the links alone (untypedDeviceKey): a row is
// written only for an id of a person the identity graph linked (sessionize's Persons, PersonsOf
// and Learn emit one per member of a linked person), and identity_links holds every link, typed.
// So a key K whose "u:"+K ends no link is no user's override: it is the device a:K's, even when
// some event carried K as its userId. The case that needs it: one-time buyers b1 and b2 (userId
// only, never linked) and a forged identify {anonymousId: "b1", userId: "b2"}. The old build
// joined the device a:b1 into b2's person and stored the row (key "b1", person "b2"); read by the
// events' rule, "b1" is a userId and the row would stay, moving every order of the user b1, new
// ones too, to b2. Typed, it keys the device and meets none of the user's events; the device's own
// events stored before under "b1" (if any) are read as the user b1's, as their person_id is. A key
// that a link names both as a user and as a device (u:K and a:K both linked) is left as it is:
// the old build wrote both overrides under the one text, the newest winning, and which one the
// row is cannot be told; the user's reading is kept.
//
// person_id is no key column, so events and sessions are retyped in place (ALTER TABLE …
// UPDATE, a mutation, on ClickHouse 18.16 as on current releases). The persons table is ordered
// by its key: its device rows are inserted again under their typed key, then the old ones are
// deleted (ALTER TABLE … DELETE). Each step changes only untyped device texts, so running the
// migration again, or in several processes at once, or after one died midway, finds nothing
// left to do where a step was done; the next step starts once the mutations of a table are
// done (typePersons waits for them in system.mutations), as ClickHouse applies a mutation only
// to the parts that existed when it was made. identity_links holds typed ids already, and
// device_sign_ins holds users' ids and lost sign-ins' only, which keep their text.
type typePersons struct{}

func (typePersons) String() string {
	return "type the stored person ids of devices (ingest.DevicePerson)"
}

// ddl renders the statements apply runs, in order (their reads of system.mutations between them
// left out).
func (typePersons) ddl(db, cluster string) []string {
	var out []string
	for _, table := range []string{"events", "sessions", "persons"} {
		out = append(out, retypeColumn(db, cluster, table, "person_id"))
	}
	return append(out, copyPersonsTyped(db), deleteUntypedPersons(db, cluster))
}

// apply runs the statements of ddl, waiting for each mutation of a table before the next step.
// With a cluster the mutations run on every node's local tables (ON CLUSTER), and only the node
// the store is connected to is watched; their subqueries read the Distributed tables, which
// current ClickHouse allows a Replicated table's mutation only with
// allow_nondeterministic_mutations.
func (m typePersons) apply(ctx context.Context, s *Store) error {
	db, cluster := s.cfg.Database, s.cfg.Cluster
	if cluster != "" {
		ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"allow_nondeterministic_mutations": 1}))
	}
	for _, table := range []string{"events", "sessions", "persons"} {
		if err := s.mutate(ctx, table, retypeColumn(db, cluster, table, "person_id")); err != nil {
			return err
		}
	}
	if err := s.conn.Exec(ctx, copyPersonsTyped(db)); err != nil {
		return fmt.Errorf("copy the persons of devices under their typed id: %w", err)
	}
	return s.mutate(ctx, "persons", deleteUntypedPersons(db, cluster))
}

// devicePersonSQL is ingest.DevicePerson of the text column in SQL.
func devicePersonSQL(column string) string {
	return "concat(" + sqlString(ingest.DevicePerson("")) + ", " + column + ")"
}

// untypedDevice is the condition, in SQL, that column of a table of database db holds a
// device's person id as builds before typePersons stored it: no userId (see typePersons), not
// starting with ingest.Internal (a typed device, or a device's lost sign-ins).
func untypedDevice(db, column string) string {
	q := func(t string) string { return qualified(db, t) }
	return fmt.Sprintf(`%[1]s != '' AND substring(%[1]s, 1, 1) != %[2]s AND %[1]s NOT IN (
		SELECT user_id FROM %[3]s WHERE user_id != ''
		UNION ALL SELECT substring(a, 3) FROM %[4]s WHERE substring(a, 1, 2) = 'u:'
		UNION ALL SELECT substring(b, 3) FROM %[4]s WHERE substring(b, 1, 2) = 'u:')`,
		column, sqlString(ingest.Internal), q("events"), q("identity_links"))
}

// mutationTable is the table a mutation of table changes: with a cluster, every node's local one.
func mutationTable(db, cluster, table string) string {
	if cluster == "" {
		return qualified(db, table)
	}
	return qualified(db, table+"_local") + onCluster(cluster)
}

// retypeColumn renders the mutation that types the untyped devices' ids in column of table.
func retypeColumn(db, cluster, table, column string) string {
	return "ALTER TABLE " + mutationTable(db, cluster, table) + " UPDATE " + column + " = " + devicePersonSQL(column) +
		" WHERE " + untypedDevice(db, column)
}

// untypedDeviceKey is the condition, in SQL, that the persons table's key (customer_key) of
// database db is a device's as builds before typePersons stored it: not starting with
// ingest.Internal, and no identity link names it as a userId ("u:"). A persons row is written for
// an id the identity graph linked only, so a key no link names as a user is the device's override
// even when some event carried the same text as its userId (the forged sign-in of typePersons).
func untypedDeviceKey(db string) string {
	return fmt.Sprintf(`customer_key != '' AND substring(customer_key, 1, 1) != %[1]s AND customer_key NOT IN (
		SELECT substring(a, 3) FROM %[2]s WHERE substring(a, 1, 2) = 'u:'
		UNION ALL SELECT substring(b, 3) FROM %[2]s WHERE substring(b, 1, 2) = 'u:')`,
		sqlString(ingest.Internal), qualified(db, "identity_links"))
}

// copyPersonsTyped renders the insert of the persons rows of devices under their typed key (their
// person typed before, see typePersons.apply).
func copyPersonsTyped(db string) string {
	return "INSERT INTO " + qualified(db, "persons") + " (customer_key, person_id, version) SELECT " +
		devicePersonSQL("customer_key") + ", person_id, version FROM " + qualified(db, "persons") +
		" WHERE " + untypedDeviceKey(db)
}

// deleteUntypedPersons renders the mutation that deletes the persons rows of devices under their
// untyped key, once copyPersonsTyped copied them.
func deleteUntypedPersons(db, cluster string) string {
	return "ALTER TABLE " + mutationTable(db, cluster, "persons") + " DELETE WHERE " + untypedDeviceKey(db)
}

// mutate runs stmt, a mutation of table (ALTER TABLE … UPDATE or DELETE), and waits until every
// mutation of the table is done: ClickHouse 18.16 runs them in the background and knows no
// mutations_sync setting. A mutation that failed (system.mutations' latest_fail_reason, on
// releases that have it) fails the wait, as ClickHouse retries it for ever.
func (s *Store) mutate(ctx context.Context, table, stmt string) error {
	if err := s.conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("%s: %w", firstLine(stmt), err)
	}
	local := table
	if s.cfg.Cluster != "" {
		local += "_local"
	}
	var hasReason uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = 'system' AND table = 'mutations' AND name = 'latest_fail_reason'").Scan(&hasReason); err != nil {
		return fmt.Errorf("wait for the mutations of %s: %w", table, err)
	}
	reason := "''"
	if hasReason > 0 {
		reason = "any(latest_fail_reason)"
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		var pending uint64
		var failed string
		if err := s.conn.QueryRow(ctx, "SELECT count(), "+reason+" FROM system.mutations WHERE database = ? AND table = ? AND is_done = 0",
			s.cfg.Database, local).Scan(&pending, &failed); err != nil {
			return fmt.Errorf("wait for the mutations of %s: %w", table, err)
		}
		switch {
		case pending == 0:
			return nil
		case failed != "":
			return fmt.Errorf("%s: the mutation failed: %s", firstLine(stmt), failed)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the mutations of %s (%d not done; see system.mutations): %w", table, pending, ctx.Err())
		case <-tick.C:
		}
	}
}
