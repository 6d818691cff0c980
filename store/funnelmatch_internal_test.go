package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// sortUnitEvents puts events in time order, equal times in the order they were made: the tie
// rule's order, which every rule counts in.
func sortUnitEvents(ev []unitEvent) {
	slices.SortStableFunc(ev, func(a, b unitEvent) int { return cmp.Compare(a.t, b.t) })
}

// brutePath applies the funnel definition literally: every sequence of distinct events is tried,
// and the canonical path is the furthest-reaching one that is smallest in event order.
func brutePath(spec matchSpec, ev []unitEvent) (int, []int) {
	if spec.mode == ModeAny {
		return bruteAny(spec, ev)
	}
	best, bestPath := 0, []int(nil)
	var path []int
	used := make([]bool, len(ev))
	var walk func()
	walk = func() {
		k := len(path)
		if k > best || (k == best && k > 0 && pathLess(ev, path, bestPath)) {
			best, bestPath = k, slices.Clone(path)
		}
		if k == spec.steps {
			return
		}
		for c, e := range ev {
			if used[c] || e.steps&(1<<k) == 0 {
				continue
			}
			if k == 0 && (e.t < spec.from || e.t >= spec.to) {
				continue
			}
			if k > 0 {
				prev, first := ev[path[k-1]], ev[path[0]]
				if e.t < prev.t || e.t-first.t > spec.window {
					continue
				}
				blocked := false
				for _, x := range ev {
					blocked = blocked || (x.blocks&(1<<(k-1)) != 0 && prev.t < x.t && x.t < e.t)
				}
				if blocked {
					continue
				}
			}
			used[c] = true
			path = append(path, c)
			walk()
			path = path[:k]
			used[c] = false
		}
	}
	walk()
	return best, bestPath
}

// letters reads the tests' breakdown values: a unit event's attr 1, 2 or 3 is "a", "b" or "c",
// so comparing attrs compares the values.
func letters() breakdownValues {
	return breakdownValues{attrs: attrTable{values: []string{"a", "b", "c"}, stride: 3, width: 1}}
}

// pathLess orders paths of one length: by step times, then by the first event's breakdown value.
func pathLess(ev []unitEvent, a, b []int) bool {
	for i := range a {
		if ev[a[i]].t != ev[b[i]].t {
			return ev[a[i]].t < ev[b[i]].t
		}
	}
	return ev[a[0]].attr < ev[b[0]].attr
}

// bruteAny: the largest k for which some start time ts in [from, to) has distinct events for
// steps 1…k within [ts, ts+window], one of them at ts.
func bruteAny(spec matchSpec, ev []unitEvent) (int, []int) {
	best, first := 0, -1
	for _, s := range ev {
		ts := s.t
		if ts < spec.from || ts >= spec.to {
			continue
		}
		used := make([]bool, len(ev))
		var fits func(step, k int, atStart bool) bool
		fits = func(step, k int, atStart bool) bool {
			if step == k {
				return atStart
			}
			for c, e := range ev {
				if used[c] || e.steps&(1<<step) == 0 || e.t < ts || e.t-ts > spec.window {
					continue
				}
				used[c] = true
				ok := fits(step+1, k, atStart || e.t == ts)
				used[c] = false
				if ok {
					return true
				}
			}
			return false
		}
		for k := spec.steps; k > 0; k-- {
			if !fits(0, k, false) {
				continue
			}
			earliest := false
			if k > best {
				earliest = true
			} else if k == best && ts < ev[first].t {
				earliest = true
			}
			if earliest {
				best, first = k, -1
				for c, e := range ev {
					if e.steps&1 != 0 && e.t >= ts && e.t-ts <= spec.window &&
						(first < 0 || e.t < ev[first].t || e.t == ev[first].t && e.attr < ev[first].attr) {
						first = c
					}
				}
			}
			break
		}
	}
	if best == 0 {
		return 0, nil
	}
	return best, []int{first}
}

func TestPathFinderAgreesWithTheDefinition(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	modes := []Mode{ModeOrdered, ModeStrict, ModeAny}
	for iter := range 20000 {
		spec := matchSpec{steps: 1 + rng.IntN(4), mode: modes[rng.IntN(3)], from: -1 << 62, to: 1 << 62,
			window: int64(1000 * (1 + rng.IntN(4)))}
		if rng.IntN(3) == 0 {
			spec.from = int64(1000 * rng.IntN(3))
		}
		if rng.IntN(3) == 0 {
			spec.to = int64(1000 * (3 + rng.IntN(3)))
		}
		var ev []unitEvent
		for range rng.IntN(9) {
			e := unitEvent{t: int64(1000 * rng.IntN(6)), steps: uint64(rng.IntN(1 << spec.steps)), attr: int32(1 + rng.IntN(3))}
			if spec.mode != ModeAny && rng.IntN(4) == 0 {
				e.blocks = uint64(rng.IntN(1 << spec.steps))
			}
			ev = append(ev, e)
		}
		sortUnitEvents(ev)
		agreesWithBruteForce(t, iter, spec, ev)
	}
}

// agreesWithBruteForce fails the test when the path finder and the brute force disagree on one
// unit: on the level reached or the path's observable parts (its times and its first event's
// breakdown value), or when the path found is not one of the definition.
func agreesWithBruteForce(t *testing.T, iter int, spec matchSpec, ev []unitEvent) {
	t.Helper()
	wantLevel, wantPath := brutePath(spec, ev)
	gotLevel, gotPath, err := newPathFinder(spec).reach(context.Background(), ev, letters())
	if err != nil {
		t.Fatal(err)
	}
	observe := func(path []int) string {
		var parts []string
		for i, p := range path {
			parts = append(parts, fmt.Sprint(ev[p].t))
			if i == 0 {
				parts = append(parts, letters().of(ev[p]))
			}
		}
		return strings.Join(parts, " ")
	}
	if gotLevel != wantLevel || observe(gotPath) != observe(wantPath) {
		t.Fatalf("case %d: reach = %d %v, want %d %v\nspec %+v\nevents %+v", iter, gotLevel, gotPath, wantLevel, wantPath, spec, ev)
	}
	if spec.mode != ModeAny && !validPath(spec, ev, gotPath) {
		t.Fatalf("case %d: path %v is not a valid path\nspec %+v\nevents %+v", iter, gotPath, spec, ev)
	}
}

// TestPathFinderWithTiesAgreesWithTheDefinition stresses what makes matching hard: many events of
// one time, steps repeated (one event can take any of them) and overlapping (an event matches
// several steps), exclusions and strict mode, against the brute force on small units.
func TestPathFinderWithTiesAgreesWithTheDefinition(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	modes := []Mode{ModeOrdered, ModeStrict, ModeAny}
	for iter := range 40000 {
		steps, spread := 1+rng.IntN(6), 1+rng.IntN(6) // spread: distinct seconds
		spec := matchSpec{steps: steps, mode: modes[rng.IntN(3)], from: -1 << 62, to: 1 << 62,
			window: int64(1000 * rng.IntN(spread+1))}
		if rng.IntN(4) == 0 {
			spec.from = int64(1000 * rng.IntN(2))
		}
		if rng.IntN(4) == 0 {
			spec.to = int64(1000 * (1 + rng.IntN(2)))
		}
		all := uint64(1)<<steps - 1
		var ev []unitEvent
		for range 1 + rng.IntN(9) {
			e := unitEvent{t: int64(1000 * rng.IntN(spread)), attr: int32(1 + rng.IntN(3))}
			switch rng.IntN(4) {
			case 0: // a repeated step: it can take every step
				e.steps = all
			case 1: // a single step
				e.steps = 1 << rng.IntN(steps)
			default: // overlapping steps
				e.steps = uint64(rng.IntN(1 << steps))
			}
			if spec.mode != ModeAny && rng.IntN(5) == 0 {
				e.blocks = uint64(rng.IntN(1 << steps))
			}
			ev = append(ev, e)
		}
		sortUnitEvents(ev)
		agreesWithBruteForce(t, iter, spec, ev)
	}
}

// validPath reports whether path is a path of the definition: distinct events, each able to take
// its step, in time order, within the window, none excluded in between.
func validPath(spec matchSpec, ev []unitEvent, path []int) bool {
	seen := map[int]bool{}
	for k, i := range path {
		if seen[i] || ev[i].steps&(1<<k) == 0 {
			return false
		}
		seen[i] = true
		if k == 0 {
			if ev[i].t < spec.from || ev[i].t >= spec.to {
				return false
			}
			continue
		}
		prev := ev[path[k-1]]
		if ev[i].t < prev.t || ev[i].t-ev[path[0]].t > spec.window {
			return false
		}
		for _, x := range ev {
			if x.blocks&(1<<(k-1)) != 0 && prev.t < x.t && x.t < ev[i].t {
				return false
			}
		}
	}
	return true
}

// TestPathFinderOnHostileUnits: the worst cases of enumeration are answered exactly: every event
// of one second can take every step, so the unit reaches every step, all at that second; with one
// event fewer than steps it reaches as many steps as it has events.
func TestPathFinderOnHostileUnits(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ events, steps, want int }{
		{12, 12, 12}, {1000, 32, 32}, {31, 32, 31}, {1, 32, 1},
	} {
		for _, mode := range []Mode{ModeOrdered, ModeStrict, ModeAny} {
			spec, ev := tiedUnit(c.events, c.steps)
			spec.mode = mode
			level, path, err := newPathFinder(spec).reach(context.Background(), ev, breakdownValues{})
			if err != nil {
				t.Fatal(err)
			}
			if level != c.want {
				t.Errorf("%d events, %d steps, %s: level %d, want %d", c.events, c.steps, mode, level, c.want)
			}
			if mode != ModeAny && (len(path) != c.want || !validPath(spec, ev, path)) {
				t.Errorf("%d events, %d steps, %s: path %v is not a valid path to step %d", c.events, c.steps, mode, path, c.want)
			}
		}
	}
}

// TestPathFinderStopsWhenTheQueryIsDone: matching looks at the query's context, so a unit that
// takes long to match does not outlive its query.
func TestPathFinderStopsWhenTheQueryIsDone(t *testing.T) {
	t.Parallel()
	// 20,000 events one second apart, each able to take the first 31 of 32 steps, in any order:
	// every start matches the whole day's events without reaching the last step.
	spec := matchSpec{steps: 32, mode: ModeAny, from: -1 << 62, to: 1 << 62, window: 86_400_000}
	ev := make([]unitEvent, 20000)
	for i := range ev {
		ev[i] = unitEvent{t: int64(i) * 1000, steps: 1<<31 - 1}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	level, path, err := newPathFinder(spec).reach(ctx, ev, breakdownValues{})
	if !errors.Is(err, context.Canceled) || level != 0 || path != nil {
		t.Errorf("reach = %d %v %v, want context.Canceled", level, path, err)
	}
	// An expired deadline is reported as such.
	ctx, cancel = context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel()
	if _, _, err := newPathFinder(spec).reach(ctx, ev, breakdownValues{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("reach after the deadline: %v, want context.DeadlineExceeded", err)
	}
}

// TestHeldPathFinderAgreesWithTheDefinition: holding a property constant, the path finder
// reaches what the brute force reaches with the events of each value apart (an event without a
// value takes no step; exclusions and strict order block whatever an event's value), keeping the
// furthest, then the canonical path of those, then the smallest value's; and the path it gives
// is one of a single value, valid in the unit it returns.
func TestHeldPathFinderAgreesWithTheDefinition(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	modes := []Mode{ModeOrdered, ModeStrict, ModeAny}
	// The held column's texts (heldValueSQL's) and the values each gives: none; a property's
	// value; the values of a products list's items (one, two, one twice).
	held := []struct {
		text   string
		values []string
	}{
		{"", nil}, {"=", nil}, {"=x", []string{"x"}}, {"=y", []string{"y"}}, {"=z", []string{"z"}},
		{"[1:y", []string{"y"}}, {"[1:x1:y", []string{"x", "y"}}, {"[1:z1:y1:z", []string{"y", "z"}}, {"[", nil},
	}
	for iter := range 20000 {
		spec := matchSpec{steps: 1 + rng.IntN(4), mode: modes[rng.IntN(3)], from: -1 << 62, to: 1 << 62,
			window: int64(1000 * (1 + rng.IntN(4)))}
		if rng.IntN(3) == 0 {
			spec.from = int64(1000 * rng.IntN(3))
		}
		n := rng.IntN(9)
		// Attribute column 0 is the breakdown (letters: a, b, c at 0, 1, 2), column 1 the held
		// value of the event whose at is 3 + its index.
		attrs := attrTable{values: make([]string, 2*(3+n)), stride: 3 + n, width: 2}
		copy(attrs.values, []string{"a", "b", "c"})
		var ev []unitEvent
		for range n {
			e := unitEvent{t: int64(1000 * rng.IntN(5)), steps: uint64(rng.IntN(1 << spec.steps)), attr: int32(1 + rng.IntN(3))}
			if spec.mode != ModeAny && rng.IntN(4) == 0 {
				e.blocks = uint64(rng.IntN(1 << spec.steps))
			}
			ev = append(ev, e)
		}
		sortUnitEvents(ev)
		sets := make([][]string, n)
		for i := range ev {
			ev[i].at = int32(3 + i)
			h := held[rng.IntN(len(held))]
			attrs.values[attrs.stride+3+i], sets[i] = h.text, h.values
		}
		has := func(i int, v string) bool { return slices.Contains(sets[i], v) }
		wantLevel, wantPath, wantValue := 0, []int(nil), ""
		for _, v := range []string{"x", "y", "z"} {
			only := slices.Clone(ev)
			for i := range only {
				if !has(i, v) {
					only[i].steps = 0
				}
			}
			level, path := brutePath(spec, only)
			if level > wantLevel || level == wantLevel && level > 0 && pathLess(ev, path, wantPath) {
				wantLevel, wantPath, wantValue = level, path, v
			}
		}
		values := breakdownValues{attrs: attrs, col: 0}
		gotLevel, gotPath, matched, err := newPathFinder(spec).reachHeld(context.Background(), ev, values, 2)
		if err != nil {
			t.Fatal(err)
		}
		// The value reachHeld matched with: the one whose events alone keep their steps in
		// matched (of values with the same events, the smallest: the one it tried first).
		gotValue := ""
		for _, v := range []string{"x", "y", "z"} {
			if gotLevel > 0 && gotValue == "" && !slices.ContainsFunc(ev, func(e unitEvent) bool {
				i := int(e.at) - 3
				return e.steps != 0 && (matched[i].steps != 0) != has(i, v)
			}) {
				gotValue = v
			}
		}
		observe := func(path []int, value string) string {
			var parts []string
			for i, p := range path {
				parts = append(parts, fmt.Sprint(ev[p].t))
				if i == 0 {
					parts = append(parts, values.of(ev[p]), value)
				}
			}
			return strings.Join(parts, " ")
		}
		if gotLevel != wantLevel || observe(gotPath, gotValue) != observe(wantPath, wantValue) {
			t.Fatalf("case %d: reachHeld = %d %v, want %d %v\nspec %+v\nevents %+v\nheld %q", iter, gotLevel, gotPath, wantLevel, wantPath, spec, ev, attrs.values[attrs.stride:])
		}
		for _, i := range gotPath {
			if !has(i, wantValue) || matched[i].steps != ev[i].steps {
				t.Fatalf("case %d: path %v is not of one value\nevents %+v\nheld %q", iter, gotPath, ev, attrs.values[attrs.stride:])
			}
		}
		if spec.mode != ModeAny && gotLevel > 0 && !validPath(spec, matched, gotPath) {
			t.Fatalf("case %d: path %v is not a valid path\nspec %+v\nevents %+v", iter, gotPath, spec, matched)
		}
	}
}
