package store

import (
	"context"
	"fmt"
	"math/bits"
	"slices"
)

// Mode says how a funnel's steps must follow one another.
type Mode string

// The funnel order modes.
const (
	// ModeOrdered: steps in time order (equal times in either order), other events in between allowed.
	ModeOrdered Mode = "ordered"
	// ModeStrict: as ordered, and no other tracked event of the unit strictly between two
	// consecutive steps.
	ModeStrict Mode = "strict"
	// ModeAny: all steps within the window, in any order.
	ModeAny Mode = "any"
)

// unitEvent is one distinct event of a funnel unit (a person, or one of their sessions).
type unitEvent struct {
	t      int64  // unix µs (scannedEvent.t); events of equal time are in the tie rule's order (compareScanned)
	seq    int64  // scannedEvent.seq, to place it in a visit (sessionSplit.split)
	mask   uint64 // the query's conditions it matches
	steps  uint64 // steps it can take, nth rules applied
	blocks uint64 // gaps it blocks: bit g = strictly between step g+1 and step g+2
	// at is where the scan's attributes of its event are in its person's attrTable, for
	// queries that read more than the breakdown (scannedEvent.at)
	at int32
	// attr is 1 + the at of the event whose breakdown value it has (its own; with a trait
	// breakdown the one that set the person's trait last; with a channel or campaign breakdown
	// the entry of its session, sessionPart.entry); 0 when it has none (""). With at, 48 bytes
	// an event, where the value and a slice of the attributes took 72.
	attr int32
}

// breakdownValues reads units' breakdown values: column col of their person's attributes.
type breakdownValues struct {
	attrs attrTable
	col   int
}

// of is e's breakdown value, "" when it has none.
func (b breakdownValues) of(e unitEvent) string {
	if e.attr == 0 {
		return ""
	}
	return b.attrs.value(e.attr-1, b.col)
}

// matchSpec is what the path finder needs from a funnel query, times in ms.
type matchSpec struct {
	steps            int
	mode             Mode
	from, to, window int64 // µs: first step in [from, to), the last within window of it
}

// checkEvery is how many units of matching work (a start tried, a time group swept) pass between
// two looks at the query's context.
const checkEvery = 1 << 12

// pathFinder finds how far one unit gets through a funnel, and the canonical path it takes: among
// the valid paths that reach the furthest step, the one whose step times are smallest in
// lexicographic order, then whose first event has the smallest breakdown value. Breakdown values and
// times between steps are read off that path, so they do not depend on how equal times are ordered.
//
// It never enumerates orders. Events of one time form a group; a path visits groups in time order
// and takes a run of consecutive steps in each, with distinct events of the group: a bipartite
// matching between steps and events (augmenting paths, at most 32 steps). Whether a run fits a
// group does not depend on the rest of the path, and whether a path can go on from a group depends
// only on the group, the number of steps done (exclusions look at the gap after the last step
// done) and the start (the window). So in order one sweep over the groups finds the furthest step,
// one sweep backwards the earliest start that reaches it, and a pass over that start's window
// reads the canonical path: O(groups × steps²) plus the matchings, O(steps² × events) per group.
// In any order, each start time matches the steps to the events of its window.
type pathFinder struct {
	spec   matchSpec
	ev     []unitEvent
	values breakdownValues // of ev

	groups []timeGroup
	run    []uint8 // per group g and steps done j: run[g*steps+j], the most steps from j on the group can take
	last   []int   // furthest: per steps done, the latest start of a path that can go on
	here   []int   // furthest: per steps done, the latest start of a path ending at this group
	ends   []int64 // earliestStart: per first step of the rest of a path, its earliest end
	first  []int64 // earliestStart: the same for rests starting at this group
	can    []uint64
	enter  []uint64
	m      matcher
	fits   map[uint64]bool
	path   []int      // the path reach returns, reused from unit to unit
	hold   holdFinder // reachHeld's

	ctx  context.Context
	work int
	err  error
}

// timeGroup is a run of events of one time: ev[start:end].
type timeGroup struct {
	start, end int
	t          int64
	steps      uint64 // union of the events' steps
	blocks     uint64 // union of the events' blocked gaps
}

func newPathFinder(spec matchSpec) *pathFinder {
	return &pathFinder{spec: spec}
}

// tick counts work and reports whether the query's context is done (checked every checkEvery
// units of work); the error is kept in f.err.
func (f *pathFinder) tick(units int) bool {
	f.work += units
	if f.work < checkEvery || f.ctx == nil {
		return f.err != nil
	}
	f.work = 0
	if err := f.ctx.Err(); err != nil {
		f.err = err
	}
	return f.err != nil
}

// reach returns the number of steps the unit reaches and the indexes (into ev, which must be in
// (time, id) order) of the events of its canonical path, valid until the next call. In ModeAny
// the path holds one event: the earliest event that can take step 1 (the smallest breakdown
// value among equal times) in the first window where the unit gets furthest. It stops with
// ctx's error when ctx is done. values reads the events' breakdown values.
func (f *pathFinder) reach(ctx context.Context, ev []unitEvent, values breakdownValues) (int, []int, error) {
	f.ctx, f.ev, f.values, f.err = ctx, ev, values, nil
	f.groups = f.groups[:0]
	for i, e := range ev {
		if n := len(f.groups); n > 0 && f.groups[n-1].t == e.t {
			g := &f.groups[n-1]
			g.end, g.steps, g.blocks = i+1, g.steps|e.steps, g.blocks|e.blocks
			continue
		}
		f.groups = append(f.groups, timeGroup{start: i, end: i + 1, t: e.t, steps: e.steps, blocks: e.blocks})
	}
	var level int
	var path []int
	var steps uint64
	for _, gr := range f.groups {
		steps |= gr.steps
	}
	switch {
	case steps&1 == 0:
		// nothing can take step 1
	case f.spec.mode == ModeAny:
		level, path = f.reachAny()
	default:
		level, path = f.reachOrdered()
	}
	if f.err != nil {
		return 0, nil, f.err
	}
	return level, path, nil
}

// reachOrdered handles ModeOrdered and ModeStrict (strict is ordered with every tracked event
// excluded between consecutive steps).
func (f *pathFinder) reachOrdered() (int, []int) {
	f.runs()
	level := f.furthest()
	if level == 0 || f.err != nil {
		return 0, nil
	}
	start := f.earliestStart(level)
	if start < 0 || f.err != nil {
		return 0, nil
	}
	return level, f.canonical(start, level)
}

// runAt is how many consecutive steps from step j (0-based) group g can take with distinct events.
func (f *pathFinder) runAt(g, j int) int { return int(f.run[g*f.spec.steps+j]) }

// runs fills f.run for every group: two pointers over the steps, with one matching that loses its
// first step and gains steps at the end.
func (f *pathFinder) runs() {
	n := f.spec.steps
	f.run = slices.Grow(f.run[:0], len(f.groups)*n)[:len(f.groups)*n]
	for g, gr := range f.groups {
		row := f.run[g*n : (g+1)*n]
		if gr.end-gr.start == 1 {
			for j := range row {
				row[j] = uint8(gr.steps >> j & 1)
			}
			continue
		}
		f.m.load(f.ev[gr.start:gr.end], gr.start, -1, n)
		end := 0 // steps [j, end) are matched
		for j := range row {
			end = max(end, j)
			for end < n && f.m.augment(end) {
				end++
			}
			row[j] = uint8(end - j)
			if end > j {
				f.m.unmatch(j)
			}
		}
		f.tick(gr.end - gr.start)
	}
}

// furthest is the furthest step any path reaches, in one sweep over the groups. Of the paths
// with j steps done, the one that started latest is the one to extend (the window leaves it the
// most room), as long as no event excluded after step j lies between its last group and the next:
// an excluded event at group b rules out every path that ended before b, so there the paths with
// j steps done start again from those that end at b.
func (f *pathFinder) furthest() int {
	n, level := f.spec.steps, 0
	latest, reached := f.ints(&f.last, n+1), f.ints(&f.here, n+1) // -1: none
	for g, gr := range f.groups {
		for j := range reached {
			reached[j] = -1
		}
		if gr.t >= f.spec.from && gr.t < f.spec.to {
			for j := 1; j <= f.runAt(g, 0); j++ {
				reached[j] = g
			}
		}
		for j := 1; j < n; j++ {
			s := latest[j]
			if s < 0 || gr.t-f.groups[s].t > f.spec.window {
				continue
			}
			for k := j + 1; k <= j+f.runAt(g, j); k++ {
				reached[k] = max(reached[k], s)
			}
		}
		for j := 1; j <= n; j++ {
			if reached[j] >= 0 {
				level = max(level, j)
			}
			if j < n && gr.blocks>>(j-1)&1 != 0 {
				latest[j] = reached[j]
			} else {
				latest[j] = max(latest[j], reached[j])
			}
		}
		if f.tick(1) {
			return 0
		}
	}
	return level
}

// earliestStart is the earliest group from which a path reaches level steps, or -1: a sweep
// backwards keeping, per first step of a rest of a path, its earliest end (the window asks no
// more of it), reset at excluded events as furthest does.
func (f *pathFinder) earliestStart(level int) int {
	const never = int64(1<<63 - 1)
	// Per first step k (1-based) of a rest of a path through level: its earliest end, among rests
	// starting at a later group (ends) or at this one (here).
	f.ends = slices.Grow(f.ends[:0], level+2)[:level+2]
	f.first = slices.Grow(f.first[:0], level+2)[:level+2]
	ends, here := f.ends, f.first
	for k := range ends {
		ends[k] = never
	}
	start := -1
	for g := len(f.groups) - 1; g >= 0; g-- {
		gr := f.groups[g]
		for k := 1; k <= level; k++ {
			here[k] = never
			for m := 1; m <= min(f.runAt(g, k-1), level-k+1); m++ {
				if k+m-1 == level {
					here[k] = min(here[k], gr.t)
				} else {
					here[k] = min(here[k], ends[k+m])
				}
			}
		}
		if gr.t >= f.spec.from && gr.t < f.spec.to && here[1] != never && here[1]-gr.t <= f.spec.window {
			start = g
		}
		for k := 2; k <= level; k++ {
			if gr.blocks>>(k-2)&1 != 0 {
				ends[k] = here[k]
			} else {
				ends[k] = min(ends[k], here[k])
			}
		}
		if f.tick(1) {
			return -1
		}
	}
	return start
}

// ints returns *buf resized to n, every entry -1.
func (f *pathFinder) ints(buf *[]int, n int) []int {
	*buf = slices.Grow((*buf)[:0], n)[:n]
	for i := range *buf {
		(*buf)[i] = -1
	}
	return *buf
}

// canonical returns the canonical path of a unit that reaches level steps from group g1 and from
// no earlier group.
func (f *pathFinder) canonical(g1, level int) []int {
	t1 := f.groups[g1].t
	end := g1
	for end < len(f.groups) && f.groups[end].t-t1 <= f.spec.window {
		end++
	}
	f.can = slices.Grow(f.can[:0], end)[:end]
	f.enter = slices.Grow(f.enter[:0], end)[:end]
	// can[g] bit j: with j steps done at group g, the path can still reach level.
	// enter[g] bit j: with j steps done before group g, a path that takes some steps at g can.
	var nextEnter [65]int // per steps done: the first group after g that enter allows, end none
	var nextBlock [64]int // per gap: the first group after g with an event excluded there
	for i := range nextEnter {
		nextEnter[i] = end
	}
	for i := range nextBlock {
		nextBlock[i] = end
	}
	for g := end - 1; g >= g1; g-- {
		can := uint64(1) << level
		for j := 1; j < level; j++ {
			if next := nextEnter[j]; next < end && next <= nextBlock[j-1] {
				can |= 1 << j
			}
		}
		var enter uint64
		for j := range level {
			if run := min(f.runAt(g, j), level-j); run > 0 && can>>(j+1)&(uint64(1)<<run-1) != 0 {
				enter |= 1 << j
			}
		}
		f.can[g], f.enter[g] = can, enter
		for e := enter; e != 0; e &= e - 1 {
			nextEnter[bits.TrailingZeros64(e)] = g
		}
		for b := f.groups[g].blocks; b != 0; b &= b - 1 {
			nextBlock[bits.TrailingZeros64(b)] = g
		}
	}
	// Forwards: the earliest group that keeps the path going, as many steps there as keep it going.
	longest := func(g, j int) int {
		for run := min(f.runAt(g, j), level-j); run > 0; run-- {
			if f.can[g]>>(j+run)&1 != 0 {
				return run
			}
		}
		panic(fmt.Sprintf("BUG: funnel path: no run at group %d after %d steps", g, j))
	}
	path := f.path[:0]
	defer func() { f.path = path }()
	run := longest(g1, 0)
	path = f.firstRun(path, g1, run)
	for g, j := g1, run; j < level; {
		g++
		for g < end && f.enter[g]>>j&1 == 0 {
			g++
		}
		if g == end {
			panic(fmt.Sprintf("BUG: funnel path: nowhere to go after %d steps", j))
		}
		run := longest(g, j)
		path = f.assign(path, g, j, run, -1)
		j += run
	}
	return path
}

// firstRun appends the events of group g that take steps 1…run: step 1 goes to the event with the
// smallest breakdown value among those that leave the others enough events.
func (f *pathFinder) firstRun(path []int, g, run int) []int {
	gr := f.groups[g]
	if gr.end-gr.start == 1 {
		return append(path, gr.start)
	}
	first := -1
	if f.fits == nil {
		f.fits = map[uint64]bool{} // by the step mask of the event taking step 1
	}
	clear(f.fits)
	for i := gr.start; i < gr.end; i++ {
		e := f.ev[i]
		if e.steps&1 == 0 || first >= 0 && f.values.of(e) >= f.values.of(f.ev[first]) {
			continue
		}
		ok, known := f.fits[e.steps]
		if !known {
			ok = f.matches(g, 1, run-1, i)
			f.fits[e.steps] = ok
		}
		if ok {
			first = i
		}
	}
	if first < 0 {
		panic("BUG: funnel path: no event can take step 1")
	}
	return f.assign(append(path, first), g, 1, run-1, first)
}

// matches reports whether steps j…j+run-1 (0-based) can take distinct events of group g other
// than event skip.
func (f *pathFinder) matches(g, j, run, skip int) bool {
	gr := f.groups[g]
	f.m.load(f.ev[gr.start:gr.end], gr.start, skip, f.spec.steps)
	for k := j; k < j+run; k++ {
		if !f.m.augment(k) {
			return false
		}
	}
	return true
}

// assign appends distinct events of group g (not skip) for steps j…j+run-1, in step order.
func (f *pathFinder) assign(path []int, g, j, run, skip int) []int {
	if gr := f.groups[g]; gr.end-gr.start == 1 && run == 1 && gr.start != skip {
		return append(path, gr.start)
	}
	if !f.matches(g, j, run, skip) {
		panic(fmt.Sprintf("BUG: funnel path: steps %d to %d do not fit group %d", j+1, j+run, g))
	}
	for k := j; k < j+run; k++ {
		path = append(path, f.m.nodes[f.m.stepNode[k]])
	}
	return path
}

// reachAny handles ModeAny: for each start time in [from, to), the events within the window from
// it; the unit reaches step k when steps 1…k can take distinct events there, one of them at the
// start time. The steps a window can take are a maximum matching; one of them can move to an event
// at the start time whenever such an event matches one of them, since that event is then free.
func (f *pathFinder) reachAny() (int, []int) {
	ev, n := f.ev, f.spec.steps
	best, bestFirst := 0, -1
	end := 0
	for _, gr := range f.groups {
		if gr.t >= f.spec.to || best == n || f.tick(1) {
			break
		}
		if gr.t < f.spec.from {
			continue
		}
		for end < len(ev) && ev[end].t-gr.t <= f.spec.window {
			end++
		}
		f.m.load(ev[gr.start:end], gr.start, -1, n)
		f.tick(end - gr.start)
		k := 0
		for k < n && f.m.augment(k) {
			k++
		}
		if k <= best || gr.steps&(uint64(1)<<k-1) == 0 {
			continue
		}
		best, bestFirst = k, -1
		for i := gr.start; i < end; i++ {
			e := ev[i]
			if e.steps&1 == 0 {
				continue
			}
			if bestFirst >= 0 && e.t > ev[bestFirst].t {
				break
			}
			if bestFirst < 0 || f.values.of(e) < f.values.of(ev[bestFirst]) {
				bestFirst = i
			}
		}
	}
	if best == 0 || f.err != nil {
		return 0, nil
	}
	f.path = append(f.path[:0], bestFirst)
	return best, f.path
}

// matcher matches steps to distinct events by augmenting paths (Kuhn's algorithm). Events with the
// same steps are interchangeable and at most as many of them as there are steps can be used, so
// it keeps at most that many of each.
type matcher struct {
	nodes    []int    // event indexes
	masks    []uint64 // their steps
	owner    []int    // per node: the step it takes, -1 none
	stepNode [64]int  // per step: the node taking it, -1 none
	seen     []int    // per node: the augment call that visited it last
	call     int
	kept     map[uint64]int
}

// load makes the events ev (whose first has index base) the candidates, without the one of index
// skip and at most limit of each step mask, none matched.
func (m *matcher) load(ev []unitEvent, base, skip, limit int) {
	if m.kept == nil {
		m.kept = map[uint64]int{}
	}
	clear(m.kept)
	m.nodes, m.masks, m.owner, m.seen = m.nodes[:0], m.masks[:0], m.owner[:0], m.seen[:0]
	for i, e := range ev {
		if e.steps == 0 || base+i == skip || m.kept[e.steps] >= limit {
			continue
		}
		m.kept[e.steps]++
		m.nodes = append(m.nodes, base+i)
		m.masks = append(m.masks, e.steps)
		m.owner = append(m.owner, -1)
		m.seen = append(m.seen, 0)
	}
	for i := range m.stepNode {
		m.stepNode[i] = -1
	}
	m.call = 0
}

// augment matches step too, rearranging the steps matched so far, and reports whether it could.
func (m *matcher) augment(step int) bool {
	m.call++
	return m.try(step)
}

func (m *matcher) try(step int) bool {
	bit := uint64(1) << step
	for v, mask := range m.masks {
		if mask&bit == 0 || m.seen[v] == m.call {
			continue
		}
		m.seen[v] = m.call
		if m.owner[v] < 0 || m.try(m.owner[v]) {
			m.owner[v], m.stepNode[step] = step, v
			return true
		}
	}
	return false
}

// unmatch frees the event that step took.
func (m *matcher) unmatch(step int) {
	if v := m.stepNode[step]; v >= 0 {
		m.owner[v], m.stepNode[step] = -1, -1
	}
}
