package store

import (
	"cmp"
	"context"
	"fmt"
	"hash/maphash"
	"math/bits"
	"slices"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// span is one stored session (a visit of one device): its time range (µs, its first and last
// touchpoints' times, as scannedEvent.t), the seq of its first touchpoint (start and startSeq are
// its start's place in the tie rule, compareScanned; see startsBy), its end reason (its
// visitKind) and its customer key as indexes into the kinds and keys of the visits it belongs
// to (visits.kinds, visits.keys; visitRows' as read). 32 bytes.
type span struct {
	start, end int64
	startSeq   int64
	kind       uint32
	key        int32
}

// visitKind is what a query reads of a stored session besides its times: its end reason.
// Visits share few of them, so each is held once per pass. Not the channel and campaign it
// entered by (entry_channel, entry_campaign): those are of the visit's first touchpoint, which
// on a shared device may be another person's, where a session enters by its person's first
// touchpoint in the visit (sessionPart.entry).
type visitKind struct {
	reason string
}

// startsBy reports whether visit s starts at or before an event at t (µs) with seq, by the tie
// rule (compareScanned, as the sessionizer cut its visits: sessionize.comparePoints): an event
// of the start's µs before the start's first touchpoint belongs to an earlier visit. Rows stored
// before start_seq read 0, so every event of their start's µs is in them.
//
// Events of equal time and seq are ordered last by their tie ids (the messageId's cityHash64,
// the same number in the sessionizer and the store: sessionize.TieID), which the visits do not
// keep: such an event is in the visit. So a visit the sessionizer cut between two events of one
// device with one µs and one seq, and only such a visit, is not as it cut it: both events are
// in the later visit. A device's events share a seq only when both were stored before seq
// existed (0: each event is a Kafka message of its own, at an offset of its own in the device's
// partition), so the cut needs those old rows, restored or resessionized, and a client session
// id changing or max_events within one of their stamped times. Keeping the start's tie id (a
// start_id column) would place them too, at 8 bytes a stored session (a hash does not compress)
// and the id carried by every matched event (unitEvent, 48 bytes to 56); it is not kept.
func (s span) startsBy(t, seq int64) bool {
	return cmp.Or(cmp.Compare(s.start, t), cmp.Compare(s.startSeq, seq)) <= 0
}

// visits holds the live visits (see liveVisits) of some customer keys that end at or after from,
// in a compact form: each key once, its visits side by side by start, each kind once.
//
// A query that splits its persons' events by visit (sessionSplit.split: sessions, and funnels and
// drop-offs counted by sessions) holds only the visits of the pass it reads: scanTogether loads
// those of the customer keys the pass can read before the pass's persons are given to it, and
// drops them after (see loadVisits). So its memory follows the pass, not the sessions table:
// at 10M events (9.2M visits) holding every visit took 1.9–2.2 GiB.
type visits struct {
	from    int64       // µs: the visits end at or after it
	reasons bool        // read with their end reasons (a sessions summary's); else every reason is ""
	keys    []string    // distinct, in byte order
	bounds  []int32     // keys[i]'s visits are spans[bounds[i]:bounds[i+1]]
	spans   []span      // each key's by start
	kinds   []visitKind // the visits' kinds, each once
	index   keyTable    // finds a key in keys
}

// of is the visits of customer key, by start (none when it has none here), and the index of
// the first of them in v.spans.
func (v *visits) of(key string) (spans []span, first int32) {
	i := v.index.find(v.keys, key)
	if i < 0 {
		return nil, 0
	}
	return v.spans[v.bounds[i]:v.bounds[i+1]], v.bounds[i]
}

// keyTable finds a key among a pass's distinct keys by open addressing: slots holds 1 + a key's
// index, 0 for a free slot, in at least twice as many slots as keys, each key in the first
// free slot from the one its hash picks (hash/maphash, the top bits). A look-up hashes the key
// and compares it with the keys of the slots it probes, one or two mostly, where a binary
// search of a pass's million keys compared twenty strewn over the heap: a quarter of a channel
// breakdown's CPU (it looks a key up for every person). The zero value finds nothing.
type keyTable struct {
	seed  maphash.Seed
	shift uint // a hash's top 64-shift bits pick its slot
	slots []int32
}

// newKeyTable indexes keys (distinct), in the space of slots (nil: new).
func newKeyTable(keys []string, slots []int32) keyTable {
	if len(keys) == 0 {
		return keyTable{}
	}
	x := keyTable{seed: maphash.MakeSeed(), shift: uint(64 - bits.Len(uint(2*len(keys)-1)))}
	n := 1 << (64 - x.shift)
	x.slots = slices.Grow(slots[:0], n)[:n]
	clear(x.slots)
	mask := uint64(n - 1)
	for k, key := range keys {
		i := maphash.String(x.seed, key) >> x.shift
		for x.slots[i] != 0 {
			i = (i + 1) & mask
		}
		x.slots[i] = int32(k + 1)
	}
	return x
}

// find is the index of key in keys (those indexed), or -1 when it is not one of them.
func (x keyTable) find(keys []string, key string) int32 {
	if len(x.slots) == 0 {
		return -1
	}
	mask := uint64(len(x.slots) - 1)
	for i := maphash.String(x.seed, key) >> x.shift; x.slots[i] != 0; i = (i + 1) & mask {
		if k := x.slots[i] - 1; keys[k] == key {
			return k
		}
	}
	return -1
}

// reason is the end reason of s, one of v's visits.
func (v *visits) reason(s span) string { return v.kinds[s.kind].reason }

// visitCursor finds the visits of one person's events, given in their order (time, then seq:
// the tie rule), by the rule of the session unit (see sessionSplit.split): an event's visit is the
// latest of its key's visits that starts at or before it (span.startsBy), unless that one ended
// before it. A person's events are mostly of one key and several to a visit, so the cursor looks
// a key up only when it changes (in the pass's keyTable) and searches the key's
// visits only when the visit of the event before and the next few do not hold the event. Start
// it anew for each person (reset): it holds the last key it was given.
type visitCursor struct {
	visits *visits
	key    string // of the event before
	keyed  bool   // key is set
	spans  []span // key's visits, by start
	first  int32  // the index of spans[0] in visits.spans
	found  int    // the index in spans of the visit of the event before; -1: none
}

// reset starts c on a person's events, finding their visits in v.
func (c *visitCursor) reset(v *visits) { *c = visitCursor{visits: v, found: -1} }

// at is the index in c.visits.spans of the visit of the event of customer key at t (µs) with
// seq, or -1 when it is in none of them; each event must come at or after the one before it.
func (c *visitCursor) at(key string, t, seq int64) int32 {
	if !c.keyed || key != c.key {
		c.spans, c.first = c.visits.of(key)
		c.key, c.keyed, c.found = key, true, -1
	}
	j := c.found
	for k := 0; j >= 0 && k < 4 && j+1 < len(c.spans) && c.spans[j+1].startsBy(t, seq); k++ {
		j++
	}
	if j < 0 || !c.spans[j].startsBy(t, seq) || j+1 < len(c.spans) && c.spans[j+1].startsBy(t, seq) {
		j = lastStartingBy(c.spans, t, seq)
	}
	c.found = j
	if j < 0 || c.spans[j].end < t {
		return -1
	}
	return c.first + int32(j)
}

// lastStartingBy is the index of the last of spans (one key's, by start) that starts at or
// before an event at t (µs) with seq (span.startsBy), or -1 when none does.
func lastStartingBy(spans []span, t, seq int64) int {
	j, _ := slices.BinarySearchFunc(spans, t, func(s span, t int64) int {
		if s.startsBy(t, seq) {
			return -1
		}
		return 1
	})
	return j - 1
}

// drop lets go of the visits held, keeping what they are read for (from, reasons).
func (v *visits) drop() { *v = visits{from: v.from, reasons: v.reasons} }

// passVisits is the most visits scanPasses lets one pass hold when a reader needs them (about
// 20 MB of visits, at 32 bytes a span plus their keys): a table of many short visits is read
// in more passes. At 10M synthetic events (9.2M visits) the sessions query takes 18 passes (9.2M/2^19), and
// peaks at about 200 MiB (1<<20 visits a pass: 9 passes, 260-315 MiB; docs/query-scale.md).
const passVisits = 1 << 19

// visitColumns is what a read of visits (liveVisits) reads of each besides its key and times.
type visitColumns struct {
	person bool // the person_id it was stored with
	// reasons reads its end reason, which only the sessions summary reports: every other reader
	// places events in visits by their times alone, and reads "" (a 3-step funnel by sessions in
	// the UDF, 10M events, 26.7: a pass's ClickHouse CPU 3.3 s against 3.9–4.4 with the reasons
	// sent; docs/query-scale.md).
	reasons bool
}

// liveVisits is the SQL of the live visits of the customer keys that keys (a condition on
// customer_key; "": every key) selects, and its arguments, from and, when bounded, to (µs, "?"
// after keys' own): per session, the newest version's customer key (key), start and end (µs),
// start_seq and end reason ("" unless cols.reasons; and, with cols.person, the person_id it was
// stored with), of the sessions whose newest version is not deleted, ends at or after from and,
// when bounded, starts at or before to. Every query that counts sessions reads its visits here.
//
// The newest version of each session is the row FINAL keeps: the sessions table is a
// ReplacingMergeTree on version ordered by (customer_key, session_id), and FINAL merges the rows
// of each key and id as they are read, in that order, where GROUP BY session_id with an argMax
// per column hashed every id and kept five states per visit (a pass of 1M visits of the 10M
// benchmark: 3.7–4.8 s of ClickHouse's CPU and 523 MiB, against 0.9 s and 29 MiB;
// docs/query-scale.md). Both pick per session id, as an id is made from its key (sessionize's
// sessionID). keys is a PREWHERE, tried on the rows before FINAL merges them: only the selected
// keys' rows are merged (a pass's keys spread over the whole table: 1.3–1.9 s against 2.0–2.6 as
// a WHERE), and as every version of a session has its key alike, it drops whole sessions, never
// an older version's replacement. deleted and end, which differ between versions, are tested in
// the outer query, on the row FINAL kept.
func (s *Store) liveVisits(keys string, bounded bool, cols visitColumns) string {
	if keys != "" {
		keys = "PREWHERE " + keys
	}
	upTo := ""
	if bounded {
		upTo = " AND start <= ?"
	}
	person := ""
	if cols.person {
		person = ", person_id"
	}
	reason, stored := "'' AS reason", ""
	if cols.reasons {
		reason, stored = "end_reason AS reason", ", end_reason"
	}
	return `SELECT customer_key AS key, start_ms * 1000 + start_sub_us AS start, end_ms * 1000 + end_sub_us AS end, start_seq, ` + reason + person + `
		FROM (
			SELECT customer_key, start_ms, start_sub_us, end_ms, end_sub_us, start_seq, deleted` + stored + person + `
			FROM ` + s.table("sessions") + ` FINAL
			` + keys + `
		)
		WHERE deleted = 0 AND end >= ?` + upTo
}

// sendVisits sends the query of the live visits of the customer keys whose events pass r of
// scan sc can read (see passVisits), that end at or after the earliest from of loads. Its rows
// are (key, start, end, start_seq, reason), in no order: loadVisits reads them.
func (s *Store) sendVisits(ctx context.Context, sc eventScan, id identitySnapshot, r personRange, loads []visitLoad) (driver.Rows, error) {
	from := loads[0].from
	for _, l := range loads {
		from = min(from, l.from)
	}
	reasons := slices.ContainsFunc(loads, func(l visitLoad) bool { return l.reasons })
	query, args := s.passVisits(sc, id, r, from, visitColumns{reasons: reasons})
	rows, err := s.conn.Query(s.withQuerySettings(ctx), query, args...)
	if err != nil {
		return nil, fmt.Errorf("read visits: %w", err)
	}
	return rows, nil
}

// passVisits is the SQL of the live visits (liveVisits) that end at or after
// from (µs) of the customer keys whose events pass r of scan sc can read, and its arguments: the
// keys of the events of its time range that its PREWHERE selects (passPrewhere) and, unless a
// condition compares numbers, that match one of its conditions. That holds every key of every
// event the pass gives its readers, and a few more. When the scan ends (sc.to), so do the
// visits read: a visit that starts after its last event holds none of its events (an event's
// visit starts at or before it, span.startsBy), and a narrow range of a key with a million later
// visits read them all (the UDF refuses a person's row of more than maxUDFVisits). cols says
// what it reads of each visit besides its key and times (liveVisits).
func (s *Store) passVisits(sc eventScan, id identitySnapshot, r personRange, from int64, cols visitColumns) (string, []any) {
	inKeys, args := "", []any(nil) // every key
	if r != (personRange{}) {
		prewhere := s.passPrewhere(id, r)
		inRange := sc.timeRange()
		keys := "SELECT customer_key FROM " + s.table("events") + " PREWHERE " + prewhere.sql + " WHERE " + inRange.sql
		args = append(append(args, prewhere.args...), inRange.args...)
		if cond, ok := sc.anyCondition(); ok {
			keys += " AND " + cond.sql
			args = append(args, cond.args...)
		}
		inKeys = "customer_key IN (" + keys + ")"
	}
	args = append(args, uint64(max(from, 0)))
	if sc.to > 0 {
		args = append(args, uint64(sc.to))
	}
	return s.liveVisits(inKeys, sc.to > 0, cols), args
}

// visitRows is a pass's visits as read (sendVisits), in no order until visits sorts them.
type visitRows struct {
	keys   []string    // in the order met, until sorted: then in byte order
	kinds  []visitKind // the visits' kinds, each once
	read   []span
	sorted bool
	// inOrder says the rows added (add) came in byte order of their keys, each key's rows
	// together, as ClickHouse 18.16 sends them (FINAL merges the rows in the table's order,
	// customer_key first): the keys need no map to find them nor sorting, and the visits no
	// moving to their key's place. False, the rows came in another order (an engine may read
	// FINAL on several threads and send their rows as they come), and sort puts them in order.
	inOrder bool
	index   map[string]int32     // each key's place in keys, once the rows came out of order
	last    int32                // the key of the row added last, -1 before the first
	kindOf  map[visitKind]uint32 // each kind's place in kinds
	table   keyTable             // finds the sorted keys, once visits made it
	slots   []int32              // the space table is made in (the last pass's)
}

// newVisitRows is visitRows to add rows to, in the space the last pass left (see visitSpace).
func newVisitRows(space visitSpace) *visitRows {
	return &visitRows{keys: make([]string, 0, space.keys), read: space.spans[:0], inOrder: true, last: -1,
		kindOf: map[visitKind]uint32{}, slots: space.slots}
}

// add adds a visit of key, of kind k (s.key and s.kind are set here), copying what it keeps of
// key and k: a row's strings are the driver's.
func (vr *visitRows) add(key string, k visitKind, s span) {
	if vr.last < 0 || key != vr.keys[vr.last] {
		vr.last = vr.keyIndex(key)
	}
	s.key = vr.last
	if len(vr.read) == 0 || k != vr.kinds[vr.read[len(vr.read)-1].kind] { // mostly the kind of the row before
		r, ok := vr.kindOf[k]
		if !ok {
			r = uint32(len(vr.kinds))
			k = visitKind{reason: strings.Clone(k.reason)}
			vr.kindOf[k], vr.kinds = r, append(vr.kinds, k)
		}
		s.kind = r
	} else {
		s.kind = vr.read[len(vr.read)-1].kind
	}
	vr.read = append(vr.read, s)
}

// keyIndex is the place of key in vr.keys, added when new, for a row whose key is not the row
// before's. While the rows are in order (inOrder) a key after the last is new and no map is
// kept; a key before it ends the order, and from then on a map finds the keys (a map sized for
// the pass, its keys copied side by side as met, took 70 ns a row against 230 for one that grew
// and held the rows' own strings, strewn over the heap: a benchmark of 1M rows of 70k keys).
func (vr *visitRows) keyIndex(key string) int32 {
	if vr.inOrder {
		if n := len(vr.keys); n == 0 || key > vr.keys[n-1] {
			return vr.newKey(key)
		}
		vr.inOrder = false
		vr.index = make(map[string]int32, max(cap(vr.keys), len(vr.keys)))
		for i, k := range vr.keys {
			vr.index[k] = int32(i)
		}
	}
	if k, ok := vr.index[key]; ok {
		return k
	}
	k := vr.newKey(key)
	vr.index[vr.keys[k]] = k
	return k
}

// newKey adds key, a copy of it, to vr.keys, and returns its place.
func (vr *visitRows) newKey(key string) int32 {
	vr.keys = append(vr.keys, strings.Clone(key))
	return int32(len(vr.keys) - 1)
}

// visitSpace is what one pass's visits leave the next: how many distinct keys it read, by which
// the next sizes its keys (a scan's passes are about even), and its spans, whose space the next
// pass's reuse (its visits are dropped before the next pass's are read, see scanTogether), so
// that a scan allocates its spans once, not once a pass (32 MiB a pass of 1M visits), and they
// grow only past the largest pass's. The zero value is a first pass's.
type visitSpace struct {
	keys  int
	spans []span
	slots []int32 // the keys' table's (keyTable)
}

// readVisits reads the rows of sendVisits through (see visitRows.add), and closes them, in the
// space the last pass left.
func readVisits(ctx context.Context, rows driver.Rows, space visitSpace) (*visitRows, error) {
	defer rows.Close()
	var (
		out   = newVisitRows(space)
		key   string
		kind  visitKind
		start uint64
		end   uint64
		seq   uint64
	)
	dest := []any{&key, &start, &end, &seq, &kind.reason} // once, not a row
	for n := 1; rows.Next(); n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			return nil, fmt.Errorf("read visits: %w", ctx.Err())
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("read visits: %w", err)
		}
		out.add(key, kind, span{start: int64(start), end: int64(end), startSeq: int64(seq)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read visits: %w", err)
	}
	return out, nil
}

// visits are those of the rows that end at or after from: the keys in byte order, and each
// key's visits side by side, by start. The rows are sorted in place (see sort), and the visits
// of a load from the rows' own from (the earliest of the loads') are the rows themselves: a pass
// holds its visits once, 32 bytes each (a copy, sorted by key with a counting sort, held 56).
// Their keys are found by a table (keyTable), made once for every load.
func (vr *visitRows) visits(from int64) *visits {
	vr.sort()
	spans := vr.read
	if slices.ContainsFunc(spans, func(s span) bool { return s.end < from }) {
		spans = slices.DeleteFunc(slices.Clone(spans), func(s span) bool { return s.end < from })
	}
	if vr.table.slots == nil && len(vr.keys) > 0 {
		vr.table = newKeyTable(vr.keys, vr.slots)
	}
	v := &visits{from: from, keys: vr.keys, bounds: make([]int32, len(vr.keys)+1), spans: spans, kinds: vr.kinds, index: vr.table}
	for _, s := range spans {
		v.bounds[s.key+1]++
	}
	for i := range vr.keys {
		v.bounds[i+1] += v.bounds[i]
	}
	return v
}

// sort puts the keys in byte order, renaming the visits' keys to match, and the visits in order
// of key and start (µs, then seq: the tie rule, see span.startsBy); once. Visits of a key that
// start at once (rows stored before start_seq) are ordered by end and kind (end reason), so
// which one a
// session takes (the last, see sessionSplit.split) does not depend on the order ClickHouse sent
// them in. Rows that came in order of key (inOrder) have only each key's visits to sort.
// ClickHouse 18.16 took three times as long to sort them by key as to read them (and 35–50%
// more CPU than grouping them).
func (vr *visitRows) sort() {
	if vr.sorted {
		return
	}
	vr.sorted = true
	if !vr.inOrder {
		vr.sortByKey()
	}
	bounds := make([]int, len(vr.keys)+1)
	for i := range vr.read {
		bounds[vr.read[i].key+1]++
	}
	for k := range vr.keys {
		bounds[k+1] += bounds[k]
	}
	// Then each key's (a few) by start.
	for k := range vr.keys {
		slices.SortFunc(vr.read[bounds[k]:bounds[k+1]], func(a, b span) int {
			if a.start != b.start || a.startSeq != b.startSeq {
				return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(a.startSeq, b.startSeq))
			}
			ka, kb := vr.kinds[a.kind], vr.kinds[b.kind]
			return cmp.Or(cmp.Compare(a.end, b.end), strings.Compare(ka.reason, kb.reason))
		})
	}
}

// sortByKey puts the keys in byte order, renaming the visits' keys to match, and the visits in
// order of key (each key's in no order).
func (vr *visitRows) sortByKey() {
	order := make([]int32, len(vr.keys))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return strings.Compare(vr.keys[a], vr.keys[b]) })
	rank, keys := make([]int32, len(vr.keys)), make([]string, len(vr.keys))
	for r, k := range order {
		rank[k], keys[r] = int32(r), vr.keys[k]
	}
	vr.keys = keys
	// Each visit is put in its key's place, where the visits of each key begin (bounds)
	// counted beforehand, swapping out whichever is there (an American flag sort: in place, so
	// a pass's visits are held once).
	bounds := make([]int, len(keys)+1)
	for i := range vr.read {
		vr.read[i].key = rank[vr.read[i].key]
		bounds[vr.read[i].key+1]++
	}
	for k := range keys {
		bounds[k+1] += bounds[k]
	}
	next := slices.Clone(bounds[:len(keys)]) // per key, where its next visit goes
	for k := range keys {
		for next[k] < bounds[k+1] {
			i := next[k]
			if to := vr.read[i].key; to == int32(k) {
				next[k]++
			} else {
				vr.read[i], vr.read[next[to]] = vr.read[next[to]], vr.read[i]
				next[to]++
			}
		}
	}
}

// visitLoad is the visits the readers of a scan that need them read per pass, from one time on.
type visitLoad struct {
	from    int64
	reasons bool // some reader reads the visits' end reasons (visits.reasons)
	readers []*scanReader
}

// visitLoads groups the readers that need visits by the time their visits end at or after.
func visitLoads(readers []*scanReader) []visitLoad {
	var loads []visitLoad
	for _, r := range readers {
		if r.visits == nil {
			continue
		}
		i := slices.IndexFunc(loads, func(l visitLoad) bool { return l.from == r.visits.from })
		if i < 0 {
			i, loads = len(loads), append(loads, visitLoad{from: r.visits.from})
		}
		loads[i].readers = append(loads[i].readers, r)
		loads[i].reasons = loads[i].reasons || r.visits.reasons
	}
	return loads
}

// visitBounds is a start (ms) at or before that of every live visit that starts before hi and
// ends at or after lo, and an end (ms) at or after that of every one (first and last), or -1
// and -1 when there is none: the earliest start and latest end of the sessions rows of that
// range, a look-up of two columns rather than grouping every session.
func (s *Store) visitBounds(ctx context.Context, lo, hi int64) (first, last int64, err error) {
	var n, start, end uint64
	err = s.conn.QueryRow(s.withQuerySettings(ctx), "SELECT count(), min(start_ms), max(end_ms) FROM "+s.table("sessions")+" WHERE start_ms < ? AND end_ms >= ?",
		uint64(max(hi, 0)), uint64(max(lo, 0))).Scan(&n, &start, &end)
	if err != nil {
		return 0, 0, fmt.Errorf("read the visits' bounds: %w", err)
	}
	if n == 0 {
		return -1, -1, nil
	}
	return int64(start), int64(end), nil
}

// anyCondition is the condition that an event matches one of sc's conditions, as SQL over the
// events table; ok is false when one compares numbers, which a scan reads in a subquery (see
// personRows).
func (sc eventScan) anyCondition() (p predicate, ok bool) {
	ors := make([]string, len(sc.preds))
	for i, c := range sc.preds {
		if len(c.numbers) > 0 {
			return predicate{}, false
		}
		ors[i] = c.sql
		p.args = append(p.args, c.args...)
	}
	p.sql = "(" + strings.Join(ors, " OR ") + ")"
	return p, true
}

// loadVisits reads the visits of one pass (sendVisits; nil for a pass with no events) into the
// visits of each load's readers, which share them. space is what the last pass's visits left
// (zero for the first), and is set to what this one's leave: the caller drops them (dropVisits)
// before it loads the next pass's.
func (s *Store) loadVisits(ctx context.Context, loads []visitLoad, sent driver.Rows, space *visitSpace) error {
	if sent == nil {
		return nil
	}
	rows, err := readVisits(ctx, sent, *space)
	if err != nil {
		return err
	}
	for _, l := range loads {
		v := rows.visits(l.from)
		s.metrics.scanVisits.Add(float64(len(v.spans)))
		for _, r := range l.readers {
			*r.visits = *v
		}
	}
	*space = visitSpace{keys: len(rows.keys), spans: rows.read, slots: rows.table.slots}
	return nil
}

// dropVisits lets go of the visits of the pass read, before the next pass's are loaded.
func dropVisits(loads []visitLoad) {
	for _, l := range loads {
		for _, r := range l.readers {
			r.visits.drop()
		}
	}
}
