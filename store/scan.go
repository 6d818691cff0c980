package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
)

// predicate is a SQL expression over the events table with the arguments of its placeholders.
type predicate struct {
	sql  string
	args []any
	// numbers are the values (SQL over the events table) whose numberReading sql compares: a
	// scan reads their columns once a row (see personRows).
	numbers []string
}

// key is the same for predicates of the same SQL with the same arguments, and differs otherwise.
func (p predicate) key() string { return fmt.Sprintf("%s\x00%#v", p.sql, p.args) }

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
	var numbers []string
	for i := range r.Where {
		c := conditionSQL(&r.Where[i])
		parts = append(parts, c.sql)
		args = append(args, c.args...)
		numbers = append(numbers, c.numbers...)
	}
	if len(parts) == 0 {
		return predicate{sql: "1"}
	}
	return predicate{sql: "(" + strings.Join(parts, " AND ") + ")", args: args, numbers: numbers}
}

// propertyValue is the text of property name on an event, "" when it has none.
func propertyValue(name string) predicate { return storedValue(ingest.PropertyKey(name)) }

// storedValue is the text stored under key (ingest.Event.PropertyKeys) on an event, "" when it
// has none.
func storedValue(key string) predicate {
	return predicate{sql: "prop_values[indexOf(prop_keys, ?)]", args: []any{key}}
}

// eventTime is the time of a row of the events table as every query orders and bounds events:
// unix microseconds, the stored millisecond (ts_ms) and the microseconds past it (ts_sub_us,
// schema version 12; 0 in rows stored before, which keep their order). The time the client
// stated is kept to the microsecond, so events of one person within one millisecond are in the
// order of their times, not of their arrival (see the tie rule, compareScanned).
const eventTime = "(ts_ms * 1000 + ts_sub_us)"

// eventScan reads, per person, the distinct events that match at least one of its predicates.
type eventScan struct {
	preds    []predicate // bit i of an event's mask says it matches preds[i]; at most 64
	attrs    []predicate // text columns read with each event
	from, to int64       // bounds on the event time (eventTime) in unix µs, inclusive; 0 is unbounded (see readFrom)
}

// copyLookBack is how long before a scan's from it reads events to find the earlier copies of
// those it gives (see readFrom): Segment's deduplication looks back about 24 hours for an event's
// messageId ("Handling Duplicate Data", twilio.com/docs/segment/guides/duplicate-data).
const copyLookBack = 24 * 60 * 60 * 1_000_000 // µs

// readFrom is the earliest time the scan reads (µs), 0 for no bound. A scan gives the events from
// sc.from on, but the earliest copy of a message is the event (see dedupe), and the sessionizer
// cannot always know a later copy as one (another device of a shared device's user, another
// consumer's partition): so the scan also reads the copyLookBack before from, drops the later
// copies of what it finds there, and then cuts what is before from (cutBefore). Without it, a
// copy in the range whose earliest copy was just before it counted, and the answer depended on
// whether the query read that far back (a breakdown by trait or an nth step reads all history).
func (sc eventScan) readFrom() int64 {
	if sc.from <= 0 {
		return 0
	}
	return max(sc.from-copyLookBack, 1)
}

// cutBefore drops the events before from (µs; ≤ 0 drops none), in place, keeping the others'
// order: what a scan read before its from only to find copies (see readFrom).
func cutBefore(events []scannedEvent, from int64) []scannedEvent {
	if from <= 0 {
		return events
	}
	return slices.DeleteFunc(events, func(e scannedEvent) bool { return e.t < from })
}

// scannedEvent is one distinct event of a person.
type scannedEvent struct {
	t    int64  // the event time (eventTime), unix µs
	seq  int64  // place in its partition: equal times are in the client's order by it
	id   uint64 // tieIDSQL (sessionize.TieID): orders what t and seq leave tied
	mask uint64
	// at is where its attributes are in its person's attrTable. A person's events are at most
	// math.MaxInt32 (eventDecoder.unpack checks): 40 bytes an event, where a slice of its
	// attributes took 56.
	at int32
}

// attrTable is the attributes (eventScan.attrs) read with one person's events, one column after
// another: attribute c of the event whose at is i is values[c*stride+i].
type attrTable struct {
	values []string
	stride int // at least the events' largest at plus one
	width  int // attributes per event
}

// value is attribute c of the event whose at is at.
func (a attrTable) value(at int32, c int) string { return a.values[c*a.stride+int(at)] }

// compare orders attributes from to from+n-1 of the events whose at are x and y, the first of
// them first.
func (a attrTable) compare(x, y int32, from, n int) int {
	for c := from; c < from+n; c++ {
		if d := strings.Compare(a.value(x, c), a.value(y, c)); d != 0 {
			return d
		}
	}
	return 0
}

// countKey adds one to m[key], storing a new key as a copy: a scannedEvent's attributes are cut
// from their row's text, and a map key cut so would keep that whole text in memory as long as
// the map lives.
func countKey[N int64 | uint64](m map[string]N, key string) {
	countKeyBy(m, key, 1)
}

// countKeyBy adds n to key's count in m, cloning key when it is new.
func countKeyBy[N int64 | uint64](m map[string]N, key string, n N) {
	if _, ok := m[key]; ok {
		m[key] += n
		return
	}
	m[strings.Clone(key)] = n
}

// scan streams each person's events to fn, duplicates (a redelivered message) read once, in
// (time, id) order.
//
// Persons on events: each event is stored with the person known at ingest, and ClickHouse groups
// the events by that person after applying the overrides of later merges (see personOverrides),
// so the query process holds one person's events at a time however many persons were merged.
// A large events table is read in passes over ranges of persons (see scanPasses); each person
// comes in one pass, and fn sees the persons in no particular order.
//
// A query of a batch (QueryBatch) shares its scan with the batch's other queries: see scanShare.
func (s *Store) scan(ctx context.Context, sc eventScan, fn scanFunc) error {
	return s.read(ctx, scanReader{scan: sc, fn: fn})
}

// scanVisits is scan for a query that splits its persons' events by visit: whenever fn is
// given a person, v holds the live visits that end at or after v.from of every customer key of
// the person's events (and of the other persons of the pass), and fn may not keep them.
func (s *Store) scanVisits(ctx context.Context, sc eventScan, v *visits, fn scanFunc) error {
	return s.read(ctx, scanReader{scan: sc, fn: fn, visits: v})
}

// read reads r's scan, alone or with the other scans of its batch.
func (s *Store) read(ctx context.Context, r scanReader) error {
	if share := shareOf(ctx); share != nil {
		return share.scan(ctx, r)
	}
	if err := s.scanTogether(ctx, []*scanReader{&r}); err != nil {
		return err
	}
	return r.err
}

// scanFunc is given each person's events of a scan, and their attributes. Neither may be kept
// past the call: their space is reused for the next person.
type scanFunc func(person string, events []scannedEvent, attrs attrTable) error

// scanReader is one query's part of a scan: what it reads, and the function its persons go to.
type scanReader struct {
	scan eventScan
	fn   scanFunc
	// ctx, when set, is the reader's own: once it ends, the reader is given no more persons
	// (a query of a batch, whose scan reads on for the others).
	ctx context.Context
	// Set by scanTogether (combineScans) when the scan reads for other readers too: which of its
	// conditions is each of the reader's (their bits of the mask), and which of its attributes.
	// shift ≥ 0 says the reader's conditions are the scan's from bit shift on, in order.
	predBits, attrCols []int
	shift              int
	err                error // the error fn returned; it is given no more persons
	// visits, when set, is where the reader finds the visits of its persons' customer keys:
	// scanTogether loads each pass's into it (see loadVisits).
	visits *visits
}

// readerScratch is the space a scan's readers get their part of each person in, reused from
// person to person. One is shared by all the readers of a scan, which read a person one after
// another, so a batch holds one copy of a heavy person's events, not one per query.
type readerScratch struct {
	events []scannedEvent // a reader's part of the person being read
	attrs  []string       // their attributes (attrTable.values)
	ids    []uint64       // dedupe's scratch space
}

// trim lets go of the space a heavy person grew (see reuse).
func (s *readerScratch) trim() {
	s.events, s.attrs, s.ids = reuse(s.events), reuse(s.attrs), reuse(s.ids)
}

// scratchKeep is the most elements a per-person scratch buffer keeps for the next person.
const scratchKeep = 1 << 16

// reuse is buf emptied for the next person, or nil when a heavy person (a bot's million events)
// grew it past scratchKeep elements: that space is let go once the person is read, rather than
// held for the rest of the query beside the next heavy person's.
func reuse[T any](buf []T) []T {
	if cap(buf) > scratchKeep {
		return nil
	}
	return buf[:0]
}

// scanTogether reads the events of every reader's scan in one scan, whose conditions and
// attributes are all of theirs (at most 64 conditions) over the smallest time range holding
// theirs, and gives each reader its events of each person: those that match its conditions, in
// its time range, with its mask bits and attributes, duplicates dropped, as if it had scanned
// alone. An error of a reader's function stops that reader (it is left in its err), and the
// scan when none is left; scanTogether returns the scan's own error (ClickHouse's, ctx's).
func (s *Store) scanTogether(ctx context.Context, readers []*scanReader) error {
	sc := combineScans(readers)
	loads := visitLoads(readers)
	plan, err := s.scanPasses(ctx, sc, loads)
	if err != nil {
		return err
	}
	id, passes, passVisitRows := plan.id, plan.passes, plan.passVisitRows
	ctx, cancel := context.WithCancel(ctx)
	// Each pass is sent before the one before it is read, so ClickHouse reads and groups the next
	// range of persons while Waymark matches the persons of the last; so are its visits.
	var running []driver.Rows    // passes sent and not read through; nil: a pass with no events
	var visitsSent []driver.Rows // per pass of running, its visits when a reader needs them
	defer func() {
		cancel() // a pass still running stops rather than runs to its end
		for _, rows := range slices.Concat(visitsSent, running) {
			if rows != nil {
				rows.Close()
			}
		}
	}()
	sent := 0
	sendNext := func() error {
		if sent == len(passes) {
			return nil
		}
		rows, err := s.sendPass(ctx, sc, id, passes[sent])
		if err != nil {
			return err
		}
		running = append(running, rows)
		var visits driver.Rows
		if rows != nil && len(loads) > 0 {
			if visits, err = s.sendVisits(ctx, sc, id, passes[sent], loads); err != nil {
				return err
			}
		}
		visitsSent = append(visitsSent, visits)
		sent++
		return nil
	}
	if err := sendNext(); err != nil {
		return err
	}
	var (
		scratch    readerScratch
		visitSpace = visitSpace{spans: make([]span, 0, min(passVisitRows, 2*passVisits))} // what the last pass's visits left
	)
	give := func(person string, events []scannedEvent, attrs attrTable) error {
		defer scratch.trim()
		left := 0
		for _, r := range readers {
			if r.err == nil && r.ctx != nil && r.ctx.Err() != nil {
				r.err = fmt.Errorf("scan events: %w", r.ctx.Err())
			}
			if r.err == nil {
				r.err = r.give(person, events, attrs, len(readers) > 1, &scratch)
			}
			if r.err == nil {
				left++
			}
		}
		if left == 0 {
			return errReadersDone
		}
		return nil
	}
	for range passes {
		if err := sendNext(); err != nil {
			return err
		}
		rows := running[0]
		err := s.loadVisits(ctx, loads, visitsSent[0], &visitSpace)
		visitsSent[0] = nil // read through and closed
		if err != nil {
			return err
		}
		err = readPersons(ctx, rows, len(sc.attrs), cancel, give)
		dropVisits(loads)
		if errors.Is(err, errReadersDone) {
			return nil // the deferred cancel stops the passes still running
		}
		if err != nil {
			return err
		}
		if rows != nil {
			rows.Close() // read through: nothing left to wait for
		}
		running, visitsSent = running[1:], visitsSent[1:]
	}
	return nil
}

// errReadersDone stops a scan whose readers have all failed.
var errReadersDone = errors.New("every reader of the scan has stopped")

// combineScans is the scan that reads what each of readers' scans reads, and sets where each
// reader's conditions and attributes are in it: one condition or attribute that several readers
// have (the same SQL and arguments) is read once. The caller keeps the conditions to at most 64.
func combineScans(readers []*scanReader) eventScan {
	if len(readers) == 1 {
		return readers[0].scan
	}
	sc := eventScan{to: -1} // nothing, until a reader reads something
	preds, attrs := map[string]int{}, map[string]int{}
	place := func(list *[]predicate, seen map[string]int, p predicate) int {
		i, ok := seen[p.key()]
		if !ok {
			i = len(*list)
			*list, seen[p.key()] = append(*list, p), i
		}
		return i
	}
	reads := false
	for _, r := range readers {
		r.predBits, r.attrCols, r.shift = nil, nil, -1
		for _, p := range r.scan.preds {
			r.predBits = append(r.predBits, place(&sc.preds, preds, p))
		}
		for _, a := range r.scan.attrs {
			r.attrCols = append(r.attrCols, place(&sc.attrs, attrs, a))
		}
		// A reader may have one condition twice (a strict drop-off's blocking touchpoints are also
		// its tracked ones): its bits then repeat, and only bits first, first+1, … in order shift.
		if len(r.predBits) > 0 && slices.Equal(r.predBits, consecutive(r.predBits[0], len(r.predBits))) {
			r.shift = r.predBits[0]
		}
		// A bound of 0 is open (and so is a start ≤ 0); an end < 0 reads nothing.
		switch {
		case r.scan.to < 0:
		case !reads:
			sc.from, sc.to, reads = r.scan.from, r.scan.to, true
		default:
			if sc.from <= 0 || r.scan.from <= 0 {
				sc.from = 0
			} else {
				sc.from = min(sc.from, r.scan.from)
			}
			if sc.to == 0 || r.scan.to == 0 {
				sc.to = 0
			} else {
				sc.to = max(sc.to, r.scan.to)
			}
		}
	}
	return sc
}

// consecutive is [first, first+1, …], n of them.
func consecutive(first, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = first + i
	}
	return out
}

// give hands the reader its part of one person's events (partOf), unless it has none.
func (r *scanReader) give(person string, events []scannedEvent, attrs attrTable, shared bool, scratch *readerScratch) error {
	if events, attrs = r.partOf(events, attrs, shared, scratch); len(events) == 0 {
		return nil
	}
	return r.fn(person, events, attrs)
}

// partOf is the reader's part of one person's events, from events of a scan that may have read
// for other readers too (shared): those matching one of its conditions in its time range, with
// its mask bits and attributes, duplicates dropped. It is made in scratch (or in events, when
// not shared), valid until scratch's next use.
func (r *scanReader) partOf(events []scannedEvent, attrs attrTable, shared bool, scratch *readerScratch) ([]scannedEvent, attrTable) {
	if shared {
		n := len(r.scan.preds)
		bits := ^uint64(0) >> (64 - n) // n is 1 to 64
		// Sized once: growing by appends would hold a heavy person's part about twice over.
		mine := slices.Grow(scratch.events[:0], len(events))
		cols := len(r.attrCols)
		values := slices.Grow(scratch.attrs[:0], len(events)*cols)[:len(events)*cols]
		table := attrTable{values: values, stride: len(events), width: cols}
		for _, e := range events {
			if e.t < r.scan.readFrom() || r.scan.to != 0 && e.t > r.scan.to {
				continue
			}
			mask := e.mask
			if r.shift >= 0 {
				e.mask = mask >> r.shift & bits
			} else {
				e.mask = 0
				for i, b := range r.predBits {
					e.mask |= (mask >> b & 1) << i
				}
			}
			if e.mask == 0 {
				continue
			}
			at := int32(len(mine))
			for i, c := range r.attrCols {
				values[i*len(events)+int(at)] = attrs.value(e.at, c)
			}
			e.at = at
			mine = append(mine, e)
		}
		scratch.attrs = values
		// Copies of one event came ordered by every reader's mask and attributes; alone, this
		// reader would have had them by its own (see sendPass), and dedupe keeps the first.
		for i := 1; i < len(mine); i++ {
			if sameScanned(&mine[i-1], &mine[i]) {
				sortCopies(mine, table)
				break
			}
		}
		scratch.events, events, attrs = mine, mine, table
	}
	if len(events) == 0 {
		return nil, attrs
	}
	return cutBefore(dedupe(events, &scratch.ids), r.scan.from), attrs
}

// sendPass sends the query of one pass of scan, over the persons in r, whose rows are (person,
// first time, packed events, packed attributes…) (see eventDecoder.unpack); nil when no event
// can match.
func (s *Store) sendPass(ctx context.Context, sc eventScan, id identitySnapshot, r personRange) (driver.Rows, error) {
	rows, args, none, err := s.personRows(sc, id, r)
	if err != nil || none {
		return nil, err
	}
	s.metrics.scanPasses.Inc()
	// Each person's events come in (time, seq, id) order, the tie rule (time: eventTime, µs), as one text column (and one
	// per attribute) rather than arrays: the client reads arrays through reflection, several times
	// slower than this parse, and ClickHouse sorts them while Waymark reads the previous
	// customers. The numbers are ClickHouse's own text of the sorted array of tuples, which it
	// writes in one go: formatting each event with concat took half again as long per pass.
	// Copies of one event (equal time, seq and id: stored twice before ClickHouse merged them)
	// are the same bytes as the sessionizer stores them (sessionize.Output.LaterCopies), but rows
	// an older version stored may differ: they are ordered by their mask and attributes too, so
	// which one dedupe keeps does not depend on the order ClickHouse read them in.
	//
	// Times are sent relative to the person's first (first_t, a column of its own): about 12
	// digits an event instead of 16, the text Waymark decompresses, copies and parses being about
	// 45 bytes an event (docs/query-scale.md). The subtraction is made in the arrayMap that picks
	// the numbers out of the tuples anyway when there are attributes; without, it costs
	// ClickHouse about what the shorter text saves it.
	tuple, attrLists := "t, seq, id, mask", ""
	for i := range sc.attrs {
		tuple += fmt.Sprintf(", a%d", i)
		attrLists += fmt.Sprintf(`, arrayStringConcat(arrayMap(e -> replaceAll(replaceAll(tupleElement(e, %d), '\\', '\\\\'), '\x1f', '\\f'), evs), '\x1f')`, 5+i)
	}
	query := `SELECT person, first_t, toString(arrayMap(e -> (tupleElement(e, 1) - first_t, tupleElement(e, 2), tupleElement(e, 3), tupleElement(e, 4)), evs))` + attrLists + `
FROM (
	SELECT person, min(t) AS first_t, arraySort(groupArray((` + tuple + `))) AS evs
	FROM (
		` + rows + `
	)
	GROUP BY person
)`
	res, err := s.conn.Query(s.withQuerySettings(ctx), query, args...) // runs beside the pass before
	if err != nil {
		return nil, fmt.Errorf("scan events: %w", err)
	}
	return res, nil
}

// personRange is the persons from lo (inclusive) to hi (exclusive), in byte order of their ids;
// an empty lo or hi leaves that end open, and the zero value is every person.
type personRange struct{ lo, hi string }

// sql is the condition that expr (a String) is in r, with its arguments; "1" for every person.
func (r personRange) sql(expr string) predicate {
	var parts []string
	var args []any
	if r.lo != "" {
		parts, args = append(parts, expr+" >= ?"), append(args, r.lo)
	}
	if r.hi != "" {
		parts, args = append(parts, expr+" < ?"), append(args, r.hi)
	}
	if len(parts) == 0 {
		return predicate{sql: "1"}
	}
	return predicate{sql: "(" + strings.Join(parts, " AND ") + ")", args: args}
}

// bytesPerPassEvent is what the default Config.QueryPassEvents allows ClickHouse per stored event
// of a pass, in bytes of QueryMaxMemory: grouping spills to disk past half of it, and the widest
// scan (drop-off's, with three text attributes) took up to 1.94 GiB for a pass of about 10M
// events (100M events, 10 passes): just under the 2 GiB threshold of the default 4 GiB.
const bytesPerPassEvent = 400

// passSizeAttrs is how many text attributes the scan that bytesPerPassEvent was measured on
// read per event (drop-off's: event, location, channel).
const passSizeAttrs = 3

// passSample is how many stored events per pass scanPasses samples to place the passes' bounds.
const passSample = 1000

// A scan of more than pipelinedPassEvents events is read in at least two passes, up to
// pipelinedPasses, however much memory allows: ClickHouse groups one while Waymark matches the
// persons of the one before, so the two work at once. At 10M events, 4 passes took the 3-step
// funnel from 7.9 s to 7.5 s and the drop-off from 19–20 s to 14.4 s; 34 passes were slower than
// one (docs/query-scale.md).
const (
	pipelinedPassEvents = 1_000_000
	pipelinedPasses     = 4
)

// maxPasses bounds the passes of a scan: past it they grow larger than Config.QueryPassEvents
// rather than more numerous (each costs a query, and reads the persons column whole).
const maxPasses = 256

// scanPasses cuts a scan into passes over ranges of persons, so that each groups about
// Config.QueryPassEvents events: in one query grouping 100M events needed 1.1 GiB, past which the
// events spilled to disk past half of --query-max-memory and ran several times slower
// (docs/query-scale.md). Scans of a few million events take a few passes too (see
// pipelinedPasses). The bounds are taken from a sample of the persons (after merges) of the
// events in the scan's time range, weighted by their events. When readers load visits per pass
// (loads), the passes are also enough for each to hold about passVisits visits
// (scanPlan.passVisitRows). It also fixes
// the identity snapshot every pass reads, and gives the earliest and latest time stored in the
// range, all read with the count in one query (readScanStart).
func (s *Store) scanPasses(ctx context.Context, sc eventScan, loads []visitLoad) (scanPlan, error) {
	plan := scanPlan{passes: []personRange{{}}, tMax: -1}
	inRange := sc.timeRange()
	start, err := s.readScanStart(ctx, inRange, loads)
	plan.id = start.id
	if err != nil || sc.to < 0 {
		return plan, err
	}
	n := start.events
	if n > 0 && start.tMax <= math.MaxInt64 {
		plan.tMin, plan.tMax = int64(start.tMin), int64(start.tMax)
	}
	passes := uint64(1)
	var v uint64 // the sessions rows the loads may hold, over every pass
	if n > 0 {
		// A scan with more attributes than the one the pass size was measured on (see
		// bytesPerPassEvent), as a batch's may have, takes smaller passes.
		passEvents := max(1, s.cfg.QueryPassEvents*passSizeAttrs/max(passSizeAttrs, uint64(len(sc.attrs))))
		passes = max((n-1)/passEvents+1, min(pipelinedPasses, (n-1)/pipelinedPassEvents+1))
		// The sessions rows of every load are held at once.
		for _, rows := range start.visits {
			v += rows
		}
		passes = max(passes, (v+passVisits-1)/passVisits)
	}
	plan.passVisitRows = v
	passes = min(passes, maxPasses)
	if passes == 1 {
		return plan, nil
	}
	// The sample's persons are as the passes read them, after merges: a person's events stored
	// under a device merged into it since count for the person. Sampled as stored, a shop's device
	// ids, which few persons hold any more, placed the bounds: over the benchmark's merged persons
	// at 10M events the first of four passes held 16,000–30,000 persons and the others
	// 140,000–225,000 each, and a pass of the next-touchpoint query needed 625 MiB of
	// ClickHouse's memory, against 365–370 MiB cut after merges (docs/query-scale.md).
	rows, err := s.conn.Query(ctx, "SELECT "+resolvedPerson+" FROM (SELECT person_id FROM "+s.table("events")+" WHERE "+inRange.sql+" AND rand() % ? = 0) AS e ANY LEFT JOIN ("+s.personOverrides(plan.id.persons)+") AS o USING person_id",
		append(inRange.args, max(1, n/(passes*passSample)))...)
	if err != nil {
		return plan, fmt.Errorf("sample persons: %w", err)
	}
	defer rows.Close()
	var sample []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return plan, fmt.Errorf("sample persons: %w", err)
		}
		sample = append(sample, p)
	}
	if err := rows.Err(); err != nil {
		return plan, fmt.Errorf("sample persons: %w", err)
	}
	if len(sample) == 0 {
		return plan, nil
	}
	slices.Sort(sample)
	for i := uint64(1); i < passes; i++ {
		bound := sample[i*uint64(len(sample))/passes]
		if last := &plan.passes[len(plan.passes)-1]; bound > last.lo { // one busy person's events are never cut
			last.hi = bound
			plan.passes = append(plan.passes, personRange{lo: bound})
		}
	}
	plan.passVisitRows = v / uint64(len(plan.passes))
	return plan, nil
}

// scanPlan is how a scan is read (scanPasses).
type scanPlan struct {
	id     identitySnapshot // what every pass reads of merged identities
	passes []personRange    // one pass per range of persons; one range of every person when one pass will do
	// passVisitRows is the sessions rows a pass may read when readers load visits (their count
	// over the passes: a bound, as it counts every version), to size the first pass's space
	// for (visitSpace).
	passVisitRows uint64
	// tMin and tMax are the earliest and latest time (µs) stored in the scan's range when it was
	// planned; tMax < tMin when none is.
	tMin, tMax int64
}

// timeRange is the condition that an event of the events table is in the range the scan reads
// (from readFrom; eventTime, µs). Its date bounds (a day wider, whatever the server's time zone)
// let ClickHouse skip the monthly partitions outside the range. They are worked out here:
// ClickHouse's Date arithmetic wraps below 1970. Events are stored at ts_ms ≥ 0.
func (sc eventScan) timeRange() predicate {
	const dayUs = 24 * 60 * 60 * 1_000_000
	day := func(us int64) string { return time.UnixMicro(max(us, 0)).UTC().Format(time.DateOnly) }
	parts, args := []string{"1"}, []any{}
	if from := sc.readFrom(); from > 0 {
		parts = append(parts, "date >= toDate(?) AND "+eventTime+" >= ?")
		args = append(args, day(from-dayUs), uint64(from))
	}
	if sc.to > 0 {
		parts = append(parts, "date <= toDate(?) AND "+eventTime+" <= ?")
		args = append(args, day(sc.to+dayUs), uint64(sc.to))
	}
	return predicate{sql: strings.Join(parts, " AND "), args: args}
}

// personRows builds the query of the rows a scan reads, one per stored event (copies included)
// of the persons in r, with its arguments: columns person (after merges), t (eventTime, µs), seq, mask
// (UInt64, bit i: preds[i]), id (UInt64, per message id, of any source) and a0, a1… (the attributes,
// String). none is set when no event can match (the query need not run). Both the in-process scan
// and the in-engine funnel group these rows by person.
func (s *Store) personRows(sc eventScan, id identitySnapshot, r personRange) (query string, args []any, none bool, err error) {
	if len(sc.preds) == 0 || len(sc.preds) > 64 {
		return "", nil, false, fmt.Errorf("scan: %d conditions, want 1 to 64", len(sc.preds))
	}
	if sc.to < 0 {
		return "", nil, true, nil // no event is that early
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
	// The events a pass reads: those stored with a person in r, or with one merged since into a
	// person in r, or of a device several users signed in on (whose events go to the user signed
	// in). That is every event whose person is in r, and a few more, which the outer query drops.
	// It is a PREWHERE: ClickHouse reads the other columns only where it holds, and the
	// table's order by customer key, which is mostly the person, keeps those rows together.
	prewhere, outer := "", r.sql(resolvedPerson)
	if r != (personRange{}) {
		p := s.passPrewhere(id, r)
		prewhere, args = "PREWHERE "+p.sql, append(args, p.args...)
	}
	var numbers []string // the values bounds compare, each once
	for i, p := range sc.preds {
		ors[i] = p.sql
		for _, v := range p.numbers {
			if !slices.Contains(numbers, v) {
				numbers = append(numbers, v)
			}
		}
	}
	inRange := sc.timeRange()
	where := inRange.sql
	if id.superseded {
		where += " AND " + s.notSuperseded()
	}
	args = append(args, inRange.args...)
	// The events of the range that match a condition: those whose mask is not 0, written as the
	// conditions again (a WHERE ClickHouse can move to PREWHERE, on the table's columns).
	events := s.table("events") + `
			` + prewhere + `
			WHERE ` + where + " AND (" + strings.Join(ors, " OR ") + ")"
	if len(numbers) == 0 {
		for _, p := range sc.preds {
			args = append(args, p.args...)
		}
	} else {
		// When bounds compare values, a subquery reads each of them as a number once a row
		// (numberSQL), and the conditions, which compare its columns, are written once, in the
		// mask: repeated in a WHERE, they doubled the SQL, and 26.7 analysed them more slowly
		// there (the largest drop-off's 496 bounds: 3.6 s of CPU, against 2.6 s).
		read := make([]string, len(numbers))
		for i, v := range numbers {
			read[i] = numberSQL(v)
		}
		events = `(
			SELECT *, ` + strings.Join(read, ", ") + `
			FROM ` + s.table("events") + `
			` + prewhere + `
			WHERE ` + where + `
		)
		WHERE mask != 0`
	}
	attrNames := ""
	for i := range sc.attrs {
		attrNames += fmt.Sprintf(", a%d", i)
	}
	mask := balancedSum(maskTerms)
	rowsSQL := `SELECT person_id, ` + eventTime + ` AS t, seq, ` + mask + ` AS mask,
			` + tieIDSQL + ` AS id` + attrCols + `
		FROM ` + events
	if id.shared {
		ev := `SELECT person_id AS stored_person, customer_key, user_id, ` + eventTime + ` AS t, seq, ` + mask + ` AS mask,
				` + tieIDSQL + ` AS id` + attrCols + `
			FROM ` + events
		rowsSQL = s.signedInRows(ev, len(sc.attrs), id.signIns)
		args = append(args, args...) // signedInRows reads ev twice
	}
	query = `SELECT ` + resolvedPerson + ` AS person, t, seq, mask, id` + attrNames + `
	FROM (
		` + rowsSQL + `
	) AS e ANY LEFT JOIN (` + s.personOverrides(id.persons) + `) AS o USING person_id
	WHERE ` + outer.sql
	return query, append(args, outer.args...), false, nil
}

// balancedSum is the SQL sum of terms (at least one) as a balanced tree, ((a + b) + (c + d)):
// "a + b + c + d" is parsed as ((a + b) + c) + d, as deep as it has terms, and ClickHouse 18.16
// names each node of an expression by its whole text, so a deep sum of long terms cost it time
// in their square.
func balancedSum(terms []string) string {
	if len(terms) == 1 {
		return terms[0]
	}
	half := len(terms) / 2
	return "(" + balancedSum(terms[:half]) + " + " + balancedSum(terms[half:]) + ")"
}

// passPrewhere is the condition, over the events table, of the events a pass over the persons in
// r reads (see personRows): stored with a person in r, or with one merged since into a person in
// r, or on a device several users signed in on.
func (s *Store) passPrewhere(id identitySnapshot, r personRange) predicate {
	stored, merged := r.sql("person_id"), r.sql("merged_into")
	sql := stored.sql + " OR person_id IN (SELECT person_id FROM (" + s.personOverrides(id.persons) + ") WHERE " + merged.sql + ")"
	if id.shared {
		sql += " OR customer_key IN (SELECT customer_key FROM (" + s.signIns(id.signIns) + "))"
	}
	return predicate{sql: sql, args: append(stored.args, merged.args...)}
}

// readPersons reads a pass's rows (see sendPass) through, and streams each person's events to
// fn, copies included (see dedupe), in a slice fn may not keep (nor their attributes: both are
// reused for later persons); nil rows have none.
//
// The rows are read and parsed on a goroutine of their own, a batch of persons ahead of fn,
// which runs on the caller's: fn is called for one person at a time, in the rows' order. When fn
// returns an error, or parsing fails, readPersons calls stop (which must end the rows' query, so
// that a read waiting on ClickHouse returns) and waits for the reading goroutine to end before
// it returns: the caller may close rows then.
func readPersons(ctx context.Context, rows driver.Rows, nAttrs int, stop func(), fn scanFunc) error {
	if rows == nil {
		return nil
	}
	free := make(chan *rowBatch, 2) // two batches: one being parsed while fn reads the other
	free <- &rowBatch{}
	free <- &rowBatch{}
	full := make(chan *rowBatch)
	done := make(chan struct{}) // closed when readPersons stops reading early
	go func() {
		defer close(full)
		r := newRowReader(rows, nAttrs)
		for {
			var b *rowBatch
			select {
			case b = <-free:
			case <-done:
				return
			}
			b.fill(ctx, r)
			select {
			case full <- b:
			case <-done:
				return
			}
			if b.last {
				return
			}
		}
	}()
	var err error
	for b := range full {
		if err = ctx.Err(); err != nil {
			err = fmt.Errorf("scan events: %w", err)
			break
		}
		for _, p := range b.persons {
			if err = fn(p.key, b.events(p), b.attrs(p)); err != nil {
				break
			}
		}
		if err = cmp.Or(err, b.err); err != nil || b.last {
			break
		}
		b.reset()
		free <- b // never blocks: there are two
	}
	close(done)
	if err != nil && stop != nil {
		stop()
	}
	for range full { // the reading goroutine has ended once full is closed
	}
	return err
}

// rowReader reads a pass's rows, one person a row.
type rowReader struct {
	rows        driver.Rows
	key, packed string
	first       uint64 // the time the packed times are relative to
	attrs       []string
	dest        []any
}

func newRowReader(rows driver.Rows, nAttrs int) *rowReader {
	r := &rowReader{rows: rows, attrs: make([]string, nAttrs)}
	r.dest = []any{&r.key, &r.first, &r.packed}
	for i := range r.attrs {
		r.dest = append(r.dest, &r.attrs[i])
	}
	return r
}

// Persons a batch of rows holds at most, and the events after which it takes no more persons:
// enough for the hand-over between the reading goroutine and fn to cost little per person, few
// enough that a batch holds little beside a heavy person.
const (
	batchPersons = 256
	batchEvents  = 1 << 14
)

// rowBatch is persons' rows of a pass, parsed.
type rowBatch struct {
	dec     eventDecoder // every person's events and attributes, one person after another
	persons []parsedPerson
	width   int   // attributes per event
	last    bool  // no rows follow: they were read through, or err
	err     error // reading or parsing the row after the batch's persons failed
}

// parsedPerson is one person of a rowBatch: its events are dec.events[from:to], its attributes
// dec.attrs[attrsFrom:attrsFrom+(to-from)*width].
type parsedPerson struct {
	key       string
	from, to  int
	attrsFrom int
}

// fill reads rows into b, which is empty, until it holds batchPersons persons or batchEvents
// events, or the rows end.
func (b *rowBatch) fill(ctx context.Context, r *rowReader) {
	b.width = len(r.attrs)
	for len(b.persons) < batchPersons && len(b.dec.events) < batchEvents {
		if !r.rows.Next() {
			b.last = true
			if err := r.rows.Err(); err != nil {
				b.err = fmt.Errorf("scan events: %w", err)
			}
			return
		}
		if err := r.rows.Scan(r.dest...); err != nil {
			b.last, b.err = true, fmt.Errorf("scan events: read row: %w", err)
			return
		}
		p := parsedPerson{key: r.key, from: len(b.dec.events), attrsFrom: len(b.dec.attrs)}
		if _, _, err := b.dec.unpack(r.packed, r.first, r.attrs); err != nil {
			b.last, b.err = true, fmt.Errorf("scan events of %q: %w", r.key, err)
			return
		}
		p.to = len(b.dec.events)
		b.persons = append(b.persons, p)
		// The events hold nothing of the text: let it go now rather than at the next row, as a
		// heavy person's (45 MB for a million events) would otherwise stay while fn matches them.
		r.packed = ""
		// The work per person is done between rows: look at ctx now and then, so a query stops
		// when its time is up or its client has gone even when ClickHouse has sent every row.
		if len(b.persons)%64 == 0 && ctx.Err() != nil {
			b.last, b.err = true, fmt.Errorf("scan events: %w", ctx.Err())
			return
		}
	}
}

// events is p's events.
func (b *rowBatch) events(p parsedPerson) []scannedEvent { return b.dec.events[p.from:p.to:p.to] }

// attrs is p's attributes.
func (b *rowBatch) attrs(p parsedPerson) attrTable {
	n := p.to - p.from
	return attrTable{values: b.dec.attrs[p.attrsFrom : p.attrsFrom+n*b.width], stride: n, width: b.width}
}

// reset empties b for the next batch, letting go of the space a heavy person grew (see reuse).
func (b *rowBatch) reset() {
	b.dec.events, b.dec.attrs, b.persons = reuse(b.dec.events), reuse(b.dec.attrs), b.persons[:0]
}

// compareScanned orders a person's events by the tie rule: time (to the µs), equal times in the
// client's order (seq), then id (tieIDSQL). The sessionizer orders its points the same way, on
// the same keys (sessionize.comparePoints).
func compareScanned(a, b scannedEvent) int {
	// Each key only when the ones before tie: cmp.Or would work out every one first.
	if a.t != b.t {
		return cmp.Compare(a.t, b.t)
	}
	if a.seq != b.seq {
		return cmp.Compare(a.seq, b.seq)
	}
	return cmp.Compare(a.id, b.id)
}

// tieIDSQL is a scanned event's id (scannedEvent.id), the last key of the tie rule
// (compareScanned), in SQL over the events table: ClickHouse's cityHash64 of the messageId, which
// is sessionize.TieID, the id the sessionizer orders its ties by.
const tieIDSQL = "cityHash64(message_id)"

// sameScanned reports whether compareScanned finds a and b equal: copies of one event.
func sameScanned(a, b *scannedEvent) bool { return a.t == b.t && a.seq == b.seq && a.id == b.id }

// inScanOrder reports whether events are in compareScanned's order.
func inScanOrder(events []scannedEvent) bool {
	for i := 1; i < len(events); i++ {
		a, b := &events[i-1], &events[i]
		if a.t != b.t {
			if a.t > b.t {
				return false
			}
			continue
		}
		if cmp.Or(cmp.Compare(a.seq, b.seq), cmp.Compare(a.id, b.id)) > 0 {
			return false
		}
	}
	return true
}

// sortCopies sorts events as a scan's query does (see sendPass): by the tie rule, then copies
// of one event by their mask and attributes (in attrs).
//
// The mask and attributes are compared only between copies (events the tie rule finds equal),
// which are few: comparing them in every comparison (cmp.Or works out each argument first) was
// 40% of the UDF's time for a drop-off pass, its attributes' strings a quarter (10M events,
// docs/query-scale.md).
func sortCopies(events []scannedEvent, attrs attrTable) {
	slices.SortFunc(events, func(a, b scannedEvent) int {
		if c := compareScanned(a, b); c != 0 {
			return c
		}
		if a.mask != b.mask {
			return cmp.Compare(a.mask, b.mask)
		}
		return attrs.compare(a.at, b.at, 0, attrs.width)
	})
}

// eventSorter sorts a person's events as sortCopies does, mostly as plain numbers: each event's
// time from the person's earliest, with its index in the bits below, sorted without a comparison
// function, then each run of equal times by sortCopies. A pass's events come from ClickHouse's
// groupArray in the table's order, not in time, and sorting them by sortCopies alone was a third
// of the UDF's time for a 3-step funnel (docs/query-scale.md). Its space is reused from person to
// person.
type eventSorter struct {
	keys  []uint64
	spare []scannedEvent
}

// sort returns events sorted as sortCopies sorts them, in events' space or in the sorter's (which
// then keeps events' for the next person): the caller must use the slice returned, not events.
// Times spanning more than the bits the index leaves (2^44 µs, about 200 days, for a person of
// 1M events; more for fewer) are sorted by sortCopies alone.
func (s *eventSorter) sort(events []scannedEvent, attrs attrTable) []scannedEvent {
	if len(events) < 2 {
		return events
	}
	lo, hi := events[0].t, events[0].t
	for _, e := range events {
		lo, hi = min(lo, e.t), max(hi, e.t)
	}
	shift := bits.Len(uint(len(events) - 1))
	if uint64(hi-lo) >= 1<<(64-shift) {
		sortCopies(events, attrs)
		return events
	}
	s.keys = s.keys[:0]
	for i, e := range events {
		s.keys = append(s.keys, uint64(e.t-lo)<<shift|uint64(i))
	}
	slices.Sort(s.keys)
	sorted := s.spare[:0]
	for _, k := range s.keys {
		sorted = append(sorted, events[k&(1<<shift-1)])
	}
	for i := 0; i < len(sorted); { // the tie rule's order, and copies', within each time
		j := i + 1
		for j < len(sorted) && sorted[j].t == sorted[i].t {
			j++
		}
		if j-i > 1 {
			sortCopies(sorted[i:j], attrs)
		}
		i = j
	}
	s.spare = events[:0]
	return sorted
}

// eventDecoder parses persons' rows of a scan into buffers it reuses: unpack appends each
// person's to those of the persons before, and what it returns is valid until its buffers are
// emptied (rowBatch.reset).
type eventDecoder struct {
	events []scannedEvent
	attrs  []string // every event's attributes, one attribute after another (attrTable.values)
}

// attrUnescaper undoes the escapes of an attribute value (see sendPass). It is never changed
// (strings.Replacer is safe for concurrent use).
var attrUnescaper = strings.NewReplacer(`\\`, `\`, `\f`, "\x1f")

// unpack parses one person's events, "[(t,seq,id,mask),…]" (ClickHouse's text of an array of
// tuples of unsigned integers; t is µs after first, so an event's time, eventTime, is first+t),
// and their attributes, each a list of one value per event joined by 0x1f, with "\\" and 0x1f
// escaped as "\\\\" and "\\f". The values are substrings of attrs: nothing is copied but what was
// escaped. The person's event i has at i in the attrTable returned.
func (d *eventDecoder) unpack(packed string, first uint64, attrs []string) ([]scannedEvent, attrTable, error) {
	if len(packed) < 2 || packed[0] != '[' || packed[len(packed)-1] != ']' {
		return nil, attrTable{}, errors.New("bad event list: not an array")
	}
	list := packed[1 : len(packed)-1]
	n := strings.Count(list, "(")
	if n > math.MaxInt32 {
		return nil, attrTable{}, fmt.Errorf("%d events, more than a scan takes of one person (%d)", n, math.MaxInt32)
	}
	start := len(d.events)
	events := slices.Grow(d.events, n) // sized once, for a heavy person's sake
	for i := 0; i < len(list); {
		if list[i] != '(' {
			return nil, attrTable{}, fmt.Errorf("bad event list at byte %d", i+1)
		}
		var e scannedEvent
		var t, seq uint64
		var ok bool
		if t, i, ok = decimalField(list, i+1, ','); ok {
			if seq, i, ok = decimalField(list, i, ','); ok {
				if e.id, i, ok = decimalField(list, i, ','); ok {
					e.mask, i, ok = decimalField(list, i, ')')
				}
			}
		}
		if !ok {
			return nil, attrTable{}, fmt.Errorf("bad event list at byte %d", i+1)
		}
		if first > math.MaxInt64 || t > math.MaxInt64-first {
			return nil, attrTable{}, fmt.Errorf("bad event list at byte %d: time %d µs after %d, past int64", i, t, first)
		}
		e.t, e.seq, e.at = int64(first+t), int64(seq), int32(len(events)-start)
		events = append(events, e)
		if i < len(list) {
			if list[i] != ',' || i == len(list)-1 {
				return nil, attrTable{}, fmt.Errorf("bad event list at byte %d", i+1)
			}
			i++
		}
	}
	d.events, events = events, events[start:]
	if len(attrs) == 0 {
		return events, attrTable{}, nil
	}
	for a, list := range attrs {
		if values := strings.Count(list, "\x1f") + 1; values != len(events) {
			return nil, attrTable{}, fmt.Errorf("%d values of attribute %d for %d events", values, a, len(events))
		}
	}
	start, need := len(d.attrs), len(events)*len(attrs)
	d.attrs = slices.Grow(d.attrs, need)[:start+need]
	buf := d.attrs[start:]
	for a, list := range attrs {
		col := buf[a*len(events) : (a+1)*len(events)]
		for i := range col {
			v := list
			if end := strings.IndexByte(list, 0x1f); end >= 0 {
				v, list = list[:end], list[end+1:]
			}
			if strings.IndexByte(v, '\\') >= 0 {
				v = attrUnescaper.Replace(v)
			}
			col[i] = v
		}
	}
	return events, attrTable{values: buf, stride: len(events), width: len(attrs)}, nil
}

// decimalField reads the unsigned decimal number in s from byte i up to the byte sep: the
// number, and where the byte after sep is; ok is false when there are no digits or more than
// 20, or they end other than in sep.
func decimalField(s string, i int, sep byte) (v uint64, next int, ok bool) {
	start := i
	for ; i < len(s); i++ {
		c := s[i] - '0'
		if c > 9 {
			break
		}
		v = v*10 + uint64(c)
	}
	if i == start || i-start > 20 || i == len(s) || s[i] != sep {
		return 0, i, false
	}
	return v, i + 1, true
}

// dedupe drops the copies of events from one person's events in (time, id) order, the order the
// queries read them in, and keeps the earliest of each. Copies at one time (a redelivered batch)
// are neighbours. Copies at other times reach the store only when the sessionizer could not know
// them as copies: the same message sent from two devices (another anonymousId), or produced to
// two partitions that different consumers read; they are found by their ids (copiedIDs), with
// ids as scratch space kept from person to person.
func dedupe(events []scannedEvent, ids *[]uint64) []scannedEvent {
	events = compactCopies(events)
	if len(events) < 2 {
		return events
	}
	copies := copiedIDs(events, ids)
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

// copiedIDs is the ids that more than one of events have, sorted, each once; nil when there are
// none. Up to scratchKeep events it looks them up in a hash set (open addressing in ids, twice
// as many slots as events or more): one look-up an event, where sorting them took a
// logarithm's worth of comparisons, the most of dedupe's time. A heavier person's ids are
// sorted, which takes half the space.
func copiedIDs(events []scannedEvent, ids *[]uint64) []uint64 {
	var copies []uint64
	if len(events) > scratchKeep {
		sorted := slices.Grow((*ids)[:0], len(events))
		for _, e := range events {
			sorted = append(sorted, e.id)
		}
		slices.Sort(sorted)
		*ids = sorted
		for i := 1; i < len(sorted); i++ {
			if sorted[i] == sorted[i-1] && (len(copies) == 0 || copies[len(copies)-1] != sorted[i]) {
				copies = append(copies, sorted[i])
			}
		}
		return copies
	}
	shift := 64 - bits.Len(uint(2*len(events)-1)) // 1<<(64-shift) slots: at least twice the events
	set := slices.Grow((*ids)[:0], 1<<(64-shift))[:1<<(64-shift)]
	clear(set)
	*ids = set
	mask := uint64(len(set) - 1)
	zeros := 0 // 0 marks a free slot: ids 0 are counted apart
	for _, e := range events {
		if e.id == 0 {
			if zeros++; zeros == 2 {
				copies = append(copies, 0)
			}
			continue
		}
		// Fibonacci hashing: the id's bits mixed into the top ones, which pick the slot.
		for i := e.id * 0x9e3779b97f4a7c15 >> shift; ; i = (i + 1) & mask {
			if set[i] == 0 {
				set[i] = e.id
				break
			}
			if set[i] == e.id {
				copies = append(copies, e.id) // once per copy after the first
				break
			}
		}
	}
	if len(copies) > 1 {
		slices.Sort(copies)
		copies = slices.Compact(copies)
	}
	return copies
}

// compactCopies drops each event that has the same id and time as the one before it (a copy
// delivered in the same batch), as slices.CompactFunc would, in place.
func compactCopies(events []scannedEvent) []scannedEvent {
	if len(events) < 2 {
		return events
	}
	k := 1
	for i := 1; i < len(events); i++ {
		if events[i].id == events[k-1].id && events[i].t == events[k-1].t {
			continue
		}
		if k != i {
			events[k] = events[i]
		}
		k++
	}
	return events[:k]
}

// resolvedPerson is the person of a row of events or sessions joined to personOverrides: the
// person it was merged into since it was stored, else the one it was stored with.
const resolvedPerson = "if(merged_into = '', person_id, merged_into)"

// signedInRows is the query of the rows of ev (a SELECT of the columns stored_person,
// customer_key, user_id, t, seq, mask, id and a0…a<attrs-1>, a String each) with their person_id:
// for an anonymous event of a device several users signed in on, the user signed in last at or
// before it, or before the device's first sign-in the first user (sessionize.DeviceSignIns states
// the rule and its sources); else the person it was stored with. A sign-in is at or before the
// event when it is earlier in time (µs, as the event's t), or at the same time and not later in
// the client's order (seq), as sessionize's signIn.atOrBefore.
//
// A device's anonymous events and its sign-ins are sorted together by (t, seq, kind), a sign-in
// (kind 0) before an event (kind 1) of its time and seq, so an event's run is the number of sign-ins before it (arrayCumSum), and its
// user is found by (device, run) in a join. That costs the device's events plus its sign-ins: a
// join of each event row to the device's sign-in arrays (up to sessionize.MaxDeviceSignIns
// each) copied those arrays onto every row, events × sign-ins, which on a shop's kiosk or a
// client switching userIds on one device ran a query out of memory. ev is read twice: once for
// the events that keep their stored person, once for the anonymous events of shared devices.
func (s *Store) signedInRows(ev string, attrs int, upTo uint64) string {
	signIns := s.signIns(upTo)
	var names, elems, defaults string
	for i := range attrs {
		names += fmt.Sprintf(", a%d", i)
		elems += fmt.Sprintf(", tupleElement(x, %d) AS a%d", 7+i, i)
		defaults += ", ''"
	}
	onSharedDevice := "user_id = '' AND customer_key IN (SELECT customer_key FROM (" + signIns + "))"
	return `SELECT stored_person AS person_id, t, seq, mask, id` + names + ` FROM (` + ev + `)
		WHERE NOT (` + onSharedDevice + `)
		UNION ALL
		SELECT if(signed_in != '', signed_in, stored_person) AS person_id, t, seq, mask, id` + names + ` FROM (
			SELECT customer_key, tupleElement(x, 1) AS t, tupleElement(x, 2) AS seq, tupleElement(x, 4) AS mask,
				tupleElement(x, 5) AS id, tupleElement(x, 6) AS stored_person` + elems + `, greatest(before, 1) AS run
			FROM (
				SELECT customer_key, arraySort(arrayConcat(
					arrayMap((f, s) -> (f, s, toUInt8(0), toUInt64(0), toUInt64(0), ''` + defaults + `), sign_in_from, sign_in_seq),
					evs)) AS merged
				FROM (
					SELECT customer_key, groupArray((t, seq, toUInt8(1), mask, id, stored_person` + names + `)) AS evs
					FROM (` + ev + `) WHERE ` + onSharedDevice + `
					GROUP BY customer_key
				) AS ev ANY INNER JOIN (` + signIns + `) AS d USING customer_key
			) ARRAY JOIN merged AS x, arrayCumSum(arrayMap(e -> tupleElement(e, 3) = 0, merged)) AS before
			WHERE tupleElement(x, 3) = 1
		) AS shared ANY LEFT JOIN (
			SELECT customer_key, run, signed_in FROM (` + signIns + `)
			ARRAY JOIN sign_in_users AS signed_in, arrayMap(i -> toUInt64(i), arrayEnumerate(sign_in_users)) AS run
		) AS users USING customer_key, run`
}

// signIns selects, per device that several userIds signed in on, who was signed in from when
// (table device_sign_ins, written by the sessionizer; the newest version up to upTo per device
// wins): columns customer_key, sign_in_from (unix µs: from_ms and from_sub_us, as eventTime),
// sign_in_seq and sign_in_users. from_sub_us and sign_in_seq have one value per from_ms, read
// by index, which gives 0 past the end of the array: a row stored before from_seq (or
// from_sub_us) existed (empty) counts every sign-in from its millisecond on, as before, and
// arrays of other lengths cannot fail a query.
func (s *Store) signIns(upTo uint64) string {
	return fmt.Sprintf(`SELECT customer_key, arrayMap((f, sub) -> f * 1000 + sub, stored_from, stored_sub) AS sign_in_from,
		sign_in_seq, sign_in_users FROM (
		SELECT device AS customer_key, stored_from,
			if(length(sub_raw) = length(stored_from), sub_raw, arrayMap(i -> sub_raw[i], arrayEnumerate(stored_from))) AS stored_sub,
			if(length(seq_raw) = length(stored_from), seq_raw, arrayMap(i -> seq_raw[i], arrayEnumerate(stored_from))) AS sign_in_seq,
			sign_in_users FROM (
			SELECT device, argMax(from_ms, version) AS stored_from, argMax(from_sub_us, version) AS sub_raw,
				argMax(from_seq, version) AS seq_raw, argMax(users, version) AS sign_in_users
			FROM %s WHERE version <= %d GROUP BY device
		)
	) AS signed`, s.table("device_sign_ins"), upTo)
}

// identitySnapshot is how far a scan reads the identity tables, fixed when it begins: every pass
// of a scan applies the same merges and sign-ins however many the sessionizer writes meanwhile,
// so a person merged during a query is counted once, before or after the merge.
type identitySnapshot struct {
	persons uint64 // the newest version of the persons table read
	signIns uint64 // the same for device_sign_ins
	// shared says some device has sign-ins of several users: only then do scans join them (most
	// shops' queries skip the join and the two columns it reads).
	shared bool
	// superseded says some stored copy was superseded by an earlier one (notSuperseded): only
	// then do scans leave them out, a look-up of four columns per row (most shops have none).
	superseded bool
}

// scanStart is what a scan reads before its passes (readScanStart).
type scanStart struct {
	id identitySnapshot
	// events is how many events (copies included) are stored in the scan's time range, tMin and
	// tMax the earliest and latest of their times (eventTime, µs); 0 when there are none.
	events, tMin, tMax uint64
	visits             []uint64 // per visit load, the sessions rows ending at or after its time (every version)
}

// readScanStart reads, in one query, how far the identity tables go now and whether any copy was
// superseded (identitySnapshot), the events stored in inRange (their count, earliest and latest
// time), and per load the sessions rows that may hold its visits. Every journey query begins with
// it: one round trip rather than two or more, as each costs ClickHouse a query's parsing and
// planning whatever it reads (about 2 ms on 18.16 and 4–8 ms on 26.7 for these, a tenth to a
// quarter of a small shop's whole funnel).
func (s *Store) readScanStart(ctx context.Context, inRange predicate, loads []visitLoad) (scanStart, error) {
	var st scanStart
	var devices, superseded uint64
	q := fmt.Sprintf(`SELECT count(), min(%s), max(%s), (SELECT max(version) FROM %s), (SELECT max(version) FROM %s), (SELECT count() FROM %s), (SELECT count() FROM %s)`,
		eventTime, eventTime, s.table("persons"), s.table("device_sign_ins"), s.table("device_sign_ins"), s.table("superseded_events"))
	dest := []any{&st.events, &st.tMin, &st.tMax, &st.id.persons, &st.id.signIns, &devices, &superseded}
	var args []any // the visit counts' come first: they are written before the range's
	st.visits = make([]uint64, len(loads))
	for i, l := range loads {
		q += ", (SELECT count() FROM " + s.table("sessions") + " WHERE end_ms >= ?)"
		args = append(args, uint64(max(l.from/1000, 0)))
		dest = append(dest, &st.visits[i])
	}
	q += " FROM " + s.table("events") + " WHERE " + inRange.sql
	if err := s.conn.QueryRow(ctx, q, append(args, inRange.args...)...).Scan(dest...); err != nil {
		return st, fmt.Errorf("read how far the identity tables and the events go: %w", err)
	}
	st.id.shared = devices > 0
	st.id.superseded = superseded > 0
	return st, nil
}

// personOverrides selects, per person id, the person it was merged into, as last stitched: the
// persons table, whose newest version up to upTo per id wins. Joined to events or sessions USING
// person_id, it moves what was stored under an anonymous person to the user who logged in later.
// It has a row per id of every merged person except the person's own id (which maps to itself and
// would only make the join ClickHouse builds larger), so it stays small next to the events
// (PostHog's person overrides play the same part).
func (s *Store) personOverrides(upTo uint64) string {
	return fmt.Sprintf(`SELECT merged_key AS person_id, merged_into FROM (
		SELECT customer_key AS merged_key, argMax(person_id, version) AS merged_into FROM %s WHERE version <= %d GROUP BY customer_key
		HAVING merged_into != merged_key
	) AS merged`, s.table("persons"), upTo)
}
