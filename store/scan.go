package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/waymark-dev/waymark/sessionize"
)

// predicate is a SQL expression over the events table with the arguments of its placeholders.
type predicate struct {
	sql  string
	args []any
}

// rulePredicate translates a journey-map rule (without its nth requirement) into a predicate with
// the same meaning as Rule matching in the sessionizer.
func rulePredicate(r sessionize.Rule) predicate {
	var parts []string
	var args []any
	if len(r.Types) > 0 {
		parts = append(parts, "type IN ("+placeholders(len(r.Types))+")")
		args = appendStrings(args, r.Types)
	}
	if len(r.Events) > 0 {
		parts = append(parts, "event IN ("+placeholders(len(r.Events))+")")
		args = appendStrings(args, r.Events)
	}
	if len(r.Channels) > 0 {
		parts = append(parts, "channel IN ("+placeholders(len(r.Channels))+")")
		args = appendStrings(args, r.Channels)
	}
	for i := range r.Where {
		sql, a := conditionSQL(&r.Where[i])
		parts = append(parts, sql)
		args = append(args, a...)
	}
	if len(parts) == 0 {
		return predicate{sql: "1"}
	}
	return predicate{sql: "(" + strings.Join(parts, " AND ") + ")", args: args}
}

// propertyValue is the text of property name on an event, "" when it has none.
func propertyValue(name string) predicate {
	return predicate{sql: "prop_values[indexOf(prop_keys, ?)]", args: []any{name}}
}

// eventScan reads, per person, the distinct events that match at least one of its predicates.
type eventScan struct {
	preds    []predicate // bit i of an event's mask says it matches preds[i]; at most 64
	attrs    []predicate // text columns read with each event
	from, to int64       // bounds on ts_ms in ms, inclusive; 0 is unbounded
}

// scannedEvent is one distinct event of a person.
type scannedEvent struct {
	t     int64
	seq   int64 // place in its partition: equal times are in the client's order by it
	id    uint64
	mask  uint64
	attrs []string
}

// scan streams each person's events to fn, duplicates (a redelivered message) read once, in
// (time, id) order.
//
// Persons on events: each event is stored with the person known at ingest, and ClickHouse groups
// the events by that person after applying the overrides of later merges (see personOverrides),
// so the query process holds one person's events at a time however many persons were merged.
func (s *Store) scan(ctx context.Context, sc eventScan, fn func(person string, events []scannedEvent) error) error {
	rows, args, none, err := s.personRows(ctx, sc)
	if err != nil || none {
		return err
	}
	// Each person's events come in (time, seq, id) order, the tie rule, as one text column (and one per attribute)
	// rather than arrays: the client reads arrays through reflection, several times slower than
	// this parse, and ClickHouse sorts them while Waymark reads the previous customers.
	attrArrays := ""
	for i := range sc.attrs {
		attrArrays += fmt.Sprintf(`, arrayStringConcat(arraySort((v, k) -> k, groupArray(replaceAll(replaceAll(a%d, '\\', '\\\\'), '\x1f', '\\f')), groupArray((t, seq, id))), '\x1f')`, i)
	}
	query := `SELECT person, arrayStringConcat(arrayMap(e -> concat(toString(tupleElement(e, 1)), ' ',
		toString(tupleElement(e, 2)), ' ', toString(tupleElement(e, 4)), ' ', toString(tupleElement(e, 3))),
		arraySort(groupArray((t, seq, id, mask)))), ',')` + attrArrays + `
FROM (
	` + rows + `
)
GROUP BY person`
	return s.scanQuery(ctx, query, args, len(sc.attrs), fn)
}

// personRows builds the query of the rows a scan reads, one per stored event (copies included),
// with its arguments: columns person (after merges), t (ms), seq, mask (UInt64, bit i: preds[i]),
// id (UInt64, per source and message id) and a0, a1… (the attributes, String). none is set
// when no event can match (the query need not run). Both the in-process scan and the in-engine
// funnel group these rows by person.
func (s *Store) personRows(ctx context.Context, sc eventScan) (query string, args []any, none bool, err error) {
	if len(sc.preds) == 0 || len(sc.preds) > 64 {
		return "", nil, false, fmt.Errorf("scan: %d conditions, want 1 to 64", len(sc.preds))
	}
	maskTerms := make([]string, len(sc.preds))
	ors := make([]string, len(sc.preds))
	for i, p := range sc.preds {
		maskTerms[i] = fmt.Sprintf("if(%s, toUInt64(%d), toUInt64(0))", p.sql, uint64(1)<<i)
		args = append(args, p.args...)
	}
	attrCols := ""
	for i, a := range sc.attrs {
		attrCols += fmt.Sprintf(", %s AS a%d", a.sql, i)
		args = append(args, a.args...)
	}
	for i, p := range sc.preds {
		ors[i] = p.sql
		args = append(args, p.args...)
	}
	where := "(" + strings.Join(ors, " OR ") + ")"
	// The date bounds (a day wider, whatever the server's time zone) let ClickHouse skip the
	// monthly partitions outside the range. They are worked out here: ClickHouse's Date
	// arithmetic wraps below 1970. Events are stored at ts_ms ≥ 0.
	const dayMs = 24 * 60 * 60 * 1000
	day := func(ms int64) string { return time.UnixMilli(max(ms, 0)).UTC().Format(time.DateOnly) }
	if sc.to < 0 {
		return "", nil, true, nil // no event is that early
	}
	if sc.from > 0 {
		where += " AND date >= toDate(?) AND ts_ms >= ?"
		args = append(args, day(sc.from-dayMs), uint64(sc.from))
	}
	if sc.to > 0 {
		where += " AND date <= toDate(?) AND ts_ms <= ?"
		args = append(args, day(sc.to+dayMs), uint64(sc.to))
	}
	attrNames := ""
	for i := range sc.attrs {
		attrNames += fmt.Sprintf(", a%d", i)
	}
	rowsSQL := `SELECT person_id, ts_ms AS t, seq, ` + strings.Join(maskTerms, " + ") + ` AS mask,
			cityHash64(source, message_id) AS id` + attrCols + `
		FROM ` + s.table("events") + `
		WHERE ` + where
	shared, err := s.hasSharedDevices(ctx)
	if err != nil {
		return "", nil, false, err
	}
	if shared {
		rowsSQL = `SELECT ` + signedInPerson + ` AS person_id, t, seq, mask, id` + attrNames + `
		FROM (
			SELECT person_id AS stored_person, customer_key, user_id, ts_ms AS t, seq, ` + strings.Join(maskTerms, " + ") + ` AS mask,
				cityHash64(source, message_id) AS id` + attrCols + `
			FROM ` + s.table("events") + `
			WHERE ` + where + `
		) AS ev ANY LEFT JOIN (` + s.signIns() + `) AS d USING customer_key`
	}
	query = `SELECT ` + resolvedPerson + ` AS person, t, seq, mask, id` + attrNames + `
	FROM (
		` + rowsSQL + `
	) AS e ANY LEFT JOIN (` + s.personOverrides() + `) AS o USING person_id`
	return query, args, false, nil
}

// scanQuery runs a scan's query, whose rows are (person, packed events, packed attributes…), and
// streams each person's events to fn.
func (s *Store) scanQuery(ctx context.Context, query string, args []any, nAttrs int, fn func(person string, events []scannedEvent) error) error {
	rows, err := s.conn.Query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("scan events: %w", err)
	}
	defer rows.Close()
	var (
		key, packed string
		attrs       = make([]string, nAttrs)
		events      []scannedEvent
		ids         []uint64 // dedupe's scratch space
	)
	dest := []any{&key, &packed}
	for i := range attrs {
		dest = append(dest, &attrs[i])
	}
	// The work per person is done between rows: look at ctx now and then, so a query stops when
	// its time is up or its client has gone even when ClickHouse has sent every row already.
	n := 0
	for rows.Next() {
		if n++; n%256 == 0 && ctx.Err() != nil {
			return fmt.Errorf("scan events: %w", ctx.Err())
		}
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("scan events: read row: %w", err)
		}
		if events, err = unpackEvents(events[:0], packed, attrs); err != nil {
			return fmt.Errorf("scan events of %q: %w", key, err)
		}
		if err := fn(key, dedupe(events, &ids)); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("scan events: %w", err)
	}
	return nil
}

// compareScanned orders a person's events by the tie rule: time, equal times in the client's
// order (seq), then id. The sessionizer orders its points the same way (sessionize.comparePoints).
func compareScanned(a, b scannedEvent) int {
	return cmp.Or(cmp.Compare(a.t, b.t), cmp.Compare(a.seq, b.seq), cmp.Compare(a.id, b.id))
}

// unpackEvents parses one person's events, "t seq mask id" joined by ",", and their attributes,
// each a list joined by 0x1f with "\\" and 0x1f escaped as "\\\\" and "\\f".
func unpackEvents(events []scannedEvent, packed string, attrs []string) ([]scannedEvent, error) {
	for i := 0; i < len(packed); {
		var e scannedEvent
		var fields [4]uint64
		for f := range fields {
			start := i
			for ; i < len(packed) && packed[i] >= '0' && packed[i] <= '9'; i++ {
				fields[f] = fields[f]*10 + uint64(packed[i]-'0')
			}
			want := byte(' ')
			if f == len(fields)-1 {
				want = ','
			}
			if i == start || i-start > 20 || (i < len(packed) && packed[i] != want) || (i == len(packed) && f < len(fields)-1) {
				return nil, fmt.Errorf("bad event list at byte %d", i)
			}
			i++ // the separator
		}
		e.t, e.seq, e.mask, e.id = int64(fields[0]), int64(fields[1]), fields[2], fields[3]
		events = append(events, e)
	}
	for a, list := range attrs {
		values := strings.Split(list, "\x1f")
		if len(values) != len(events) {
			return nil, fmt.Errorf("%d values of attribute %d for %d events", len(values), a, len(events))
		}
		for i, v := range values {
			if events[i].attrs == nil {
				events[i].attrs = make([]string, len(attrs))
			}
			if strings.IndexByte(v, '\\') >= 0 {
				v = strings.NewReplacer(`\\`, `\`, `\f`, "\x1f").Replace(v)
			}
			events[i].attrs[a] = v
		}
	}
	return events, nil
}

// dedupe drops the copies of events from one person's events in (time, id) order, the order the
// queries read them in, and keeps the earliest of each. Copies at one time (a redelivered batch)
// are neighbours. Copies at other times reach the store only when the sessionizer could not know
// them as copies: the same message sent from two devices (another anonymousId), or produced to
// two partitions that different consumers read; they are found by sorting the person's ids into
// ids, scratch space kept from person to person.
func dedupe(events []scannedEvent, ids *[]uint64) []scannedEvent {
	events = slices.CompactFunc(events, func(a, b scannedEvent) bool { return a.id == b.id && a.t == b.t })
	if len(events) < 2 {
		return events
	}
	sorted := (*ids)[:0]
	for _, e := range events {
		sorted = append(sorted, e.id)
	}
	slices.Sort(sorted)
	*ids = sorted
	var copies []uint64
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] && (len(copies) == 0 || copies[len(copies)-1] != sorted[i]) {
			copies = append(copies, sorted[i])
		}
	}
	if len(copies) == 0 {
		return events
	}
	seen := make(map[uint64]bool, len(copies))
	return slices.DeleteFunc(events, func(e scannedEvent) bool {
		if _, found := slices.BinarySearch(copies, e.id); !found {
			return false
		}
		if seen[e.id] {
			return true // a later copy
		}
		seen[e.id] = true
		return false
	})
}

// resolvedPerson is the person of a row of events or sessions joined to personOverrides: the
// person it was merged into since it was stored, else the one it was stored with.
const resolvedPerson = "if(merged_into = '', person_id, merged_into)"

// signedInPerson is the person of a row of events joined to signIns: for an anonymous event of
// a device several users signed in on, the user signed in last at or before it; else the person
// it was stored with.
const signedInPerson = `if(user_id = '' AND arrayCount(f -> f <= t, sign_in_from) > 0,
	sign_in_users[arrayCount(f -> f <= t, sign_in_from)], stored_person)`

// signIns selects, per device that several userIds signed in on, who was signed in from when
// (table device_sign_ins, written by the sessionizer; the newest version per device wins).
func (s *Store) signIns() string {
	return `SELECT device AS customer_key, sign_in_from, sign_in_users FROM (
		SELECT device, argMax(from_ms, version) AS sign_in_from, argMax(users, version) AS sign_in_users
		FROM ` + s.table("device_sign_ins") + ` GROUP BY device
	) AS signed`
}

// hasSharedDevices reports whether any device has sign-ins of several users: only then do scans
// join them (most shops' queries skip the join and the two columns it reads).
func (s *Store) hasSharedDevices(ctx context.Context) (bool, error) {
	var n uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM "+s.table("device_sign_ins")).Scan(&n); err != nil {
		return false, fmt.Errorf("look for shared devices: %w", err)
	}
	return n > 0, nil
}

// personOverrides selects, per person id, the person it was merged into, as last stitched: the
// persons table, whose newest version per id wins. Joined to events or sessions USING person_id,
// it moves what was stored under an anonymous person to the user who logged in later. It has a
// row per id of every merged person except the person's own id (which maps to itself and would
// only make the join ClickHouse builds larger), so it stays small next to the events (PostHog's
// person overrides play the same part).
func (s *Store) personOverrides() string {
	return `SELECT merged_key AS person_id, merged_into FROM (
		SELECT customer_key AS merged_key, argMax(person_id, version) AS merged_into FROM ` + s.table("persons") + ` GROUP BY customer_key
		HAVING merged_into != merged_key
	) AS merged`
}
