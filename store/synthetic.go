package store

import (
	"context"
	"fmt"
	"math"
)

// SyntheticOptions shapes the events GenerateSynthetic inserts; the zero value is the plain shop,
// every customer known by their userId from their first event.
type SyntheticOptions struct {
	// MergedShare is the share of customers, from 0 to 1, who browse anonymously on a device of
	// their own before they log in, at a time drawn per customer in the 30 days. Their events before
	// it are stored as ingest stores an anonymous event before any login (customer key, anonymousId
	// and person all the device id "d<n>", no userId), the rest under their userId "c<n>" with the
	// device as anonymousId (ingest now keys them by the device; the queries read the person, and
	// builds before persons on events read this key); the persons table gets the rows the
	// sessionizer writes after the login (device → userId, userId → userId). Default 0.
	MergedShare float64
	// VisitEvents is how many events each visit holds, 1 to 100 (0 reads as 1). At 1 every
	// event is drawn at a time of its own in the 30 days, so nearly every event is a visit of
	// its own (9.2M visits of 10M events), which no shop has; at n, every n consecutive rows are
	// one visit: one draw of the customer, the start and the channel, the events a minute apart
	// (each its own event name and category). So the queries that read visits can be measured
	// on a shop whose visits hold several events each.
	VisitEvents int
}

// maxVisitEvents bounds SyntheticOptions.VisitEvents: a visit of 100 events a minute apart lasts
// 99 minutes, longer than a shop's visits mostly are.
const maxVisitEvents = 100

// syntheticCustomer is the SQL of the number of the customer of a visit's number (the SQL
// visit): the cube of a uniform draw scaled to persons, which gives the heavy head of real traffic.
func syntheticCustomer(persons int, visit string) string {
	return fmt.Sprintf("toUInt64(%d * pow((cityHash64(%s, 1) %% 1000000) / 1000000, 3))", persons, visit)
}

// syntheticMerged is the SQL that says whether customer number k is in the merged share: a draw
// per customer below the share, in millionths.
func syntheticMerged(share float64) string {
	return fmt.Sprintf("cityHash64(k, 6) %% 1000000 < %d", int(math.Round(share*1_000_000)))
}

// syntheticChunk is how many events one INSERT of GenerateSynthetic generates: an INSERT … SELECT
// sends nothing back until it ends, and one of 100M rows outlasts the client's read timeout
// (clickhouseOptions) on a busy machine. One of 5M did at rows 90M–95M of the 100M benchmark
// with the load at 20, and one of 1M at rows 98M–99M with the server at nice 19 and the load at
// 14 (the merges of the parts before it compete for the cores), both when reads waited 5 minutes;
// they now wait a minute past the benchmark's QueryTimeout.
const syntheticChunk = 1_000_000

// syntheticLogin is the SQL of the time, in ms, at which a merged customer number k logs in: a
// draw per customer in the 30 days.
const syntheticLogin = "1767225600000 + (cityHash64(k, 7) % 2592000) * 1000"

// GenerateSynthetic inserts n synthetic shop events for persons customers inside ClickHouse
// (INSERT … SELECT … FROM numbers), for benchmarks of the journey queries. The shape is a shop's:
// activity per customer is Zipf-like (a few customers do much, most do little), and the events
// follow a five-stage funnel with falling conversion (views, cart adds, checkouts, orders,
// reviews), over 30 days from 2026-01-01, with six channels and twenty product categories. opts
// can have a share of the customers browse anonymously before they log in: that changes the ids
// their events are stored under, never an event's time, name, channel or category. The sessions
// table gets their visits (GenerateSyntheticSessions).
func (s *Store) GenerateSynthetic(ctx context.Context, n, persons int, opts SyntheticOptions) error {
	if opts.MergedShare < 0 || opts.MergedShare > 1 || math.IsNaN(opts.MergedShare) {
		return fmt.Errorf("generate synthetic events: merged share %v is not between 0 and 1", opts.MergedShare)
	}
	if opts.VisitEvents < 0 || opts.VisitEvents > maxVisitEvents {
		return fmt.Errorf("generate synthetic events: %d events a visit, want 1 to %d", opts.VisitEvents, maxVisitEvents)
	}
	// A row's visit: its number divided by the events a visit (visitEvents), so that the rows are
	// the same however they are cut into INSERTs, and at 1 each row's own number, as before.
	visitEvents := max(opts.VisitEvents, 1)
	visit := fmt.Sprintf("intDiv(number, %d)", visitEvents)
	customer, merged := syntheticCustomer(persons, "visit"), syntheticMerged(opts.MergedShare)
	// Hashes of the row number give independent pseudo-random draws, so the rows are the same
	// however they are cut into INSERTs: row numbers [start, start+count) in each.
	for start := 0; start < n; start += syntheticChunk {
		if err := s.generateChunk(ctx, start, min(syntheticChunk, n-start), visit, visitEvents, customer, merged); err != nil {
			return fmt.Errorf("generate %d synthetic events: %w", n, err)
		}
	}
	if err := s.GenerateSyntheticSessions(ctx); err != nil {
		return fmt.Errorf("generate %d synthetic events: %w", n, err)
	}
	if opts.MergedShare == 0 {
		return nil
	}
	// Every merged customer with events logged in on their device: both their ids point to the
	// userId, as the sessionizer stores them after the login (the device's typed, as its
	// anonymous events' person).
	query := fmt.Sprintf(`INSERT INTO %s (customer_key, person_id, version)
SELECT arrayJoin([%s, concat('c', toString(k))]), concat('c', toString(k)), 1
FROM (
	SELECT DISTINCT k FROM (SELECT %s AS k FROM (SELECT %s AS visit FROM numbers(%d))) WHERE %s
)`, s.table("persons"), devicePersonSQL("concat('d', toString(k))"), customer, visit, n, merged)
	if err := s.conn.Exec(ctx, query); err != nil {
		return fmt.Errorf("generate the persons of %d synthetic events: %w", n, err)
	}
	return nil
}

// generateChunk inserts the synthetic events of row numbers [start, start+count), with visit
// the SQL of a row's visit (of visitEvents events), customer and merged of GenerateSynthetic's
// draws. A visit's n-th event (from 0) comes n minutes after its start.
func (s *Store) generateChunk(ctx context.Context, start, count int, visit string, visitEvents int, customer, merged string) error {
	query := fmt.Sprintf(`INSERT INTO %s (source, message_id, type, event, user_id, anonymous_id, customer_key,
	person_id, ts_ms, date, original_ts_ms, sent_at_ms, received_at_ms, stored_at_ms, prop_keys, prop_values,
	page_path, referrer, campaign_source, campaign_medium, campaign_name, channel, raw)
SELECT 'synthetic', toString(number), 'track', event, if(anonymous, '', customer), if(merged, device, ''), stored_key,
	if(anonymous, %s, customer), ts, toDate(intDiv(ts, 1000)), ts, ts, ts, ts, ['category'], [toString(cityHash64(number, 3) %% 20)],
	'', '', '', '', '', channel, ''
FROM (
	SELECT number,
		%s AS visit,
		%s AS k,
		concat('c', toString(k)) AS customer,
		concat('d', toString(k)) AS device,
		%s AS merged,
		merged AND ts < %s AS anonymous,
		if(anonymous, device, customer) AS stored_key,
		cityHash64(number, 2) %% 1000 AS draw,
		multiIf(draw < 700, 'Product Viewed', draw < 850, 'Product Added', draw < 930, 'Checkout Started',
			draw < 980, 'Order Completed', 'Product Reviewed') AS event,
		1767225600000 + (cityHash64(visit, 4) %% 2592000) * 1000 + (number %% %d) * 60000 AS ts,
		['direct', 'search', 'paid_search', 'social', 'email', 'referral'][(cityHash64(visit, 5) %% 6) + 1] AS channel
	FROM (SELECT r AS number FROM (SELECT number + %d AS r FROM numbers(%d)) AS chunk)
)`, s.table("events"), devicePersonSQL("device"), visit, customer, merged, syntheticLogin, visitEvents, start, count)
	if err := s.conn.Exec(ctx, query); err != nil {
		return fmt.Errorf("rows %d to %d: %w", start, start+count, err)
	}
	return nil
}

// GenerateSyntheticSessions inserts into the sessions table the visits of the stored events, as
// the sessionizer cuts them with its default settings, near enough for a benchmark: a customer
// key's events in time order, a new visit after a gap of more than 30 minutes (end reason
// "timeout") or at midnight UTC (which stands in for the 24-hour longest session), each visit's
// person the key's (a device's, keys "d…", typed as ingest.DevicePerson). Entry event, channel, campaign and stages are left empty: the sessions query
// reads them from the events. GenerateSynthetic calls it; a benchmark database generated before
// it had no sessions calls it on its own.
func (s *Store) GenerateSyntheticSessions(ctx context.Context) error {
	var n uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM "+s.table("events")).Scan(&n); err != nil {
		return fmt.Errorf("generate the sessions of the synthetic events: count the events: %w", err)
	}
	// One INSERT per syntheticChunk events or so, each over a share of the customer keys, for
	// the client's read timeout (see syntheticChunk).
	parts := max(1, (n+syntheticChunk-1)/syntheticChunk)
	for part := range parts {
		if err := s.generateSessionsPart(ctx, part, parts); err != nil {
			return fmt.Errorf("generate the sessions of the synthetic events: part %d of %d: %w", part+1, parts, err)
		}
	}
	return nil
}

// generateSessionsPart inserts the visits of the customer keys whose hash is part modulo parts.
func (s *Store) generateSessionsPart(ctx context.Context, part, parts uint64) error {
	// A lambda that reads a column it is not given (ts[i-1]) copies that column for every element
	// of the array, which for a customer of 100,000 events is quadratic: the lambdas here are given
	// every array they read, whole, in step (arrayDifference for the gaps).
	query := fmt.Sprintf(`INSERT INTO %s (session_id, customer_key, person_id, start_ms, end_ms, date, events,
	entry_event, exit_event, entry_channel, entry_campaign, stages, end_reason, map_version, version, deleted)
SELECT concat(customer_key, '/', toString(start)), customer_key, if(substring(customer_key, 1, 1) = 'd', %s, customer_key), start, end, toDate(intDiv(start, 1000)), n,
	'', '', '', '', [], 'timeout', '', 1, 0
FROM (
	SELECT customer_key,
		arrayFilter((t, f) -> f, ts, first) AS starts,
		arrayFilter((t, f) -> f, ts, last) AS ends,
		arrayMap((a, b) -> toUInt32(b - a + 1),
			arrayFilter((i, f) -> f, arrayEnumerate(ts), first), arrayFilter((i, f) -> f, arrayEnumerate(ts), last)) AS counts
	FROM (
		SELECT customer_key, ts, first, arrayPushBack(arrayPopFront(first), 1) AS last
		FROM (
			SELECT customer_key, ts,
				arrayMap((i, gap, days) -> i = 1 OR gap > 1800000 OR days != 0,
					arrayEnumerate(ts), arrayDifference(ts), arrayDifference(arrayMap(t -> intDiv(t, 86400000), ts))) AS first
			FROM (
				SELECT customer_key, arraySort(groupArray(ts_ms)) AS ts FROM %s
				WHERE cityHash64(customer_key) %% %d = %d GROUP BY customer_key
			)
		)
	)
)
ARRAY JOIN starts AS start, ends AS end, counts AS n`, s.table("sessions"), devicePersonSQL("customer_key"), s.table("events"), parts, part)
	return s.conn.Exec(ctx, query)
}
