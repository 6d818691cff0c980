package store

import (
	"context"
	"fmt"
	"strings"

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
	id    uint64
	mask  uint64
	attrs []string
}

// scan streams each person's events to fn, persons resolved through identity links, duplicates
// (a redelivered message) read once. The events are in no particular order.
func (s *Store) scan(ctx context.Context, sc eventScan, fn func(person string, events []scannedEvent) error) error {
	if len(sc.preds) == 0 || len(sc.preds) > 64 {
		return fmt.Errorf("scan: %d conditions, want 1 to 64", len(sc.preds))
	}
	var args []any
	maskTerms := make([]string, len(sc.preds))
	ors := make([]string, len(sc.preds))
	for i, p := range sc.preds {
		maskTerms[i] = fmt.Sprintf("if(%s, toUInt64(%d), toUInt64(0))", p.sql, uint64(1)<<i)
		args = append(args, p.args...)
	}
	attrCols, attrArrays, attrNames := "", "", ""
	for i, a := range sc.attrs {
		attrCols += fmt.Sprintf(", any(%s) AS a%d", a.sql, i)
		attrNames += fmt.Sprintf(", a%d", i)
		attrArrays += fmt.Sprintf(", groupArray(a%d)", i)
		args = append(args, a.args...)
	}
	for i, p := range sc.preds {
		ors[i] = p.sql
		args = append(args, p.args...)
	}
	where := "(" + strings.Join(ors, " OR ") + ")"
	if sc.from != 0 {
		where += " AND ts_ms >= ?"
		args = append(args, uint64(sc.from))
	}
	if sc.to != 0 {
		where += " AND ts_ms <= ?"
		args = append(args, uint64(sc.to))
	}
	query := `SELECT person, groupArray(t), groupArray(mask), groupArray(id)` + attrArrays + `
FROM (
	SELECT if(person_id = '', customer_key, person_id) AS person, t, mask, id` + attrNames + `
	FROM (
		SELECT customer_key, cityHash64(source, message_id) AS id, any(ts_ms) AS t,
			any(` + strings.Join(maskTerms, " + ") + `) AS mask` + attrCols + `
		FROM ` + s.table("events") + `
		WHERE ` + where + `
		GROUP BY customer_key, id
	) ANY LEFT JOIN (` + personsSQL(s.table("persons")) + `) USING customer_key
)
GROUP BY person`
	rows, err := s.conn.Query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("scan events: %w", err)
	}
	defer rows.Close()
	var (
		person            string
		times, masks, ids []uint64
		attrs             = make([][]string, len(sc.attrs))
		events            []scannedEvent
	)
	dest := []any{&person, &times, &masks, &ids}
	for i := range attrs {
		dest = append(dest, &attrs[i])
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("scan events: read row: %w", err)
		}
		events = events[:0]
		for i := range times {
			e := scannedEvent{t: int64(times[i]), id: ids[i], mask: masks[i]}
			if len(attrs) > 0 {
				e.attrs = make([]string, len(attrs))
				for a := range attrs {
					e.attrs[a] = attrs[a][i]
				}
			}
			events = append(events, e)
		}
		if err := fn(person, events); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("scan events: %w", err)
	}
	return nil
}
