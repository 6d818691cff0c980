package store

import (
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
	t      int64    // ms
	id     uint64   // orders events of equal time
	mask   uint64   // the query's conditions it matches
	steps  uint64   // steps it can take, nth rules applied
	blocks uint64   // gaps it blocks: bit g = strictly between step g+1 and step g+2
	attr   string   // breakdown value
	attrs  []string // the scan's attributes, for queries that read more than the breakdown
}

// matchSpec is what the path finder needs from a funnel query, times in ms.
type matchSpec struct {
	steps            int
	mode             Mode
	from, to, window int64 // first step in [from, to)
}

// pathFinder finds how far one unit gets through a funnel, and the canonical path it takes: among
// the valid paths that reach the furthest step, the one whose step times are smallest in
// lexicographic order, then whose first event has the smallest breakdown value. Breakdown values and
// times between steps are read off that path, so they do not depend on how equal times are ordered.
type pathFinder struct {
	spec  matchSpec
	ev    []unitEvent
	block []int // per event: the index where its run of equal times starts
	used  []bool
	memo  map[int]memoEntry // per (step, event) within one start, for events without ties
	t1    int64
}

type memoEntry struct {
	depth int
	path  []int
}

func newPathFinder(spec matchSpec) *pathFinder {
	return &pathFinder{spec: spec, memo: map[int]memoEntry{}}
}

// reach returns the number of steps the unit reaches and the indexes (into ev, which must be in
// (time, id) order) of the events of its canonical path. In ModeAny the path holds one event: the
// earliest event that can take step 1 (the smallest breakdown value among equal times) in the
// first window where the unit gets furthest.
func (f *pathFinder) reach(ev []unitEvent) (int, []int) {
	f.ev = ev
	f.block = f.block[:0]
	for i := range ev {
		if i > 0 && ev[i].t == ev[i-1].t {
			f.block = append(f.block, f.block[i-1])
		} else {
			f.block = append(f.block, i)
		}
	}
	f.used = slices.Grow(f.used[:0], len(ev))[:len(ev)]
	clear(f.used)
	if f.spec.mode == ModeAny {
		return f.reachAny()
	}
	best, bestPath := 0, []int(nil)
	for s, e := range ev {
		if e.t >= f.spec.to || (best == f.spec.steps && e.t > ev[bestPath[0]].t) {
			break
		}
		if e.t < f.spec.from || e.steps&1 == 0 {
			continue
		}
		clear(f.memo)
		f.t1 = e.t
		f.used[s] = true
		depth, rest := f.extend(1, s)
		f.used[s] = false
		path := append([]int{s}, rest...)
		if depth > best || depth == best && f.before(path, bestPath, true) {
			best, bestPath = depth, path
		}
	}
	return best, bestPath
}

// before reports whether path a comes before path b of the same length in the canonical order:
// smaller step times, then (firstAttr) the smaller breakdown value of the first event.
func (f *pathFinder) before(a, b []int, firstAttr bool) bool {
	for i := range a {
		if ta, tb := f.ev[a[i]].t, f.ev[b[i]].t; ta != tb {
			return ta < tb
		}
	}
	return firstAttr && len(a) > 0 && f.ev[a[0]].attr < f.ev[b[0]].attr
}

// extend returns how many steps a path can reach when its first done steps end at event last,
// and the canonical rest of that path.
func (f *pathFinder) extend(done, last int) (int, []int) {
	if done == f.spec.steps {
		return done, nil
	}
	ev := f.ev
	key := done*len(ev) + last
	memoize := (last+1 == len(ev) || ev[last+1].t != ev[last].t) && f.block[last] == last
	if memoize {
		if m, ok := f.memo[key]; ok {
			return m.depth, m.path
		}
	}
	gap := uint64(1) << (done - 1)
	tLast := ev[last].t
	limit := int64(1<<63 - 1) // candidates after the first blocking event are out
	best, bestPath := done, []int(nil)
	for c := f.block[last]; c < len(ev); c++ {
		e := ev[c]
		if e.t > limit || e.t-f.t1 > f.spec.window {
			break
		}
		if best == f.spec.steps && e.t > ev[bestPath[0]].t {
			break // a later event cannot give smaller times
		}
		if !f.used[c] && e.steps&(1<<done) != 0 {
			f.used[c] = true
			depth, rest := f.extend(done+1, c)
			f.used[c] = false
			path := append([]int{c}, rest...)
			if depth > best || depth == best && depth > done && f.before(path, bestPath, false) {
				best, bestPath = depth, path
			}
		}
		if e.blocks&gap != 0 && e.t > tLast && e.t < limit {
			limit = e.t
		}
	}
	if memoize {
		f.memo[key] = memoEntry{best, bestPath}
	}
	return best, bestPath
}

// reachAny handles ModeAny: for each start time in [from, to), the events within the window from
// it; the unit reaches step k when steps 1…k can take distinct events there, one of them at the
// start time.
func (f *pathFinder) reachAny() (int, []int) {
	ev := f.ev
	best, bestFirst := 0, -1
	for s := 0; s < len(ev); s++ {
		if f.block[s] != s {
			continue // one start per time
		}
		t := ev[s].t
		if t >= f.spec.to {
			break
		}
		if t < f.spec.from {
			continue
		}
		end := s
		for end < len(ev) && ev[end].t-t <= f.spec.window {
			end++
		}
		window := ev[s:end]
		startsHere := 0
		for startsHere < len(window) && window[startsHere].t == t {
			startsHere++
		}
		for k := f.spec.steps; k > best; k-- {
			if !matchableWithStart(window, startsHere, k) {
				continue
			}
			best = k
			bestFirst = -1
			for i, e := range window {
				if e.steps&1 == 0 {
					continue
				}
				if bestFirst >= 0 && e.t > ev[bestFirst].t {
					break
				}
				if bestFirst < 0 || e.attr < ev[bestFirst].attr {
					bestFirst = s + i
				}
			}
			break
		}
		if best == f.spec.steps {
			break
		}
	}
	if best == 0 {
		return 0, nil
	}
	return best, []int{bestFirst}
}

// matchableWithStart reports whether steps 0…k-1 can take distinct events of window, at least
// one of them among its first startsHere events.
func matchableWithStart(window []unitEvent, startsHere, k int) bool {
	for x := range startsHere {
		for step := range k {
			if window[x].steps&(1<<step) == 0 {
				continue
			}
			if bipartite(window, k, step, x) {
				return true
			}
		}
	}
	return false
}

// bipartite reports whether steps 0…k-1 can take distinct events of window with step fixed to
// event fixed (Kuhn's augmenting paths).
func bipartite(window []unitEvent, k, step, fixed int) bool {
	owner := make([]int, len(window))
	for i := range owner {
		owner[i] = -1
	}
	owner[fixed] = step
	var try func(st int, seen []bool) bool
	try = func(st int, seen []bool) bool {
		for i, e := range window {
			if i == fixed || seen[i] || e.steps&(1<<st) == 0 {
				continue
			}
			seen[i] = true
			if owner[i] < 0 || try(owner[i], seen) {
				owner[i] = st
				return true
			}
		}
		return false
	}
	for st := range k {
		if st == step {
			continue
		}
		if !try(st, make([]bool, len(window))) {
			return false
		}
	}
	return true
}
