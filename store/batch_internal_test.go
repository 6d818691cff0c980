package store

import (
	"fmt"
	"strings"
	"testing"
)

// TestBatchReadsOneScanAtATime: a batch's scans and matchings in ClickHouse begin once every
// running query waits for one; the matchings first, then the scans, as many as fit one 64-bit
// mask together, and the rest wait for those queries to end, so a batch never has ClickHouse
// read two of its scans at once.
func TestBatchReadsOneScanAtATime(t *testing.T) {
	t.Parallel()
	// predicates makes the conditions of n scans of counts[i] conditions each, each its own, or
	// the same counts[i] when shared.
	predicates := func(shared bool, counts []int) [][]predicate {
		var out [][]predicate
		for s, n := range counts {
			var preds []predicate
			for i := range n {
				if shared {
					preds = append(preds, predicate{sql: fmt.Sprintf("c%d", i)})
				} else {
					preds = append(preds, predicate{sql: "c", args: []any{s, i}})
				}
			}
			out = append(out, preds)
		}
		return out
	}
	conditions := func(preds [][]predicate) string {
		var out []int
		for _, p := range preds {
			out = append(out, len(p))
		}
		return fmt.Sprint(out)
	}
	scanPreds := func(scans []*sharedScan) (out [][]predicate) {
		for _, w := range scans {
			out = append(out, w.reader.scan.preds)
		}
		return out
	}
	matchPreds := func(ms []*engineMatch) (out [][]predicate) {
		for _, m := range ms {
			out = append(out, m.plan.scan.preds)
		}
		return out
	}
	tests := []struct {
		name              string
		running           int
		shared            bool // the scans have the same conditions
		waiting, matching []int
		read, leftOver    string // scans, or matchings when any waits
	}{
		{"one query of two waits", 2, false, []int{5}, nil, "[]", "[5]"},
		{"every query waits", 3, false, []int{5, 10, 3}, nil, "[5 10 3]", "[]"},
		{"more than one mask", 4, false, []int{30, 30, 30, 4}, nil, "[30 30 4]", "[30]"},
		{"one full mask each", 2, false, []int{64, 64}, nil, "[64]", "[64]"},
		{"the rest, once the first read's queries end", 1, false, []int{30}, nil, "[30]", "[]"},
		{"the same conditions count once", 8, true, []int{32, 32, 32, 32, 32, 32, 32, 40}, nil, "[32 32 32 32 32 32 32 40]", "[]"},
		{"a matching in clickhouse waits with a scan", 3, false, []int{5}, []int{7}, "[]", "[7]"},
		{"matchings in clickhouse first", 3, false, []int{5}, []int{7, 9}, "[7 9]", "[]"},
		{"matchings in clickhouse, more than one mask", 3, false, nil, []int{40, 30, 20}, "[40 20]", "[30]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sh := &scanShare{running: tt.running}
			for _, preds := range predicates(tt.shared, tt.waiting) {
				sh.waiting = append(sh.waiting, &sharedScan{reader: scanReader{scan: eventScan{preds: preds}}})
			}
			for _, preds := range predicates(tt.shared, tt.matching) {
				sh.matches = append(sh.matches, &engineMatch{plan: &funnelPlan{scan: eventScan{preds: preds}}})
			}
			scans, matches := sh.takeReady()
			read, left := conditions(scanPreds(scans)), conditions(scanPreds(sh.waiting))
			if len(tt.matching) > 0 {
				if scans != nil {
					t.Errorf("read scans %s while matchings in clickhouse wait", read)
				}
				read, left = conditions(matchPreds(matches)), conditions(matchPreds(sh.matches))
			}
			if read != tt.read {
				t.Errorf("read %s, want %s", read, tt.read)
			}
			if left != tt.leftOver {
				t.Errorf("left waiting %s, want %s", left, tt.leftOver)
			}
			if againScans, againMatches := sh.takeReady(); (scans != nil || matches != nil) && (againScans != nil || againMatches != nil) {
				t.Errorf("read %s and %s beside %s", conditions(scanPreds(againScans)), conditions(matchPreds(againMatches)), read)
			}
		})
	}
}

// TestCombineScans: a scan read for several readers reads each condition and attribute once, over
// the smallest time range holding every reader's, and each reader gets its events back with its
// own mask bits and attributes, in its time range.
func TestCombineScans(t *testing.T) {
	t.Parallel()
	p := func(sql string, args ...any) predicate { return predicate{sql: sql, args: args} }
	viewed, added, ordered := p("event IN (?)", "Product Viewed"), p("event IN (?)", "Product Added"), p("event IN (?)", "Order Completed")
	a := &scanReader{scan: eventScan{preds: []predicate{viewed, added}, attrs: []predicate{p("channel")}, from: 100, to: 200}}
	b := &scanReader{scan: eventScan{preds: []predicate{ordered, viewed}, attrs: []predicate{p("page_path"), p("channel")}, from: 50}}
	c := &scanReader{scan: eventScan{preds: []predicate{p("event IN (?, ?)", "Product V", "iewed")}, to: -1}}
	sc := combineScans([]*scanReader{a, b, c})
	if len(sc.preds) != 4 || len(sc.attrs) != 2 || sc.from != 50 || sc.to != 0 {
		t.Fatalf("combined %d conditions, %d attributes, from %d to %d; want 4, 2, from 50, open", len(sc.preds), len(sc.attrs), sc.from, sc.to)
	}
	if fmt.Sprint(a.predBits, a.shift, b.predBits, b.shift, b.attrCols) != "[0 1] 0 [2 0] -1 [1 0]" {
		t.Errorf("a's bits %v (shift %d), b's %v (shift %d) and columns %v", a.predBits, a.shift, b.predBits, b.shift, b.attrCols)
	}
	// Events of one person as the combined scan reads them: mask bits 0 viewed, 1 added,
	// 2 ordered, 3 c's; attributes channel, page_path.
	events, attrs := scannedPerson([]scannedEvent{
		{t: 60, id: 1, mask: 0b0001},
		{t: 150, id: 2, mask: 0b0010},
		{t: 160, id: 3, mask: 0b0100},
		{t: 250, id: 4, mask: 0b1001},
	}, [][]string{{"email", "/a"}, {"ads", "/b"}, {"ads", "/c"}, {"", "/d"}})
	var (
		got     []string
		scratch readerScratch // one for the three readers, as in a scan
	)
	for _, r := range []*scanReader{a, b, c} {
		r.fn = func(_ string, evs []scannedEvent, attrs attrTable) error {
			got = append(got, showEvents(evs, attrs))
			return nil
		}
		if err := r.give("p", events, attrs, true, &scratch); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"[{150 0 2 2 [ads]}]",
		"[{60 0 1 2 [/a email]} {160 0 3 1 [/c ads]} {250 0 4 2 [/d ]}]",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("readers got\n%v\nwant\n%v", got, want)
	}

	// A reader with one condition twice (a strict drop-off's blocking touchpoints are its tracked
	// ones too) after another: its bits [0 2 2] are sorted and span three, but do not shift.
	d := &scanReader{scan: eventScan{preds: []predicate{viewed, added}}}
	e := &scanReader{scan: eventScan{preds: []predicate{viewed, ordered, ordered}}}
	combineScans([]*scanReader{d, e})
	if fmt.Sprint(e.predBits, e.shift) != "[0 2 2] -1" {
		t.Errorf("e's bits %v (shift %d), want [0 2 2] -1", e.predBits, e.shift)
	}
	got = nil
	e.fn = func(_ string, evs []scannedEvent, attrs attrTable) error {
		got = append(got, showEvents(evs, attrs))
		return nil
	}
	if err := e.give("p", []scannedEvent{{t: 1, id: 1, mask: 0b010}, {t: 2, id: 2, mask: 0b100}}, attrTable{}, true, &readerScratch{}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[[{2 0 2 6 []}]]" { // added is none of e's; ordered is its bits 1 and 2
		t.Errorf("e got %v", got)
	}
}

// TestScratchLetsGoOfHeavyPersons: a scan's readers share one scratch space for their part of a
// person; a heavy person's is let go once every reader has read them, and the next person's
// parts are whole.
func TestScratchLetsGoOfHeavyPersons(t *testing.T) {
	t.Parallel()
	p := func(sql string) predicate { return predicate{sql: sql} }
	a := &scanReader{scan: eventScan{preds: []predicate{p("viewed")}, attrs: []predicate{p("channel")}}}
	b := &scanReader{scan: eventScan{preds: []predicate{p("ordered"), p("viewed")}}}
	combineScans([]*scanReader{a, b})
	person := func(n int) ([]scannedEvent, attrTable) {
		events := make([]scannedEvent, n)
		lists := make([][]string, n)
		for i := range events {
			events[i], lists[i] = scannedEvent{t: int64(i), id: uint64(i), mask: 1 + uint64(i%2)<<1}, []string{fmt.Sprint("c", i)}
		}
		return scannedPerson(events, lists)
	}
	got := map[*scanReader][]string{}
	for _, r := range []*scanReader{a, b} {
		r.fn = func(_ string, evs []scannedEvent, attrs attrTable) error {
			got[r] = append(got[r], fmt.Sprint(len(evs), " ", strings.TrimSuffix(strings.TrimPrefix(showEvents(evs[len(evs)-1:], attrs), "["), "]")))
			return nil
		}
	}
	var scratch readerScratch
	for _, n := range []int{scratchKeep + 5, 3} {
		for _, r := range []*scanReader{a, b} {
			events, attrs := person(n)
			if err := r.give("p", events, attrs, true, &scratch); err != nil {
				t.Fatal(err)
			}
		}
		scratch.trim()
		if n > scratchKeep && (scratch.events != nil || scratch.attrs != nil || scratch.ids != nil) {
			t.Errorf("after %d events the scratch keeps %d events, %d attributes, %d ids", n, cap(scratch.events), cap(scratch.attrs), cap(scratch.ids))
		}
	}
	last := fmt.Sprint(scratchKeep + 4)
	want := map[*scanReader][]string{
		a: {fmt.Sprint(scratchKeep+5, " {", last, " 0 ", last, " 1 [c", last, "]}"), "3 {2 0 2 1 [c2]}"},
		b: {fmt.Sprint(scratchKeep+5, " {", last, " 0 ", last, " 2 []}"), "3 {2 0 2 2 []}"},
	}
	for r, name := range map[*scanReader]string{a: "a", b: "b"} {
		if fmt.Sprint(got[r]) != fmt.Sprint(want[r]) {
			t.Errorf("reader %s got %v, want %v", name, got[r], want[r])
		}
	}
}
