package store

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// sortUnitEvents puts events in (time, id) order, the order every rule counts in.
func sortUnitEvents(ev []unitEvent) {
	slices.SortFunc(ev, func(a, b unitEvent) int {
		return cmp.Or(cmp.Compare(a.t, b.t), cmp.Compare(a.id, b.id))
	})
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
		for i := range rng.IntN(9) {
			e := unitEvent{t: int64(1000 * rng.IntN(6)), id: uint64(i), steps: uint64(rng.IntN(1 << spec.steps)), attr: string(rune('a' + rng.IntN(3)))}
			if spec.mode != ModeAny && rng.IntN(4) == 0 {
				e.blocks = uint64(rng.IntN(1 << spec.steps))
			}
			ev = append(ev, e)
		}
		sortUnitEvents(ev)
		wantLevel, wantPath := brutePath(spec, ev)
		gotLevel, gotPath := newPathFinder(spec).reach(ev)
		// The path's observable parts: its times and its first event's breakdown value.
		observe := func(path []int) string {
			var parts []string
			for i, p := range path {
				parts = append(parts, fmt.Sprint(ev[p].t))
				if i == 0 {
					parts = append(parts, ev[p].attr)
				}
			}
			return strings.Join(parts, " ")
		}
		if gotLevel != wantLevel || observe(gotPath) != observe(wantPath) {
			t.Fatalf("case %d: reach = %d %v, want %d %v\nspec %+v\nevents %+v", iter, gotLevel, gotPath, wantLevel, wantPath, spec, ev)
		}
	}
}
