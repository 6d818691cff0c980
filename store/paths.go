package store

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"net/url"
	"slices"
	"time"

	"github.com/waymark-dev/waymark/sessionize"
)

// PathsQuery asks for the most common touchpoint sequences starting or ending at an anchor (an
// event or stage), each person counted once, at their first anchor event in [From, To).
type PathsQuery struct {
	Anchor string
	// Direction is "start" (sequences starting at the anchor, default) or "end".
	Direction string
	Depth     int  // touchpoints per sequence, the anchor included; default 4
	Limit     int  // sequences listed; default 10
	Collapse  bool // consecutive repeats of a touchpoint count once
	// Window bounds how far from the anchor a sequence reaches; default 24h.
	Window   time.Duration
	From, To time.Time
	// Convert is the event or stage that counts as converting after the anchor (within the
	// window); when empty, the journey map's stage conversion, and none when the map has no such
	// stage (defaultConversion).
	Convert string
}

// PathRow is one touchpoint sequence with the persons who took it.
type PathRow struct {
	Touchpoints []string `json:"touchpoints"`
	// Steps are the steps that ask about the touchpoints as they were counted, one each
	// (TouchpointStep: event\:x for the event "event:x"), to put into anchor, steps or exclude.
	Steps []string `json:"steps"`
	// Marker is MarkerExit when the journey ended after the touchpoints (direction start: nothing
	// more within the window before depth), MarkerStart when it began with them (direction end);
	// empty when the path has depth touchpoints. Never among the touchpoints (labels.go).
	Marker         string  `json:"marker,omitempty"`
	Persons        int64   `json:"persons"`
	Converted      int64   `json:"converted"`
	ConversionRate float64 `json:"conversion_rate"` // Converted / Persons (ratio)
}

// PathsResult lists the top sequences.
type PathsResult struct {
	Anchor    string    `json:"anchor"`
	Direction string    `json:"direction"`
	Convert   string    `json:"convert"`
	Persons   int64     `json:"persons"` // persons with an anchor event in the range
	Paths     []PathRow `json:"paths"`
}

// NextQuery asks where persons go right after (or came from right before) an anchor: the fork in
// the road, each person counted once, at their first anchor event in [From, To).
type NextQuery struct {
	Anchor    string
	Direction string // "next" (default) or "previous"
	Limit     int    // touchpoints listed; default 10
	Collapse  bool   // skip repeats of the anchor's own touchpoint
	Window    time.Duration
	From, To  time.Time
}

// NextResult is the distribution of next (or previous) touchpoints; marker MarkerExit counts persons
// who did nothing more within the window, MarkerStart those with nothing before.
type NextResult struct {
	Anchor      string   `json:"anchor"`
	Direction   string   `json:"direction"`
	Persons     int64    `json:"persons"`
	Touchpoints []Ranked `json:"touchpoints"`
}

func parseAnchor(p *params) (anchor string, window time.Duration, from, to time.Time) {
	anchor = p.step("anchor")
	if anchor == "" {
		p.fail("anchor", "an event or stage name is required")
	}
	window = p.window("window")
	from, to = p.timeRange()
	return
}

// ParsePathsQuery reads anchor, direction, depth, limit, collapse, window, from, to and convert.
func ParsePathsQuery(v url.Values) (PathsQuery, error) {
	p := newParams(v, pathsParams())
	q := PathsQuery{}
	q.Anchor, q.Window, q.From, q.To = parseAnchor(p)
	q.Direction = p.oneOf("direction", "start", "end")
	q.Depth = p.int("depth", 2, maxPathDepth)
	q.Limit = p.int("limit", 1, 1000)
	q.Collapse = p.bool("collapse")
	q.Convert = p.step("convert")
	return q, p.finish()
}

// ParseNextQuery reads anchor, direction, limit, collapse, window, from and to.
func ParseNextQuery(v url.Values) (NextQuery, error) {
	p := newParams(v, nextParams())
	q := NextQuery{}
	q.Anchor, q.Window, q.From, q.To = parseAnchor(p)
	q.Direction = p.oneOf("direction", "next", "previous")
	q.Limit = p.int("limit", 1, 1000)
	q.Collapse = p.bool("collapse")
	return q, p.finish()
}

// maxPathDepth is the most touchpoints a path lists.
const maxPathDepth = 10

// anchorScan reads each person's tracked events in [from-window, to+window] with their labels;
// step bit 0 marks anchor events, bit 1 conversion events (when convert is set).
type anchorScan struct {
	plan *funnelPlan
	anchorWalk
}

// anchorWalk is what paths and next read around each person's first anchor event in [from, to)
// (µs): the tracked touchpoints (mask bit tracked, label their first attribute) within wind µs
// of it, in direction, at most depth of them for paths, consecutive repeats once when collapse.
type anchorWalk struct {
	kind           string // paths or next
	tracked        uint64
	from, to, wind int64
	direction      string
	depth          int
	collapse       bool
}

func newAnchorScan(jm *sessionize.Map, kind, anchor, convert string, from, to time.Time, window time.Duration) (*anchorScan, error) {
	names := []string{anchor}
	if convert != "" {
		names = append(names, convert)
	}
	p := plainPlan(jm, names)
	tracked, _ := p.readAlso(labelSQL)
	a := &anchorScan{plan: p, anchorWalk: anchorWalk{kind: kind, tracked: tracked, from: math.MinInt64, to: math.MaxInt64, wind: window.Microseconds()}}
	p.anchor = &a.anchorWalk
	if !from.IsZero() {
		a.from = from.UnixMicro()
		if !p.needHistory {
			p.scan.from = max(a.from-a.wind, 1)
		}
	}
	if !to.IsZero() {
		a.to = to.UnixMicro()
		p.scan.to = a.to + a.wind
	}
	if len(p.scan.preds) > 64 {
		return nil, paramErrorf("anchor", "too many conditions")
	}
	return a, nil
}

// label is a touchpoint's label, from its person's attributes.
func label(attrs attrTable, e unitEvent) string { return attrs.value(e.at, 0) }

// first is the index of the unit's first anchor event in range, -1 when none. The unit is in the
// scan's order: equal times as the client sent them (the tie rule sessions follow).
func (w *anchorWalk) first(unit []unitEvent) int {
	for i, e := range unit {
		if e.t >= w.to {
			break
		}
		if e.t >= w.from && e.steps&1 != 0 && e.mask&w.tracked != 0 {
			return i
		}
	}
	return -1
}

// anchorOutcome is what paths or next read around one person's anchor: the path's touchpoints
// and whether the person converted within the window after the anchor (paths), or the one
// touchpoint found (next).
type anchorOutcome struct {
	touchpoints []string
	converted   bool
}

// walk reads around the anchor event unit[at].
func (w *anchorWalk) walk(unit []unitEvent, attrs attrTable, at int) anchorOutcome {
	if w.kind == "next" {
		return anchorOutcome{touchpoints: []string{w.next(unit, attrs, at)}}
	}
	return w.path(unit, attrs, at)
}

// path is the touchpoints of the path from (direction start) or to (end) the anchor: at most
// depth, within the window, markExit or markStart added when fewer; and whether a conversion
// event (step bit 1) follows the anchor within the window or is the anchor.
func (w *anchorWalk) path(ev []unitEvent, attrs attrTable, at int) anchorOutcome {
	seq := []string{label(attrs, ev[at])}
	add := func(e unitEvent) bool {
		if e.mask&w.tracked == 0 || (w.collapse && label(attrs, e) == seq[len(seq)-1]) {
			return false
		}
		seq = append(seq, label(attrs, e))
		return len(seq) == w.depth
	}
	full := false
	if w.direction == "end" {
		for i := at - 1; i >= 0 && ev[i].t >= ev[at].t-w.wind && !full; i-- {
			full = add(ev[i])
		}
		if !full {
			seq = append(seq, markStart)
		}
		slices.Reverse(seq)
	} else {
		for i := at + 1; i < len(ev) && ev[i].t <= ev[at].t+w.wind && !full; i++ {
			full = add(ev[i])
		}
		if !full {
			seq = append(seq, markExit)
		}
	}
	// Converted: a conversion event after the anchor within the window, or at the anchor's very
	// time whatever its place in the tie order, as the funnel takes a step at its previous step's
	// time in either order (clients send one-second times): "viewed, then ordered within the
	// window" answers alike in paths and in the funnel (tester 30's F8). The anchor itself is such
	// an event when it is a conversion: a path ending at an order converted (tester 51's F2).
	converted := ev[at].steps&2 != 0
	for i := at - 1; i >= 0 && ev[i].t == ev[at].t; i-- {
		converted = converted || ev[i].steps&2 != 0
	}
	for i := at + 1; i < len(ev) && ev[i].t <= ev[at].t+w.wind; i++ {
		converted = converted || ev[i].steps&2 != 0
	}
	return anchorOutcome{touchpoints: seq, converted: converted}
}

// next is the first tracked touchpoint after (direction next) or before (previous) the anchor
// within the window, skipping repeats of the anchor's own when collapse; markExit or markStart
// when none.
func (w *anchorWalk) next(ev []unitEvent, attrs attrTable, at int) string {
	skip := func(e unitEvent) bool {
		return e.mask&w.tracked == 0 || (w.collapse && label(attrs, e) == label(attrs, ev[at]))
	}
	if w.direction == "previous" {
		for i := at - 1; i >= 0 && ev[i].t >= ev[at].t-w.wind; i-- {
			if !skip(ev[i]) {
				return label(attrs, ev[i])
			}
		}
		return markStart
	}
	for i := at + 1; i < len(ev) && ev[i].t <= ev[at].t+w.wind; i++ {
		if !skip(ev[i]) {
			return label(attrs, ev[i])
		}
	}
	return markExit
}

// encode writes o as text for the UDF's answer: "1" when converted, else "0", then each
// touchpoint as an appendText text.
func (o anchorOutcome) encode(b []byte) []byte {
	if o.converted {
		b = append(b, '1')
	} else {
		b = append(b, '0')
	}
	for _, t := range o.touchpoints {
		b = appendText(b, t)
	}
	return b
}

// decodeAnchorOutcome parses encode's text.
func decodeAnchorOutcome(s string) (anchorOutcome, error) {
	head, texts, err := cutTexts(s, nil)
	if err != nil {
		return anchorOutcome{}, err
	}
	if head != "0" && head != "1" || len(texts) == 0 || len(texts) > maxPathDepth+1 {
		return anchorOutcome{}, fmt.Errorf("anchor outcome %.60q: want 0 or 1 and 1 to %d texts", s, maxPathDepth+1)
	}
	return anchorOutcome{touchpoints: texts, converted: head == "1"}, nil
}

// eachAnchor calls fn with the outcome of each person with an anchor event in range: matched in
// ClickHouse when the server has waymark_funnel (Config.FunnelMatching, docs/udf.md), else here.
func (s *Store) eachAnchor(ctx context.Context, a *anchorScan, fn func(o anchorOutcome)) error {
	return s.matchPlan(ctx, a.plan, func() error {
		return s.matchInClickHouse(ctx, a.plan, false, func(_, answer string) error {
			o, err := decodeAnchorOutcome(answer)
			if err == nil {
				fn(o)
			}
			return err
		})
	}, func() error {
		return s.scan(ctx, a.plan.scan, func(_ string, events []scannedEvent, attrs attrTable) error {
			unit := a.plan.units(events, attrs, nil)[0]
			if at := a.first(unit); at >= 0 {
				fn(a.walk(unit, attrs, at))
			}
			return nil
		})
	})
}

// Paths answers a PathsQuery.
func (s *Store) Paths(ctx context.Context, jm *sessionize.Map, q PathsQuery) (*PathsResult, error) {
	return runQuery(ctx, s, "paths", func(ctx context.Context) (*PathsResult, error) { return s.pathsQuery(ctx, jm, q) })
}

func (s *Store) pathsQuery(ctx context.Context, jm *sessionize.Map, q PathsQuery) (*PathsResult, error) {
	if err := CheckRange(q.From, q.To); err != nil {
		return nil, err
	}
	// The defaults PathsQuery documents, for callers that leave a field zero.
	q.Depth, q.Limit, q.Window = cmp.Or(q.Depth, 4), cmp.Or(q.Limit, 10), cmp.Or(q.Window, 24*time.Hour)
	if q.Window < 0 {
		return nil, paramErrorf("window", "%s is negative", q.Window)
	}
	if q.Depth < 2 || q.Depth > maxPathDepth {
		return nil, paramErrorf("depth", "%d touchpoints, want 2 to %d", q.Depth, maxPathDepth)
	}
	if err := s.checkNames(ctx, jm, "anchor", q.Anchor); err != nil {
		return nil, err
	}
	if q.Convert == "" {
		q.Convert = defaultConversion(jm)
	}
	if q.Convert != "" {
		if err := s.checkNames(ctx, jm, "convert", q.Convert); err != nil {
			return nil, err
		}
	}
	a, err := newAnchorScan(jm, "paths", q.Anchor, q.Convert, q.From, q.To, q.Window)
	if err != nil {
		return nil, err
	}
	a.direction, a.depth, a.collapse = "start", q.Depth, q.Collapse
	if q.Direction == "end" {
		a.direction = "end"
	}
	q.Direction = a.direction
	type counts struct{ persons, converted int64 }
	seqs := map[string]*counts{}
	res := &PathsResult{Anchor: q.Anchor, Direction: q.Direction, Convert: q.Convert, Paths: []PathRow{}}
	var keyBuf []byte
	err = s.eachAnchor(ctx, a, func(o anchorOutcome) {
		res.Persons++
		// The touchpoints as appendText texts, so a label may hold any byte.
		keyBuf = keyBuf[:0]
		for _, t := range o.touchpoints {
			keyBuf = appendText(keyBuf, t)
		}
		c := seqs[string(keyBuf)]
		if c == nil {
			c = &counts{}
			seqs[string(keyBuf)] = c
		}
		c.persons++
		if o.converted {
			c.converted++
		}
	})
	if err != nil {
		return nil, err
	}
	type counted struct {
		texts []string // the touchpoints as counted, a marker as its text (labels.go)
		*counts
	}
	rows := make([]counted, 0, len(seqs))
	for key, c := range seqs {
		_, texts, err := cutTexts(key, nil)
		if err != nil {
			panic("BUG: paths key " + err.Error())
		}
		rows = append(rows, counted{texts, c})
	}
	slices.SortFunc(rows, func(x, y counted) int {
		return cmp.Or(cmp.Compare(y.persons, x.persons), slices.CompareFunc(x.texts, y.texts, func(a, b string) int { return cmp.Compare(labelSortKey(a), labelSortKey(b)) }),
			slices.Compare(x.texts, y.texts))
	})
	rows = rows[:min(len(rows), q.Limit)]
	for _, r := range rows {
		row := PathRow{Touchpoints: make([]string, 0, len(r.texts)), Steps: make([]string, 0, len(r.texts)),
			Persons: r.persons, Converted: r.converted, ConversionRate: ratio(r.converted, r.persons)}
		for _, t := range r.texts {
			if value, marker := splitLabel(t); marker != "" {
				row.Marker = marker
			} else {
				row.Touchpoints = append(row.Touchpoints, value)
				row.Steps = append(row.Steps, TouchpointStep(jm, t))
			}
		}
		res.Paths = append(res.Paths, row)
	}
	return res, nil
}

// Next answers a NextQuery.
func (s *Store) Next(ctx context.Context, jm *sessionize.Map, q NextQuery) (*NextResult, error) {
	return runQuery(ctx, s, "next", func(ctx context.Context) (*NextResult, error) { return s.nextQuery(ctx, jm, q) })
}

func (s *Store) nextQuery(ctx context.Context, jm *sessionize.Map, q NextQuery) (*NextResult, error) {
	if err := CheckRange(q.From, q.To); err != nil {
		return nil, err
	}
	if err := s.checkNames(ctx, jm, "anchor", q.Anchor); err != nil {
		return nil, err
	}
	q.Limit = cmp.Or(q.Limit, 10) // the default NextQuery documents
	if q.Window < 0 {
		return nil, paramErrorf("window", "%s is negative", q.Window)
	}
	a, err := newAnchorScan(jm, "next", q.Anchor, "", q.From, q.To, q.Window)
	if err != nil {
		return nil, err
	}
	a.direction, a.collapse = "next", q.Collapse
	if q.Direction == "previous" {
		a.direction = "previous"
	}
	q.Direction = a.direction
	counts := map[string]int64{}
	res := &NextResult{Anchor: q.Anchor, Direction: q.Direction}
	err = s.eachAnchor(ctx, a, func(o anchorOutcome) {
		res.Persons++
		countKey(counts, o.touchpoints[0])
	})
	if err != nil {
		return nil, err
	}
	res.Touchpoints = rankTouchpoints(jm, counts, res.Persons, q.Limit)
	return res, nil
}
