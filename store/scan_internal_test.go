package store

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestUnpackEvents: a person's row as ClickHouse sends it (see sendPass) parses into its events
// and their attributes, and a malformed one is an error, never a panic or a wrong event.
func TestUnpackEvents(t *testing.T) {
	t.Parallel()
	tests := []struct {
		packed string
		first  uint64 // what the times are relative to
		attrs  []string
		want   string
		err    bool
	}{
		{"[(1700000000000,7,18446744073709551615,5)]", 0, nil, "[{1700000000000 7 18446744073709551615 5 []}]", false},
		{"[(0,7,3,5),(1000999,0,4,1)]", 1700000000000123, nil, "[{1700000000000123 7 3 5 []} {1700000001001122 0 4 1 []}]", false},
		{"[(1,0,3,2),(4,9,6,5)]", 0, []string{"a\x1fb"}, "[{1 0 3 2 [a]} {4 9 6 5 [b]}]", false},
		{"[(1,0,3,2),(4,0,6,5)]", 0, []string{`x\\y\f` + "\x1f"}, "[{1 0 3 2 [x\\y\x1f]} {4 0 6 5 []}]", false},
		{"[]", 0, nil, "[]", false},
		{"[(1,0,3,2),(4,0,6,5),(7,0,9,8)]", 0, []string{"a\x1f\x1fc", `\\f` + "\x1fy\x1fz"}, "[{1 0 3 2 [a \\f]} {4 0 6 5 [ y]} {7 0 9 8 [c z]}]", false},
		{"[(1,0,3,2)]", 0, []string{"one", "two"}, "[{1 0 3 2 [one two]}]", false},
		{"[(1,0,3,2),(4,0,6,5)]", 0, []string{"a\x1fb\x1fc"}, "", true},
		{"[(1,0,3,2),(4,0,6,5)]", 0, []string{"a\x1fb", "only one"}, "", true},
		{"[(1,0,3,2),(4,0,6,5)]", 0, []string{"only one"}, "", true},
		{"[(1,0,3)]", 0, nil, "", true},
		{"[(1,0,3,2,7)]", 0, nil, "", true},
		{"[(1,0,x,2)]", 0, nil, "", true},
		{"[(1,0,3,2);(4,0,6,5)]", 0, nil, "", true},
		{"[(1,0,3,2),]", 0, nil, "", true},
		{"[(1,0,3,2)(4,0,6,5)]", 0, nil, "", true},
		{"[(1,0,3,2)", 0, nil, "", true},
		{"(1,0,3,2)", 0, nil, "", true},
		{"[(1,0,,2)]", 0, nil, "", true},
		{"[(123456789012345678901,0,3,2)]", 0, nil, "", true},
		{"[(9223372036854775807,0,3,2)]", 1, nil, "", true},
		{"[(0,0,3,2)]", 9223372036854775808, nil, "", true},
		{"", 0, nil, "", true},
	}
	var d eventDecoder // one for every row, as a scan reads them: what it reuses must not leak
	for _, tt := range tests {
		got, attrs, err := d.unpack(tt.packed, tt.first, tt.attrs)
		if (err != nil) != tt.err {
			t.Errorf("%q: error %v, want error %v", tt.packed, err, tt.err)
			continue
		}
		if err == nil && showEvents(got, attrs) != tt.want {
			t.Errorf("%q %q: %v, want %s", tt.packed, tt.attrs, showEvents(got, attrs), tt.want)
		}
	}
}

// scannedPerson is events with their attributes (lists[i] for events[i], all of one length) as
// a scan gives them: each event's at set, and the table holding the lists.
func scannedPerson(events []scannedEvent, lists [][]string) ([]scannedEvent, attrTable) {
	events = slices.Clone(events)
	width := 0
	if len(lists) > 0 {
		width = len(lists[0])
	}
	attrs := attrTable{values: make([]string, len(events)*width), stride: len(events), width: width}
	for i := range events {
		events[i].at = int32(i)
		for c := range width {
			attrs.values[c*len(events)+i] = lists[i][c]
		}
	}
	return events, attrs
}

// showEvents writes events as "[{t seq id mask [attributes]} …]", their attributes from attrs.
func showEvents(events []scannedEvent, attrs attrTable) string {
	var b strings.Builder
	b.WriteString("[")
	for i, e := range events {
		if i > 0 {
			b.WriteString(" ")
		}
		values := make([]string, attrs.width)
		for c := range values {
			values[c] = attrs.value(e.at, c)
		}
		fmt.Fprintf(&b, "{%d %d %d %d %v}", e.t, e.seq, e.id, e.mask, values)
	}
	return b.String() + "]"
}

// TestDedupeKeepsTheFirstOfEachEvent: dedupe keeps the first of the events of each id, in
// order, whether the copies are neighbours or not, for persons light (ids in a hash set) and
// heavy (ids sorted), ids 0 included; the reference keeps the first of each id by a map.
func TestDedupeKeepsTheFirstOfEachEvent(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	var ids []uint64 // scratch shared by every person, as in a scan
	// One person in 50 is heavy (more events than scratchKeep: sorted ids) and one half as
	// heavy (a hash set of tens of thousands), between light ones: four of each take every path,
	// the scratch grown past scratchKeep and let go included. One in 10 (until 2026-12-06) took
	// the same paths five times as often, for 13 CPU-s under the race detector.
	for iter := range 200 {
		n := rng.IntN(40)
		switch iter % 50 {
		case 0:
			n = scratchKeep + 1 + rng.IntN(100)
		case 1:
			n = scratchKeep/2 + rng.IntN(100)
		}
		distinct := 1 + rng.IntN(n+1)
		events := make([]scannedEvent, n)
		for i := range events {
			events[i] = scannedEvent{t: int64(i / 3), id: uint64(rng.IntN(distinct)), at: int32(i)}
			if rng.IntN(2) == 0 {
				events[i].id *= 0x9e3779b97f4a7c15 // ids spread over 64 bits, as cityHash64's
			}
		}
		var want []scannedEvent
		seen := map[uint64]bool{}
		for _, e := range events {
			if !seen[e.id] {
				seen[e.id] = true
				want = append(want, e)
			}
		}
		if got := dedupe(slices.Clone(events), &ids); !slices.Equal(got, want) {
			t.Fatalf("%d events of %d ids: kept %d, want %d", n, distinct, len(got), len(want))
		}
	}
}

// TestSortCopiesOrder: sortCopies orders events by the tie rule (time, seq, id), then copies of
// one event by their mask, then by their attributes, column by column, whatever order they
// come in: the order both places read a person's events in; the UDF's eventSorter gives the
// same.
func TestSortCopiesOrder(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 11))
	const width = 2
	for round := range 200 {
		n := 1 + rng.IntN(40)
		events := make([]scannedEvent, n)
		values := make([]string, width*n)
		for i := range events {
			// Few distinct keys, so that ties and copies are common.
			events[i] = scannedEvent{t: rng.Int64N(3), seq: rng.Int64N(2), id: rng.Uint64N(2), mask: rng.Uint64N(2), at: int32(i)}
			for c := range width {
				values[c*n+i] = string(rune('a' + rng.IntN(2)))
			}
		}
		attrs := attrTable{values: values, stride: n, width: width}
		order := func(a, b scannedEvent) int { // each key in turn, every one worked out
			return cmp.Or(cmp.Compare(a.t, b.t), cmp.Compare(a.seq, b.seq), cmp.Compare(a.id, b.id), cmp.Compare(a.mask, b.mask),
				strings.Compare(attrs.value(a.at, 0), attrs.value(b.at, 0)), strings.Compare(attrs.value(a.at, 1), attrs.value(b.at, 1)))
		}
		// The eventSorter gives the same events in the same order, from times a few µs apart
		// (sorted as numbers) or spanning every int64 (by sortCopies alone).
		var sorter eventSorter
		if round%2 == 1 {
			for i := range events {
				events[i].t = []int64{math.MinInt64, -1, math.MaxInt64}[events[i].t]
			}
		}
		bySorter := sorter.sort(slices.Clone(events), attrs)
		sortCopies(events, attrs)
		for i := 1; i < n; i++ {
			if a, b := events[i-1], events[i]; order(a, b) > 0 {
				t.Fatalf("round %d: %+v before %+v", round, a, b)
			}
		}
		for i := range events {
			if order(bySorter[i], events[i]) != 0 {
				t.Fatalf("round %d: the sorter's event %d is %+v, sortCopies' %+v", round, i, bySorter[i], events[i])
			}
		}
	}
}
