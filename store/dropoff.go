package store

import (
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
)

// DropoffQuery asks about the units that reached a funnel step but not the next one.
type DropoffQuery struct {
	Funnel FunnelQuery
	// Step is the 1-based step they reached and did not go on from; 0 picks the step with the
	// largest drop-off.
	Step int
	// Limit is how many values each ranking lists (default 10); IDsLimit how many person ids are
	// listed (default 100).
	Limit, IDsLimit int
}

// Ranked is one value of a ranking, with how many units it holds for and their share.
type Ranked struct {
	Value  string `json:"value"`            // "" when Marker is set
	Marker string `json:"marker,omitempty"` // MarkerNone, MarkerExit or MarkerStart: no real value (labels.go)
	// Step is, in a ranking of touchpoints, the step that asks about Value as it was counted
	// (TouchpointStep: event\:x for the event "event:x"), to put into steps, anchor or exclude;
	// "" for a marker and in rankings of other values (pages, channels).
	Step  string  `json:"step,omitempty"`
	Count int64   `json:"count"`
	Share float64 `json:"share"` // Count / the units ranked (ratio)
}

// DropoffResult says where the units that dropped off after a step left from and what they did
// instead.
type DropoffResult struct {
	Step     int    `json:"step"`
	StepName string `json:"step_name"`
	NextStep string `json:"next_step"`
	// CountBy is what Reached and Dropped count: persons or sessions (the funnel's count_by).
	CountBy string `json:"count_by"`
	// Hold is the property held constant, as the funnel's answer names it; omitted: none.
	Hold    string `json:"hold,omitempty"`
	Reached int64  `json:"reached"`
	Dropped int64  `json:"dropped"`
	// Their last touchpoint between reaching the step and the end of the window (or session):
	// its event, its page path (or product category) and its channel.
	LastEvents    []Ranked `json:"last_events"`
	LastLocations []Ranked `json:"last_locations"`
	LastChannels  []Ranked `json:"last_channels"`
	// What they did instead: their first touchpoint at a time after their step event's and
	// within the window (counted by sessions, the session), marker MarkerExit when they had none
	// there, as next and paths mark it.
	NextEvents []Ranked `json:"next_events"`
	// Person ids, sorted, at most IDsLimit of them.
	Persons          []string `json:"persons"`
	PersonsTruncated bool     `json:"persons_truncated,omitempty"`
}

// MaxIDsLimit is the most person ids a drop-off lists: ids_limit's largest value, and what the
// CLI's --csv asks for.
const MaxIDsLimit = 100000

// ParseDropoffQuery reads the funnel's parameters plus step, limit and ids_limit.
func ParseDropoffQuery(v url.Values) (DropoffQuery, error) {
	p := newParams(v, dropoffParams())
	fq := parseFunnel(p)
	q := DropoffQuery{Funnel: fq}
	// step: 1 to the step before the last (nobody drops off after the last), or 0 (the default)
	// for the step with the largest drop-off, which the answer names.
	last, before := max(len(fq.Steps)-1, 0), p.err
	if before == nil && len(fq.Steps) == 1 {
		p.fail("steps", "a drop-off needs at least two steps, got one: a step and one to go on to after it")
		before = p.err
	}
	q.Step = p.int("step", 0, last)
	if before == nil && p.err != nil {
		steps := fmt.Sprintf("1 to %d (the step before the last)", last)
		if last == 1 {
			steps = "1 (of two steps, nobody drops off after the last)" // not "1 to 1" (tester 49's F5)
		}
		give := steps + ", or 0 for the step with the largest drop-off"
		err := fmt.Errorf("%q is not a step to count drop-offs after: give %s", p.v.Get("step"), give)
		if plusSigned(strings.TrimSpace(p.v.Get("step"))) { // tester 50's F7
			err = PlusSignError(p.v.Get("step"), "a step's number", give)
		}
		p.err = &ParamError{Param: "step", Err: err}
	}
	q.Limit, q.IDsLimit = p.int("limit", 1, 1000), p.int("ids_limit", 0, MaxIDsLimit)
	if err := p.finish(); err != nil {
		return q, err
	}
	return q, fq.Validate()
}

// labelSQL is a touchpoint's label: its event (or page, screen) name, or for a page or screen
// sent without a name ingest.Internal and its type (unnamedLabel), which no name can equal: a
// track event named "page" is counted apart from the pages without a name.
var labelSQL = predicate{sql: `if(event != '', event, concat('\0', type))`} // '\0': ingest.Internal

// locationSQL is where a touchpoint happened: its page path, else its product category.
var locationSQL = predicate{sql: "if(page_path != '', page_path, prop_values[indexOf(prop_keys, 'category')])"}

// dropoffLevel gathers the units that stopped at one level.
type dropoffLevel struct {
	dropped                           int64
	events, locations, channels, next map[string]int64
	persons                           smallestIDs
}

// add counts one unit that stopped at the level.
func (l *dropoffLevel) add(person string, d dropout) {
	l.dropped++
	countKey(l.events, d.last[0])
	countKey(l.locations, d.last[1])
	countKey(l.channels, d.last[2])
	if d.hasNext {
		countKey(l.next, d.next)
	} else {
		countKey(l.next, markExit) // nothing after the step: as next and paths say it (tester 49's F2)
	}
	l.persons.add(person)
}

// dropoffPlan is what a drop-off reads besides its funnel: the mask bit of the tracked
// touchpoints and where their attributes (label, location, channel) start among a unit event's.
type dropoffPlan struct {
	tracked uint64
	first   int
}

// dropout is where a unit that stopped at a step left from: its last tracked touchpoint from
// the step's event to the end of the window (label, location, channel), and the label of the
// first one after the step's event, when there is one (hasNext).
type dropout struct {
	last    [3]string
	next    string
	hasNext bool
}

// of works out the dropout of a unit whose match stopped with path (the events that took its
// steps), within window (µs) of its first step. "After" is in the one tie rule's order (time,
// seq, id: the order the unit is in), as next and paths read it: a size guide opened in the
// second of a product view, and sent after it, is what the person did next (tester 37's F1;
// before, an event of the step's time was never next, and ties went to the smallest name).
func (d dropoffPlan) of(unit []unitEvent, attrs attrTable, path []int, window int64) dropout {
	at := stepEvent(unit, path)
	end := unit[path[0]].t + window
	last, next := at, -1
	for i := at + 1; i < len(unit) && unit[i].t <= end; i++ {
		if unit[i].mask&d.tracked == 0 {
			continue
		}
		last = i
		if next < 0 {
			next = i
		}
	}
	var out dropout
	for c := range out.last {
		out.last[c] = attrs.value(unit[last].at, d.first+c)
	}
	if next >= 0 {
		out.next, out.hasNext = attrs.value(unit[next].at, d.first), true
	}
	return out
}

// stepEvent is the event a unit whose match stopped with path dropped off after: its last
// step's (in mode any, whose path is its step-1 event alone, that one's), placed by the tie
// rule among the events of its time. The path finder takes the steps of one time in either
// order, and which of that time's events it names is no order; so the steps of the path at the
// last step's time are given, in step order, each to the first event of that time, in the tie
// rule's order, that can take it and that no earlier step took. That is the path's own event
// when it falls short (an event that can take two steps given the wrong one first).
func stepEvent(unit []unitEvent, path []int) int {
	k := len(path) - 1
	t := unit[path[k]].t
	first := k // the first step of the path at time t
	for first > 0 && unit[path[first-1]].t == t {
		first--
	}
	lo := path[k] // the first event of time t
	for lo > 0 && unit[lo-1].t == t {
		lo--
	}
	var buf [64]int // a funnel has at most 32 steps
	taken := buf[:0]
	for j := first; j <= k; j++ {
		pick := -1
		for i := lo; i < len(unit) && unit[i].t == t; i++ {
			if unit[i].steps&(1<<j) != 0 && !slices.Contains(taken, i) {
				pick = i
				break
			}
		}
		if pick < 0 {
			return path[k]
		}
		taken = append(taken, pick)
	}
	return taken[len(taken)-1]
}

// Dropoff answers a DropoffQuery in one pass over the events: it gathers every level's drop-outs
// and reports the asked one. Like the funnel, the matching runs inside ClickHouse when the
// server has waymark_funnel (Config.FunnelMatching, docs/udf.md), else here.
func (s *Store) Dropoff(ctx context.Context, jm *sessionize.Map, q DropoffQuery) (*DropoffResult, error) {
	return runQuery(ctx, s, "dropoff", func(ctx context.Context) (*DropoffResult, error) { return s.dropoffQuery(ctx, jm, q) })
}

func (s *Store) dropoffQuery(ctx context.Context, jm *sessionize.Map, q DropoffQuery) (*DropoffResult, error) {
	fq := q.Funnel
	if q.Limit <= 0 {
		q.Limit = 10
	}
	plan, tracked, first, err := s.planTouchpointWalk(ctx, jm, &fq, "a drop-off", labelSQL, locationSQL, predicate{sql: "channel"})
	if err != nil {
		return nil, err
	}
	n := len(fq.Steps)
	plan.dropoff = &dropoffPlan{tracked: tracked, first: first}
	agg := newFunnelAgg(n, false)
	levels := make([]dropoffLevel, n)
	for i := range levels {
		levels[i] = dropoffLevel{events: map[string]int64{}, locations: map[string]int64{}, channels: map[string]int64{}, next: map[string]int64{},
			persons: smallestIDs{limit: max(q.IDsLimit, 0), kept: map[string]bool{}}}
	}
	err = s.matchPlan(ctx, plan, func() error {
		d := outcomeDecoder{breakdown: plan.attr >= 0, bySessions: plan.bySessions}
		return s.matchInClickHouse(ctx, plan, true, func(person, answer string) error {
			return d.each(answer, func(o funnelOutcome) error {
				if (o.drop != nil) != (o.level > 0 && o.level < n) {
					return fmt.Errorf("person %.60q reached %d of %d steps, with a drop-off: %t", person, o.level, n, o.drop != nil)
				}
				d.add(agg, fq.Mode, o)
				if o.drop != nil {
					levels[o.level].add(person, *o.drop)
				}
				return nil
			})
		})
	}, func() error {
		return s.matchHere(ctx, "dropoff", plan, fq, agg, func(person string, unit []unitEvent, attrs attrTable, level int, path []int) {
			if level > 0 && level < n {
				levels[level].add(person, plan.dropoff.of(unit, attrs, path, plan.spec.window))
			}
		})
	})
	if err != nil {
		return nil, err
	}
	funnel := agg.result(fq)
	k := q.Step
	if k == 0 {
		k = 1
		for i, st := range funnel.Steps {
			if st.LargestDropOff {
				k = i + 1
			}
		}
	}
	l := levels[k]
	res := &DropoffResult{Step: k, StepName: fq.Steps[k-1], NextStep: fq.Steps[k], CountBy: funnel.CountBy, Hold: funnel.Hold, Reached: funnel.Steps[k-1].Customers, Dropped: l.dropped,
		LastEvents: rankTouchpoints(jm, l.events, l.dropped, q.Limit), LastLocations: rank(l.locations, l.dropped, q.Limit),
		LastChannels: rank(l.channels, l.dropped, q.Limit), NextEvents: rankTouchpoints(jm, l.next, l.dropped, q.Limit)}
	// The smallest ids, so a bounded list is the same whatever order the rows came in.
	res.Persons, res.PersonsTruncated = l.persons.sorted(), l.persons.more
	return res, nil
}

// planTouchpointWalk plans a query that reads each unit's touchpoints beside its funnel's steps
// (a drop-off, a correlation analysis; what names it in the error of a single step): the funnel,
// of two steps or more, checked and planned, its scan bounded to the visits its units can hold
// (boundVisits), and attrs read of every touchpoint (readAlso, which gives the touchpoints' mask
// bit and where their attributes start). fq takes its defaults (Validate).
func (s *Store) planTouchpointWalk(ctx context.Context, jm *sessionize.Map, fq *FunnelQuery, what string, attrs ...predicate) (plan *funnelPlan, tracked uint64, first int, err error) {
	if err := fq.Validate(); err != nil {
		return nil, 0, 0, err
	}
	if len(fq.Steps) < 2 {
		return nil, 0, 0, paramErrorf("steps", "%s needs at least two steps", what)
	}
	if err := s.checkFunnelNames(ctx, jm, *fq); err != nil {
		return nil, 0, 0, err
	}
	if plan, err = planFunnel(jm, *fq); err != nil {
		return nil, 0, 0, err
	}
	if err := s.boundVisits(ctx, plan, *fq); err != nil {
		return nil, 0, 0, err
	}
	tracked, first = plan.readAlso(attrs...)
	if len(plan.scan.preds) > 64 {
		return nil, 0, 0, paramErrorf("steps", "too many conditions")
	}
	return plan, tracked, first, nil
}

// smallestIDs keeps the limit smallest distinct ids it is given (compareIDs), and whether it was given more
// (more): a drop-off lists a bounded number of its persons, in memory bounded by that number.
type smallestIDs struct {
	limit int
	heap  idHeap          // the kept ids, largest first
	kept  map[string]bool // the same ids
	more  bool
}

// add offers id; a kept id is a copy, so it does not hold on to the text it was cut from.
func (s *smallestIDs) add(id string) {
	if s.kept[id] {
		return
	}
	if len(s.heap) == s.limit {
		s.more = true // a distinct id beyond the limit
		if s.limit == 0 || compareIDs(id, s.heap[0]) >= 0 {
			return
		}
		delete(s.kept, heap.Pop(&s.heap).(string))
	}
	id = strings.Clone(id)
	heap.Push(&s.heap, id)
	s.kept[id] = true
}

// sorted lists the kept ids in order (compareIDs); never nil (JSON [] rather than null).
func (s *smallestIDs) sorted() []string {
	out := append([]string{}, s.heap...)
	slices.SortFunc(out, compareIDs)
	return out
}

// compareIDs orders person ids as a drop-off lists them: userIds first, then the persons named
// by a device (ingest.DevicePerson) and a device's lost sign-ins, which start with
// ingest.Internal; bytewise within each. A shop with more anonymous drop-offs than ids_limit
// still sees the customers it can reach (tester 46's F4: sorted bytewise alone, the typed device
// ids, NUL first, filled the list).
func compareIDs(a, b string) int {
	named := func(id string) int { // 1 for a device's, 0 for a userId
		if strings.HasPrefix(id, ingest.Internal) {
			return 1
		}
		return 0
	}
	return cmp.Or(cmp.Compare(named(a), named(b)), strings.Compare(a, b))
}

// idHeap is a max-heap of ids (container/heap).
type idHeap []string

func (h idHeap) Len() int           { return len(h) }
func (h idHeap) Less(i, j int) bool { return compareIDs(h[i], h[j]) > 0 }
func (h idHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *idHeap) Push(x any)        { *h = append(*h, x.(string)) }
func (h *idHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// readAlso makes the scan read every tracked event as well, with attrs; it returns the mask bit
// of tracked events and the index of the first of attrs.
func (p *funnelPlan) readAlso(attrs ...predicate) (uint64, int) {
	bit := uint64(1) << len(p.scan.preds)
	p.scan.preds = append(p.scan.preds, rulePredicate(sessionize.Rule{Types: sessionize.TouchpointTypes()}))
	p.keep |= bit
	first := len(p.scan.attrs)
	p.scan.attrs = append(p.scan.attrs, attrs...)
	return bit, first
}

// rank lists the limit largest counts, largest first (ties by value, markers last), with their
// share of total; an empty value is no value (MarkerNone), and a marker's text (labels.go) is
// listed as its marker.
func rank(counts map[string]int64, total int64, limit int) []Ranked {
	return rankWith(counts, total, limit, nil)
}

// rankWith is rank, of touchpoint labels (labelSQL) when step is not nil, each real one with
// step(its counted text) as its Step; of values when step is nil.
func rankWith(counts map[string]int64, total int64, limit int, step func(text string) string) []Ranked {
	merged := make(map[string]int64, len(counts))
	for v, n := range counts {
		merged[cmp.Or(v, markNone)] += n
	}
	split, sortKey := splitValue, func(text string) string { return text }
	if step != nil {
		split, sortKey = splitLabel, labelSortKey
	}
	texts := slices.Collect(maps.Keys(merged))
	slices.SortFunc(texts, func(a, b string) int {
		return cmp.Or(cmp.Compare(merged[b], merged[a]), cmp.Compare(sortKey(a), sortKey(b)), cmp.Compare(a, b))
	})
	if len(texts) > limit {
		texts = texts[:limit]
	}
	out := make([]Ranked, 0, len(texts))
	for _, text := range texts {
		value, marker := split(text)
		out = append(out, Ranked{Value: value, Marker: marker, Count: merged[text], Share: ratio(merged[text], total)})
		if marker == "" && step != nil {
			out[len(out)-1].Step = step(text)
		}
	}
	return out
}

// rankTouchpoints is rank of touchpoint labels (labelSQL), each real one with its step
// (TouchpointStep).
func rankTouchpoints(jm *sessionize.Map, counts map[string]int64, total int64, limit int) []Ranked {
	return rankWith(counts, total, limit, func(label string) string { return TouchpointStep(jm, label) })
}
