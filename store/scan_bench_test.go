package store

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// benchRows is persons' rows of a 3-step funnel's scan as ClickHouse sends them (see sendPass):
// about 16 events a person on average, the number of events the cube of a uniform draw as in the
// store benchmark's generator, events matching step 1 (70%), 2 (20%) or 3 (10%), ids spread over
// 64 bits, each tenth person with a copy of an event at another time; times in µs (eventTime)
// after the person's first, firsts[i] for rows[i].
func benchRows(persons int) (rows []string, firsts []uint64, events int) {
	rng := rand.New(rand.NewPCG(5, 6))
	var b strings.Builder
	for range persons {
		u := rng.Float64()
		n := 1 + int(60*u*u*u)
		t := int64(1_700_000_000_000) + rng.Int64N(1<<31)
		first := t * 1000 // at or before each event's µs below
		b.Reset()
		b.WriteString("[")
		var last uint64
		for i := range n {
			t += rng.Int64N(600_000)
			mask := 1 << []int{0, 0, 0, 0, 0, 0, 0, 1, 1, 2}[rng.IntN(10)]
			id := rng.Uint64()
			if i > 0 && i == n-1 && rng.IntN(10) == 0 {
				id = last // a copy sent again later
			}
			last = id
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "(%d,%d,%d,%d)", t*1000+int64(id%1000)-first, rng.IntN(100), id, mask) // µs (eventTime) after first
		}
		b.WriteString("]")
		rows, firsts, events = append(rows, b.String()), append(firsts, uint64(first)), events+n
	}
	return rows, firsts, events
}

// BenchmarkScanPerson measures what Waymark does with each person's row of a 3-step funnel's
// scan, ClickHouse and its client aside: parse the row, drop copies, make the unit, match it,
// count it. It reports ns per event.
func BenchmarkScanPerson(b *testing.B) {
	rows, firsts, events := benchRows(20_000)
	p := &funnelPlan{conds: make([]condition, 3), blocks: make([]uint64, 3), attr: -1, traitCond: -1, keyAttr: -1, from: math.MinInt64,
		steps: []stepPlan{{conds: []int{0}, nth: []int{1}}, {conds: []int{1}, nth: []int{1}}, {conds: []int{2}, nth: []int{1}}},
		spec:  matchSpec{steps: 3, mode: ModeOrdered, from: math.MinInt64, to: math.MaxInt64, window: 86_400_000_000}}
	p.scan.preds = make([]predicate, 3)
	finder, agg := newPathFinder(p.spec), newFunnelAgg(3, false)
	ctx := context.Background()
	r := &scanReader{scan: p.scan, fn: func(_ string, events []scannedEvent, attrs attrTable) error {
		for _, unit := range p.units(events, attrs, nil) {
			level, path, err := finder.reach(ctx, unit, breakdownValues{})
			if err != nil {
				return err
			}
			agg.add(ModeOrdered, unit, breakdownValues{}, level, path)
		}
		return nil
	}}
	var dec eventDecoder
	var scratch readerScratch
	b.ReportAllocs()
	for b.Loop() {
		for i, row := range rows {
			events, attrs, err := dec.unpack(row, firsts[i], nil)
			if err != nil {
				b.Fatal(err)
			}
			if err := r.give("p", events, attrs, false, &scratch); err != nil {
				b.Fatal(err)
			}
			dec.events, dec.attrs = reuse(dec.events[:0]), reuse(dec.attrs[:0])
			scratch.trim()
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(events), "ns/event")
}
