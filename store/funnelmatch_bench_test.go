package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
)

// tiedUnit is one person's worst case for matching: n events of one name at the same second, for
// a funnel repeating that name steps times.
func tiedUnit(n, steps int) (matchSpec, []unitEvent) {
	spec := matchSpec{steps: steps, mode: ModeOrdered, from: -1 << 62, to: 1 << 62, window: 86_400_000}
	ev := make([]unitEvent, n)
	for i := range ev {
		ev[i] = unitEvent{t: 1_700_000_000_000, steps: 1<<steps - 1}
	}
	return spec, ev
}

// BenchmarkPathFinderTies measures the worst case of matching with ties (issue 14): before the
// matching by groups, 9 events and 9 steps took 0.1 s, 10 and 10 0.8 s, 12 and 12 221 s.
func BenchmarkPathFinderTies(b *testing.B) {
	for _, c := range []struct{ events, steps int }{{8, 8}, {9, 9}, {10, 10}, {12, 12}, {1000, 32}} {
		b.Run(fmt.Sprintf("events=%d/steps=%d", c.events, c.steps), func(b *testing.B) {
			spec, ev := tiedUnit(c.events, c.steps)
			b.ReportAllocs()
			for b.Loop() {
				if level, _, err := newPathFinder(spec).reach(context.Background(), ev, breakdownValues{}); err != nil || level != c.steps {
					b.Fatalf("level %d, want %d", level, c.steps)
				}
			}
		})
	}
}

// BenchmarkPathFinderDay measures a person with 100,000 events in one day (a bot) for 32 steps of
// which they take 31, so no start completes the funnel: in order, one sweep over the events.
func BenchmarkPathFinderDay(b *testing.B) {
	spec := matchSpec{steps: 32, mode: ModeOrdered, from: -1 << 62, to: 1 << 62, window: 86_400_000}
	ev := make([]unitEvent, 100_000)
	for i := range ev {
		ev[i] = unitEvent{t: int64(i) * 400, steps: 1<<31 - 1}
	}
	b.ReportAllocs()
	for b.Loop() {
		if level, _, err := newPathFinder(spec).reach(context.Background(), ev, breakdownValues{}); err != nil || level != 31 {
			b.Fatalf("level %d, %v; want 31", level, err)
		}
	}
}

// BenchmarkPathFinderTypical measures the common case: 10,000 persons of 2 to 31 events minutes
// apart, each event taking one of 5 steps (16 ms before the matching by groups, 18 ms after, on
// the same loaded machine).
func BenchmarkPathFinderTypical(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	spec := matchSpec{steps: 5, mode: ModeOrdered, from: -1 << 62, to: 1 << 62, window: 86_400_000}
	var units [][]unitEvent
	for range 10000 {
		var ev []unitEvent
		t := int64(0)
		for range 2 + rng.IntN(30) {
			t += int64(rng.IntN(600)) * 1000
			ev = append(ev, unitEvent{t: t, steps: 1 << rng.IntN(5)})
		}
		units = append(units, ev)
	}
	f := newPathFinder(spec)
	b.ReportAllocs()
	for b.Loop() {
		for _, u := range units {
			if _, _, err := f.reach(context.Background(), u, breakdownValues{}); err != nil {
				b.Fatal(err)
			}
		}
	}
}
