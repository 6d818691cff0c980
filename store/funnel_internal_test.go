package store

import (
	"cmp"
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// funnelEvent is an event as bruteLevel sees it.
type funnelEvent struct {
	t    int64
	id   uint64
	mask uint64
}

// bruteLevel is the funnel definition applied literally: the largest k for which distinct events
// e1…ek match steps 1…k with non-decreasing times, e1 in [from, to) and tk − t1 ≤ window.
func bruteLevel(p funnelPlan, ev []funnelEvent, from, to, window int64) int {
	// Step matches, with nth counted in (time, id) order (the tie rule's, seq being 0 here).
	matches := func(e funnelEvent, step int) bool {
		sp := p.steps[step]
		for j, c := range sp.conds {
			if e.mask&(1<<c) == 0 {
				continue
			}
			n := 0
			for _, o := range ev {
				if o.mask&(1<<c) != 0 && cmp.Or(cmp.Compare(o.t, e.t), cmp.Compare(o.id, e.id)) <= 0 {
					n++
				}
			}
			if n >= sp.nth[j] {
				return true
			}
		}
		return false
	}
	used := make([]bool, len(ev))
	var extend func(step int, t1, prev int64) int
	extend = func(step int, t1, prev int64) int {
		if step == len(p.steps) {
			return step
		}
		best := step
		for i, e := range ev {
			if used[i] || !matches(e, step) {
				continue
			}
			if step == 0 && (e.t < from || e.t >= to) {
				continue
			}
			if step > 0 && (e.t < prev || e.t-t1 > window) {
				continue
			}
			start := t1
			if step == 0 {
				start = e.t
			}
			used[i] = true
			best = max(best, extend(step+1, start, e.t))
			used[i] = false
		}
		return best
	}
	return extend(0, 0, 0)
}

func TestMatcherAgreesWithTheDefinition(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 3000 {
		nConds := 1 + rng.IntN(3)
		var p funnelPlan
		for range make([]struct{}, nConds) {
			p.conds = append(p.conds, condition{})
		}
		for range 1 + rng.IntN(4) {
			var sp stepPlan
			for range 1 + rng.IntN(2) {
				sp.conds = append(sp.conds, rng.IntN(nConds))
				sp.nth = append(sp.nth, 1+rng.IntN(2))
			}
			p.steps = append(p.steps, sp)
		}
		var events []funnelEvent
		var scanned []scannedEvent
		for i := range rng.IntN(8) {
			e := funnelEvent{t: int64(1000 * rng.IntN(6)), id: uint64(i), mask: uint64(1 + rng.IntN(1<<nConds-1))}
			events = append(events, e)
			scanned = append(scanned, scannedEvent{t: e.t, id: e.id, mask: e.mask})
		}
		rng.Shuffle(len(scanned), func(i, j int) { scanned[i], scanned[j] = scanned[j], scanned[i] })
		q := FunnelQuery{Window: time.Duration(1+rng.IntN(4)) * time.Second}
		from, to := int64(-1<<62), int64(1<<62)
		if rng.IntN(3) == 0 {
			from = int64(1000 * rng.IntN(3))
			q.From = time.UnixMilli(from)
		}
		if rng.IntN(3) == 0 {
			to = int64(1000 * (3 + rng.IntN(3)))
			q.To = time.UnixMilli(to)
		}
		want := bruteLevel(p, events, from, to, q.Window.Milliseconds())
		p.blocks = make([]uint64, len(p.conds))
		p.attr, p.traitCond, p.keyAttr, p.from = -1, -1, -1, from
		p.spec = matchSpec{steps: len(p.steps), mode: ModeOrdered, from: from, to: to, window: q.Window.Milliseconds()}
		got, _, err := newPathFinder(p.spec).reach(context.Background(), p.units(scanned, attrTable{}, nil)[0], breakdownValues{})
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("case %d: level %d, want %d\nplan %+v\nevents %+v\nquery %+v", iter, got, want, p, events, q)
		}
	}
}
