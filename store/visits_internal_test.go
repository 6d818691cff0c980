package store

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// storedVisit is a visit as stored: its key and span.
type storedVisit struct {
	key string
	span
}

// bruteSplit is splitBySession's rule applied literally, one event at a time over every stored
// visit: an event is in the latest-starting visit of its key that starts at or before it,
// unless that one ended before it; the events of one key in visits that start at once are one
// session. Sessions come in the order of their first event.
func bruteSplit(events []int64, keys []string, stored []storedVisit) []sessionPart[int64] {
	type unit struct {
		key   string
		start int64
	}
	var (
		order []unit
		parts = map[unit]*sessionPart[int64]{}
	)
	for i, t := range events {
		var in *storedVisit
		for k, v := range stored {
			if v.key == keys[i] && v.start <= t && (in == nil || v.start > in.start) {
				in = &stored[k]
			}
		}
		if in == nil || in.end < t {
			continue
		}
		u := unit{in.key, in.start}
		if parts[u] == nil {
			parts[u] = &sessionPart[int64]{visit: in.span}
			order = append(order, u)
		}
		parts[u].events = append(parts[u].events, t)
	}
	var out []sessionPart[int64]
	for _, u := range order {
		out = append(out, *parts[u])
	}
	return out
}

// TestSplitBySessionAgreesWithTheDefinition compares splitBySession, over visits loaded as a
// pass loads them (visitRows.visits), with bruteSplit on random persons: events of a few keys,
// in time order and shuffled, whose visits overlap, touch, start at once (with one end: stored
// twice), or leave gaps between them.
func TestSplitBySessionAgreesWithTheDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	names := []string{"a", "b", "c", "d"}
	for trial := range 5000 {
		rows := &visitRows{keys: names[:1+rng.IntN(len(names))], reasons: []string{"timeout", "max_length"}}
		var stored []storedVisit
		for range rng.IntN(12) {
			k := rng.IntN(len(rows.keys))
			v := storedVisit{rows.keys[k], span{start: rng.Int64N(100), reason: uint32(rng.IntN(2))}}
			v.end = v.start + rng.Int64N(30)
			for _, o := range stored {
				if o.key == v.key && o.start == v.start {
					v.end = o.end
				}
			}
			stored = append(stored, v)
			rows.read = append(rows.read, struct {
				key int32
				span
			}{int32(k), v.span})
		}
		n := rng.IntN(20)
		events, keys := make([]int64, n), make([]string, n)
		for i := range events {
			events[i] = rng.Int64N(130)
			keys[i] = rows.keys[rng.IntN(len(rows.keys))]
			if i > 0 && rng.IntN(3) > 0 {
				keys[i] = keys[i-1] // runs of one key, as a person's events mostly are
			}
		}
		if trial%2 == 0 {
			slices.Sort(events)
		}
		got := splitBySession(events, keys, func(t int64) int64 { return t }, rows.visits(0))
		want := bruteSplit(events, keys, stored)
		if len(got) != len(want) {
			t.Fatalf("trial %d: events %v keys %v visits %+v: %d sessions, want %d", trial, events, keys, stored, len(got), len(want))
		}
		for i, w := range want {
			// Of visits stored twice, either end reason may be the session's.
			g := got[i]
			if g.visit.start != w.visit.start || g.visit.end != w.visit.end || !slices.Equal(g.events, w.events) {
				t.Fatalf("trial %d: events %v keys %v visits %+v: session %d is %+v %v, want %+v %v",
					trial, events, keys, stored, i, g.visit, g.events, w.visit, w.events)
			}
		}
	}
}
