package store

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"net/url"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"

	"github.com/waymark-dev/waymark/sessionize"
)

// SessionSummary describes the sessions that started in a time range, counted on persons.
type SessionSummary struct {
	Sessions              uint64            `json:"sessions"`
	Persons               uint64            `json:"persons"`
	Events                uint64            `json:"events"`
	MedianDurationSeconds float64           `json:"median_duration_seconds"`
	P90DurationSeconds    float64           `json:"p90_duration_seconds"`
	MeanEventsPerSession  float64           `json:"mean_events_per_session"`
	ByEndReason           map[string]uint64 `json:"by_end_reason"`
	ByEntryChannel        map[string]uint64 `json:"by_entry_channel"`
	From                  *time.Time        `json:"from,omitempty"`
	To                    *time.Time        `json:"to,omitempty"`
}

// SessionsQuery asks for a summary of the sessions that started in [From, To); zero times are
// unbounded.
type SessionsQuery struct {
	From, To time.Time
}

// ParseSessionsQuery reads from and to.
func ParseSessionsQuery(v url.Values) (SessionsQuery, error) {
	p := newParams(v, sessionsParams())
	var q SessionsQuery
	q.From, q.To = p.timeRange()
	return q, p.finish()
}

// Sessions summarizes the live sessions (latest version, not deleted) that started in the
// query's range, within the store's query limits as the other journey queries.
//
// Each message counts once per person, as in every other journey query: the earliest copy of a
// (source, messageId) counts (see dedupe), wherever its copies were stored. The sessionizer drops
// a copy it meets again on the same device key, but it cannot know a copy sent with another
// anonymousId (or with the userId alone), or one read by another consumer, and sessionizes it on
// that key as a new event. The summary is what it would have been had only the earliest copy
// arrived, as Segment and Amplitude drop a repeated messageId or insert_id at ingest, before any
// session is made: a later copy is taken out of the session it was cut into, which then has one
// event fewer, starts at its first remaining event, ends at its last and enters by the channel
// of its first; a session left with no events, made of later copies only, is not counted at all
// (nor its person, duration, end reason or entry channel). Two things stay as stored, as the
// query does not sessionize again (the gap and the longest session are the ingest's settings): a
// session's end reason, and a session whose later copy bridged two visits stays one.
func (s *Store) Sessions(ctx context.Context, q SessionsQuery) (*SessionSummary, error) {
	return runQuery(ctx, s, "sessions", func(ctx context.Context) (*SessionSummary, error) { return s.sessions(ctx, q.From, q.To) })
}

func (s *Store) sessions(ctx context.Context, from, to time.Time) (*SessionSummary, error) {
	if err := checkRange(from, to); err != nil {
		return nil, err
	}
	lo, hi := uint64(0), uint64(1<<63)
	if !from.IsZero() {
		lo = uint64(from.UnixMilli())
	}
	if !to.IsZero() {
		hi = uint64(to.UnixMilli())
	}
	fixes, err := s.laterCopiesInSessions(ctx, lo, hi)
	if err != nil {
		return nil, err
	}
	// The live sessions that started in the range, each without its later copies (see
	// laterCopiesInSessions); one left with no events is no session.
	stored := `SELECT session_id, argMax(person_id, version) AS person_id, argMax(events, version) AS stored_events,
			(argMax(end_ms, version) - argMax(start_ms, version)) / 1000 AS stored_duration,
			argMax(end_reason, version) AS reason, argMax(entry_channel, version) AS stored_channel,
			argMax(start_ms, version) AS start, argMax(deleted, version) AS gone
		FROM ` + s.table("sessions") + `
		GROUP BY session_id
		HAVING gone = 0 AND start >= ? AND start < ?`
	counted := `SELECT person_id, toInt64(stored_events) AS n, stored_duration AS duration, reason, stored_channel AS channel
		FROM (` + stored + `)`
	qctx := ctx
	if len(fixes) > 0 {
		t, err := ext.NewTable("later_copies", ext.Column("session_id", "String"), ext.Column("copies", "UInt32"),
			ext.Column("fixed_duration", "Float64"), ext.Column("fixed_channel", "String"))
		if err != nil {
			return nil, fmt.Errorf("sessions: %w", err)
		}
		for _, id := range slices.Sorted(maps.Keys(fixes)) {
			f := fixes[id]
			if err := t.Append(id, f.copies, float64(f.end-f.start)/1000, f.channel); err != nil {
				return nil, fmt.Errorf("sessions: %w", err)
			}
		}
		qctx = clickhouse.Context(s.withQuerySettings(ctx), clickhouse.WithExternalTable(t))
		// A session with no row in later_copies joins copies 0 and keeps what was stored; one
		// whose events were all later copies is left out.
		counted = `SELECT person_id, greatest(toInt64(stored_events) - toInt64(copies), toInt64(0)) AS n,
			if(copies > 0, fixed_duration, stored_duration) AS duration, reason, if(copies > 0, fixed_channel, stored_channel) AS channel
		FROM (` + stored + `) AS ss ANY LEFT JOIN (SELECT session_id, copies, fixed_duration, fixed_channel FROM later_copies) AS c USING session_id
		WHERE copies = 0 OR n > 0`
	}
	live := `SELECT ` + resolvedPerson + ` AS person, n, duration, reason, channel
	FROM (` + counted + `) AS s ANY LEFT JOIN (` + s.personOverrides(math.MaxUint64) + `) AS p USING person_id`
	sum := &SessionSummary{ByEndReason: map[string]uint64{}, ByEntryChannel: map[string]uint64{}}
	if !from.IsZero() {
		sum.From = &from
	}
	if !to.IsZero() {
		sum.To = &to
	}
	row := s.conn.QueryRow(qctx, `SELECT count(), uniqExact(person), toUInt64(sum(n)), quantileExact(0.5)(duration),
		quantileExact(0.9)(duration), avg(n) FROM (`+live+`)`, lo, hi)
	var events uint64
	if err := row.Scan(&sum.Sessions, &sum.Persons, &events, &sum.MedianDurationSeconds, &sum.P90DurationSeconds, &sum.MeanEventsPerSession); err != nil {
		return nil, fmt.Errorf("sessions summary: %w", err)
	}
	sum.Events = events
	if sum.Sessions == 0 {
		sum.MedianDurationSeconds, sum.P90DurationSeconds, sum.MeanEventsPerSession = 0, 0, 0
	}
	for _, by := range []struct {
		col string
		dst map[string]uint64
	}{{"reason", sum.ByEndReason}, {"channel", sum.ByEntryChannel}} {
		rows, err := s.conn.Query(qctx, "SELECT "+by.col+", count() FROM ("+live+") GROUP BY "+by.col, lo, hi)
		if err != nil {
			return nil, fmt.Errorf("sessions by %s: %w", by.col, err)
		}
		for rows.Next() {
			var k string
			var n uint64
			if err := rows.Scan(&k, &n); err != nil {
				rows.Close()
				return nil, fmt.Errorf("sessions by %s: %w", by.col, err)
			}
			by.dst[k] = n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("sessions by %s: %w", by.col, err)
		}
	}
	return sum, nil
}

// sessionFix is what the later copies cut into one stored session change of it.
type sessionFix struct {
	copies     uint32         // later copies in it
	start, end int64          // ms: its first and last remaining event; both 0 when none remains
	channel    string         // the channel of its first remaining event
	first      remainingEvent // its first remaining event, in the sessionizer's order
	remains    bool           // some event of it is not a later copy
}

// laterCopiesInSessions returns, per live session of those that started in [lo, hi) (ms) that
// the sessionizer cut later copies of messages into (stored copies of a message of the same
// person other than the earliest, see laterCopies), how many, and the span and entry channel of
// its remaining events. Most shops have no later copies, and the map is empty.
func (s *Store) laterCopiesInSessions(ctx context.Context, lo, hi uint64) (map[string]*sessionFix, error) {
	// The latest end of those sessions bounds the events that can be in them.
	var n, end uint64
	if err := s.conn.QueryRow(ctx, `SELECT count(), max(end) FROM (
		SELECT session_id, argMax(start_ms, version) AS start, argMax(end_ms, version) AS end, argMax(deleted, version) AS gone
		FROM `+s.table("sessions")+`
		GROUP BY session_id
		HAVING gone = 0 AND start >= ? AND start < ?
	)`, lo, hi).Scan(&n, &end); err != nil {
		return nil, fmt.Errorf("sessions: read their range: %w", err)
	}
	if n == 0 {
		return nil, nil
	}
	copies, err := s.laterCopies(ctx, int64(max(end, 1)))
	if err != nil || len(copies) == 0 {
		return nil, err
	}
	keys := map[string]bool{}
	later := map[laterCopy]bool{}
	for _, c := range copies {
		keys[c.key], later[c] = true, true
	}
	spans, err := s.sessionsOf(ctx, slices.Sorted(maps.Keys(keys)))
	if err != nil {
		return nil, err
	}
	fixes := map[string]*sessionFix{}
	lowest, highest := int64(math.MaxInt64), int64(0)
	for _, c := range copies {
		if ks, ok := sessionAt(spans[c.key], c.t); ok && uint64(ks.start) >= lo && uint64(ks.start) < hi {
			if fixes[ks.id] == nil {
				fixes[ks.id] = &sessionFix{}
				lowest, highest = min(lowest, ks.start), max(highest, ks.end)
			}
			fixes[ks.id].copies++
		}
	}
	if len(fixes) == 0 {
		return nil, nil
	}
	// The remaining events of those sessions give their span and entry channel.
	err = s.touchpointsOf(ctx, slices.Sorted(maps.Keys(keys)), lowest, highest, func(e remainingEvent) {
		if later[laterCopy{e.key, e.t, e.id}] {
			return
		}
		ks, ok := sessionAt(spans[e.key], e.t)
		if !ok {
			return
		}
		f := fixes[ks.id]
		if f == nil {
			return
		}
		if !f.remains || compareRemaining(e, f.first) < 0 {
			f.first, f.start, f.channel = e, e.t, e.channel
		}
		f.end, f.remains = max(f.end, e.t), true
	})
	if err != nil {
		return nil, err
	}
	return fixes, nil
}

// sessionAt is the session of spans (one key's, by start) that an event of that key at t (ms) was
// cut into: the last to start at or before it (as splitBySession places events), if it has not
// ended before it.
func sessionAt(spans []keySession, t int64) (keySession, bool) {
	j, _ := slices.BinarySearchFunc(spans, t, func(s keySession, t int64) int { return cmp.Compare(s.start, t+1) })
	if j == 0 || spans[j-1].end < t {
		return keySession{}, false
	}
	return spans[j-1], true
}

// remainingEvent is a stored touchpoint of a customer key, as touchpointsOf reads it.
type remainingEvent struct {
	key     string
	t, seq  int64 // ms; place in its partition
	id      uint64
	channel string
}

// compareRemaining orders one key's events as the sessionizer does (time, seq, id).
func compareRemaining(a, b remainingEvent) int {
	return cmp.Or(cmp.Compare(a.t, b.t), cmp.Compare(a.seq, b.seq), cmp.Compare(a.id, b.id))
}

// touchpointsOf streams to fn the stored touchpoints of the given customer keys from time lo to
// hi (ms, inclusive), each stored event once.
func (s *Store) touchpointsOf(ctx context.Context, keys []string, lo, hi int64, fn func(remainingEvent)) error {
	kctx, err := withKeys(ctx, keys)
	if err != nil {
		return fmt.Errorf("read the events beside later copies: %w", err)
	}
	touch := rulePredicate(sessionize.Rule{Types: sessionize.TouchpointTypes()})
	rows, err := s.conn.Query(kctx, `SELECT customer_key, ts_ms, min(seq), cityHash64(source, message_id) AS id, min(channel)
		FROM `+s.table("events")+`
		WHERE customer_key IN restore_keys AND ts_ms >= ? AND ts_ms <= ? AND `+touch.sql+` AND `+s.notSuperseded()+`
		GROUP BY customer_key, ts_ms, id`, append([]any{uint64(lo), uint64(hi)}, touch.args...)...)
	if err != nil {
		return fmt.Errorf("read the events beside later copies: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e remainingEvent
		var t, seq uint64
		if err := rows.Scan(&e.key, &t, &seq, &e.id, &e.channel); err != nil {
			return fmt.Errorf("read the events beside later copies: %w", err)
		}
		e.t, e.seq = int64(t), int64(seq)
		fn(e)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the events beside later copies: %w", err)
	}
	return nil
}

// laterCopy is a stored touchpoint that is a later copy of a message: the device key it was
// stored, and sessionized, under, and its time (ms).
type laterCopy struct {
	key string
	t   int64
	id  uint64 // of its source and messageId
}

// laterCopies finds the later copies among the touchpoints stored up to time to (ms, inclusive):
// per person (merges and shared devices applied as in every scan, see personRows), the stored
// copies of each (source, messageId) but the earliest, in the order dedupe keeps (time, seq,
// then the customer key for copies at one time), and but those at the time and under the key of
// the earliest (the same stored event, stored twice before ClickHouse merged them). ClickHouse
// groups each person's events, in passes as a scan does (see scanPasses), and sends only the
// copies of messages stored more than once.
func (s *Store) laterCopies(ctx context.Context, to int64) ([]laterCopy, error) {
	if share := shareOf(ctx); share != nil { // it reads the events apart from the batch's shared scans
		release, err := share.takeEngineTurn(ctx)
		if err != nil {
			return nil, err
		}
		defer release()
	}
	sc := eventScan{
		preds: []predicate{rulePredicate(sessionize.Rule{Types: sessionize.TouchpointTypes()})},
		attrs: []predicate{{sql: "customer_key"}},
		to:    to,
	}
	id, passes, err := s.scanPasses(ctx, sc)
	if err != nil {
		return nil, err
	}
	type copyRow struct {
		person string
		t, seq uint64
		id     uint64
		key    string
	}
	var found []copyRow
	for _, persons := range passes {
		rows, args, none, err := s.personRows(sc, id, persons)
		if err != nil {
			return nil, err
		}
		if none {
			continue
		}
		s.metrics.scanPasses.Inc()
		// sorted: the person's rows in dedupe's order; evs: without the rows stored twice;
		// copies: those of an id that evs holds more than once (its first or last place in
		// evs is not its only one).
		query := `SELECT person, tupleElement(c, 1), tupleElement(c, 2), tupleElement(c, 3), tupleElement(c, 4) FROM (
	SELECT person, arrayFilter((x, first, last) -> first > 1 OR last > 1, evs, arrayEnumerateUniq(ids), arrayReverse(arrayEnumerateUniq(arrayReverse(ids)))) AS copies
	FROM (
		SELECT person, arrayFilter((x, k) -> k = 1, sorted, arrayEnumerateUniq(sorted)) AS evs, arrayMap(x -> tupleElement(x, 3), evs) AS ids
		FROM (
			SELECT person, arraySort(groupArray((t, seq, id, a0))) AS sorted
			FROM (
				` + rows + `
			)
			GROUP BY person
		)
	)
	WHERE notEmpty(copies)
) ARRAY JOIN copies AS c`
		res, err := s.conn.Query(ctx, query, args...)
		if err != nil {
			return nil, fmt.Errorf("find later copies: %w", err)
		}
		for res.Next() {
			var r copyRow
			if err := res.Scan(&r.person, &r.t, &r.seq, &r.id, &r.key); err != nil {
				res.Close()
				return nil, fmt.Errorf("find later copies: read row: %w", err)
			}
			found = append(found, r)
		}
		res.Close()
		if err := res.Err(); err != nil {
			return nil, fmt.Errorf("find later copies: %w", err)
		}
	}
	slices.SortFunc(found, func(a, b copyRow) int {
		return cmp.Or(cmp.Compare(a.person, b.person), cmp.Compare(a.id, b.id), cmp.Compare(a.t, b.t), cmp.Compare(a.seq, b.seq), cmp.Compare(a.key, b.key))
	})
	var out []laterCopy
	for i := 0; i < len(found); {
		j := i + 1
		for j < len(found) && found[j].person == found[i].person && found[j].id == found[i].id {
			j++
		}
		// found[i] is the earliest copy; each other place (key and time) is one later copy.
		seen := map[laterCopy]bool{{found[i].key, int64(found[i].t), found[i].id}: true}
		for _, r := range found[i+1 : j] {
			if c := (laterCopy{r.key, int64(r.t), r.id}); !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
		i = j
	}
	return out, nil
}

// keySession is a live stored session of a customer key: its id and time span (ms).
type keySession struct {
	id         string
	start, end int64
}

// sessionsOf reads the live sessions of the given customer keys, per key, by start.
func (s *Store) sessionsOf(ctx context.Context, keys []string) (map[string][]keySession, error) {
	kctx, err := withKeys(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("read the sessions of later copies: %w", err)
	}
	rows, err := s.conn.Query(kctx, `SELECT session_id, key, start, end FROM (
		SELECT session_id, argMax(customer_key, version) AS key, argMax(start_ms, version) AS start,
			argMax(end_ms, version) AS end, argMax(deleted, version) AS gone
		FROM `+s.table("sessions")+`
		WHERE customer_key IN restore_keys
		GROUP BY session_id
		HAVING gone = 0
	)`)
	if err != nil {
		return nil, fmt.Errorf("read the sessions of later copies: %w", err)
	}
	defer rows.Close()
	out := map[string][]keySession{}
	for rows.Next() {
		var ks keySession
		var key string
		var start, end uint64
		if err := rows.Scan(&ks.id, &key, &start, &end); err != nil {
			return nil, fmt.Errorf("read the sessions of later copies: %w", err)
		}
		ks.start, ks.end = int64(start), int64(end)
		out[key] = append(out[key], ks)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the sessions of later copies: %w", err)
	}
	for _, spans := range out {
		slices.SortFunc(spans, func(a, b keySession) int { return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(a.id, b.id)) })
	}
	return out, nil
}
