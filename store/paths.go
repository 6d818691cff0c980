package store

import (
	"cmp"
	"context"
	"math"
	"net/url"
	"slices"
	"strings"
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
	// window); default "Order Completed".
	Convert string
}

// PathRow is one touchpoint sequence with the persons who took it.
type PathRow struct {
	Touchpoints    []string `json:"touchpoints"`
	Persons        int64    `json:"persons"`
	Converted      int64    `json:"converted"`
	ConversionRate float64  `json:"conversion_rate"`
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

// NextResult is the distribution of next (or previous) touchpoints; "(exit)" counts persons who did
// nothing more within the window, "(start)" those with nothing before.
type NextResult struct {
	Anchor      string   `json:"anchor"`
	Direction   string   `json:"direction"`
	Persons     int64    `json:"persons"`
	Touchpoints []Ranked `json:"touchpoints"`
}

func parseAnchor(p *params) (anchor string, window time.Duration, from, to time.Time) {
	anchor = p.str("anchor")
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
	q.Depth = p.int("depth", 2, 10)
	q.Limit = p.int("limit", 1, 1000)
	q.Collapse = p.bool("collapse")
	q.Convert = p.str("convert")
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

// anchorScan reads each person's tracked events in [from-window, to+window] with their labels;
// step bit 0 marks anchor events, bit 1 conversion events (when convert is set).
type anchorScan struct {
	plan           *funnelPlan
	tracked        uint64
	from, to, wind int64
}

func newAnchorScan(jm *sessionize.Map, anchor, convert string, from, to time.Time, window time.Duration) (*anchorScan, error) {
	names := []string{anchor}
	if convert != "" {
		names = append(names, convert)
	}
	p := plainPlan(jm, names)
	tracked, _ := p.readAlso(labelSQL)
	a := &anchorScan{plan: p, tracked: tracked, from: math.MinInt64, to: math.MaxInt64, wind: window.Milliseconds()}
	if !from.IsZero() {
		a.from = from.UnixMilli()
		if !p.needHistory {
			p.scan.from = max(a.from-a.wind, 1)
		}
	}
	if !to.IsZero() {
		a.to = to.UnixMilli()
		p.scan.to = a.to + a.wind
	}
	if len(p.scan.preds) > 64 {
		return nil, paramErrorf("anchor", "too many conditions")
	}
	return a, nil
}

// label is a touchpoint's label.
func label(e unitEvent) string { return e.attrs[0] }

// eachAnchor calls fn with each person's events and the index of their first anchor event in
// range.
func (s *Store) eachAnchor(ctx context.Context, a *anchorScan, fn func(person string, ev []unitEvent, at int)) error {
	return s.scan(ctx, a.plan.scan, func(person string, events []scannedEvent) error {
		// In the scan's order: equal times as the client sent them (the tie rule sessions follow).
		unit := a.plan.units(events, nil)[0]
		for i, e := range unit {
			if e.t >= a.to {
				break
			}
			if e.t >= a.from && e.steps&1 != 0 && e.mask&a.tracked != 0 {
				fn(person, unit, i)
				break
			}
		}
		return nil
	})
}

// Paths answers a PathsQuery.
func (s *Store) Paths(ctx context.Context, jm *sessionize.Map, q PathsQuery) (*PathsResult, error) {
	return runQuery(ctx, s, "paths", func(ctx context.Context) (*PathsResult, error) { return s.pathsQuery(ctx, jm, q) })
}

func (s *Store) pathsQuery(ctx context.Context, jm *sessionize.Map, q PathsQuery) (*PathsResult, error) {
	if err := checkRange(q.From, q.To); err != nil {
		return nil, err
	}
	if err := s.checkNames(ctx, jm, "anchor", q.Anchor); err != nil {
		return nil, err
	}
	if err := s.checkNames(ctx, jm, "convert", q.Convert); err != nil {
		return nil, err
	}
	a, err := newAnchorScan(jm, q.Anchor, q.Convert, q.From, q.To, q.Window)
	if err != nil {
		return nil, err
	}
	type counts struct{ persons, converted int64 }
	seqs := map[string]*counts{}
	res := &PathsResult{Anchor: q.Anchor, Direction: q.Direction, Convert: q.Convert, Paths: []PathRow{}}
	err = s.eachAnchor(ctx, a, func(_ string, ev []unitEvent, at int) {
		res.Persons++
		seq := []string{label(ev[at])}
		add := func(e unitEvent) bool {
			if e.mask&a.tracked == 0 || (q.Collapse && label(e) == seq[len(seq)-1]) {
				return false
			}
			seq = append(seq, label(e))
			return len(seq) == q.Depth
		}
		full := false
		if q.Direction == "end" {
			for i := at - 1; i >= 0 && ev[i].t >= ev[at].t-a.wind && !full; i-- {
				full = add(ev[i])
			}
			if !full {
				seq = append(seq, "(start)")
			}
			slices.Reverse(seq)
		} else {
			for i := at + 1; i < len(ev) && ev[i].t <= ev[at].t+a.wind && !full; i++ {
				full = add(ev[i])
			}
			if !full {
				seq = append(seq, "(exit)")
			}
		}
		converted := false
		for i := at + 1; i < len(ev) && ev[i].t <= ev[at].t+a.wind; i++ {
			converted = converted || ev[i].steps&2 != 0
		}
		key := strings.Join(seq, "\x00")
		c := seqs[key]
		if c == nil {
			c = &counts{}
			seqs[strings.Clone(key)] = c // one label is the row's text it was cut from
		}
		c.persons++
		if converted {
			c.converted++
		}
	})
	if err != nil {
		return nil, err
	}
	for key, c := range seqs {
		res.Paths = append(res.Paths, PathRow{Touchpoints: strings.Split(key, "\x00"), Persons: c.persons, Converted: c.converted, ConversionRate: ratio(c.converted, c.persons)})
	}
	slices.SortFunc(res.Paths, func(x, y PathRow) int {
		return cmp.Or(cmp.Compare(y.Persons, x.Persons), slices.Compare(x.Touchpoints, y.Touchpoints))
	})
	if len(res.Paths) > q.Limit {
		res.Paths = res.Paths[:q.Limit]
	}
	return res, nil
}

// Next answers a NextQuery.
func (s *Store) Next(ctx context.Context, jm *sessionize.Map, q NextQuery) (*NextResult, error) {
	return runQuery(ctx, s, "next", func(ctx context.Context) (*NextResult, error) { return s.nextQuery(ctx, jm, q) })
}

func (s *Store) nextQuery(ctx context.Context, jm *sessionize.Map, q NextQuery) (*NextResult, error) {
	if err := checkRange(q.From, q.To); err != nil {
		return nil, err
	}
	if err := s.checkNames(ctx, jm, "anchor", q.Anchor); err != nil {
		return nil, err
	}
	a, err := newAnchorScan(jm, q.Anchor, "", q.From, q.To, q.Window)
	if err != nil {
		return nil, err
	}
	counts := map[string]int64{}
	res := &NextResult{Anchor: q.Anchor, Direction: q.Direction}
	err = s.eachAnchor(ctx, a, func(_ string, ev []unitEvent, at int) {
		res.Persons++
		found := ""
		skip := func(e unitEvent) bool {
			return e.mask&a.tracked == 0 || (q.Collapse && label(e) == label(ev[at]))
		}
		if q.Direction == "previous" {
			found = "(start)"
			for i := at - 1; i >= 0 && ev[i].t >= ev[at].t-a.wind; i-- {
				if !skip(ev[i]) {
					found = label(ev[i])
					break
				}
			}
		} else {
			found = "(exit)"
			for i := at + 1; i < len(ev) && ev[i].t <= ev[at].t+a.wind; i++ {
				if !skip(ev[i]) {
					found = label(ev[i])
					break
				}
			}
		}
		countKey(counts, found)
	})
	if err != nil {
		return nil, err
	}
	res.Touchpoints = rank(counts, res.Persons, q.Limit)
	return res, nil
}
