package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// udfRow is one row of waymark_funnel's input.
type udfRow struct {
	spec             string
	t, seq, mask, id []uint64
	attrs            []string
	// the visits of the person's keys (see the wire format in udf.go)
	keys                      []string
	visits, start, end, vseq  []uint64
	reason, channel, campaign []string
}

// appendRowBinary appends r in RowBinary: the spec String, four Array(UInt64), one
// Array(String); the visits: one Array(String), four Array(UInt64), three Array(String).
func (r udfRow) appendRowBinary(b []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(r.spec)))
	b = append(b, r.spec...)
	numbers := func(cols ...[]uint64) {
		for _, col := range cols {
			b = binary.AppendUvarint(b, uint64(len(col)))
			for _, v := range col {
				b = binary.LittleEndian.AppendUint64(b, v)
			}
		}
	}
	texts := func(cols ...[]string) {
		for _, col := range cols {
			b = binary.AppendUvarint(b, uint64(len(col)))
			for _, a := range col {
				b = binary.AppendUvarint(b, uint64(len(a)))
				b = append(b, a...)
			}
		}
	}
	numbers(r.t, r.seq, r.mask, r.id)
	texts(r.attrs, r.keys)
	numbers(r.visits, r.start, r.end, r.vseq)
	texts(r.reason, r.channel, r.campaign)
	return b
}

// udfChunks encodes chunks of rows with their headers.
func udfChunks(chunks ...[]udfRow) []byte {
	var b []byte
	for _, rows := range chunks {
		b = append(b, strconv.Itoa(len(rows))+"\n"...)
		for _, r := range rows {
			b = r.appendRowBinary(b)
		}
	}
	return b
}

// readAnswers decodes RowBinary Strings.
func readAnswers(t *testing.T, b []byte) []string {
	t.Helper()
	var out []string
	r := bytes.NewReader(b)
	for r.Len() > 0 {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			t.Fatal(err)
		}
		s := make([]byte, n)
		if _, err := io.ReadFull(r, s); err != nil {
			t.Fatal(err)
		}
		out = append(out, string(s))
	}
	return out
}

// twoStepPlan is an ordered funnel of two conditions, 10 µs window, unbounded, reading no
// attributes.
func twoStepPlan() *funnelPlan {
	return &funnelPlan{conds: make([]condition, 2), blocks: []uint64{0, 0}, from: math.MinInt64, attr: -1, traitCond: -1, keyAttr: -1,
		steps: []stepPlan{{conds: []int{0}, nth: []int{1}}, {conds: []int{1}, nth: []int{1}}},
		spec:  matchSpec{steps: 2, mode: ModeOrdered, from: math.MinInt64, to: math.MaxInt64, window: 10}}
}

// specOf is p's UDF spec.
func specOf(t testing.TB, p *funnelPlan) string {
	t.Helper()
	return p.udfSpec(time.Minute, nil)
}

// twoSteps is the spec of twoStepPlan, broken down by its one attribute or not.
func twoSteps(t *testing.T, breakdown bool) string {
	t.Helper()
	p := twoStepPlan()
	if breakdown {
		p.attr, p.scan.attrs = 0, make([]predicate, 1)
	}
	return specOf(t, p)
}

func TestServeFunnelUDF(t *testing.T) {
	t.Parallel()
	spec, byAttr := twoSteps(t, false), twoSteps(t, true)
	input := udfChunks(
		[]udfRow{
			// Out of order, with a copy: step 1 at 3, step 2 at 5 (and a later one at 20, outside the window).
			{spec: spec, t: []uint64{20, 5, 3, 3}, seq: []uint64{0, 0, 0, 0}, mask: []uint64{2, 2, 1, 1}, id: []uint64{9, 8, 7, 7}},
			{spec: spec, t: []uint64{4}, seq: []uint64{0}, mask: []uint64{2}, id: []uint64{1}}, // no step 1
			{spec: spec},
		},
		[]udfRow{
			{spec: byAttr, t: []uint64{1, 1, 2}, seq: []uint64{0, 1, 2}, mask: []uint64{1, 1, 2}, id: []uint64{1, 2, 3}, attrs: []string{"web", "ads|x", "email"}},
		},
		nil, // an empty chunk
		[]udfRow{
			// A drop-off by breakdown: step 1 at 3 (tracked, with a copy), then tracked touchpoints
			// at 4 (two at once: the smallest values go last and next), 13 (inside the window) and
			// 14 (outside); no step 2. Attribute columns: breakdown, label, location, channel.
			{spec: dropoffSpec, t: []uint64{14, 4, 3, 4, 13, 3}, seq: make([]uint64, 6), mask: []uint64{4, 4, 5, 4, 4, 5}, id: []uint64{6, 4, 3, 5, 7, 3},
				attrs: slices.Concat(
					[]string{"x", "b", "web", "a", "y", "web"},
					[]string{"Late", "Viewed", "Step", "Viewed", "Cart", "Step"},
					[]string{"/z", "/b|:", "/s", "/a", "/c", "/s"},
					[]string{"ads", "email", "ads", "email", "ads", "ads"})},
			// Step 1 alone: no tracked touchpoint after it, so none is next.
			{spec: dropoffSpec, t: []uint64{3}, seq: []uint64{0}, mask: []uint64{5}, id: []uint64{1}, attrs: []string{"", "Step", "", "direct"}},
			// Both steps: no drop-off.
			{spec: dropoffSpec, t: []uint64{3, 4}, seq: []uint64{0, 0}, mask: []uint64{5, 6}, id: []uint64{1, 2}, attrs: []string{"w", "v", "S", "T", "", "", "c", "d"}},
		},
	)
	var out bytes.Buffer
	if err := ServeFunnelUDF(iotest.OneByteReader(bytes.NewReader(input)), &out); err != nil {
		t.Fatal(err)
	}
	got := readAnswers(t, out.Bytes())
	want := []string{"2 3 5", "", "", "2 1 2|5:ads|x", // the smallest breakdown value takes step 1
		"1 3|3:web|4:Cart|2:/c|3:ads|6:Viewed", "1 3|0:|4:Step|0:|6:direct", "2 3 4|1:w"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q,\nwant %q", got, want)
	}
	d := outcomeDecoder{breakdown: true}
	o, err := d.one(got[3])
	if err != nil || o.level != 2 || !slices.Equal(o.times, []int64{1, 2}) || o.attr != "ads|x" || o.drop != nil {
		t.Errorf("decode %q: %+v %v", got[3], o, err)
	}
	o, err = d.one(got[4])
	if err != nil || o.level != 1 || o.attr != "web" || o.drop == nil || *o.drop != (dropout{last: [3]string{"Cart", "/c", "ads"}, next: "Viewed", hasNext: true}) {
		t.Errorf("decode %q: %+v %+v %v", got[4], o, o.drop, err)
	}
}

// visitsSpec is the spec of twoStepPlan reading visits: counted by sessions (its only attribute
// column the customer key), or broken down by the entry channel of the step-1 event's session
// (attributes: channel, key; condition 2, bit 4, the touchpoints).
func visitsSpec(t testing.TB, bySessions bool) string {
	t.Helper()
	p := twoStepPlan()
	if bySessions {
		p.bySessions, p.keyAttr, p.scan.attrs, p.spec.window = true, 0, make([]predicate, 1), math.MaxInt64/2
	} else {
		p.attr, p.keyAttr, p.entryBy, p.scan.attrs = 0, 1, "channel", make([]predicate, 2)
		p.conds, p.blocks, p.entryCond = make([]condition, 3), []uint64{0, 0, 0}, 2
	}
	return specOf(t, p)
}

// TestServeFunnelUDFReadsVisits: counted by sessions, each visit of a person's keys is a unit
// (an event of no visit is in none); broken down by channel, the value is the channel of the
// person's first touchpoint in the step-1 event's visit, and an event of no visit keeps its own.
func TestServeFunnelUDFReadsVisits(t *testing.T) {
	t.Parallel()
	sessions, byEntry := visitsSpec(t, true), visitsSpec(t, false)
	input := udfChunks([]udfRow{
		// Two keys: k's visits [1, 2] and [10, 12]; m's [30, 40]. Steps 1 and 2 in k's first visit,
		// step 1 alone in its second, step 2 at 20 in no visit, both steps in m's, by copies. A
		// funnel reads no end reasons: none are sent.
		{spec: sessions, t: []uint64{1, 2, 10, 20, 30, 31, 31}, seq: make([]uint64, 7), mask: []uint64{1, 2, 1, 2, 1, 2, 2}, id: []uint64{1, 2, 3, 4, 5, 6, 6},
			attrs: []string{"k", "k", "k", "k", "m", "m", "m"},
			keys:  []string{"m", "k"}, visits: []uint64{1, 2}, start: []uint64{30, 10, 1}, end: []uint64{40, 12, 2}, vseq: make([]uint64, 3)},
		// The same visits in the second form (matchPassWithPersonVisits): a key per visit, no counts.
		{spec: sessions, t: []uint64{1, 2, 10, 20, 30, 31, 31}, seq: make([]uint64, 7), mask: []uint64{1, 2, 1, 2, 1, 2, 2}, id: []uint64{1, 2, 3, 4, 5, 6, 6},
			attrs: []string{"k", "k", "k", "k", "m", "m", "m"},
			keys:  []string{"k", "m", "k"}, start: []uint64{10, 30, 1}, end: []uint64{12, 40, 2}, vseq: make([]uint64, 3)},
		// No visit at all: no session.
		{spec: sessions, t: []uint64{1, 2}, seq: []uint64{0, 0}, mask: []uint64{1, 2}, id: []uint64{1, 2}, attrs: []string{"k", "k"},
			keys: []string{"k"}, visits: []uint64{0}},
		// Step 1 at 3 in a visit the person entered at 1 by paid_search (the event's own
		// channel says direct).
		{spec: byEntry, t: []uint64{5, 3, 1}, seq: []uint64{0, 0, 0}, mask: []uint64{2 | 4, 1 | 4, 4}, id: []uint64{1, 2, 3},
			attrs: []string{"direct", "direct", "paid_search", "k", "k", "k"},
			keys:  []string{"k"}, visits: []uint64{1}, start: []uint64{0}, end: []uint64{9}, vseq: []uint64{0}},
		// Step 1 at 3 after the visit's end: its own channel.
		{spec: byEntry, t: []uint64{1, 3, 5}, seq: []uint64{0, 0, 0}, mask: []uint64{4, 1 | 4, 2 | 4}, id: []uint64{1, 2, 3},
			attrs: []string{"paid_search", "email", "direct", "k", "k", "k"},
			keys:  []string{"k"}, visits: []uint64{1}, start: []uint64{0}, end: []uint64{2}, vseq: []uint64{0}},
		// Step 1 at 3, the person's first touchpoint in a visit that began at 0 (another
		// person's, on a shared device, as the events of this row do not say): its own channel.
		{spec: byEntry, t: []uint64{3, 5}, seq: []uint64{0, 0}, mask: []uint64{1 | 4, 2 | 4}, id: []uint64{1, 2}, attrs: []string{"direct", "email", "k", "k"},
			keys: []string{"k"}, visits: []uint64{1}, start: []uint64{0}, end: []uint64{9}, vseq: []uint64{0}},
	})
	var out bytes.Buffer
	if err := ServeFunnelUDF(bytes.NewReader(input), &out); err != nil {
		t.Fatal(err)
	}
	got := readAnswers(t, out.Bytes())
	// The session that reached step 1 alone (k's second) is counted, after the others (=1).
	want := []string{"|5:2 1 2|7:2 30 31|2:=1", "|5:2 1 2|7:2 30 31|2:=1", "", "2 3 5|11:paid_search", "2 3 5|5:email", "2 3 5|6:direct"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q,\nwant %q", got, want)
	}
	d := outcomeDecoder{bySessions: true, stepOne: true}
	var units []string
	err := d.each(got[0], func(o funnelOutcome) error {
		units = append(units, string(o.encode(nil, false)))
		return nil
	})
	if err != nil || !slices.Equal(units, []string{"2 1 2", "2 30 31", "=1"}) {
		t.Errorf("decode %q: %q %v", got[0], units, err)
	}
}

// batchSpec is a batch's spec of parts (udfPartSpec's, each spec a udfSpec's JSON) reading attrs
// attribute columns, the customer key in keyAttr.
func batchSpec(t testing.TB, attrs, keyAttr int, parts ...udfPartSpec) string {
	t.Helper()
	b, err := json.Marshal(udfBatchSpec{Version: udfSpecVersion, Attrs: attrs, KeyAttr: keyAttr, Parts: parts})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestServeFunnelUDFAnswersABatch: a batch's row answers each part as its spec alone answers
// the part's own events (its conditions' bits, its attributes, its time range), its answers
// appendText's in order; a row where no part answers is empty.
func TestServeFunnelUDFAnswersABatch(t *testing.T) {
	t.Parallel()
	// The read: conditions A (bit 0), B (bit 1), C (bit 2), T (bit 3); attributes channel,
	// customer key. Part 1 is a funnel A → B reading no attributes; part 2 a funnel B → C by the
	// entry channel of the step-1 event's session (its first touchpoint, a T), up to 4 µs.
	plain, byEntry := twoSteps(t, false), visitsSpec(t, false)
	spec := batchSpec(t, 2, 1,
		udfPartSpec{Spec: json.RawMessage(plain), PredBits: []int{0, 1}, AttrCols: []int{}},
		udfPartSpec{Spec: json.RawMessage(byEntry), PredBits: []int{1, 2, 3}, AttrCols: []int{0, 1}, To: 4})
	visit := udfRow{keys: []string{"k"}, visits: []uint64{1}, start: []uint64{0}, end: []uint64{20}, vseq: []uint64{0}}
	with := func(r, v udfRow) udfRow {
		r.keys, r.visits, r.start, r.end, r.vseq, r.reason = v.keys, v.visits, v.start, v.end, v.vseq, v.reason
		return r
	}
	batch := []udfRow{
		// T at 0 (the session's entry, by paid), A at 1, B at 3, C at 5 (after part 2's end), B
		// and C at once at 2 (a copy: one event of both conditions, for part 1 a B, for part 2 a
		// B and a C).
		with(udfRow{spec: spec, t: []uint64{1, 3, 5, 2, 0}, seq: make([]uint64, 5), mask: []uint64{1, 2, 4, 6, 8}, id: []uint64{1, 2, 3, 4, 5},
			attrs: []string{"web", "direct", "email", "ads", "paid", "k", "k", "k", "k", "k"}}, visit),
		// C alone, after part 2's end: no part answers.
		with(udfRow{spec: spec, t: []uint64{9}, seq: []uint64{0}, mask: []uint64{4}, id: []uint64{1}, attrs: []string{"web", "k"}}, visit),
		// A alone: part 1 reaches step 1, part 2 has no event.
		with(udfRow{spec: spec, t: []uint64{1}, seq: []uint64{0}, mask: []uint64{1}, id: []uint64{1}, attrs: []string{"web", "k"}}, visit),
	}
	alone := []udfRow{
		{spec: plain, t: []uint64{1, 3, 2}, seq: make([]uint64, 3), mask: []uint64{1, 2, 2}, id: []uint64{1, 2, 4}},
		with(udfRow{spec: byEntry, t: []uint64{3, 2, 0}, seq: make([]uint64, 3), mask: []uint64{1, 3, 4}, id: []uint64{2, 4, 5},
			attrs: []string{"direct", "ads", "paid", "k", "k", "k"}}, visit),
		{spec: plain, t: []uint64{1}, seq: []uint64{0}, mask: []uint64{1}, id: []uint64{1}},
	}
	answers := func(rows []udfRow) []string {
		var out bytes.Buffer
		if err := ServeFunnelUDF(bytes.NewReader(udfChunks(rows)), &out); err != nil {
			t.Fatal(err)
		}
		return readAnswers(t, out.Bytes())
	}
	each := answers(alone)
	if each[0] == "" || each[1] == "" || each[2] == "" {
		t.Fatalf("a part alone answered nothing: %q", each)
	}
	want := []string{string(appendText(appendText(nil, each[0]), each[1])), "", string(appendText(appendText(nil, each[2]), ""))}
	if got := answers(batch); !slices.Equal(got, want) {
		t.Errorf("got %q,\nwant %q", got, want)
	}
	// Step 1 at 2 (B and C at once: one event takes one step); C at 5, after the part's end,
	// would have taken step 2.
	if want := "1 2|4:paid"; each[1] != want {
		t.Errorf("part 2 alone answered %q, want %q", each[1], want)
	}
}

// dropoffSpec is a drop-off's spec: two steps (conditions 0 and 1), tracked touchpoints
// (condition 2), 10 ms window, breakdown attribute 0 and the drop-off's three after it.
var dropoffSpec = func() string {
	p := &funnelPlan{conds: make([]condition, 2), blocks: []uint64{0, 0}, from: math.MinInt64, attr: 0, traitCond: -1, keyAttr: -1, keep: 4,
		steps:   []stepPlan{{conds: []int{0}, nth: []int{1}}, {conds: []int{1}, nth: []int{1}}},
		spec:    matchSpec{steps: 2, mode: ModeOrdered, from: math.MinInt64, to: math.MaxInt64, window: 10},
		scan:    eventScan{attrs: make([]predicate, 4)},
		dropoff: &dropoffPlan{tracked: 4, first: 1}}
	return p.udfSpec(time.Minute, nil)
}()

// anchorPlan is the plan of paths or next: anchor events match condition 0, conversions
// condition 1, tracked touchpoints condition 2 (bit 4), labels the one attribute column.
func anchorPlan(w anchorWalk) *funnelPlan {
	w.tracked = 4
	p := &funnelPlan{conds: make([]condition, 2), blocks: []uint64{0, 0}, from: math.MinInt64, attr: -1, traitCond: -1, keyAttr: -1, keep: 4,
		steps: []stepPlan{{conds: []int{0}, nth: []int{1}}, {conds: []int{1}, nth: []int{1}}},
		spec:  matchSpec{steps: 2, mode: ModeOrdered},
		scan:  eventScan{attrs: make([]predicate, 1)}}
	p.anchor = &w
	return p
}

func anchorSpec(t *testing.T, w anchorWalk) string {
	t.Helper()
	spec := anchorPlan(w).udfSpec(time.Minute, nil)
	return spec
}

func TestServeFunnelUDFAnchors(t *testing.T) {
	t.Parallel()
	all := anchorWalk{from: math.MinInt64, to: math.MaxInt64, wind: 10}
	paths, pathsEnd, next, previous := all, all, all, all
	paths.kind, paths.direction, paths.depth = "paths", "start", 3
	pathsEnd.kind, pathsEnd.direction, pathsEnd.depth, pathsEnd.collapse = "paths", "end", 3, true
	next.kind, next.direction, next.collapse = "next", "next", true
	previous.kind, previous.direction, previous.from = "next", "previous", 5
	// One person, shuffled, with a copy: tracked touchpoints A at 1, anchor B at 2 (twice: the
	// first counts), C at 4 (a conversion), B again at 5 and D at 20 (outside the window).
	row := func(spec string) udfRow {
		return udfRow{spec: spec, t: []uint64{20, 4, 2, 1, 5, 2}, seq: make([]uint64, 6), mask: []uint64{4, 6, 5, 4, 5, 5}, id: []uint64{5, 3, 2, 1, 4, 2},
			attrs: []string{"D", "C|1:x", "B", "A", "B", "B"}}
	}
	input := udfChunks([]udfRow{
		row(anchorSpec(t, paths)), row(anchorSpec(t, pathsEnd)), row(anchorSpec(t, next)), row(anchorSpec(t, previous)),
		{spec: anchorSpec(t, paths), t: []uint64{1}, seq: []uint64{0}, mask: []uint64{4}, id: []uint64{1}, attrs: []string{"A"}}, // no anchor
	})
	var out bytes.Buffer
	if err := ServeFunnelUDF(bytes.NewReader(input), &out); err != nil {
		t.Fatal(err)
	}
	want := []string{"1|1:B|5:C|1:x|1:B", "1|6:\xffstart|1:A|1:B", "0|5:C|1:x", "0|5:C|1:x", ""}
	if got := readAnswers(t, out.Bytes()); !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	o, err := decodeAnchorOutcome(want[0])
	if err != nil || !o.converted || !slices.Equal(o.touchpoints, []string{"B", "C|1:x", "B"}) {
		t.Errorf("decode %q: %+v %v", want[0], o, err)
	}
	for _, bad := range []string{"", "2|1:a", "1", "1|1:a|1:b|1:c|1:d|1:e|1:f|1:g|1:h|1:i|1:j|1:k|1:l", "1|2:a"} {
		if o, err := decodeAnchorOutcome(bad); err == nil {
			t.Errorf("decode %q: %+v, want an error", bad, o)
		}
	}
}

// retentionSpec is a retention's spec: conversions condition 0, returns condition 1, touchpoints
// condition 2, the channel the one attribute.
func retentionSpec(t *testing.T, period string, periods int) string {
	t.Helper()
	p := &funnelPlan{conds: make([]condition, 2), blocks: []uint64{0, 0}, from: math.MinInt64, attr: -1, traitCond: -1, keyAttr: -1, keep: 4,
		steps:     []stepPlan{{conds: []int{0}, nth: []int{1}}, {conds: []int{1}, nth: []int{1}}},
		spec:      matchSpec{steps: 2, mode: ModeOrdered},
		scan:      eventScan{attrs: make([]predicate, 1)},
		retention: &retentionWalk{period: period, periods: periods, from: math.MinInt64, to: math.MaxInt64, tracked: 4}}
	spec := p.udfSpec(time.Minute, nil)
	return spec
}

func TestServeFunnelUDFRetention(t *testing.T) {
	t.Parallel()
	const day, twoHours = 24 * 3600 * 1_000_000, 7_200_000_000 // µs (eventTime)
	monday := uint64(time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC).UnixMicro())
	// A return-matching identify (no touchpoint) first, then a first touch at the week's start
	// from two channels at once (the first in the tie rule's order counts), the first conversion
	// a day later, returns 2 h after it, then 1 and 3 weeks later
	// (twice in the third week); a copy of the first return.
	input := udfChunks([]udfRow{
		{spec: retentionSpec(t, "week", 2), t: []uint64{monday - 1, monday, monday, monday + day, monday + day + twoHours, monday + day + twoHours, monday + 8*day, monday + 22*day, monday + 23*day},
			seq: make([]uint64, 9), mask: []uint64{2, 4, 4, 5, 6, 6, 6, 6, 6}, id: []uint64{8, 1, 2, 3, 4, 4, 5, 6, 7},
			attrs: []string{"identified", "web|2:x", "", "ads", "email", "email", "", "", ""}},
		{spec: retentionSpec(t, "week", 2), t: []uint64{monday}, seq: []uint64{0}, mask: []uint64{4}, id: []uint64{1}, attrs: []string{"web"}}, // never converts
		{spec: retentionSpec(t, "month", 3), t: []uint64{monday + day}, seq: []uint64{0}, mask: []uint64{5}, id: []uint64{1}, attrs: []string{""}},
	})
	var out bytes.Buffer
	if err := ServeFunnelUDF(bytes.NewReader(input), &out); err != nil {
		t.Fatal(err)
	}
	first := strconv.FormatUint(monday+day, 10)
	// Periods returned in: 0 (2 h later, the cohort's own week), then 1.
	want := []string{first + " 7200000000 0 1|7:web|2:x", "", first + " -1|0:"}
	if got := readAnswers(t, out.Bytes()); !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	o, err := decodeRetentionOutcome(want[0])
	if err != nil || o.first != int64(monday+day) || o.gap != twoHours || !slices.Equal(o.returned, []int{0, 1}) || o.acquired != "web|2:x" {
		t.Errorf("decode %q: %+v %v", want[0], o, err)
	}
	for _, bad := range []string{"", "1|0:", "1 2", "1 2|0:|0:", "x 2|0:", "1 2 y|0:", "1 2" + strings.Repeat(" 1", 54) + "|0:"} {
		if o, err := decodeRetentionOutcome(bad); err == nil {
			t.Errorf("decode %q: %+v, want an error", bad, o)
		}
	}
}

// stagesSpec is a stages query's spec: stages 0 to 2 entered by conditions 0 to 2, tracked
// touchpoints condition 3 (bit 8), attributes label and score.
func stagesSpec(t *testing.T) string {
	t.Helper()
	p := &funnelPlan{conds: make([]condition, 3), blocks: []uint64{0, 0, 0}, from: math.MinInt64, attr: -1, traitCond: -1, keyAttr: -1, keep: 8,
		steps:  []stepPlan{{conds: []int{0}, nth: []int{1}}, {conds: []int{1}, nth: []int{1}}, {conds: []int{2}, nth: []int{1}}},
		spec:   matchSpec{steps: 3, mode: ModeOrdered},
		scan:   eventScan{attrs: make([]predicate, 2)},
		stages: &stagesWalk{from: math.MinInt64, to: math.MaxInt64, tracked: 8}}
	spec := p.udfSpec(time.Minute, nil)
	return spec
}

func TestServeFunnelUDFStages(t *testing.T) {
	t.Parallel()
	// Stage 0 at 10 (a page), a survey answered at 11 (score 9.5) and a bad score at 12 (sent as
	// its reason, out of the mean), stage 2
	// at 20 together with a page (counted in stage 2: a time's events move on first), a copy of it.
	input := udfChunks([]udfRow{
		{spec: stagesSpec(t), t: []uint64{20, 10, 11, 12, 20, 20}, seq: []uint64{1, 0, 0, 0, 2, 2}, mask: []uint64{12, 9, 8, 8, 8, 8}, id: []uint64{5, 1, 2, 3, 4, 4},
			attrs: slices.Concat([]string{"Order|1:x", "Page", "Survey Answered", "NPS Submitted", "Page", "Page"}, []string{"", "", "9.5", "ten", "", ""})},
		{spec: stagesSpec(t), t: []uint64{5}, seq: []uint64{0}, mask: []uint64{8}, id: []uint64{1}, attrs: []string{"Page", ""}}, // no stage
	})
	var out bytes.Buffer
	if err := ServeFunnelUDF(bytes.NewReader(input), &out); err != nil {
		t.Fatal(err)
	}
	// Each score with its stage and whether it answers the Net Promoter question (0: Survey Answered).
	want := []string{"3 1 10 0 -1 1 -1 5 0 1 0 1 0 1 2 1 2 1 2 0 0 9.5 0 0 not_a_number|4:Page|15:Survey Answered|13:NPS Submitted|9:Order|1:x|4:Page", ""}
	if got := readAnswers(t, out.Bytes()); !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	a := stageAggs{stages: make([]stageAgg, 3), noStage: map[string]int64{}}
	for i := range a.stages {
		a.stages[i].touchpoints = map[string]int64{}
	}
	if err := decodeStagesOutcome(want[0], 3, a); err != nil {
		t.Fatal(err)
	}
	// Gone on from stage 1 in range, entered before it (so not of those entering it); a score
	// given before any stage.
	if err := decodeStagesOutcome("3 0 -1 0 7 1 -1 0 1 -1 0 no_stage", 3, a); err != nil {
		t.Fatal(err)
	}
	if aggs := a.stages; a.noStage["no_stage"] != 1 || aggs[1].movedOn != 1 || aggs[1].enteredMovedOn != 0 || aggs[1].entered != 0 || aggs[2].entered != 2 ||
		aggs[0].entered != 1 || aggs[0].movedOn != 1 || aggs[0].enteredMovedOn != 1 || !slices.Equal(aggs[0].dwell, []int64{10}) || aggs[1].entered != 0 ||
		aggs[0].responses != 1 || meanScore(aggs[0].scoreSum, 1) != 9.5 || aggs[0].ignoredScores["not_a_number"] != 1 || aggs[2].touchpoints["Page"] != 1 || aggs[0].touchpoints["NPS Submitted"] != 1 {
		t.Errorf("decoded %+v", a)
	}
	// NPS answers (kind 1) make the stage's NPS, apart from its mean: 9 a promoter, 6 a detractor.
	nps := stageAggs{stages: make([]stageAgg, 3), noStage: map[string]int64{}}
	if err := decodeStagesOutcome("3 1 -1 0 -1 0 -1 0 3 0 1 9 0 1 6 0 0 4", 3, nps); err != nil {
		t.Fatal(err)
	}
	if got := nps.stages[0].nps(); got == nil || *got != (StageNPS{Responses: 2, Promoters: 1, Detractors: 1, Score: 0, MeanAnswer: 7.5}) || nps.stages[0].responses != 1 {
		t.Errorf("decoded NPS %+v, %d other responses", got, nps.stages[0].responses)
	}
	for _, bad := range []string{
		"", "2 1 -1 0 -1 0 0", "3 1 -1 0 -1 0 -1 0", "3 1 -1 0 -2 0 -1 0 0", "3 1 -1 0 -1 0 -1 0 1 -1 0 9.5",
		"3 1 -1 0 -1 0 -1 0 1 -2 0 no_stage", "3 1 -1 0 -1 0 -1 1 0 0 0|1:a",
		"3 1 -1 0 -1 0 -1 1 3 1 0|1:a", "3 1 -1 0 -1 0 -1 1 0 1 0", "3 1 -1 0 -1 0 -1 0 1 0 0 NaN", "3 1 -1 0 -1 0 -1 0 1 0 0",
		"3 1 -1 0 -1 0 -1 0 0 7", "3 2 -1 0 -1 0 -1 0 0", "3 1 -1 0 -1 0 -1 0 1 0 0 too_big", "3 1 -1 0 -1 0 -1 0 1 0 2 7",
		"3 1 -1 0 -1 0 -1 0 1 0 9.5", // a score without its kind (spec version 5)
	} {
		if err := decodeStagesOutcome(bad, 3, a); err == nil {
			t.Errorf("decode %q: no error", bad)
		}
	}
}

// TestServeFunnelUDFWalksStopAtTheTimeout: a chunk of a walk (here a retention's) stops once the
// spec's timeout has passed: a million events take far more than its millisecond.
func TestServeFunnelUDFWalksStopAtTheTimeout(t *testing.T) {
	t.Parallel()
	p := &funnelPlan{conds: make([]condition, 2), blocks: []uint64{0, 0}, from: math.MinInt64, attr: -1, traitCond: -1, keyAttr: -1, keep: 4,
		steps:     []stepPlan{{conds: []int{0}, nth: []int{1}}, {conds: []int{1}, nth: []int{1}}},
		spec:      matchSpec{steps: 2, mode: ModeOrdered},
		scan:      eventScan{attrs: make([]predicate, 1)},
		retention: &retentionWalk{period: "week", periods: 8, from: math.MinInt64, to: math.MaxInt64, tracked: 4}}
	spec := p.udfSpec(time.Millisecond, nil)
	r := udfRow{spec: spec}
	for i := range 2000 {
		r.t, r.seq, r.mask, r.id = append(r.t, uint64(i)*1000), append(r.seq, 0), append(r.mask, 7), append(r.id, uint64(i))
		r.attrs = append(r.attrs, "web")
	}
	err := ServeFunnelUDF(bytes.NewReader(udfChunks(slices.Repeat([]udfRow{r}, 500))), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("got %v, want the timeout", err)
	}
}

func TestDecodeFunnelOutcome(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in        string
		breakdown bool
		want      string // the outcome re-encoded, or the error's text
	}{
		{"", false, ""},
		{"3 1 2 3", false, "3 1 2 3"},
		{"2 1 2|0:", true, "2 1 2|0:"},
		{"1 5|2:a||4:b|:c|1:d", false, "1 5|2:a||4:b|:c|1:d"},
		{"1 5|1:x|1:a|0:|1:c", true, "1 5|1:x|1:a|0:|1:c"},
		{"1 5|1:x|1:a|0:|1:c|2:nn", true, "1 5|1:x|1:a|0:|1:c|2:nn"},
		{"1", false, "want a level and times"},
		{"x 1", false, "bad level"},
		{"2 1 2 3", false, "bad level"},
		{"1 x", false, "invalid syntax"},
		{"2 1 2|ads", true, "bad text length"},
		{"2 1 2|9:ads", true, "bad text length"},
		{"2 1 2|-1:", true, "bad text length"},
		{"2 1 2|+3:ads", true, "bad text length"},
		{"2 1 2|03:ads", true, "bad text length"},
		{"2 1 2|3:adsx", true, "want | after a text"},
		{"2 1 2|3:ads|", true, "bad text length"},
		{"2 1 2", true, "no breakdown value"},
		{"2 1 2|1:a|1:b", false, "2 texts"},
		{"1 5|1:x|1:a|0:|1:c|2:nn|0:", true, "5 texts"},
	}
	for _, tt := range tests {
		d := outcomeDecoder{breakdown: tt.breakdown}
		o, err := d.one(tt.in)
		got := string(o.encode(nil, tt.breakdown))
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, tt.want) || tt.want == "" && got != "" {
			t.Errorf("%q (breakdown %t): got %q, want %q", tt.in, tt.breakdown, got, tt.want)
		}
	}
	// Counted by sessions, an answer is a list of outcomes, each reaching a step; a funnel's
	// (stepOne) sessions that reached step 1 alone are counted, by breakdown value.
	for _, tt := range []struct {
		in                 string
		breakdown, stepOne bool
		want               string
	}{
		{"", false, false, ""},
		{"|5:2 1 2|3:1 4", false, false, "2 1 2;1 4"},
		{"2 1 2", false, false, "want a list of texts"},
		{"|5:2 1 2|0:", false, false, "an empty one"},
		{"|5:2 1 2|3:1 x", false, false, "invalid syntax"},
		{"|5:2 1 2|3:1 4x", false, false, "want | after a text"},
		{"|5:2 1 2|9:1 4", false, false, "bad text length"},
		{"|5:2 1 2|3:=12", false, true, "2 1 2;=12"},
		{"|6:=12|0:|9:=3|4:paid|9:1 4|3:ads", true, true, "=12|0:;=3|4:paid;1 4|3:ads"},
		{"|3:=12", false, false, "want a level and times"}, // a drop-off's answers have none
		{"|1:=", false, true, "bad count"},
		{"|2:=0", false, true, "bad count"},
		{"|3:=-1", false, true, "bad count"},
		{"|3:=+1", false, true, "bad count"},
		{"|3:=01", false, true, "bad count"},
		{"|3:=1x", false, true, "bad count"},
		{"|2:=1", true, true, "0 texts"},
		{"|6:=1|1:a", false, true, "1 texts"},
		{"|10:=1|1:a|1:b", true, true, "2 texts"},
	} {
		d := outcomeDecoder{bySessions: true, breakdown: tt.breakdown, stepOne: tt.stepOne}
		var got []string
		err := d.each(tt.in, func(o funnelOutcome) error {
			got = append(got, string(o.encode(nil, tt.breakdown)))
			return nil
		})
		if err != nil {
			got = []string{err.Error()}
		}
		if g := strings.Join(got, ";"); !strings.Contains(g, tt.want) || tt.want == "" && g != "" {
			t.Errorf("sessions' answer %q (breakdown %t, step 1 counted %t): got %q, want %q", tt.in, tt.breakdown, tt.stepOne, g, tt.want)
		}
	}
}

// TestDecodeSessionsSum: a sessions query's answer sums a person's sessions (sessionsSum), and
// read back it adds to the summary what the sessions themselves add (sessionsAgg.addPerson); an
// answer that does not follow the encoding is an error naming what is wrong.
func TestDecodeSessionsSum(t *testing.T) {
	outcomes := []sessionOutcome{
		{durationMs: 60000, events: 3, reason: "timeout", channel: "email", entry: "Home", exit: "Cart|Viewed"},
		{durationMs: 0, events: 1, reason: "midnight", exit: "a:b"},
		{durationMs: 5, events: 2, reason: "timeout", channel: "email", entry: "Home", exit: "Home"},
	}
	newAgg := func() sessionsAgg {
		return sessionsAgg{sum: &SessionSummary{ByEndReason: map[string]uint64{}, ByEntryChannel: map[string]uint64{}},
			durations: newSpilledValues(), entries: map[string]int64{}, exits: map[string]int64{}}
	}
	summary := func(a sessionsAgg) string {
		var durations []uint64
		if err := a.durations.each(func(v uint64) { durations = append(durations, v) }); err != nil {
			t.Fatal(err)
		}
		slices.Sort(durations)
		return fmt.Sprintf("%+v %v %v %v", *a.sum, durations, a.entries, a.exits)
	}
	want := newAgg()
	if err := want.addPerson(outcomes); err != nil {
		t.Fatal(err)
	}
	var sum sessionsSum
	sum.of(outcomes)
	answer := string(sum.encode(nil))
	got := newAgg()
	var d sessionsDecoder
	if err := d.add(answer, &got); err != nil || summary(got) != summary(want) {
		t.Errorf("answer %q adds\n%s (%v), want\n%s", answer, summary(got), err, summary(want))
	}
	for _, tt := range []struct{ in, want string }{
		{"", "bad sessions or touchpoints"},
		{"0 0 0 0 0 0", "bad sessions or touchpoints"},
		{"2 1 5 5 1 2 1 2 1 2 1 2|1:a|1:b|1:c|1:d", "bad sessions or touchpoints"},
		{"1 1", "want 1 durations"},
		{"1 1 5 1 1 1 1 1 1", "bad labels"},
		{"1 1 5 1 2 1 1 1 1 1 1|1:a|1:b|1:c|1:d", "labels of 2 sessions, want 1"},
		{"1 1 5 1 1 1 1 1 1 1 1|1:a|1:b|1:c|1:d|1:e", "more than the labels"},
		{"1 1 5 1 1 1 1 1 1 1 1 9|1:a|1:b|1:c|1:d", "more than the labels"},
		{"1 1 5 1 0 1 1 1 1 1 1|1:a|1:b|1:c|1:d", "bad label count"},
		{"1 1 5 1 1 1 1 1 1 1 1|1:a|1:b|1:c|9:d", "bad text length"},
	} {
		a := newAgg()
		err := d.add(tt.in, &a)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("answer %q: error %v, want one saying %q", tt.in, err, tt.want)
		}
	}
}

func TestServeFunnelUDFRejectsBadInput(t *testing.T) {
	t.Parallel()
	spec, byAttr := twoSteps(t, false), twoSteps(t, true)
	good := udfRow{spec: spec, t: []uint64{1}, seq: []uint64{0}, mask: []uint64{1}, id: []uint64{1}}
	row := good.appendRowBinary(nil)
	other := fmt.Sprintf(`"v":%d`, udfSpecVersion+1)
	oldSpec := strings.Replace(spec, fmt.Sprintf(`"v":%d`, udfSpecVersion), other, 1)
	sessionsSpec := sessionsPlan(eventScan{preds: make([]predicate, 2), attrs: make([]predicate, 3)}, &sessionsWalk{to: math.MaxInt64, filtered: 2}).udfSpec(0, nil)
	tests := []struct {
		name  string
		input []byte
		want  string
	}{
		{"header not a number", []byte("x\n"), "bad chunk header"},
		{"header without newline", []byte("12"), "unexpected EOF"},
		{"header too long", []byte(strings.Repeat("9", 40) + "\n"), "bad chunk header"},
		{"empty header", []byte("\n"), "bad chunk header"},
		{"rows missing", []byte("2\n"), "unexpected EOF"},
		{"row cut short", append([]byte("1\n"), row[:len(row)-3]...), "unexpected EOF"},
		{"fewer rows than the header", append([]byte("2\n"), row...), "row 2"},
		{"spec not json", udfChunks([]udfRow{{spec: "{", t: nil}}), "decode spec"},
		{"chunk without a spec", udfChunks([]udfRow{{spec: ""}, good}), "chunk 1, row 1: no spec"},
		{"a spec kept from the chunk before", udfChunks([]udfRow{good}, []udfRow{{spec: ""}}), "chunk 2, row 1: no spec"},
		{"spec of another release", udfChunks([]udfRow{{spec: oldSpec}}), fmt.Sprintf("spec version %d", udfSpecVersion+1)},
		{"spec with too many attributes", udfChunks([]udfRow{{spec: strings.Replace(spec, `"attrs":0`, `"attrs":9`, 1)}}), "9 attribute columns"},
		{"spec with a breakdown it does not read", udfChunks([]udfRow{{spec: strings.Replace(spec, `"attr":-1`, `"attr":0`, 1)}}), "breakdown attribute 0 of 0"},
		{"drop-off attributes it does not read", udfChunks([]udfRow{{spec: strings.Replace(dropoffSpec, `"first":1`, `"first":2`, 1)}}), "drop-off attributes from 2 of 4"},
		{"drop-off tracking two conditions", udfChunks([]udfRow{{spec: strings.Replace(dropoffSpec, `"tracked":4`, `"tracked":6`, 1)}}), "tracked bit 0x6"},
		{"drop-off tracking what it does not keep", udfChunks([]udfRow{{spec: strings.Replace(dropoffSpec, `"keep":4`, `"keep":0`, 1)}}), "tracked bit 0x4"},
		{"anchor with a trait but no breakdown", udfChunks([]udfRow{{spec: strings.Replace(anchorSpec(t, anchorWalk{kind: "next", direction: "next"}), `"trait_cond":-1`, `"trait_cond":0`, 1),
			t: []uint64{1}, seq: []uint64{0}, mask: []uint64{5}, id: []uint64{1}, attrs: []string{"a"}}}), "trait condition 0 (attribute -1)"},
		{"anchor of no kind", udfChunks([]udfRow{{spec: strings.Replace(anchorSpec(t, anchorWalk{kind: "next", direction: "next"}), `"kind":"next"`, `"kind":"x"`, 1)}}), `anchor kind "x"`},
		{"paths going next", udfChunks([]udfRow{{spec: anchorSpec(t, anchorWalk{kind: "paths", direction: "next", depth: 3})}}), `paths direction "next"`},
		{"next going to the end", udfChunks([]udfRow{{spec: anchorSpec(t, anchorWalk{kind: "next", direction: "end"})}}), `next direction "end"`},
		{"paths too deep", udfChunks([]udfRow{{spec: anchorSpec(t, anchorWalk{kind: "paths", direction: "start", depth: 11})}}), "depth 11"},
		{"anchor with a negative window", udfChunks([]udfRow{{spec: anchorSpec(t, anchorWalk{kind: "next", direction: "next", wind: -1})}}), "anchor window -1"},
		{"anchor and drop-off", udfChunks([]udfRow{{spec: strings.Replace(dropoffSpec, `"dropoff"`, `"anchor":{"kind":"next","direction":"next","tracked":4},"dropoff"`, 1)}}), "more than one of an anchor, a drop-off, a correlation, a retention, stages and sessions"},
		{"sessions without their labels", udfChunks([]udfRow{{spec: strings.Replace(sessionsSpec, `"attrs":3`, `"attrs":2`, 1)}}), "sessions over 2 attributes"},
		{"sessions without their keys", udfChunks([]udfRow{{spec: strings.Replace(sessionsSpec, `"key_attr":0`, `"key_attr":1`, 1)}}), "key attribute 1"},
		{"sessions filtered by a condition not read", udfChunks([]udfRow{{spec: strings.Replace(sessionsSpec, `"filtered":2`, `"filtered":4`, 1)}}), "filter bit 0x4"},
		{"sessions and stages", udfChunks([]udfRow{{spec: strings.Replace(sessionsSpec, `"sessions"`, `"stages":{"from":0,"to":1,"tracked":1},"sessions"`, 1)}}), "more than one of"},
		{"correlation of a breakdown", udfChunks([]udfRow{{spec: strings.Replace(strings.Replace(dropoffSpec, `"dropoff":{"tracked":4,"first":1}`, `"correlation":{"tracked":4,"label":1}`, 1), `"attr":-1`, `"attr":0`, 1)}}),
			"spec: correlation labels in attribute 1 of 4"},
		{"correlation tracking what it does not keep", udfChunks([]udfRow{{spec: strings.Replace(strings.Replace(dropoffSpec, `"dropoff":{"tracked":4,"first":1}`, `"correlation":{"tracked":4,"label":1}`, 1), `"keep":4`, `"keep":0`, 1)}}),
			"tracked bit 0x4"},
		{"stages without scores", udfChunks([]udfRow{{spec: strings.Replace(stagesSpec(t), `"attrs":2`, `"attrs":1`, 1)}}), "stages over 1 attributes"},
		{"retention by day", udfChunks([]udfRow{{spec: retentionSpec(t, "day", 8)}}), `retention by "day"`},
		{"retention over too many periods", udfChunks([]udfRow{{spec: retentionSpec(t, "week", 53)}}), "over 53 periods"},
		{"drop-off attributes missing", udfChunks([]udfRow{{spec: dropoffSpec, t: []uint64{1}, seq: []uint64{0}, mask: []uint64{1}, id: []uint64{1}, attrs: []string{"a", "b", "c"}}}), "3 attribute values for 1 events of 4 attributes"},
		{"spec with unknown field", udfChunks([]udfRow{{spec: strings.Replace(spec, `{`, `{"x":1,`, 1)}}), "unknown field"},
		{"spec with too many steps", udfChunks([]udfRow{{spec: strings.Replace(spec, `"steps":2`, `"steps":99`, 1)}}), "99 steps"},
		{"spec with a bad condition", udfChunks([]udfRow{{spec: strings.Replace(spec, `"step_conds":[[0],[1]]`, `"step_conds":[[0],[5]]`, 1)}}), "condition 5"},
		{"packed with a mask", udfChunks([]udfRow{{spec: `{"pack":{"base":0,"bits":2},` + spec[1:], t: []uint64{5}, seq: []uint64{0}, mask: []uint64{1}, id: []uint64{1}}}), "1 values of mask, want none"},
		{"pack of 64 bits", udfChunks([]udfRow{{spec: `{"pack":{"base":0,"bits":64},` + spec[1:]}}), "pack of 64 bits"},
		{"pack before 1970", udfChunks([]udfRow{{spec: `{"pack":{"base":-1,"bits":2},` + spec[1:]}}), "pack of 2 bits from -1"},
		{"batch packed with a mask", udfChunks([]udfRow{{spec: `{"pack":{"base":0,"bits":2},` + batchSpec(t, 0, -1, udfPartSpec{Spec: json.RawMessage(spec), PredBits: []int{0, 1}})[1:],
			t: []uint64{5}, seq: []uint64{0}, mask: []uint64{1}, id: []uint64{1}}}), "1 values of mask, want none"},
		{"codes without their column", udfChunks([]udfRow{{spec: `{"pack":{"base":0,"bits":2,"codes":[["a","b"]]},` + byAttr[1:], t: []uint64{5}, seq: []uint64{0}, id: []uint64{1}}}), "0 values of mask for 1 events"},
		{"code 0", udfChunks([]udfRow{{spec: `{"pack":{"base":0,"bits":2,"codes":[["a","b"]]},` + byAttr[1:], t: []uint64{5}, seq: []uint64{0}, mask: []uint64{0}, id: []uint64{1}}}), "code 0 of attribute 1, which has 2 values"},
		{"code past the values", udfChunks([]udfRow{{spec: `{"pack":{"base":0,"bits":2,"codes":[["a","b"]]},` + byAttr[1:], t: []uint64{5}, seq: []uint64{0}, mask: []uint64{3}, id: []uint64{1}}}), "code 3 of attribute 1"},
		{"coded and sent as text", udfChunks([]udfRow{{spec: `{"pack":{"base":0,"bits":2,"codes":[["a","b"]]},` + byAttr[1:], t: []uint64{5}, seq: []uint64{0}, mask: []uint64{1}, id: []uint64{1}, attrs: []string{"a"}}}), "1 attribute values for 1 events of 0 attributes sent as text"},
		{"codes of another number of columns", udfChunks([]udfRow{{spec: `{"pack":{"base":0,"bits":2,"codes":[["a"],null]},` + byAttr[1:]}}), "codes of 2 attribute columns"},
		{"a coded column of no values", udfChunks([]udfRow{{spec: `{"pack":{"base":0,"bits":2,"codes":[[]]},` + byAttr[1:]}}), "a coded attribute of 0 values"},
		{"arrays of different lengths", udfChunks([]udfRow{{spec: spec, t: []uint64{1, 2}, seq: []uint64{0}, mask: []uint64{1, 1}, id: []uint64{1, 2}}}), "values of seq"},
		{"attributes without a breakdown", udfChunks([]udfRow{{spec: spec, t: []uint64{1}, seq: []uint64{0}, mask: []uint64{1}, id: []uint64{1}, attrs: []string{"a"}}}), "attribute values"},
		{"visits for a spec that reads none", udfChunks([]udfRow{{spec: spec, keys: []string{"k"}, visits: []uint64{0}}}), "visits sent for a spec that reads none"},
		{"visits without their counts", udfChunks([]udfRow{{spec: visitsSpec(t, true), keys: []string{"k"}}}), "visits of 1 keys in 0 counts"},
		{"more visits counted than sent", udfChunks([]udfRow{{spec: visitsSpec(t, true), keys: []string{"k"}, visits: []uint64{2},
			start: []uint64{1}, end: []uint64{2}, vseq: []uint64{0}}}), "key 1 has 2 visits, of 1 sent"},
		{"fewer visits counted than sent", udfChunks([]udfRow{{spec: visitsSpec(t, true), keys: []string{"k"}, visits: []uint64{0},
			start: []uint64{1}, end: []uint64{2}, vseq: []uint64{0}}}), "1 visits sent, 0 counted by key"},
		{"a key a visit, with a visit more", udfChunks([]udfRow{{spec: visitsSpec(t, true), keys: []string{"k"},
			start: []uint64{1, 3}, end: []uint64{2, 4}, vseq: []uint64{0, 0}}}), "visits of 1 keys in 0 counts, 2 starts"},
		{"end reasons for a funnel", udfChunks([]udfRow{{spec: visitsSpec(t, true), keys: []string{"k"}, visits: []uint64{1},
			start: []uint64{1}, end: []uint64{2}, vseq: []uint64{0}, reason: []string{"idle"}}}), "1 reasons (0 wanted)"},
		{"sessions without their end reasons", udfChunks([]udfRow{{spec: sessionsSpec, keys: []string{"k"},
			start: []uint64{1}, end: []uint64{2}, vseq: []uint64{0}}}), "0 reasons (1 wanted)"},
		{"entries sent", udfChunks([]udfRow{{spec: visitsSpec(t, false), keys: []string{"k"}, visits: []uint64{1},
			start: []uint64{1}, end: []uint64{2}, vseq: []uint64{0}, channel: []string{"email"}, campaign: []string{"may"}}}),
			"1 channels, 1 campaigns (none wanted)"},
		{"entry without touchpoints", udfChunks([]udfRow{{spec: strings.Replace(visitsSpec(t, false), `"entry_cond":2`, `"entry_cond":3`, 1)}}),
			"touchpoint condition 3"},
		{"sessions without a key", udfChunks([]udfRow{{spec: strings.Replace(visitsSpec(t, true), `"key_attr":0`, `"key_attr":-1`, 1)}}), "key attribute -1 of 1, by sessions true"},
		{"entry by device", udfChunks([]udfRow{{spec: strings.Replace(visitsSpec(t, false), `"entry_by":"channel"`, `"entry_by":"device"`, 1)}}), `entry by "device"`},
		{"batch of no parts", udfChunks([]udfRow{{spec: batchSpec(t, 0, -1)}}), "0 parts"},
		{"batch of another release", udfChunks([]udfRow{{spec: strings.Replace(batchSpec(t, 0, -1, udfPartSpec{Spec: json.RawMessage(spec), PredBits: []int{0, 1}}),
			fmt.Sprintf(`"v":%d`, udfSpecVersion), other, 1)}}), fmt.Sprintf("spec version %d", udfSpecVersion+1)},
		{"batch with a bad part", udfChunks([]udfRow{{spec: batchSpec(t, 0, -1, udfPartSpec{Spec: json.RawMessage(oldSpec), PredBits: []int{0, 1}})}}), "part 1: spec version"},
		{"batch part of a bit past the mask", udfChunks([]udfRow{{spec: batchSpec(t, 0, -1, udfPartSpec{Spec: json.RawMessage(spec), PredBits: []int{0, 64}})}}), "condition bits [0 64]"},
		{"batch part of an attribute not read", udfChunks([]udfRow{{spec: batchSpec(t, 1, -1, udfPartSpec{Spec: json.RawMessage(twoSteps(t, true)), PredBits: []int{0, 1}, AttrCols: []int{1}})}}), "attribute columns [1] of 1"},
		{"batch part with its key elsewhere", udfChunks([]udfRow{{spec: batchSpec(t, 2, 0, udfPartSpec{Spec: json.RawMessage(visitsSpec(t, false)), PredBits: []int{0, 1, 2}, AttrCols: []int{0, 1}})}}), "its key attribute is column 1, the batch's 0"},
		{"batch with too many attributes", udfChunks([]udfRow{{spec: batchSpec(t, 65, -1, udfPartSpec{Spec: json.RawMessage(spec), PredBits: []int{0, 1}})}}), "65 attribute columns"},
		{"huge array", binary.AppendUvarint(append(binary.AppendUvarint([]byte("1\n"), uint64(len(spec))), spec...), 1<<40), "over the limit"},
		{"huge spec", append([]byte("1\n"), binary.AppendUvarint(nil, 1<<40)...), "over the limit"},
		{"bad varint", append([]byte("1\n"), bytes.Repeat([]byte{0xff}, 11)...), "overflow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ServeFunnelUDF(bytes.NewReader(tt.input), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
	// A reader that fails is an error too, not a clean end.
	boom := errors.New("boom")
	if err := ServeFunnelUDF(io.MultiReader(bytes.NewReader([]byte("1\n")), iotest.ErrReader(boom)), io.Discard); !errors.Is(err, boom) {
		t.Errorf("failing reader: %v", err)
	}
	// An empty input is a clean end.
	if err := ServeFunnelUDF(bytes.NewReader(nil), io.Discard); err != nil {
		t.Errorf("empty input: %v", err)
	}
}

// TestServeFunnelUDFAgreesWithInProcess runs random persons, shuffled and with copies, through
// the UDF and through the in-process path (sorted, deduplicated, units, reach, dropout) of the
// same plan: funnels with and without a breakdown, and drop-offs, their times and condition bits
// sent apart or packed (udfPack) at random, in one chunk or two, each chunk's first row with the
// spec and the others with it or empty (specOncePerBlock).
func TestServeFunnelUDFAgreesWithInProcess(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(16, 1))
	modes := []Mode{ModeOrdered, ModeStrict, ModeAny}
	for iter := range 300 {
		steps := 1 + rng.IntN(4)
		p := &funnelPlan{attr: -1, traitCond: -1, keyAttr: -1, from: math.MinInt64}
		nconds := steps + rng.IntN(2)
		p.conds, p.blocks = make([]condition, nconds), make([]uint64, nconds)
		for range steps {
			p.steps = append(p.steps, stepPlan{conds: []int{rng.IntN(nconds)}, nth: []int{1 + rng.IntN(2)}})
		}
		mode := modes[rng.IntN(3)]
		if mode != ModeAny && rng.IntN(2) == 0 {
			p.blocks[rng.IntN(nconds)] = uint64(rng.IntN(1 << max(steps-1, 1)))
		}
		if rng.IntN(2) == 0 {
			p.attr = 0
			p.scan.attrs = make([]predicate, 1)
			if rng.IntN(3) == 0 {
				p.traitCond = nconds
			}
		}
		switch {
		case steps > 1 && rng.IntN(2) == 0:
			p.dropoff = &dropoffPlan{tracked: 1 << (nconds + 1), first: len(p.scan.attrs)}
			p.keep |= p.dropoff.tracked
			p.scan.attrs = append(p.scan.attrs, make([]predicate, 3)...)
		case steps > 1 && mode != ModeAny && p.attr < 0 && rng.IntN(2) == 0:
			p.correlation = &correlationPlan{tracked: 1 << (nconds + 1), label: 0}
			p.keep |= p.correlation.tracked
			p.scan.attrs = make([]predicate, 1)
		}
		cols := len(p.scan.attrs)
		p.spec = matchSpec{steps: steps, mode: mode, from: int64(rng.IntN(5)), to: int64(10 + rng.IntN(20)), window: int64(rng.IntN(15))}
		if rng.IntN(2) == 0 {
			p.from = p.spec.from
		}
		var pack *udfPack // the mask's bits below: nconds+2
		if rng.IntN(2) == 0 {
			pack = &udfPack{Base: 0, Bits: nconds + 2} // the times below are 0 or more (TestPackingOf tries other bases)
			// Some attribute columns as codes, others as text (at random, each column).
			values := [][]string{{"", "a", "a|1:b", "b"}, {"", "a", "a|1:b", "b", "x"}, {"b", "a|1:b", "a", ""}}
			for range cols {
				if rng.IntN(3) == 0 {
					pack.Codes = append(pack.Codes, nil)
				} else {
					pack.Codes = append(pack.Codes, values[rng.IntN(len(values))])
				}
			}
			if !slices.ContainsFunc(pack.Codes, func(v []string) bool { return v != nil }) {
				pack.Codes = nil
			}
		}
		spec := p.udfSpec(time.Minute, pack)
		var rows []udfRow
		var want []string
		for range 5 {
			var events []scannedEvent
			var lists [][]string // per event, its attributes
			for i := range rng.IntN(12) {
				e := scannedEvent{t: int64(rng.IntN(30)), seq: int64(rng.IntN(3)), id: uint64(i), mask: rng.Uint64() & (1<<(nconds+2) - 1)}
				var values []string
				for range cols {
					values = append(values, []string{"", "a", "b", "a|1:b"}[rng.IntN(4)])
				}
				events, lists = append(events, e), append(lists, values)
				switch rng.IntN(6) {
				case 0:
					events, lists = append(events, e), append(lists, values) // a copy
				case 1:
					e.t += int64(rng.IntN(5)) // a copy sent again later (from another device)
					events, lists = append(events, e), append(lists, values)
				}
			}
			rng.Shuffle(len(events), func(i, j int) {
				events[i], events[j] = events[j], events[i]
				lists[i], lists[j] = lists[j], lists[i]
			})
			r := udfRow{spec: spec}
			if len(rows) > 0 && rng.IntN(2) == 0 {
				r.spec = "" // the row before's, as a query sends it (specOncePerBlock)
			}
			for i, e := range events {
				if pack != nil {
					r.t = append(r.t, uint64(e.t-pack.Base)<<pack.Bits|e.mask)
				} else {
					r.t, r.mask = append(r.t, uint64(e.t)), append(r.mask, e.mask)
				}
				r.seq, r.id = append(r.seq, uint64(e.seq)), append(r.id, e.id)
				if pack == nil || pack.Codes == nil {
					continue
				}
				var word uint64 // the event's codes, the first coded column's lowest
				shift := 0
				for c, values := range pack.Codes {
					if values != nil {
						word |= uint64(slices.Index(values, lists[i][c])+1) << shift
						shift += codeWidth(len(values))
					}
				}
				r.mask = append(r.mask, word)
			}
			for c := range cols { // one attribute column after another, those sent as text
				if pack != nil && pack.Codes != nil && pack.Codes[c] != nil {
					continue
				}
				for _, values := range lists {
					r.attrs = append(r.attrs, values[c])
				}
			}
			rows = append(rows, r)
			want = append(want, inProcessOutcome(t, p, events, lists))
		}
		// In one chunk or two, each starting with the spec.
		chunks := [][]udfRow{rows}
		if cut := rng.IntN(len(rows)); cut > 0 {
			second := append([]udfRow{}, rows[cut:]...)
			second[0].spec = spec
			chunks = [][]udfRow{rows[:cut], second}
		}
		var out bytes.Buffer
		if err := ServeFunnelUDF(bytes.NewReader(udfChunks(chunks...)), &out); err != nil {
			t.Fatal(err)
		}
		if got := readAnswers(t, out.Bytes()); !slices.Equal(got, want) {
			t.Fatalf("iteration %d, spec %s:\ngot  %q\nwant %q", iter, spec, got, want)
		}
	}
}

// inProcessOutcome is what the in-process path makes of one person's events, encoded.
func inProcessOutcome(t *testing.T, p *funnelPlan, events []scannedEvent, lists [][]string) string {
	t.Helper()
	events, attrs := scannedPerson(events, lists)
	slices.SortFunc(events, compareScanned)
	var ids []uint64
	unit := p.units(dedupe(events, &ids), attrs, nil)[0]
	values := breakdownValues{attrs: attrs, col: p.attr}
	level, path, err := newPathFinder(p.spec).reach(context.Background(), unit, values)
	if err != nil {
		t.Fatal(err)
	}
	if c := p.correlation; c != nil {
		if level == 0 {
			return ""
		}
		return string(encodeCorrelated(nil, level, c.labels(nil, unit, attrs, path, level == p.spec.steps, p.spec.window)))
	}
	return string(outcomeOf(p, unit, values, level, path).encode(nil, p.attr >= 0))
}

// TestServeFunnelUDFCorrelates: a correlation analysis's answer is, per unit that took step 1,
// its level and its labels, sorted, each once; Waymark's decoder counts them, n persons an
// answer, each label once a unit, and refuses what is not such an answer.
func TestServeFunnelUDFCorrelates(t *testing.T) {
	t.Parallel()
	p := twoStepPlan()
	p.conds, p.blocks = make([]condition, 3), []uint64{0, 0, 0}
	p.correlation = &correlationPlan{tracked: 4, label: 0}
	p.keep, p.scan.attrs = 4, make([]predicate, 1)
	spec := specOf(t, p)
	input := udfChunks([]udfRow{
		// Step 1 at 3, touchpoints at 4 (twice "b|1:x", once "a") and 5, step 2 at 6, a touchpoint at 7
		// (after it: not counted); the step events are touchpoints too, which take a step.
		{spec: spec, t: []uint64{3, 4, 4, 4, 5, 6, 7}, seq: make([]uint64, 7), mask: []uint64{5, 4, 4, 4, 4, 6, 4}, id: []uint64{1, 2, 3, 4, 5, 6, 7},
			attrs: []string{"Step", "b|1:x", "a", "b|1:x", "c", "Done", "late"}},
		// Step 1 only: its window (10 µs) holds 8 and 13, not 14.
		{spec: "", t: []uint64{3, 8, 13, 14}, seq: make([]uint64, 4), mask: []uint64{5, 4, 4, 4}, id: []uint64{1, 2, 3, 4},
			attrs: []string{"Step", "c", "c", "gone"}},
		// No step 1: no answer.
		{spec: "", t: []uint64{3}, seq: []uint64{0}, mask: []uint64{4}, id: []uint64{1}, attrs: []string{"c"}},
	})
	var out bytes.Buffer
	if err := ServeFunnelUDF(bytes.NewReader(input), &out); err != nil {
		t.Fatal(err)
	}
	got := readAnswers(t, out.Bytes())
	want := []string{"2|1:a|5:b|1:x|1:c", "1|1:c", ""}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	c := correlationCounts{success: map[string]int64{}, failure: map[string]int64{}}
	d := correlationDecoder{steps: 2}
	for _, tt := range []struct {
		answer string
		n      int64
	}{{got[0], 3}, {got[1], 2}, {"1", 1}} {
		if err := d.add(&c, tt.answer, tt.n); err != nil {
			t.Fatal(err)
		}
	}
	if c.successTotal != 3 || c.failureTotal != 3 || !maps.Equal(c.success, map[string]int64{"a": 3, "b|1:x": 3, "c": 3}) || !maps.Equal(c.failure, map[string]int64{"c": 2}) {
		t.Errorf("counted %d/%d, %v, %v", c.successTotal, c.failureTotal, c.success, c.failure)
	}
	byS := correlationDecoder{steps: 2, bySessions: true}
	if err := byS.add(&c, "|1:1|5:2|1:c", 1); err != nil || c.successTotal != 4 || c.failureTotal != 4 || c.success["c"] != 4 || c.failure["c"] != 2 {
		t.Errorf("sessions' answer: %v, counted %d/%d, %v, %v", err, c.successTotal, c.failureTotal, c.success, c.failure)
	}
	for _, tt := range []struct {
		d      correlationDecoder
		answer string
		n      int64
	}{
		{d, "", 1}, {d, "0", 1}, {d, "3|1:a", 1}, {d, "01|1:a", 1}, {d, "1|5:a", 1}, {d, "1|1:a", 0},
		{byS, "1|1:a", 1}, {byS, "|0:", 1},
	} {
		if err := tt.d.add(&c, tt.answer, tt.n); err == nil {
			t.Errorf("%q of %d persons (by sessions %t): no error", tt.answer, tt.n, tt.d.bySessions)
		}
	}
}

// TestServeFunnelUDFStopsAtTheTimeout: a person whose matching takes minutes (any order, 31
// steps over 20,000 events of one day) fails the chunk once the spec's timeout has passed.
func TestServeFunnelUDFStopsAtTheTimeout(t *testing.T) {
	t.Parallel()
	const steps, n = 31, 20_000
	p := &funnelPlan{conds: make([]condition, 2), blocks: []uint64{0, 0}, from: math.MinInt64, attr: -1, traitCond: -1, keyAttr: -1,
		spec: matchSpec{steps: steps + 1, mode: ModeAny, from: math.MinInt64, to: math.MaxInt64, window: 24 * 3600 * 1_000_000}}
	for range steps {
		p.steps = append(p.steps, stepPlan{conds: []int{0}, nth: []int{1}})
	}
	p.steps = append(p.steps, stepPlan{conds: []int{1}, nth: []int{1}}) // never taken
	spec := p.udfSpec(time.Millisecond, nil)
	r := udfRow{spec: spec}
	for i := range n {
		r.t, r.seq, r.mask, r.id = append(r.t, uint64(i)*400), append(r.seq, 0), append(r.mask, 1), append(r.id, uint64(i))
	}
	err := ServeFunnelUDF(bytes.NewReader(udfChunks([]udfRow{r})), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("got %v, want the timeout", err)
	}
}

// TestPackingOf: a read's times and condition bits are packed only when the times' span fits the
// bits the mask leaves.
func TestPackingOf(t *testing.T) {
	t.Parallel()
	const year = int64(365 * 24 * 3600 * 1_000_000) // µs
	now := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC).UnixMicro()
	tests := []struct {
		name       string
		conds      int
		tMin, tMax int64
		want       *udfPack
	}{
		{"a month, 3 conditions", 3, now - year/12, now, &udfPack{Base: now - year/12, Bits: 3}},
		{"one event", 1, now, now, &udfPack{Base: now, Bits: 1}},
		{"since 1970, 13 conditions (51 bits)", 13, 0, now, &udfPack{Base: 0, Bits: 13}},
		{"since 1970, 14 conditions (50 bits)", 14, 0, now, nil},
		{"a span of exactly 2^50 µs, 14 conditions", 14, 5, 5 + 1<<50, nil},
		{"a span of 2^50 - 1 µs, 14 conditions", 14, 5, 5 + 1<<50 - 1, &udfPack{Base: 5, Bits: 14}},
		{"63 conditions, a 1 µs span", 63, now, now + 1, &udfPack{Base: now, Bits: 63}},
		{"63 conditions, a 2 µs span", 63, now, now + 2, nil},
		{"64 conditions", 64, now, now, nil},
		{"no conditions", 0, now, now, nil},
		{"no events", 3, 0, -1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := packingOf(tt.conds, tt.tMin, tt.tMax)
			if (got == nil) != (tt.want == nil) || got != nil && (got.Base != tt.want.Base || got.Bits != tt.want.Bits || got.Codes != nil) {
				t.Fatalf("packingOf(%d, %d, %d) = %+v, want %+v", tt.conds, tt.tMin, tt.tMax, got, tt.want)
			}
			if got == nil {
				return
			}
			for _, e := range []struct {
				t    int64
				mask uint64
			}{{tt.tMin, 1<<tt.conds - 1}, {tt.tMax, 1}, {tt.tMax, 1<<tt.conds - 1}} {
				if pt, pm := got.unpack(uint64(e.t-got.Base)<<got.Bits | e.mask); pt != e.t || pm != e.mask {
					t.Errorf("packed (%d, %#x) unpacks to (%d, %#x)", e.t, e.mask, pt, pm)
				}
			}
		})
	}
}

// TestAttrCodes: an attribute column is sent as codes when its values are few (at most
// maxAttrCodes), valid UTF-8, and fit the 64 bits and the spec's bytes the columns before left;
// else as text; no column coded is no codes.
func TestAttrCodes(t *testing.T) {
	t.Parallel()
	many := func(n int, prefix string) []string {
		var vs []string
		for i := range n {
			vs = append(vs, fmt.Sprintf("%s%d", prefix, i))
		}
		return vs
	}
	sorted := func(vs []string) []string { return slices.Sorted(slices.Values(vs)) }
	long := strings.Repeat("x", 100)
	tests := []struct {
		name   string
		values [][]string
		want   [][]string
	}{
		{"few values, sorted", [][]string{{"web", "", "ads"}, {"\x00page", "Viewed"}}, [][]string{{"", "ads", "web"}, {"\x00page", "Viewed"}}},
		{"257 values: text", [][]string{many(257, "v"), {"a"}}, [][]string{nil, {"a"}}},
		{"256 values: coded", [][]string{many(256, "v")}, [][]string{sorted(many(256, "v"))}},
		{"invalid UTF-8: text", [][]string{{"a", "\xff"}, {"b"}}, [][]string{nil, {"b"}}},
		{"no values: text", [][]string{{}, {"b"}}, [][]string{nil, {"b"}}},
		{"nothing coded", [][]string{many(300, "v"), {"\xfe"}}, nil},
		// 9 bits each: the eighth column would need 72.
		{"codes past 64 bits: text", slices.Repeat([][]string{many(256, "")}, 8), append(slices.Repeat([][]string{sorted(many(256, ""))}, 7), nil)},
		// 256 values of 100 bytes: 26 KiB of JSON, over maxAttrCodesBytes; the small column after it fits.
		{"values past the spec's bytes: text", [][]string{many(256, long), {"a"}}, [][]string{nil, {"a"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := attrCodes(tt.values)
			if !slices.EqualFunc(got, tt.want, slices.Equal) || (got == nil) != (tt.want == nil) {
				t.Errorf("attrCodes = %q, want %q", got, tt.want)
			}
			for c := range got {
				if (got[c] == nil) != (tt.want[c] == nil) {
					t.Errorf("column %d: coded %t, want %t", c, got[c] != nil, tt.want[c] != nil)
				}
			}
		})
	}
}
