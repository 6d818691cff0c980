package store

import (
	"context"
	"fmt"
	"strings"
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
// Which stored texts were devices is not written anywhere; a text is read as a userId when some
// event carried it as its userId, or an identity link names it as one ("u:"), and as a device
// otherwise. A person that has a userId is named by it, and the person a device's lost sign-ins go
// to starts with ingest.Internal: those stay as they are. So every stored text is retyped alike
// wherever it is (events' and sessions' person_id, the persons table's key and person): each
// override still meets the rows it moved, and every answer counts the persons it counted. A text
// that was both (the collision itself) stays a userId: what it joined before stays joined (an
// older build's data cannot tell the two apart), and only new events are kept apart.
//
// person_id is no key column, so events and sessions are retyped in place (ALTER TABLE …
// UPDATE, a mutation, on ClickHouse 18.16 as on current releases). The persons table is ordered
// by its key: its device rows are inserted again under their typed key, then the old ones are
// deleted (ALTER TABLE … DELETE). Each step changes only untyped device texts (the key's by
// untypedDeviceKey in both the copy and the delete), so running the migration again, or in
// several processes at once, or after one died midway, finds nothing left to do where a step was
// done (a copy made twice is the same row twice, one to ReplacingMergeTree); the next step starts
// once the mutations of a table are done (typePersons waits for them in system.mutations,
// logging its progress), as ClickHouse applies a mutation only to the parts that existed when it
// was made. Since that wait is for every mutation of the table, apply first fails on an
// unfinished mutation of events, sessions or persons that is none of its own (foreignMutation):
// one that cannot finish would hold it for ever, half done (18.16 reports no failure). A
// concurrent run's mutations are its own (the same commands) and are waited for. identity_links holds typed ids already, and
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
	if err := s.foreignMutation(ctx, []string{"events", "sessions", "persons"}); err != nil {
		return err
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

// ownMutations are parts of the commands of typePersons' mutations as ClickHouse stores them in
// system.mutations.command (18.16 and current releases alike: current ones put the command in
// parentheses; both write the NUL characters as \0 and each condition in parentheses). A builds'
// earlier run of the migration issued the same UPDATE and a DELETE that starts alike.
var ownMutations = []string{
	`UPDATE person_id = concat('\0\0', person_id) WHERE (person_id != '') AND (substring(person_id, 1, 1) != '\0')`,
	`DELETE WHERE (customer_key != '') AND (substring(customer_key, 1, 1) != '\0')`,
}

// foreignMutation fails when a mutation of one of tables (with a cluster, of the local table on
// the node the store is connected to) is unfinished and is none of this migration's
// (ownMutations): mutate waits until no mutation of a table is unfinished, ClickHouse applies a
// table's mutations in order, and one that cannot finish (18.16 reports no failure, and retries
// it for ever, as current releases do) would hold the migration for ever, half done. A
// concurrent migration's mutations are the same commands: mutate waits for them.
func (s *Store) foreignMutation(ctx context.Context, tables []string) error {
	var names, own []string
	for _, t := range tables {
		if s.cfg.Cluster != "" {
			t += "_local"
		}
		names = append(names, sqlString(t))
	}
	for _, c := range ownMutations {
		own = append(own, "position(command, "+sqlString(c)+") = 0")
	}
	rows, err := s.conn.Query(ctx, "SELECT table, mutation_id, command FROM system.mutations WHERE database = "+sqlString(s.cfg.Database)+
		" AND table IN ("+strings.Join(names, ", ")+") AND is_done = 0 AND "+strings.Join(own, " AND ")+" ORDER BY create_time LIMIT 1")
	if err != nil {
		return fmt.Errorf("read the unfinished mutations: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		return rows.Err()
	}
	var table, id, command string
	if err := rows.Scan(&table, &id, &command); err != nil {
		return fmt.Errorf("read the unfinished mutations: %w", err)
	}
	return fmt.Errorf("table %s.%s has an unfinished mutation that is not this migration's (mutation_id %s: %s), "+
		"which the migration's mutations would wait for; let it finish, or remove it "+
		"(KILL MUTATION WHERE database = %s AND table = %s AND mutation_id = %s; ClickHouse 18.16 has no KILL MUTATION: "+
		"DETACH TABLE, delete the file named by its mutation_id from the table's data directory, ATTACH TABLE, "+
		"or for a Replicated table delete the znode of that name under the table's mutations in ZooKeeper), then migrate again",
		s.cfg.Database, table, id, command, sqlString(s.cfg.Database), sqlString(table), sqlString(id))
}

// mutationProgressEvery is how often mutate logs what it waits for.
const mutationProgressEvery = 30 * time.Second

// mutate runs stmt, a mutation of table (ALTER TABLE … UPDATE or DELETE), and waits until every
// mutation of the table is done: ClickHouse 18.16 runs them in the background and knows no
// mutations_sync setting. A mutation that failed (system.mutations' latest_fail_reason, on
// releases that have it) fails the wait, as ClickHouse retries it for ever; 18.16 reports none,
// so the wait logs its progress (mutationProgressEvery) and ends with ctx only.
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
	start, logged := time.Now(), time.Now()
	for {
		var pending, parts uint64
		var failed string
		if err := s.conn.QueryRow(ctx, "SELECT count(), toUInt64(sum(parts_to_do)), "+reason+" FROM system.mutations WHERE database = ? AND table = ? AND is_done = 0",
			s.cfg.Database, local).Scan(&pending, &parts, &failed); err != nil {
			return fmt.Errorf("wait for the mutations of %s: %w", table, err)
		}
		switch {
		case pending == 0:
			return nil
		case failed != "":
			return fmt.Errorf("%s: the mutation failed: %s", firstLine(stmt), failed)
		}
		if time.Since(logged) >= mutationProgressEvery {
			logged = time.Now()
			s.log.Info("schema migration: waiting for the mutations of a table (see system.mutations)",
				"table", local, "mutations", pending, "parts_to_do", parts, "elapsed", time.Since(start).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the mutations of %s (%d not done; see system.mutations): %w", table, pending, ctx.Err())
		case <-tick.C:
		}
	}
}
