package store

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// storedVisit is a visit as stored: its key and span.
type storedVisit struct {
	key string
	span
}

// timedEvent is an event's time (µs) and seq, its place by the tie rule.
type timedEvent struct{ t, seq int64 }

// bruteSplit is sessionSplit.split's rule applied literally, one event at a time over every stored
// visit: an event is in the latest-starting visit of its key that starts at or before it by the
// tie rule, time then seq (of several that start at once, the one that ends last, then by end
// reason), unless that one ended before it; the events of one key in visits that start at once
// are one session. Sessions come in the order of their first event.
func bruteSplit(events []timedEvent, keys []string, stored []storedVisit, reasons []string) []sessionPart[timedEvent] {
	type unit struct {
		key             string
		start, startSeq int64
	}
	var (
		order []unit
		parts = map[unit]*sessionPart[timedEvent]{}
	)
	for i, e := range events {
		var in *storedVisit
		for k, v := range stored {
			later := in == nil
			if !later {
				c := cmp.Or(cmp.Compare(v.start, in.start), cmp.Compare(v.startSeq, in.startSeq))
				later = c > 0 || c == 0 && (v.end > in.end || v.end == in.end && reasons[v.kind] > reasons[in.kind])
			}
			startsBy := v.start < e.t || v.start == e.t && v.startSeq <= e.seq
			if v.key == keys[i] && startsBy && later {
				in = &stored[k]
			}
		}
		if in == nil || in.end < e.t {
			continue
		}
		u := unit{in.key, in.start, in.startSeq}
		if parts[u] == nil {
			parts[u] = &sessionPart[timedEvent]{visit: in.span}
			order = append(order, u)
		}
		parts[u].events = append(parts[u].events, e)
	}
	var out []sessionPart[timedEvent]
	for _, u := range order {
		out = append(out, *parts[u])
	}
	return out
}

// TestSplitBySessionAgreesWithTheDefinition compares sessionSplit.split, over visits loaded as a
// pass loads them (visitRows.add, then visitRows.visits, from the start of time or later), with
// bruteSplit on random persons: events of a few keys, in time order and shuffled, whose visits
// overlap, touch, start at once (in one µs at one seq, or at another seq of it), or leave gaps
// between them; the visits read in no order, in order of key (as ClickHouse 18.16 sends them), or
// in order of key up to a row that breaks it.
func TestSplitBySessionAgreesWithTheDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	names := []string{"d", "b", "a", "c"} // met out of byte order
	var split sessionSplit[timedEvent]    // reused from trial to trial, as from person to person
	var space visitSpace                  // and the space of the visits, as from pass to pass
	for trial := range 5000 {
		personKeys, reasons := names[:1+rng.IntN(len(names))], []string{"timeout", "max_length"}
		var stored []storedVisit
		for range rng.IntN(12) {
			v := storedVisit{personKeys[rng.IntN(len(personKeys))], span{start: rng.Int64N(60), startSeq: rng.Int64N(3), kind: uint32(rng.IntN(2))}}
			v.end = v.start + rng.Int64N(30)
			stored = append(stored, v)
		}
		read := slices.Clone(stored) // in the order ClickHouse sends them
		if trial%4 > 0 {
			slices.SortStableFunc(read, func(a, b storedVisit) int { return cmp.Compare(a.key, b.key) })
			if trial%4 == 3 && len(read) > 1 { // one row out of its place
				i := rng.IntN(len(read) - 1)
				moved := read[i]
				read = append(slices.Delete(read, i, i+1), moved)
			}
		}
		rows := newVisitRows(space)
		for _, v := range read {
			rows.add(v.key, visitKind{reason: reasons[v.kind]}, v.span)
		}
		if trial%4 == 1 && !rows.inOrder {
			t.Fatalf("trial %d: visits read in order of key %+v are not seen in order", trial, read)
		}
		n := rng.IntN(20)
		events, keys := make([]timedEvent, n), make([]string, n)
		for i := range events {
			events[i] = timedEvent{rng.Int64N(130), rng.Int64N(3)}
			keys[i] = personKeys[rng.IntN(len(personKeys))]
			if i > 0 && rng.IntN(3) > 0 {
				keys[i] = keys[i-1] // runs of one key, as a person's events mostly are
			}
		}
		if trial%2 == 0 {
			slices.SortFunc(events, func(a, b timedEvent) int { return cmp.Or(cmp.Compare(a.t, b.t), cmp.Compare(a.seq, b.seq)) })
		}
		// A load from a later time than the pass's keeps the visits that end at or after it,
		// loaded after one from the pass's time, as a batch's loads are.
		from := int64(0)
		if trial%3 == 0 {
			rows.visits(from)
			from = rng.Int64N(60)
		}
		v := rows.visits(from)
		space = visitSpace{keys: len(rows.keys), spans: rows.read, slots: rows.table.slots}
		stored = slices.DeleteFunc(stored, func(v storedVisit) bool { return v.end < from })
		got := split.split(events, keys, func(e timedEvent) (int64, int64) { return e.t, e.seq }, v)
		want := bruteSplit(events, keys, stored, reasons)
		if len(got) != len(want) {
			t.Fatalf("trial %d: events %v keys %v visits %+v: %d sessions, want %d", trial, events, keys, stored, len(got), len(want))
		}
		for i, w := range want {
			g := got[i]
			if g.visit.start != w.visit.start || g.visit.startSeq != w.visit.startSeq || g.visit.end != w.visit.end || v.reason(g.visit) != reasons[w.visit.kind] || !slices.Equal(g.events, w.events) {
				t.Fatalf("trial %d: events %v keys %v visits %+v: session %d is %+v %v, want %+v %v",
					trial, events, keys, stored, i, g.visit, g.events, w.visit, w.events)
			}
		}
	}
}

// TestKeyTableFindsEveryKey checks keyTable against a map: every indexed key is found at its
// index, and keys not indexed (prefixes, extensions, the empty key, others) are not, for tables
// of none to thousands of keys made in the space of the one before.
func TestKeyTableFindsEveryKey(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var slots []int32
	for _, n := range []int{0, 1, 2, 3, 7, 100, 4096, 5000} {
		index := map[string]int32{}
		var keys []string
		for len(keys) < n {
			k := fmt.Sprintf("user-%d", rng.IntN(4*n+1))
			if _, ok := index[k]; !ok {
				index[k] = int32(len(keys))
				keys = append(keys, k)
			}
		}
		table := newKeyTable(keys, slots)
		slots = table.slots
		for i, k := range keys {
			if got := table.find(keys, k); got != int32(i) {
				t.Fatalf("%d keys: %q found at %d, want %d", n, k, got, i)
			}
		}
		for range 1000 {
			k := fmt.Sprintf("user-%d", rng.IntN(8*n+2))
			k = []string{k, k[:len(k)-1], k + "0", ""}[rng.IntN(4)]
			want, ok := index[k]
			if !ok {
				want = -1
			}
			if got := table.find(keys, k); got != want {
				t.Fatalf("%d keys: %q found at %d, want %d", n, k, got, want)
			}
		}
	}
}
