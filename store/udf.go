package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// The per-person work of the journey queries can run inside ClickHouse, as the
// executable UDF waymark_funnel (deploy/clickhouse/waymark_funnel_function.xml; docs/udf.md):
// ClickHouse groups each person's events into arrays and pipes them to `waymark udf-funnel`,
// which runs the same units, pathFinder, dropoffPlan, correlationPlan, anchorWalk, retentionWalk,
// stagesWalk and sessionsWalk as the in-process path and answers a few bytes per person. Over a Distributed
// table sharded by person, the matching can then run on the shards.
//
// Wire format (executable_pool, RowBinary, send_chunk_header=1): each chunk is "N\n" then N rows;
// each row is
//
//	spec             String         udfSpec as JSON, the same in every row of a query; or, for
//	                                a batch's queries read together, udfBatchSpec (their
//	                                udfSpecs, and where their conditions and attributes are in
//	                                the columns below). Empty: the spec of the row before, in
//	                                the same chunk (the first row of a chunk must hold one). A
//	                                query sends it in the first row of each block only
//	                                (specOncePerBlock), since spec version 12
//	t, seq, mask, id Array(UInt64)  the person's events (µs, seq, condition bits, tie id: tieIDSQL),
//	                                aligned (one groupArray each), in any order, copies included;
//	                                when the spec has a pack (udfPack), t holds each event's time
//	                                and condition bits in one value and mask is empty, or, when
//	                                the pack has codes (since spec version 16), the codes of the
//	                                event's attributes sent as numbers (udfPack.Codes)
//	attrs            Array(String)  the spec's attribute columns sent as text, one after another:
//	                                every event's first attribute, then every event's second…;
//	                                empty when the spec reads none (or sends every one as codes)
//	keys             Array(String)  customer keys, when the spec reads visits (a funnel or
//	                                drop-off counted by sessions or broken down by a session's
//	                                entry, a sessions summary); else empty, as are the columns below. Either the
//	                                distinct keys of the person's events (the spec's key
//	                                attribute), or, when no device has sign-ins of several
//	                                users, the key of each visit sent, in any order
//	                                (matchPassWithPersonVisits)
//	visits           Array(UInt64)  per key, how many of the columns below are its visits; empty
//	                                when each key sent is one visit's (the second form, since
//	                                spec version 21)
//	start, end, start_seq
//	                 Array(UInt64)  the visits (liveVisits: µs, µs, seq), key after key
//	reason           Array(String)  their end reasons when the spec has a sessions summary, which
//	                                alone reports them; else empty (since spec version 21:
//	                                visitColumns.reasons)
//	channel, campaign
//	                 Array(String)  empty: since spec version 10 a session enters by its
//	                                person's first touchpoint in the visit, among the events
//	                                (EntryCond), not by the visit's stored entry; the arguments
//	                                stay, so the function file does not change
//
// and each answer is a String: funnelOutcome's encoding (a list of them, appendText's, one per
// session reaching a step, when the spec counts sessions), or encodeCorrelated's when the spec has
// a correlation (a list of them likewise by sessions), or anchorOutcome's when the spec has an
// anchor, retentionOutcome's when it has a retention, stagesOutcome's when it has stages,
// sessionsSum's of the sessions counted when it has sessions (empty when none is); for a
// batch, each query's answer in turn (appendText's), or empty when every one is. The answers of
// a chunk are flushed together, in order.

// FunnelUDFName is the name the executable UDF is installed under.
const FunnelUDFName = "waymark_funnel"

// udfSpecVersion changes whenever udfSpec or an answer's encoding changes meaning: a server
// running another release's binary then fails the query with a message saying so.
const udfSpecVersion = 23

// specOncePerBlock is how a query passes its spec (the argument bound in its place) to
// waymark_funnel: in the first row of each block, empty in the others. ClickHouse hands the UDF
// one chunk per block of the function's arguments, so each chunk's first row holds the spec and
// the rest repeat it. A constant argument is otherwise written out whole in every row: a spec
// of 400 bytes was 60% of the bytes a 5-step funnel by channel piped to the UDF, in a person of
// a few events (docs/query-scale.md, "The spec once a block").
const specOncePerBlock = "if(rowNumberInBlock() = 0, ?, '')"

// Limits on one row of UDF input: more is an error, not an allocation.
const (
	maxUDFSpecBytes    = 1 << 16 // the spec's JSON
	maxUDFEvents       = 1 << 20 // events of one person (about 590 bytes of memory each while matched)
	maxUDFAttrCols     = 8       // attribute columns per event of a query (a drop-off by breakdown reads 4)
	maxUDFReadAttrCols = 64      // attribute columns per event of a batch's read (its queries' together)
	maxUDFAttrBytes    = 1 << 20 // one attribute value
	maxUDFAttrsBytes   = 1 << 26 // all attribute values of one person
	maxUDFVisits       = 1 << 20 // visits of one person's keys (32 bytes of memory each)
)

// udfSpec is what the UDF needs of a funnelPlan to turn a person's events into a unit and match
// it: the plan's matching fields, without its SQL. Times are µs since the epoch (eventTime), and
// so are durations but TimeoutMs.
type udfSpec struct {
	Version   int      `json:"v"`
	Steps     int      `json:"steps"`      // matchSpec.steps
	Mode      Mode     `json:"mode"`       // matchSpec.mode
	From      int64    `json:"from"`       // matchSpec.from: first step at or after
	To        int64    `json:"to"`         // matchSpec.to: first step before
	Window    int64    `json:"window"`     // matchSpec.window, µs
	Start     int64    `json:"start"`      // funnelPlan.from: earlier events take no step
	Cut       int64    `json:"cut"`        // eventScan.from: earlier events only drop their later copies (readFrom)
	Blocks    []uint64 `json:"blocks"`     // per condition: the gaps its events block
	StepConds [][]int  `json:"step_conds"` // per step: the conditions that match it
	StepNth   [][]int  `json:"step_nth"`   // per step, per condition: the nth requirement
	Attrs     int      `json:"attrs"`      // attribute columns read per event
	Attr      int      `json:"attr"`       // which of them is the breakdown, or -1: none
	TraitCond int      `json:"trait_cond"` // the condition marking trait events, or -1
	Keep      uint64   `json:"keep"`       // conditions whose events are kept though they take no step
	// KeyAttr is the attribute column holding each event's customer key when the matching reads
	// the visits (funnelPlan.keyAttr), or -1; then BySessions says the units are sessions, EntryBy
	// that the breakdown is the entry of the step-1 event's session ("channel", "campaign" or ""),
	// its person's first touchpoint in the visit, found among the events matching EntryCond; the
	// visits sent are those that end at or after Start (funnelPlan.newVisits).
	KeyAttr    int    `json:"key_attr"`
	BySessions bool   `json:"by_sessions,omitempty"`
	EntryBy    string `json:"entry_by,omitempty"`
	EntryCond  int    `json:"entry_cond,omitempty"`
	// Hold is 1 + the attribute column of the property held constant (funnelPlan.hold,
	// FunnelQuery.Hold), 0 (absent): none; since spec version 17.
	Hold int `json:"hold,omitempty"`
	// Dropoff, when set, asks for each unit that stops before the last step where it left from
	// (dropoffPlan).
	Dropoff *udfDropoff `json:"dropoff,omitempty"`
	// Correlation, when set, asks for each unit that took step 1 the labels a correlation
	// analysis of touchpoints counts (correlationPlan), instead of its funnel outcome; since spec
	// version 18.
	Correlation *udfCorrelation `json:"correlation,omitempty"`
	// Anchor, when set, asks for what paths or next read around each person's anchor event
	// (anchorWalk) instead of a funnel's match; since spec version 20 a paths answer's conversion
	// counts the anchor itself when it is a conversion event (tester 51's F2).
	Anchor *udfAnchor `json:"anchor,omitempty"`
	// Retention, when set, asks for each person's part of a retention answer (retentionWalk)
	// instead of a funnel's match.
	Retention *udfRetention `json:"retention,omitempty"`
	// Stages, when set, asks for each person's part of a stages answer (stagesWalk) instead of
	// a funnel's match.
	Stages *udfStages `json:"stages,omitempty"`
	// Sessions, when set, asks for each person's sessions as a sessions summary counts them
	// (sessionsWalk) instead of a funnel's match; since spec version 19. The key, channel and
	// label columns are sessionsPlan's.
	Sessions *udfSessions `json:"sessions,omitempty"`
	// TimeoutMs bounds the matching of one chunk, ms; 0: no bound. It is the query's timeout: a
	// chunk that takes longer belongs to a query that has failed already, and ClickHouse lets a
	// pool process finish its chunk.
	TimeoutMs int64 `json:"timeout_ms"`
	// Pack is the read's packing (matchRead decides it; parseUDFRead reads it), nil when the
	// columns are not packed.
	Pack *udfPack `json:"pack,omitempty"`
}

// udfPack says how a read's times and condition bits share the t column (spec version 11): each
// value is (t − Base) << Bits | mask, and the mask column is empty. ClickHouse's grouping costs
// about what the bytes each event adds to its person's arrays do, so three 8-byte values an
// event rather than four cost it a fifth less (docs/query-scale.md, "10M events on ClickHouse
// 26.7"). packingOf says when a read is packed.
type udfPack struct {
	Base int64 `json:"base"` // µs, at most every time read
	Bits int   `json:"bits"` // the mask's width: the read's conditions, 1 to 63
	// Codes, when set (spec version 16), says which attribute columns are sent as numbers, in
	// the mask column the packing leaves free: per attribute column of the read, its values (the
	// code of values[i] is i+1), or nil for a column sent as text, in attrs as before. An event's
	// mask value holds the code of each coded column in codeWidth(len(values)) bits, the first
	// coded column's lowest. The text of a few values an event (a channel, an event name, a
	// category) was most of the bytes ClickHouse grouped for the queries reading attributes
	// (docs/query-scale.md, "Attributes as numbers"). attrCodes says which columns are coded.
	Codes [][]string `json:"codes,omitempty"`
}

// Limits on the attribute columns a read sends as numbers (attrCodes, udfPack.Codes).
const (
	maxAttrCodes      = 256      // values of a coded column: codes of at most 9 bits
	maxAttrCodesBytes = 16 << 10 // the coded columns' values, as JSON in the spec
)

// codeWidth is the bits of the codes of a column of n values (1 to n; 0 is none).
func codeWidth(n int) int { return bits.Len(uint(n)) }

// attrCodes is udfPack.Codes for attribute columns whose distinct values in a read are values
// (nil for a column of more than maxAttrCodes, or none), or nil when no column is worth coding:
// each column of at most maxAttrCodes values, all valid UTF-8 (JSON carries no other), while
// their codes fit 64 bits and their JSON maxAttrCodesBytes.
func attrCodes(values [][]string) [][]string {
	codes := make([][]string, len(values))
	width, size, coded := 0, 0, false
	for c, vs := range values {
		if len(vs) == 0 || len(vs) > maxAttrCodes || slices.ContainsFunc(vs, func(v string) bool { return !utf8.ValidString(v) }) {
			continue
		}
		sorted := slices.Compact(slices.Sorted(slices.Values(vs)))
		b, err := json.Marshal(sorted)
		if err != nil || width+codeWidth(len(sorted)) > 64 || size+len(b) > maxAttrCodesBytes {
			continue
		}
		codes[c], coded = sorted, true
		width, size = width+codeWidth(len(sorted)), size+len(b)
	}
	if !coded {
		return nil
	}
	return codes
}

// checkCodes reports what is wrong with the codes of a read of attrs attribute columns.
func (p *udfPack) checkCodes(attrs int) error {
	if p == nil || p.Codes == nil {
		return nil
	}
	width := 0
	for _, values := range p.Codes {
		if values != nil && (len(values) < 1 || len(values) > maxAttrCodes) {
			return fmt.Errorf("spec: a coded attribute of %d values, want 1 to %d", len(values), maxAttrCodes)
		}
		width += codeWidth(len(values))
	}
	if len(p.Codes) != attrs || width > 64 {
		return fmt.Errorf("spec: codes of %d attribute columns in %d bits, want %d columns in at most 64", len(p.Codes), width, attrs)
	}
	return nil
}

// textAttrs is how many of a read's attrs attribute columns are sent as text.
func (p *udfPack) textAttrs(attrs int) int {
	if p == nil || p.Codes == nil {
		return attrs
	}
	n := 0
	for _, values := range p.Codes {
		if values == nil {
			n++
		}
	}
	return n
}

// decodeAttrs appends to dst the attribute table's values (attrTable.values) of n events whose
// codes are codes and whose attributes sent as text are texts (those columns one after another).
// The coded values are the spec's strings: nothing is copied.
func (p *udfPack) decodeAttrs(dst []string, codes []uint64, texts []string, n int) ([]string, error) {
	shift, text := 0, 0
	for c, values := range p.Codes {
		if values == nil {
			dst = append(dst, texts[text*n:(text+1)*n]...)
			text++
			continue
		}
		w := codeWidth(len(values))
		for i, v := range codes {
			code := v >> shift & (1<<w - 1)
			if code == 0 || code > uint64(len(values)) {
				return dst, fmt.Errorf("event %d: code %d of attribute %d, which has %d values", i+1, code, c+1, len(values))
			}
			dst = append(dst, values[code-1])
		}
		shift += w
	}
	return dst, nil
}

// codesSQL is the SQL of an event's codes (the mask column's value), over a row of personRows
// (its attribute columns a0, a1…), with its arguments, and the condition that every coded
// attribute of the row (its codes, as column codes) is among the read's values.
func (p *udfPack) codesSQL() (word string, args []any, known string) {
	var terms, checks []string
	shift := 0
	for c, values := range p.Codes {
		if values == nil {
			continue
		}
		w := codeWidth(len(values))
		terms = append(terms, fmt.Sprintf("bitShiftLeft(toUInt64(transform(a%d, ?, range(1, %d), 0)), %d)", c, len(values)+1, shift))
		checks = append(checks, fmt.Sprintf("bitAnd(bitShiftRight(codes, %d), %d) != 0", shift, uint64(1)<<w-1))
		args = append(args, values)
		shift += w
	}
	return strings.Join(terms, " + "), args, strings.Join(checks, " AND ")
}

// packingOf is the packing of a read of conds conditions whose times run from tMin to tMax (µs),
// or nil when they do not fit one 64-bit value together: the times' span must fit the 64 − conds
// bits the mask leaves (at 13 conditions, 71 years).
func packingOf(conds int, tMin, tMax int64) *udfPack {
	if conds < 1 || conds > 63 || tMin < 0 || tMax < tMin || uint64(tMax-tMin)>>(64-conds) != 0 {
		return nil
	}
	return &udfPack{Base: tMin, Bits: conds}
}

// unpack is the time and condition bits of a packed value v.
func (p *udfPack) unpack(v uint64) (t int64, mask uint64) {
	return p.Base + int64(v>>p.Bits), v & (1<<p.Bits - 1)
}

// udfDropoff is a dropoffPlan on the wire.
type udfDropoff struct {
	Tracked uint64 `json:"tracked"` // the condition bit of tracked touchpoints
	First   int    `json:"first"`   // the first of their three attribute columns
}

// udfCorrelation is a correlationPlan on the wire.
type udfCorrelation struct {
	Tracked uint64 `json:"tracked"` // the condition bit of tracked touchpoints
	Label   int    `json:"label"`   // the attribute column of their labels
}

// udfAnchor is an anchorWalk on the wire.
type udfAnchor struct {
	Kind      string `json:"kind"` // paths or next
	Tracked   uint64 `json:"tracked"`
	From      int64  `json:"from"`
	To        int64  `json:"to"`
	Window    int64  `json:"window"`
	Direction string `json:"direction"`
	Depth     int    `json:"depth"`
	Collapse  bool   `json:"collapse"`
}

// udfRetention is a retentionWalk on the wire.
type udfRetention struct {
	Period  string `json:"period"` // week or month
	Periods int    `json:"periods"`
	TZ      string `json:"tz,omitempty"` // the periods' time zone (ParseTimezone); "": UTC
	From    int64  `json:"from"`
	To      int64  `json:"to"`
	Tracked uint64 `json:"tracked"` // the mask bit of touchpoints
}

// udfStages is a stagesWalk on the wire.
type udfStages struct {
	From    int64  `json:"from"`
	To      int64  `json:"to"`
	Tracked uint64 `json:"tracked"`
}

// udfSessions is a sessionsWalk on the wire.
type udfSessions struct {
	From     int64  `json:"from"`
	To       int64  `json:"to"`
	Filtered uint64 `json:"filtered"` // the mask bit of touchpoints passing the filter, 0: none
}

// check reports what is wrong with an anchor of a spec reading attrs attribute columns and
// keeping the conditions of keep; its labels are the first column.
func (a *udfAnchor) check(attrs int, keep uint64) error {
	switch {
	case a.Kind == "paths" && a.Direction != "start" && a.Direction != "end",
		a.Kind == "next" && a.Direction != "next" && a.Direction != "previous":
		return fmt.Errorf("spec: %s direction %q", a.Kind, a.Direction)
	case a.Kind != "paths" && a.Kind != "next":
		return fmt.Errorf("spec: anchor kind %q", a.Kind)
	case a.Kind == "paths" && (a.Depth < 2 || a.Depth > maxPathDepth):
		return fmt.Errorf("spec: depth %d, want 2 to %d", a.Depth, maxPathDepth)
	case a.Window < 0 || attrs < 1 || bits.OnesCount64(a.Tracked) != 1 || keep&a.Tracked == 0:
		return fmt.Errorf("spec: anchor window %d µs over %d attributes, tracked bit %#x", a.Window, attrs, a.Tracked)
	}
	return nil
}

// udfSpec encodes the plan's matching for the UDF, whose matching of a chunk stops after
// timeout, over a read packed by pack (nil: not packed; a batch's part is never: its batch's
// read is).
func (p *funnelPlan) udfSpec(timeout time.Duration, pack *udfPack) string {
	u := udfSpec{Version: udfSpecVersion, Steps: p.spec.steps, Mode: p.spec.mode, From: p.spec.from, To: p.spec.to,
		Window: p.spec.window, Start: p.from, Cut: p.scan.from, Blocks: make([]uint64, len(p.conds)), Attrs: len(p.scan.attrs), Attr: p.attr, Hold: p.hold,
		TraitCond: p.traitCond, Keep: p.keep, TimeoutMs: max(timeout.Milliseconds(), 0),
		KeyAttr: p.keyAttr, BySessions: p.bySessions, EntryBy: p.entryBy, EntryCond: p.entryCond, Pack: pack}
	copy(u.Blocks, p.blocks)
	if d := p.dropoff; d != nil {
		u.Dropoff = &udfDropoff{Tracked: d.tracked, First: d.first}
	}
	if c := p.correlation; c != nil {
		u.Correlation = &udfCorrelation{Tracked: c.tracked, Label: c.label}
	}
	if w := p.stages; w != nil {
		u.Stages = &udfStages{From: w.from, To: w.to, Tracked: w.tracked}
	}
	if w := p.sessions; w != nil {
		u.Sessions = &udfSessions{From: w.from, To: w.to, Filtered: w.filtered}
	}
	if w := p.retention; w != nil {
		u.Retention = &udfRetention{Period: w.period, Periods: w.periods, From: w.from, To: w.to, Tracked: w.tracked}
		if w.loc != nil {
			u.Retention.TZ = w.loc.String()
		}
	}
	if w := p.anchor; w != nil {
		u.Anchor = &udfAnchor{Kind: w.kind, Tracked: w.tracked, From: w.from, To: w.to, Window: w.wind, Direction: w.direction,
			Depth: w.depth, Collapse: w.collapse}
	}
	for _, sp := range p.steps {
		u.StepConds = append(u.StepConds, sp.conds)
		u.StepNth = append(u.StepNth, sp.nth)
	}
	b, err := json.Marshal(u)
	if err != nil {
		panic("BUG: encode udf spec: " + err.Error())
	}
	return string(b)
}

// parseUDFSpec decodes and checks a spec, and rebuilds the plan it came from (its matching
// fields: no SQL, no rules; its scan's attributes only counted, as placeholders).
func parseUDFSpec(spec []byte) (*funnelPlan, error) {
	var u udfSpec
	dec := json.NewDecoder(bytes.NewReader(spec))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&u); err != nil {
		var probe struct {
			Version int `json:"v"`
		}
		if json.Unmarshal(spec, &probe) == nil && probe.Version != udfSpecVersion {
			return nil, fmt.Errorf("spec version %d, this binary speaks %d: install the waymark binary of the querying release", probe.Version, udfSpecVersion)
		}
		return nil, fmt.Errorf("decode spec: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decode spec: more after the spec's JSON object")
	}
	if u.Version != udfSpecVersion {
		return nil, fmt.Errorf("spec version %d, this binary speaks %d: install the waymark binary of the querying release", u.Version, udfSpecVersion)
	}
	switch {
	case u.Steps < 1 || u.Steps > MaxFunnelSteps:
		return nil, fmt.Errorf("spec: %d steps, want 1 to %d", u.Steps, MaxFunnelSteps)
	case u.Mode != ModeOrdered && u.Mode != ModeStrict && u.Mode != ModeAny:
		return nil, fmt.Errorf("spec: mode %q", u.Mode)
	case u.Window < 0 || u.TimeoutMs < 0:
		return nil, fmt.Errorf("spec: window %d µs, timeout %d ms", u.Window, u.TimeoutMs)
	case len(u.Blocks) < 1 || len(u.Blocks) > 64:
		return nil, fmt.Errorf("spec: %d conditions, want 1 to 64", len(u.Blocks))
	case len(u.StepConds) != u.Steps || len(u.StepNth) != u.Steps:
		return nil, fmt.Errorf("spec: %d steps with %d condition lists and %d nth lists", u.Steps, len(u.StepConds), len(u.StepNth))
	case u.Attrs < 0 || u.Attrs > maxUDFAttrCols:
		return nil, fmt.Errorf("spec: %d attribute columns, want 0 to %d", u.Attrs, maxUDFAttrCols)
	case u.Attr < -1 || u.Attr >= u.Attrs:
		return nil, fmt.Errorf("spec: breakdown attribute %d of %d", u.Attr, u.Attrs)
	case u.Hold < 0 || u.Hold > u.Attrs || u.Hold > 0 && (u.Hold-1 == u.KeyAttr || u.Anchor != nil || u.Retention != nil || u.Stages != nil || u.Sessions != nil):
		return nil, fmt.Errorf("spec: held attribute %d of %d (key attribute %d), for a funnel or a drop-off only", u.Hold-1, u.Attrs, u.KeyAttr)
	case u.Dropoff != nil && (u.Dropoff.First < 0 || u.Dropoff.First+3 > u.Attrs || bits.OnesCount64(u.Dropoff.Tracked) != 1 || u.Keep&u.Dropoff.Tracked == 0):
		return nil, fmt.Errorf("spec: drop-off attributes from %d of %d, tracked bit %#x", u.Dropoff.First, u.Attrs, u.Dropoff.Tracked)
	case u.Correlation != nil && (u.Correlation.Label < 0 || u.Correlation.Label >= u.Attrs || bits.OnesCount64(u.Correlation.Tracked) != 1 ||
		u.Keep&u.Correlation.Tracked == 0 || u.Mode == ModeAny || u.Attr >= 0 || u.Hold > 0):
		return nil, fmt.Errorf("spec: correlation labels in attribute %d of %d, tracked bit %#x, mode %s, breakdown attribute %d, held attribute %d",
			u.Correlation.Label, u.Attrs, u.Correlation.Tracked, u.Mode, u.Attr, u.Hold-1)
	case countSet(u.Anchor != nil, u.Dropoff != nil, u.Correlation != nil, u.Retention != nil, u.Stages != nil, u.Sessions != nil) > 1:
		return nil, errors.New("spec: more than one of an anchor, a drop-off, a correlation, a retention, stages and sessions")
	case u.Sessions != nil && (u.KeyAttr != sessionKeyAttr || u.Attrs < sessionLabelAttr+1 || u.BySessions || u.EntryBy != "" || u.Attr >= 0 ||
		u.Sessions.Filtered != 0 && (bits.OnesCount64(u.Sessions.Filtered) != 1 || u.Sessions.Filtered >= 1<<len(u.Blocks))):
		return nil, fmt.Errorf("spec: sessions over %d attributes, key attribute %d, filter bit %#x", u.Attrs, u.KeyAttr, u.Sessions.Filtered)
	case u.Stages != nil && (u.Attrs < 2 || bits.OnesCount64(u.Stages.Tracked) != 1 || u.Keep&u.Stages.Tracked == 0):
		return nil, fmt.Errorf("spec: stages over %d attributes, tracked bit %#x", u.Attrs, u.Stages.Tracked)
	case u.Retention != nil && (u.Retention.Period != "week" && u.Retention.Period != "month" ||
		u.Retention.Periods < 1 || u.Retention.Periods > maxRetentionPeriods || u.Attrs < 1 ||
		bits.OnesCount64(u.Retention.Tracked) != 1 || u.Keep&u.Retention.Tracked == 0):
		return nil, fmt.Errorf("spec: retention by %q over %d periods, %d attributes, tracked bit %#x", u.Retention.Period, u.Retention.Periods, u.Attrs, u.Retention.Tracked)
	case u.TraitCond < -1 || u.TraitCond >= 64 || u.TraitCond >= 0 && u.Attr != 0:
		return nil, fmt.Errorf("spec: trait condition %d (attribute %d)", u.TraitCond, u.Attr)
	case u.KeyAttr < -1 || u.KeyAttr >= u.Attrs || u.KeyAttr >= 0 && u.KeyAttr == u.Attr,
		u.KeyAttr < 0 && (u.BySessions || u.EntryBy != ""),
		u.EntryBy != "" && (u.EntryBy != "channel" && u.EntryBy != "campaign" || u.Attr < 0 || u.EntryCond < 0 || u.EntryCond >= len(u.Blocks)):
		return nil, fmt.Errorf("spec: key attribute %d of %d, by sessions %t, entry by %q (breakdown attribute %d, touchpoint condition %d)", u.KeyAttr, u.Attrs, u.BySessions, u.EntryBy, u.Attr, u.EntryCond)
	case u.KeyAttr >= 0 && (u.Anchor != nil || u.Retention != nil || u.Stages != nil):
		return nil, errors.New("spec: visits read for an anchor, a retention or stages")
	}
	if u.Anchor != nil {
		if err := u.Anchor.check(u.Attrs, u.Keep); err != nil {
			return nil, err
		}
	}
	p := &funnelPlan{conds: make([]condition, len(u.Blocks)), blocks: u.Blocks, from: u.Start,
		attr: u.Attr, hold: u.Hold, traitCond: u.TraitCond, keyAttr: u.KeyAttr, bySessions: u.BySessions, entryBy: u.EntryBy, entryCond: u.EntryCond, keep: u.Keep,
		spec: matchSpec{steps: u.Steps, mode: u.Mode, from: u.From, to: u.To, window: u.Window},
		scan: eventScan{attrs: make([]predicate, u.Attrs), from: u.Cut}}
	if u.Dropoff != nil {
		p.dropoff = &dropoffPlan{tracked: u.Dropoff.Tracked, first: u.Dropoff.First}
	}
	if c := u.Correlation; c != nil {
		p.correlation = &correlationPlan{tracked: c.Tracked, label: c.Label}
	}
	if w := u.Stages; w != nil {
		p.stages = &stagesWalk{from: w.From, to: w.To, tracked: w.Tracked}
	}
	if w := u.Sessions; w != nil {
		p.sessions = &sessionsWalk{from: w.From, to: w.To, filtered: w.Filtered}
	}
	if r := u.Retention; r != nil {
		p.retention = &retentionWalk{period: r.Period, periods: r.Periods, from: r.From, to: r.To, tracked: r.Tracked}
		if r.TZ != "" {
			loc, err := ParseTimezone(r.TZ)
			if err != nil {
				return nil, fmt.Errorf("spec: retention: %w", err)
			}
			p.retention.loc = loc
		}
	}
	if a := u.Anchor; a != nil {
		p.anchor = &anchorWalk{kind: a.Kind, tracked: a.Tracked, from: a.From, to: a.To, wind: a.Window, direction: a.Direction,
			depth: a.Depth, collapse: a.Collapse}
	}
	if u.TimeoutMs > 0 {
		p.udfTimeout = time.Duration(u.TimeoutMs) * time.Millisecond
	}
	for k := range u.Steps {
		conds, nth := u.StepConds[k], u.StepNth[k]
		if len(conds) != len(nth) {
			return nil, fmt.Errorf("spec: step %d has %d conditions and %d nth", k+1, len(conds), len(nth))
		}
		for j, c := range conds {
			if c < 0 || c >= len(u.Blocks) || nth[j] < 1 {
				return nil, fmt.Errorf("spec: step %d: condition %d nth %d", k+1, c, nth[j])
			}
		}
		p.steps = append(p.steps, stepPlan{conds: conds, nth: nth})
	}
	return p, nil
}

// udfBatchSpec is the spec of a batch's queries read together (the journey page's): one read of
// every part's conditions and attributes (combineScans), each part answered from its own part of
// each person's events, as the in-process batch gives each reader its part (scanReader.partOf).
type udfBatchSpec struct {
	Version int `json:"v"`
	Attrs   int `json:"attrs"` // attribute columns read per event, all parts' (each read once)
	// KeyAttr is the column of each event's customer key when a part reads visits, or -1; the
	// visits sent are those of every such part (from the earliest part's start).
	KeyAttr int           `json:"key_attr"`
	Parts   []udfPartSpec `json:"parts"`
	Pack    *udfPack      `json:"pack,omitempty"` // as udfSpec's
}

// udfPartSpec is one query of a udfBatchSpec: its own spec, and where its conditions and
// attributes are in the read.
type udfPartSpec struct {
	Spec     json.RawMessage `json:"spec"`      // a udfSpec
	PredBits []int           `json:"pred_bits"` // per condition of its scan: its bit in the read's mask
	AttrCols []int           `json:"attr_cols"` // per attribute column of Spec: the read's column
	To       int64           `json:"to"`        // its scan's end (eventScan.to; 0: none), µs: later events are not its
}

// maxUDFParts is the most queries a batch's spec may hold.
const maxUDFParts = 2 * MaxBatchQueries

// udfRead is a parsed spec: what each row holds (its attribute columns and visits) and the
// queries answered from it.
type udfRead struct {
	attrs   int      // attribute columns per event
	keyAttr int      // the customer key's column when visits are sent, or -1
	reasons bool     // the visits come with their end reasons (a part has a sessions summary)
	batch   bool     // the parts are a batch's (udfBatchSpec); else one query's whole read
	pack    *udfPack // nil: the columns are not packed
	parts   []udfPart
}

// udfPart is one query answered from a udfRead.
type udfPart struct {
	plan   *funnelPlan
	finder *pathFinder
	reader *scanReader // a batch's part: its conditions and attributes in the read
}

// parseUDFRead decodes and checks a spec: one query's (udfSpec) or a batch's (udfBatchSpec, told
// by its parts).
func parseUDFRead(spec []byte) (*udfRead, error) {
	var probe struct {
		Parts json.RawMessage `json:"parts"`
		Pack  *udfPack        `json:"pack"`
	}
	probed := json.Unmarshal(spec, &probe) == nil
	if p := probe.Pack; probed && p != nil && (p.Bits < 1 || p.Bits > 63 || p.Base < 0) {
		return nil, fmt.Errorf("spec: pack of %d bits from %d, want 1 to 63 bits from 0 or later", p.Bits, p.Base)
	}
	if !probed || probe.Parts == nil {
		plan, err := parseUDFSpec(spec)
		if err != nil {
			return nil, err
		}
		if err := probe.Pack.checkCodes(len(plan.scan.attrs)); err != nil {
			return nil, err
		}
		return &udfRead{attrs: len(plan.scan.attrs), keyAttr: plan.keyAttr, reasons: plan.newVisits().reasons, pack: probe.Pack,
			parts: []udfPart{{plan: plan, finder: newPathFinder(plan.spec)}}}, nil
	}
	var b udfBatchSpec
	dec := json.NewDecoder(bytes.NewReader(spec))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("decode batch spec: %w", err)
	}
	switch {
	case dec.More():
		return nil, errors.New("decode batch spec: more after the spec's JSON object")
	case b.Version != udfSpecVersion:
		return nil, fmt.Errorf("spec version %d, this binary speaks %d: install the waymark binary of the querying release", b.Version, udfSpecVersion)
	case len(b.Parts) < 1 || len(b.Parts) > maxUDFParts:
		return nil, fmt.Errorf("batch spec: %d parts, want 1 to %d", len(b.Parts), maxUDFParts)
	case b.Attrs < 0 || b.Attrs > maxUDFReadAttrCols:
		return nil, fmt.Errorf("batch spec: %d attribute columns, want 0 to %d", b.Attrs, maxUDFReadAttrCols)
	case b.KeyAttr < -1 || b.KeyAttr >= b.Attrs:
		return nil, fmt.Errorf("batch spec: key attribute %d of %d", b.KeyAttr, b.Attrs)
	}
	if err := b.Pack.checkCodes(b.Attrs); err != nil {
		return nil, err
	}
	read := &udfRead{attrs: b.Attrs, keyAttr: b.KeyAttr, batch: true, pack: b.Pack}
	for i, ps := range b.Parts {
		plan, err := parseUDFSpec(ps.Spec)
		if err != nil {
			return nil, fmt.Errorf("batch spec, part %d: %w", i+1, err)
		}
		r := &scanReader{scan: eventScan{preds: make([]predicate, len(ps.PredBits)), attrs: plan.scan.attrs, from: plan.scan.from, to: ps.To},
			predBits: ps.PredBits, attrCols: ps.AttrCols, shift: -1}
		switch {
		case len(ps.PredBits) < 1 || len(ps.PredBits) > 64 || slices.ContainsFunc(ps.PredBits, func(b int) bool { return b < 0 || b >= 64 }):
			return nil, fmt.Errorf("batch spec, part %d: condition bits %v, want 1 to 64 of 0 to 63", i+1, ps.PredBits)
		case len(ps.AttrCols) != len(plan.scan.attrs) || slices.ContainsFunc(ps.AttrCols, func(c int) bool { return c < 0 || c >= b.Attrs }):
			return nil, fmt.Errorf("batch spec, part %d: attribute columns %v of %d", i+1, ps.AttrCols, b.Attrs)
		case ps.To < 0:
			return nil, fmt.Errorf("batch spec, part %d: end %d", i+1, ps.To)
		case plan.keyAttr >= 0 && ps.AttrCols[plan.keyAttr] != b.KeyAttr:
			return nil, fmt.Errorf("batch spec, part %d: its key attribute is column %d, the batch's %d", i+1, ps.AttrCols[plan.keyAttr], b.KeyAttr)
		}
		if slices.Equal(ps.PredBits, consecutive(ps.PredBits[0], len(ps.PredBits))) {
			r.shift = ps.PredBits[0]
		}
		read.parts = append(read.parts, udfPart{plan: plan, finder: newPathFinder(plan.spec), reader: r})
		read.reasons = read.reasons || plan.keyAttr >= 0 && plan.newVisits().reasons
	}
	return read, nil
}

// matchesFunnel reports whether the plan is a funnel's or a drop-off's (a path search), not a
// walk of paths, next, retention or stages.
func (p *funnelPlan) matchesFunnel() bool {
	return p.anchor == nil && p.retention == nil && p.stages == nil && p.sessions == nil
}

// funnelOutcome is one unit's answer: the steps reached and what funnelAgg.add reads off the
// canonical path, the times of its events (µs; only the first in mode any) and the first event's
// breakdown value; for a drop-off's unit that stopped before the last step, where it left from.
// Counted by sessions, a funnel's sessions that reached step 1 alone are answered together
// (stepOneCounts): then stepOne is how many, with their breakdown value, level 1 and no times.
type funnelOutcome struct {
	level   int
	times   []int64
	attr    string
	drop    *dropout
	stepOne int64
}

// outcomeOf is the outcome of a unit matched by plan, with its person's attributes and breakdown
// values: it reached level steps with the events of path.
func outcomeOf(plan *funnelPlan, unit []unitEvent, values breakdownValues, level int, path []int) funnelOutcome {
	o := funnelOutcome{level: level}
	if level == 0 {
		return o
	}
	for _, i := range path {
		o.times = append(o.times, unit[i].t)
	}
	o.attr = values.of(unit[path[0]])
	if plan.dropoff != nil && level < plan.spec.steps {
		d := plan.dropoff.of(unit, values.attrs, path, plan.spec.window)
		o.drop = &d
	}
	return o
}

// encode writes o as text: "" when no step is reached, else the level and the path's times
// separated by spaces, then its texts, each as "|", its length in bytes, ":" and the text: the
// breakdown value when there is a breakdown, then a dropout's three last values and its next
// one when it has one. Sessions that reached step 1 alone (stepOne) are "=", their number, and
// their breakdown value when there is a breakdown.
func (o funnelOutcome) encode(b []byte, breakdown bool) []byte {
	if o.level == 0 {
		return b
	}
	if o.stepOne > 0 {
		b = append(b, '=')
		b = strconv.AppendInt(b, o.stepOne, 10)
		if breakdown {
			b = appendText(b, o.attr)
		}
		return b
	}
	b = strconv.AppendInt(b, int64(o.level), 10)
	for _, t := range o.times {
		b = append(b, ' ')
		b = strconv.AppendInt(b, t, 10)
	}
	if breakdown {
		b = appendText(b, o.attr)
	}
	if d := o.drop; d != nil {
		for _, s := range d.last {
			b = appendText(b, s)
		}
		if d.hasNext {
			b = appendText(b, d.next)
		}
	}
	return b
}

// appendText appends s as an answer's text: "|", its length in bytes, ":" and s, so s may hold
// any byte.
func appendText[T string | []byte](b []byte, s T) []byte {
	b = append(b, '|')
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}

// cutTexts splits an answer into what comes before its first text and its texts (appendText's),
// appended to dst.
func cutTexts(s string, dst []string) (head string, texts []string, err error) {
	texts = dst
	head, rest, _ := strings.Cut(s, "|")
	if len(head) < len(s) {
		rest = s[len(head):]
	}
	for rest != "" {
		var text string
		if text, rest, err = nextText(s, rest); err != nil {
			return head, texts, err
		}
		texts = append(texts, text)
	}
	return head, texts, nil
}

// nextText cuts the first text (appendText's) off rest, the part of answer s that starts with
// it, and returns it and what follows.
func nextText(s, rest string) (text, after string, err error) {
	if rest == "" || rest[0] != '|' {
		return "", "", fmt.Errorf("answer %.60q: want | after a text", s)
	}
	n, after, ok := strings.Cut(rest[1:], ":")
	size, err := strconv.Atoi(n)
	if !ok || err != nil || size < 0 || size > len(after) || n != strconv.Itoa(size) {
		return "", "", fmt.Errorf("answer %.60q: bad text length %.20q", s, n)
	}
	return after[:size], after[size:], nil
}

// outcomeDecoder decodes the funnel outcomes of a query's UDF answers (encode's text; for a plan
// by sessions a list of them, appendText's, one per session that reached a step) and sums them
// into a funnelAgg, in space it reuses from one answer to the next: a query counted by sessions
// decodes an outcome a session, millions at 10M events.
type outcomeDecoder struct {
	breakdown, bySessions bool
	// stepOne says the answers may hold sessions that reached step 1 alone, counted
	// (stepOneCounts): a funnel's counted by sessions, not a drop-off's
	stepOne bool
	texts   []string
	times   []int64
	unit    []unitEvent
	path    []int
	value   [1]string
}

// each parses a person's answer and hands fn its outcomes in turn: one, or for a plan by sessions
// one a session that reached a step. An outcome is valid until fn returns: a person's sessions
// are never held at once (the busiest person of the benchmark's 100M events answers for 700,000).
// An error of fn stops the parsing and is returned.
func (d *outcomeDecoder) each(s string, fn func(funnelOutcome) error) error {
	if !d.bySessions {
		d.times = d.times[:0]
		o, err := d.one(s)
		if err != nil {
			return err
		}
		return fn(o)
	}
	for rest := s; rest != ""; {
		text, after, err := nextText(s, rest)
		if err != nil {
			return fmt.Errorf("sessions' outcomes: want a list of texts: %w", err)
		}
		rest = after
		d.times = d.times[:0]
		var o funnelOutcome
		if d.stepOne && strings.HasPrefix(text, "=") {
			o, err = d.stepOneCount(text)
		} else {
			o, err = d.one(text)
		}
		if err != nil {
			return err
		}
		if o.level == 0 {
			return fmt.Errorf("sessions' outcomes %.60q: an empty one", s)
		}
		if err := fn(o); err != nil {
			return err
		}
	}
	return nil
}

// stepOneCount parses the text of sessions that reached step 1 alone (funnelOutcome.encode).
func (d *outcomeDecoder) stepOneCount(s string) (funnelOutcome, error) {
	nums, texts, err := cutTexts(s, d.texts[:0])
	d.texts = texts
	if err != nil {
		return funnelOutcome{}, err
	}
	n, err := strconv.ParseInt(nums[1:], 10, 64)
	if err != nil || n < 1 || nums[1] == '+' || nums[1] == '0' {
		return funnelOutcome{}, fmt.Errorf("sessions at step 1 %.60q: bad count", s)
	}
	o := funnelOutcome{level: 1, stepOne: n}
	switch {
	case d.breakdown && len(texts) == 1:
		o.attr = texts[0]
	case len(texts) > 0 || d.breakdown:
		return funnelOutcome{}, fmt.Errorf("sessions at step 1 %.60q: %d texts", s, len(texts))
	}
	return o, nil
}

// one parses one outcome, encode's text, its times kept in d.times.
func (d *outcomeDecoder) one(s string) (funnelOutcome, error) {
	var o funnelOutcome
	if s == "" {
		return o, nil
	}
	nums, texts, err := cutTexts(s, d.texts[:0])
	d.texts = texts
	if err != nil {
		return o, err
	}
	levelText, rest, ok := strings.Cut(nums, " ")
	if !ok || rest == "" {
		return o, fmt.Errorf("funnel outcome %.60q: want a level and times", s)
	}
	level, err := strconv.Atoi(levelText)
	if err != nil || level < 1 || level > MaxFunnelSteps {
		return o, fmt.Errorf("funnel outcome %.60q: bad level", s)
	}
	o.level = level
	first := len(d.times)
	for more := true; more; {
		var f string
		f, rest, more = strings.Cut(rest, " ")
		t, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return o, fmt.Errorf("funnel outcome %.60q: %w", s, err)
		}
		if len(d.times)-first == level {
			return o, fmt.Errorf("funnel outcome %.60q: bad level", s)
		}
		d.times = append(d.times, t)
	}
	o.times = d.times[first:len(d.times):len(d.times)]
	if d.breakdown {
		if len(texts) == 0 {
			return o, fmt.Errorf("funnel outcome %.60q: no breakdown value", s)
		}
		o.attr, texts = texts[0], texts[1:]
	}
	switch len(texts) {
	case 0:
	case 3, 4:
		o.drop = &dropout{hasNext: len(texts) == 4}
		copy(o.drop.last[:], texts)
		if o.drop.hasNext {
			o.drop.next = texts[3]
		}
	default:
		return o, fmt.Errorf("funnel outcome %.60q: %d texts", s, len(texts))
	}
	return o, nil
}

// add sums outcome o into a, as funnelAgg.add does for the unit and path it came from.
func (d *outcomeDecoder) add(a *funnelAgg, mode Mode, o funnelOutcome) {
	if o.level == 0 {
		return
	}
	if o.stepOne > 0 {
		a.addStepOne(o.attr, o.stepOne)
		return
	}
	d.unit, d.path = d.unit[:0], d.path[:0]
	for i, t := range o.times {
		d.unit, d.path = append(d.unit, unitEvent{t: t}), append(d.path, i)
	}
	d.unit[0].attr = 1 // the value of unit[0] (at 0) in values
	d.value[0] = o.attr
	a.add(mode, d.unit, breakdownValues{attrs: attrTable{values: d.value[:], stride: 1, width: 1}}, o.level, d.path)
}

// ServeFunnelUDF answers waymark_funnel calls from ClickHouse (executable_pool, RowBinary,
// send_chunk_header=1) read from r, writing the answers to w, until r ends. Input that does not
// follow the format, or a row over the limits, is an error (ClickHouse then fails the query
// with the process's stderr); the memory a row takes is bounded by the limits.
func ServeFunnelUDF(r io.Reader, w io.Writer) error {
	in := bufio.NewReaderSize(r, 1<<16)
	out := bufio.NewWriterSize(w, 1<<16)
	var u udfMatcher
	for chunk := 1; ; chunk++ {
		n, err := readChunkHeader(in)
		if err == io.EOF {
			return out.Flush()
		}
		if err != nil {
			return fmt.Errorf("waymark_funnel: chunk %d: %w", chunk, err)
		}
		u.chunkStart = time.Now() // the chunk's deadline counts from here (matchContext)
		u.chunkSpec = false
		for row := uint64(1); row <= n; row++ {
			if err := u.safeRow(in, out); err != nil {
				u.endChunk()
				return fmt.Errorf("waymark_funnel: chunk %d, row %d: %w", chunk, row, err)
			}
		}
		u.endChunk()
		if err := out.Flush(); err != nil {
			return fmt.Errorf("waymark_funnel: write answers: %w", err)
		}
	}
}

// readChunkHeader reads "N\n"; io.EOF when the input ends before it.
func readChunkHeader(in *bufio.Reader) (uint64, error) {
	var n uint64
	for i := 0; ; i++ {
		c, err := in.ReadByte()
		if err == io.EOF && i == 0 {
			return 0, io.EOF
		}
		if err != nil {
			return 0, fmt.Errorf("read chunk header: %w", noEOF(err))
		}
		switch {
		case c == '\n' && i > 0:
			return n, nil
		case c < '0' || c > '9' || i >= 18:
			return 0, fmt.Errorf("bad chunk header (byte %d is %#02x): want the row count and a newline", i, c)
		}
		n = n*10 + uint64(c-'0')
	}
}

// noEOF turns an io.EOF inside a row into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// udfMatcher matches the rows of one UDF process, keeping its scratch space and the last spec's
// read.
type udfMatcher struct {
	chunkStart time.Time // when the chunk's header was read
	// deadline is the chunk's: chunkStart plus the plan's timeout (made for deadlineOf), which a
	// unit's path search stops at; made once a chunk (a timer each unit cost a sixth of the
	// UDF's CPU), by matchContext
	deadline   context.Context
	deadlineOf time.Duration
	cancel     context.CancelFunc
	spec       []byte
	read       *udfRead
	chunkSpec  bool        // a row of the chunk held a spec: an empty one is the row before's
	cols       [4][]uint64 // t, seq, mask, id
	attrs      []string    // as read: one attribute column after another (attrTable.values)
	decoded    []string    // the attributes, when some come as codes (udfPack.decodeAttrs)
	visitNums  [4][]uint64 // visits, start, end, start_seq
	visitTexts [4][]string // keys, reason, channel, campaign
	space      visitSpace  // the space of the last row's visits (see readVisits)
	// a stages query's scratch space and outcome
	stageEntered []int64
	stageLeft    []bool
	stageOutcome stagesOutcome
	events       []scannedEvent
	sorter       eventSorter   // sorts events, in its space or theirs
	part         readerScratch // a batch's part of the person being answered (scanReader.partOf)
	ids          []uint64
	buf          []byte
	partAnswer   []byte           // a batch part's answer, while it is made
	unitAnswer   []byte           // a session's outcome, while a plan by sessions answers
	stepOne      stepOneCounts    // its sessions that reached step 1 alone, while it answers
	labels       []string         // a correlation's unit's labels, while it is answered
	sessions     []sessionOutcome // a sessions query's person's sessions, while they are answered
	sessionsSum  sessionsSum      // their sum, as answered
	scratch      [8 * 1024]byte
}

// safeRow is row, with a panic (a bug: input is checked before it is used) turned into the
// row's error, so ClickHouse reports it rather than a process that died.
func (u *udfMatcher) safeRow(in *bufio.Reader, out *bufio.Writer) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("internal error: %v", p)
		}
	}()
	return u.row(in, out)
}

// row reads one row and writes its answer: its one query's, or, for a batch, every part's
// (appendText's, in the parts' order; empty when every part's is).
func (u *udfMatcher) row(in *bufio.Reader, out *bufio.Writer) error {
	spec, err := readBytes(in, u.buf[:0], maxUDFSpecBytes)
	if err != nil {
		return fmt.Errorf("read spec: %w", err)
	}
	u.buf = spec
	switch {
	case len(spec) == 0 && !u.chunkSpec:
		return errors.New("no spec: the first row of a chunk must hold one (an empty spec is the row before's)")
	case len(spec) == 0: // the row before's
	case u.read == nil || !bytes.Equal(spec, u.spec):
		if u.read, err = parseUDFRead(spec); err != nil {
			u.read = nil
			return err
		}
		u.spec = append(u.spec[:0], spec...)
	}
	u.chunkSpec = true
	pack := u.read.pack
	coded := pack != nil && pack.Codes != nil // the mask column holds the codes
	for i, name := range []string{"t", "seq", "mask", "id"} {
		if u.cols[i], err = u.readUint64s(in, u.cols[i][:0]); err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		switch {
		case i == 2 && pack != nil && !coded && len(u.cols[i]) > 0:
			return fmt.Errorf("%d values of mask, want none: the spec packs it with t", len(u.cols[i]))
		case len(u.cols[i]) != len(u.cols[0]) && !(i == 2 && pack != nil && !coded):
			return fmt.Errorf("%d values of %s for %d events", len(u.cols[i]), name, len(u.cols[0]))
		}
	}
	n, cols, texts := len(u.cols[0]), u.read.attrs, pack.textAttrs(u.read.attrs)
	if u.attrs, err = readStrings(in, u.attrs[:0], maxUDFEvents*max(texts, 1)); err != nil {
		return fmt.Errorf("read attrs: %w", err)
	}
	if want := n * texts; len(u.attrs) != want {
		return fmt.Errorf("%d attribute values for %d events of %d attributes sent as text, want %d", len(u.attrs), n, texts, want)
	}
	attrs := attrTable{values: u.attrs, stride: n, width: cols}
	if coded {
		if u.decoded, err = pack.decodeAttrs(u.decoded[:0], u.cols[2], u.attrs, n); err != nil {
			return err
		}
		attrs.values = u.decoded
	}
	rows, err := u.readVisits(in)
	if err != nil {
		return err
	}
	u.events = u.events[:0]
	for i := range n {
		e := scannedEvent{seq: int64(u.cols[1][i]), id: u.cols[3][i], at: int32(i)}
		if pack != nil {
			e.t, e.mask = pack.unpack(u.cols[0][i]) // and mask holds codes, or nothing
		} else {
			e.t, e.mask = int64(u.cols[0][i]), u.cols[2][i]
		}
		u.events = append(u.events, e)
	}
	u.events = u.sorter.sort(u.events, attrs) // the scan's order, so equal copies sort the same way too
	if !u.read.batch {
		p := &u.read.parts[0]
		answer, err := u.answerPart(p, cutBefore(dedupe(u.events, &u.ids), p.plan.scan.from), attrs, rows, u.buf[:0])
		if err != nil {
			return err
		}
		return u.answer(out, answer)
	}
	answer, answered := u.buf[:0], false
	for i := range u.read.parts {
		p := &u.read.parts[i]
		events, partAttrs := p.reader.partOf(u.events, attrs, true, &u.part)
		if u.partAnswer, err = u.answerPart(p, events, partAttrs, rows, u.partAnswer[:0]); err != nil {
			return fmt.Errorf("query %d of the batch: %w", i+1, err)
		}
		answer, answered = appendText(answer, u.partAnswer), answered || len(u.partAnswer) > 0
	}
	u.part.trim()
	if !answered {
		answer = answer[:0]
	}
	return u.answer(out, answer)
}

// answerPart appends to answer a part's answer for a person's events (its own: deduplicated, in
// its time range, with its conditions' bits and its attributes), whose keys' visits are rows
// (nil when the read has none); an empty answer says the person reached no step or anchor.
func (u *udfMatcher) answerPart(p *udfPart, events []scannedEvent, attrs attrTable, rows *visitRows, answer []byte) ([]byte, error) {
	plan := p.plan
	var visits *visits
	if plan.keyAttr >= 0 {
		visits = rows.visits(plan.newVisits().from)
	}
	if len(events) == 0 && u.read.batch {
		return answer, nil // no event of its own: as the in-process path, which gives it no person
	}
	if w := plan.sessions; w != nil {
		if plan.udfTimeout > 0 && time.Since(u.chunkStart) > plan.udfTimeout {
			return nil, fmt.Errorf("read %d events: the chunk took over the query's timeout %s", len(events), plan.udfTimeout)
		}
		u.sessions = w.of(u.sessions[:0], events, attrs, visits)
		if len(u.sessions) == 0 {
			return answer, nil
		}
		u.sessionsSum.of(u.sessions)
		return u.sessionsSum.encode(answer), nil
	}
	units := plan.units(events, attrs, visits)
	// The walks below take time linear in the row; the funnel's path search checks the timeout
	// itself, as it goes.
	if !plan.matchesFunnel() && plan.udfTimeout > 0 && time.Since(u.chunkStart) > plan.udfTimeout {
		return nil, fmt.Errorf("read %d events: the chunk took over the query's timeout %s", len(units[0]), plan.udfTimeout)
	}
	if w := plan.anchor; w != nil {
		if at := w.first(units[0]); at >= 0 {
			answer = w.walk(units[0], attrs, at).encode(answer)
		}
		return answer, nil
	}
	if w := plan.stages; w != nil {
		n := len(plan.steps)
		u.stageEntered, u.stageLeft = slices.Grow(u.stageEntered[:0], n)[:n], slices.Grow(u.stageLeft[:0], n)[:n]
		u.stageOutcome.reset(n)
		w.of(units[0], attrs, u.stageEntered, u.stageLeft, &u.stageOutcome)
		return u.stageOutcome.encode(answer), nil
	}
	if w := plan.retention; w != nil {
		if o, ok := w.of(units[0], attrs); ok {
			answer = o.encode(answer)
		}
		return answer, nil
	}
	values := breakdownValues{attrs: attrs, col: plan.attr}
	breakdown := plan.attr >= 0
	ctx := u.matchContext(plan.udfTimeout)
	u.stepOne.reset() // none left of a row that failed
	for _, unit := range units {
		level, path, unit, err := p.finder.reachHeld(ctx, unit, values, plan.hold)
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("match %d events: the chunk took over the query's timeout %s", len(unit), plan.udfTimeout)
		}
		if err != nil {
			return nil, fmt.Errorf("match: %w", err)
		}
		if c := plan.correlation; c != nil {
			if level == 0 {
				continue // not counted: no answer (a person's is then empty)
			}
			u.labels = c.labels(u.labels[:0], unit, attrs, path, level == plan.spec.steps, plan.spec.window)
			if !plan.bySessions {
				answer = encodeCorrelated(answer, level, u.labels)
			} else {
				u.unitAnswer = encodeCorrelated(u.unitAnswer[:0], level, u.labels)
				answer = appendText(answer, u.unitAnswer)
			}
			continue
		}
		o := outcomeOf(plan, unit, values, level, path)
		switch {
		case !plan.bySessions:
			answer = o.encode(answer, breakdown)
		case o.level == 1 && o.drop == nil: // a funnel's: a drop-off's has a dropout
			u.stepOne.add(o.attr)
		case o.level > 0:
			u.unitAnswer = o.encode(u.unitAnswer[:0], breakdown)
			answer = appendText(answer, u.unitAnswer)
		}
	}
	return u.stepOne.appendTo(answer, &u.unitAnswer, breakdown), nil
}

// stepOneCounts counts a person's sessions that reached step 1 alone, by breakdown value, for a
// funnel counted by sessions: such a session adds only to step 1's count (funnelAgg.add), so
// its outcome is answered with the others of its value, as "=" and their number, not as a text
// of its own with its time (spec version 23: at 100M events, nearly every one of 72M visits a
// text of its own, 1.3 GB of answers a query). A drop-off's sessions still answer their own,
// with where each left from.
type stepOneCounts struct {
	counts map[string]int64 // by breakdown value ("" without a breakdown)
	values []string         // the values counted, sorted when answered
}

// add counts a session of breakdown value v (a substring of the person's row, valid until
// appendTo).
func (c *stepOneCounts) add(v string) {
	if c.counts == nil {
		c.counts = map[string]int64{}
	}
	if c.counts[v] == 0 {
		c.values = append(c.values, v)
	}
	c.counts[v]++
}

// appendTo appends the counts to answer, a text each in the values' byte order (scratch is
// space for one), and empties c.
func (c *stepOneCounts) appendTo(answer []byte, scratch *[]byte, breakdown bool) []byte {
	slices.Sort(c.values)
	for _, v := range c.values {
		*scratch = funnelOutcome{level: 1, stepOne: c.counts[v], attr: v}.encode((*scratch)[:0], breakdown)
		answer = appendText(answer, *scratch)
	}
	c.reset()
	return answer
}

// reset empties c.
func (c *stepOneCounts) reset() {
	clear(c.counts)
	c.values = c.values[:0]
}

// readVisits reads a row's visits columns, the visits of the person's keys (see the wire format);
// nil when the read has none (and the columns are empty). They are valid until the next row's.
func (u *udfMatcher) readVisits(in *bufio.Reader) (*visitRows, error) {
	var err error
	nums, texts := &u.visitNums, &u.visitTexts
	if texts[0], err = readStrings(in, texts[0][:0], maxUDFVisits); err != nil {
		return nil, fmt.Errorf("read keys: %w", err)
	}
	for i, name := range []string{"visits", "start", "end", "start_seq"} {
		if nums[i], err = u.readUint64s(in, nums[i][:0]); err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
	}
	for i, name := range []string{"reason", "channel", "campaign"} {
		if texts[i+1], err = readStrings(in, texts[i+1][:0], maxUDFVisits); err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
	}
	keys, counts, n := texts[0], nums[0], len(nums[1])
	reasons := 0 // how many end reasons the spec wants
	if u.read.reasons {
		reasons = n
	}
	switch {
	case u.read.keyAttr < 0 && (len(keys) > 0 || len(counts) > 0 || n > 0 || len(texts[1]) > 0 || len(texts[2]) > 0 || len(texts[3]) > 0):
		return nil, errors.New("visits sent for a spec that reads none")
	case u.read.keyAttr < 0:
		return nil, nil
	case len(counts) != len(keys) && (len(counts) > 0 || len(keys) != n) || len(nums[2]) != n || len(nums[3]) != n || len(texts[1]) != reasons ||
		len(texts[2]) > 0 || len(texts[3]) > 0:
		return nil, fmt.Errorf("visits of %d keys in %d counts, %d starts, %d ends, %d start_seqs, %d reasons (%d wanted), %d channels, %d campaigns (none wanted)",
			len(keys), len(counts), n, len(nums[2]), len(nums[3]), len(texts[1]), reasons, len(texts[2]), len(texts[3]))
	}
	rows, at := newVisitRows(u.space), 0
	for k, key := range keys {
		count := uint64(1) // counts sent empty: each key is one visit's
		if len(counts) > 0 {
			count = counts[k]
		}
		if count > uint64(n-at) {
			return nil, fmt.Errorf("key %d has %d visits, of %d sent", k+1, count, n)
		}
		for range count {
			var kind visitKind
			if reasons > 0 {
				kind.reason = texts[1][at]
			}
			rows.add(key, kind, span{start: int64(nums[1][at]), end: int64(nums[2][at]), startSeq: int64(nums[3][at])})
			at++
		}
	}
	if at != n {
		return nil, fmt.Errorf("%d visits sent, %d counted by key", n, at)
	}
	rows.sort()
	u.space = visitSpace{keys: len(rows.keys), spans: rows.read, slots: rows.table.slots}
	return rows, nil
}

// endChunk lets go of the chunk's deadline.
func (u *udfMatcher) endChunk() {
	if u.cancel != nil {
		u.cancel()
	}
	u.deadline, u.cancel = nil, nil
}

// matchContext is the context a unit's path search runs in: done at the chunk's deadline when
// the plan has a timeout.
func (u *udfMatcher) matchContext(timeout time.Duration) context.Context {
	if timeout <= 0 {
		return context.Background()
	}
	if u.deadline == nil || u.deadlineOf != timeout {
		u.endChunk()
		u.deadline, u.cancel = context.WithDeadline(context.Background(), u.chunkStart.Add(timeout))
		u.deadlineOf = timeout
	}
	return u.deadline
}

// answer writes a row's answer, a RowBinary String, and keeps its buffer for the next row.
func (u *udfMatcher) answer(out *bufio.Writer, answer []byte) error {
	u.buf = answer
	var lenBuf [binary.MaxVarintLen64]byte
	out.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(answer)))])
	out.Write(answer)
	return nil
}

// countSet is how many of set are true.
func countSet(set ...bool) int {
	n := 0
	for _, b := range set {
		if b {
			n++
		}
	}
	return n
}

// readLen reads a RowBinary length (LEB128) and checks it against limit.
func readLen(in *bufio.Reader, limit int) (int, error) {
	n, err := binary.ReadUvarint(in)
	if err != nil {
		return 0, noEOF(err)
	}
	if n > uint64(limit) {
		return 0, fmt.Errorf("length %d over the limit %d", n, limit)
	}
	return int(n), nil
}

// readBytes reads a RowBinary String of at most limit bytes into buf.
func readBytes(in *bufio.Reader, buf []byte, limit int) ([]byte, error) {
	n, err := readLen(in, limit)
	if err != nil {
		return buf, err
	}
	buf = slices.Grow(buf[:0], n)[:n]
	if _, err := io.ReadFull(in, buf); err != nil {
		return buf, noEOF(err)
	}
	return buf, nil
}

// readUint64s reads a RowBinary Array(UInt64) of at most maxUDFEvents values, appending to dst.
func (u *udfMatcher) readUint64s(in *bufio.Reader, dst []uint64) ([]uint64, error) {
	n, err := readLen(in, maxUDFEvents)
	if err != nil {
		return dst, err
	}
	for n > 0 {
		k := min(n, len(u.scratch)/8)
		b := u.scratch[:8*k]
		if _, err := io.ReadFull(in, b); err != nil {
			return dst, noEOF(err)
		}
		for i := range k {
			dst = append(dst, binary.LittleEndian.Uint64(b[8*i:]))
		}
		n -= k
	}
	return dst, nil
}

// readStrings reads a RowBinary Array(String) of at most limit values, each at most
// maxUDFAttrBytes and all together at most maxUDFAttrsBytes, appending to dst.
func readStrings(in *bufio.Reader, dst []string, limit int) ([]string, error) {
	n, err := readLen(in, limit)
	if err != nil {
		return dst, err
	}
	total := 0
	var b []byte
	for range n {
		if b, err = readBytes(in, b, maxUDFAttrBytes); err != nil {
			return dst, err
		}
		if total += len(b); total > maxUDFAttrsBytes {
			return dst, fmt.Errorf("attribute values over %d bytes", maxUDFAttrsBytes)
		}
		dst = append(dst, string(b))
	}
	return dst, nil
}

// errNoFunnelUDF says the server has no waymark_funnel function though the configuration asks
// for in-engine matching.
var errNoFunnelUDF = errors.New("the server has no " + FunnelUDFName + " function (see docs/udf.md), which --funnel-matching=engine requires")

// errFunnelUDFGone says a matching in ClickHouse found no waymark_funnel, though the server had
// it when it was last looked up (it was removed since), before any person's answer.
var errFunnelUDFGone = errors.New("the server no longer has the " + FunnelUDFName + " function")

// matchPlan runs plan's per-person matching where matchInEngine puts it: in ClickHouse, with
// inEngine, or here, with here. When inEngine finds waymark_funnel gone before any person's answer
// (errFunnelUDFGone), the function is looked up again and the matching goes, once more, where that
// lookup puts it: a query answers as if it had been looked up just before it.
func (s *Store) matchPlan(ctx context.Context, plan *funnelPlan, inEngine, here func() error) error {
	for again := false; ; again = true {
		engine, err := s.matchInEngine(ctx)
		if err != nil {
			return err
		}
		if !engine {
			return here()
		}
		if err := inEngine(); again || !errors.Is(err, errFunnelUDFGone) {
			return err
		}
	}
}

// matchInEngine reports whether a query the UDF can take (funnelPlan.udfSpec) runs in ClickHouse, per
// Config.FunnelMatching and the server's functions; a batch's queries too (QueryBatch), read
// together in one read of their own (scanShare.match). Until 2026-12-08 MatchAuto kept a batch's
// queries in Waymark, in the batch's shared read, which took half the time on 1M events then; since
// the UDF's later work the page takes as long in ClickHouse at 1M events and less at 10M and 100M,
// where Waymark held its busiest person's events whole (740 MiB; docs/udf.md, "A batch in one
// read"). Once system.functions lists waymark_funnel the store remembers it
// (Store.funnelUDF: the lookup cost ClickHouse 26.7 20–26 ms of CPU per query), until a matching
// finds the function gone (matchInClickHouse); while it is not listed, each query looks again,
// except on servers older than executable UDFs.
func (s *Store) matchInEngine(ctx context.Context) (bool, error) {
	if s.cfg.FunnelMatching == MatchProcess {
		return false, nil
	}
	if s.funnelUDF.Load() {
		return true, nil
	}
	if major, err := s.serverMajor(ctx); err == nil && major < executableUDFsSince {
		// No server of this version has executable UDFs: looking costs 18.16 about 20 ms a query.
		if s.cfg.FunnelMatching == MatchEngine {
			return false, errNoFunnelUDF
		}
		return false, nil
	}
	var n uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM system.functions WHERE name = ?", FunnelUDFName).Scan(&n); err != nil {
		return false, fmt.Errorf("look for function %s: %w", FunnelUDFName, err)
	}
	if n == 0 && s.cfg.FunnelMatching == MatchEngine {
		return false, errNoFunnelUDF
	}
	s.funnelUDF.Store(n > 0)
	return n > 0, nil
}

// serverMajor is the major version of the ClickHouse server, as clickhouse-go keeps it from a
// connection's hello. Asking may take a connection from the pool, or dial one, and clickhouse-go
// takes no context for it: serverMajor waits for it only until ctx ends (ctx's error then; the
// ask goes on, for at most the dial timeout). Before, a query whose ClickHouse hung waited the
// whole dial timeout here, past its own limit (tester 28's F1).
func (s *Store) serverMajor(ctx context.Context) (uint64, error) {
	type answer struct {
		major uint64
		err   error
	}
	answers := make(chan answer, 1)
	go func() {
		v, err := s.conn.ServerVersion()
		if err != nil {
			answers <- answer{err: err}
			return
		}
		answers <- answer{major: v.Version.Major}
	}()
	select {
	case a := <-answers:
		return a.major, a.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// executableUDFsSince is the first ClickHouse major version with executable UDFs (21.11's
// user_defined_executable_functions_config): older servers are not asked for waymark_funnel.
const executableUDFsSince = 21

// isOtherFunctionFile reports whether err is ClickHouse's answer to a query calling waymark_funnel
// with other arguments than the server's function file declares: a file of another release.
func isOtherFunctionFile(err error) bool {
	var ex *clickhouse.Exception
	return errors.As(err, &ex) && ex.Code == 42 && strings.Contains(ex.Message, FunnelUDFName) // NUMBER_OF_ARGUMENTS_DOESNT_MATCH
}

// isNoFunnelUDF reports whether err is ClickHouse's answer to a query calling waymark_funnel on a
// server without it.
func isNoFunnelUDF(err error) bool {
	var ex *clickhouse.Exception
	return errors.As(err, &ex) && ex.Code == 46 && strings.Contains(ex.Message, FunnelUDFName) // UNKNOWN_FUNCTION
}

// funnelInEngine answers a funnel with the matching in ClickHouse (matchInClickHouse), whose
// per-person outcomes are summed here as the in-process path sums units.
func (s *Store) funnelInEngine(ctx context.Context, plan *funnelPlan, q FunnelQuery) (*FunnelResult, error) {
	agg := newFunnelAgg(len(q.Steps), q.Breakdown.By != "")
	d := outcomeDecoder{breakdown: plan.attr >= 0, bySessions: plan.bySessions, stepOne: plan.bySessions}
	if err := s.matchInClickHouse(ctx, plan, false, func(_, answer string) error {
		return d.each(answer, func(o funnelOutcome) error {
			d.add(agg, q.Mode, o)
			return nil
		})
	}); err != nil {
		return nil, err
	}
	return agg.result(q), nil
}

// matchInClickHouse matches plan's units in ClickHouse: personRows grouped by person into arrays
// for waymark_funnel with plan's spec (udfSpec), in the plan's passes; it hands fn each person's answer (with the
// person's id when withPerson is set, else ""), persons with an empty answer (no step reached, no
// anchor) left out; an error of fn stops the matching and is returned, wrapped. In a batch, the
// queries matched in ClickHouse are read together, in one read (scanShare.match).
func (s *Store) matchInClickHouse(ctx context.Context, plan *funnelPlan, withPerson bool, fn func(person, answer string) error) error {
	if share := shareOf(ctx); share != nil {
		// A part's spec packs nothing: the batch's holds the packing (udfBatchSpec.Pack).
		return share.match(ctx, &engineMatch{plan: plan, spec: plan.udfSpec(s.cfg.QueryTimeout, nil), withPerson: withPerson, fn: fn})
	}
	return s.matchRead(ctx, readOf(plan, withPerson), s.loneSpec(plan), fn)
}

// matchCountedInClickHouse is matchInClickHouse for a query that sums its persons' answers and
// needs no person's id (a correlation analysis): ClickHouse counts the persons of each distinct
// answer (engineRead.counted), and fn is handed each answer once, with how many persons gave it.
// Persons of the same few touchpoints give the same answer, so Waymark reads a row per distinct
// answer, not per person. In a batch, each person's answer comes on its own (n 1).
func (s *Store) matchCountedInClickHouse(ctx context.Context, plan *funnelPlan, fn func(answer string, n int64) error) error {
	if share := shareOf(ctx); share != nil {
		return s.matchInClickHouse(ctx, plan, false, func(_, answer string) error { return fn(answer, 1) })
	}
	read := readOf(plan, false)
	read.counted = true
	return s.matchRead(ctx, read, s.loneSpec(plan), func(count, answer string) error {
		n, err := strconv.ParseInt(count, 10, 64)
		if err != nil || n < 1 {
			return fmt.Errorf("answer %.60q of %q persons", answer, count)
		}
		return fn(answer, n)
	})
}

// loneSpec is the spec of plan's matching read alone, for matchRead to pack.
func (s *Store) loneSpec(plan *funnelPlan) func(*udfPack) string {
	return func(pack *udfPack) string { return plan.udfSpec(s.cfg.QueryTimeout, pack) }
}

// readOf is what plan's matching in ClickHouse reads, alone.
func readOf(plan *funnelPlan, withPerson bool) engineRead {
	v := plan.newVisits()
	return engineRead{scan: plan.scan, keyAttr: plan.keyAttr, visitsFrom: v.from, reasons: v.reasons, withPerson: withPerson}
}

// engineRead is what a matching in ClickHouse reads: a scan's persons (personRows) grouped by
// person for waymark_funnel, with the visits of their customer keys when keyAttr ≥ 0.
type engineRead struct {
	scan       eventScan
	keyAttr    int   // the attribute column of each event's customer key, or -1: no visits
	visitsFrom int64 // the visits sent end at or after it, µs
	reasons    bool  // the visits are sent with their end reasons (visits.reasons)
	withPerson bool  // each answer comes with its person's id
	// counted, when set, asks for each distinct answer once, with how many persons gave it (as
	// text, in place of the person's id): see answersSQL
	counted bool
	// pack, when set, packs each event's time and condition bits (udfPack), for the events of
	// times pack.Base to packTo (µs): those stored when the read began (scanPlan's times).
	pack   *udfPack
	packTo int64
	// visitsByKey, when set, sends each person the visits of the keys of their events, even where
	// no device has sign-ins of several users (keyOfSeveralPersons; matchRead decides it).
	visitsByKey bool
}

// textAttrs is the attribute columns read sends as text: every one, or those its codes leave
// (udfPack.Codes).
func (r engineRead) textAttrs() []int {
	var cols []int
	for i := range r.scan.attrs {
		if r.pack == nil || r.pack.Codes == nil || r.pack.Codes[i] == nil {
			cols = append(cols, i)
		}
	}
	return cols
}

// answersSQL is the query of a pass's answers, query: its rows (person, answer), or when the read
// is counted (answer count as text, answer), one per distinct answer.
func (r engineRead) answersSQL(query string) string {
	if !r.counted {
		return query
	}
	return "SELECT toString(count()), r FROM (\n" + query + "\n) GROUP BY r"
}

// matchRead runs read through waymark_funnel with its spec (specOf the read's packing, which
// matchRead decides), pass by pass (scanPasses), and hands fn each person's answer, as
// matchInClickHouse says.
//
// A reload of waymark_funnel in flight is waited for first; a pass that failed or was given up in
// a way that can leave the function's pool short, or that a short pool causes, starts one
// (renewsFunnelPool).
func (s *Store) matchRead(ctx context.Context, read engineRead, specOf func(*udfPack) string, fn func(person, answer string) error) error {
	if err := s.awaitFunnelPool(ctx); err != nil {
		return fmt.Errorf("wait for the reload of %s: %w", FunnelUDFName, err)
	}
	ctx = s.withEngineReadSettings(ctx)
	plan, err := s.scanPasses(ctx, read.scan, nil)
	if err != nil {
		return err
	}
	if read.keyAttr >= 0 && !plan.id.shared {
		if read.visitsByKey, err = s.keyOfSeveralPersons(ctx, plan.id); err != nil {
			return err
		}
	}
	// The times and condition bits packed in one value when they fit, for the events whose times
	// were stored when the read began: one stored later outside them is left out, as if stored
	// after the read (the passes read whatever is stored when each runs, as in process).
	if read.pack = packingOf(len(read.scan.preds), plan.tMin, plan.tMax); read.pack != nil {
		read.packTo = plan.tMax
		// The attribute columns of few values as numbers, in the mask column the packing frees.
		if len(read.scan.attrs) > 0 {
			if read.pack.Codes, err = s.attrValues(ctx, read.scan); err != nil {
				return err
			}
		}
	}
	spec := specOf(read.pack)
	answered := false
	answer := func(person, answer string) error {
		answered = true
		return fn(person, answer)
	}
	for _, persons := range plan.passes {
		err := s.matchPassInClickHouse(ctx, read, spec, plan.id, persons, answer)
		if renewsFunnelPool(ctx, err) {
			s.renewFunnelPool(err)
		}
		if isOtherFunctionFile(err) {
			return fmt.Errorf("the server's %s function takes other arguments than this release sends: install this release's deploy/clickhouse/waymark_funnel_function.xml and waymark binary on the server (docs/udf.md), or set --funnel-matching=process: %.200w",
				FunnelUDFName, err)
		}
		if isNoFunnelUDF(err) {
			s.funnelUDF.Store(false) // the next query looks it up again
			if !answered {
				return fmt.Errorf("%w: %w", errFunnelUDFGone, err)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// withEngineReadSettings is withQuerySettings for a matching in ClickHouse (matchRead): its passes
// group by person in one level until their groups hold a quarter of QueryMaxMemory, not past
// 1,000 persons. ClickHouse hands waymark_funnel a block at a time, and two-level grouping ends in
// 256 blocks, one per bucket, however few persons a pass holds; for each block 26.7 reads the UDF
// process's threads in /proc (its task list, children, stat and status: about 35 system calls).
// A pass of a 3-step funnel over 20,000 events (18,050 persons) cost ClickHouse 200–230 ms of CPU
// in two levels against 30 in one, a pass of 2.25M events at 10M 1.10–1.31 CPU-s against
// 0.79–0.90 (2026-12-07, docs/query-scale.md). Only two-level groups spill to disk, and ClickHouse
// turns to two levels only by these thresholds: with none by size, a funnel over 50,000 events
// needed a --query-max-memory of 40 MiB where two levels past 1,000 persons answered in 22
// (tester 56's F1), so past a quarter of the limit, before the spill at half, it turns.
//
// A pass grouped in one level ends in blocks of max_block_size persons, and waymark_funnel
// answers a block at a time, which Waymark's driver then reads whole: see engineAnswerBlock.
func (s *Store) withEngineReadSettings(ctx context.Context) context.Context {
	settings := s.querySettings()
	settings["group_by_two_level_threshold"] = 0 // 0: never by the number of keys
	settings["group_by_two_level_threshold_bytes"] = int(max(1, s.cfg.QueryMaxMemory/4))
	settings["max_block_size"] = engineAnswerBlock
	return clickhouse.Context(ctx, clickhouse.WithSettings(settings))
}

// engineAnswerBlock is the most persons a block of a pass matched in ClickHouse holds
// (max_block_size), and so the most persons' answers Waymark's driver holds at once. An answer
// counted by sessions, or a sessions summary's, holds a text for each of the person's sessions:
// at 100M events (72M visits) a pass's 61,000 persons answered in one block of about 130 MB of
// text, and Waymark held 650–700 MiB (ClickHouse's default, 65,536). ClickHouse 26.7 cuts a
// grouping's output in one level by it too; the blocks it reads the events in are smaller already
// (preferred_block_size_bytes, 1 MB).
const engineAnswerBlock = 8192

// attrValues is attrCodes for the attribute columns of sc, from their distinct values among the
// events of its time range stored now (up to maxAttrCodes + 1 a column: a column of more is
// sent as text). An event stored later whose value is not among them is left out of the read,
// as one whose time is outside the packing is: as if stored after the read.
func (s *Store) attrValues(ctx context.Context, sc eventScan) ([][]string, error) {
	var cols []string
	var args []any
	for _, a := range sc.attrs {
		cols = append(cols, fmt.Sprintf("groupUniqArray(%d)(%s)", maxAttrCodes+1, a.sql))
		args = append(args, a.args...)
	}
	inRange := sc.timeRange()
	values := make([][]string, len(sc.attrs))
	dest := make([]any, len(values))
	for i := range values {
		dest[i] = &values[i]
	}
	query := "SELECT " + strings.Join(cols, ", ") + " FROM " + s.table("events") + " WHERE " + inRange.sql
	if err := s.conn.QueryRow(ctx, query, append(args, inRange.args...)...).Scan(dest...); err != nil {
		return nil, fmt.Errorf("read the attributes' values: %w", err)
	}
	return attrCodes(values), nil
}

// engineMatch is one query's matching in ClickHouse in a batch, waiting to be read with the
// batch's others (scanShare.match, Store.matchTogether).
type engineMatch struct {
	ctx        context.Context
	plan       *funnelPlan
	spec       string // plan's udfSpec
	withPerson bool
	fn         func(person, answer string) error
	err        error      // fn's error, or ctx's once it ended: it is given no more answers
	done       chan error // the read's own error, once it ends; buffered
}

// matchTogether matches the queries of ms in ClickHouse in one read: every one's conditions and
// attributes read once (combineScans), their specs in one udfBatchSpec, each person's answer
// holding each query's; each query's is handed to its fn, as matchInClickHouse would alone. An
// error of a query's fn (or its context's end) stops that query, and the read when none is left;
// matchTogether returns the read's own error.
func (s *Store) matchTogether(ctx context.Context, ms []*engineMatch) error {
	if len(ms) == 1 { // alone
		m := ms[0]
		return s.matchRead(ctx, readOf(m.plan, m.withPerson), s.loneSpec(m.plan), m.fn)
	}
	readers := make([]*scanReader, len(ms))
	for i, m := range ms {
		readers[i] = &scanReader{scan: m.plan.scan}
	}
	read := engineRead{scan: combineScans(readers), keyAttr: -1}
	spec := udfBatchSpec{Version: udfSpecVersion, Attrs: len(read.scan.attrs)}
	for i, m := range ms {
		r, plan := readers[i], m.plan
		spec.Parts = append(spec.Parts, udfPartSpec{Spec: json.RawMessage(m.spec), PredBits: r.predBits, AttrCols: r.attrCols, To: plan.scan.to})
		read.withPerson = read.withPerson || m.withPerson
		if plan.keyAttr < 0 {
			continue
		}
		// Every query reading visits reads the customer key: one attribute of the read.
		v := plan.newVisits()
		switch col := r.attrCols[plan.keyAttr]; {
		case read.keyAttr < 0:
			read.keyAttr, read.visitsFrom = col, v.from
		case col != read.keyAttr:
			return fmt.Errorf("match in clickhouse: the batch's customer keys are in columns %d and %d", read.keyAttr, col)
		default:
			read.visitsFrom = min(read.visitsFrom, v.from)
		}
		read.reasons = read.reasons || v.reasons
	}
	spec.KeyAttr = read.keyAttr
	specOf := func(pack *udfPack) string {
		spec.Pack = pack
		b, err := json.Marshal(spec)
		if err != nil {
			panic("BUG: encode the batch's udf spec: " + err.Error())
		}
		return string(b)
	}
	var parts []string
	err := s.matchRead(ctx, read, specOf, func(person, answer string) error {
		head, texts, err := cutTexts(answer, parts[:0])
		if parts = texts; err != nil || head != "" || len(texts) != len(ms) {
			return fmt.Errorf("the batch's answer %.60q: want %d texts (%v)", answer, len(ms), err)
		}
		left := 0
		for i, m := range ms {
			if m.err == nil && m.ctx.Err() != nil {
				m.err = fmt.Errorf("match in clickhouse: %w", m.ctx.Err())
			}
			if m.err == nil && texts[i] != "" {
				m.err = m.fn(person, texts[i])
			}
			if m.err == nil {
				left++
			}
		}
		if left == 0 {
			return errReadersDone
		}
		return nil
	})
	if errors.Is(err, errReadersDone) {
		return nil
	}
	return err
}

// matchPassInClickHouse is one pass of matchInClickHouse, over the persons in r.
func (s *Store) matchPassInClickHouse(ctx context.Context, read engineRead, spec string, id identitySnapshot, r personRange,
	fn func(person, answer string) error) error {
	rows, args, none, err := s.personRows(read.scan, id, r)
	if err != nil || none {
		return err
	}
	s.metrics.scanPasses.Inc()
	noStrings, noNumbers := "CAST([], 'Array(String)')", "CAST([], 'Array(UInt64)')"
	texts := read.textAttrs()
	attrs := noStrings
	if len(texts) > 0 {
		var cols []string
		for _, i := range texts {
			cols = append(cols, fmt.Sprintf("groupArray(a%d)", i))
		}
		attrs = "arrayConcat(" + strings.Join(cols, ", ") + ")"
	}
	person := "'' AS person"
	if read.withPerson {
		person = "person"
	}
	// Each event's time and condition bits, one value each or one together (udfPack).
	times, masks, packed := "groupArray(t)", "groupArray(mask)", ""
	if p := read.pack; p != nil {
		times, masks = fmt.Sprintf("groupArray(bitOr(bitShiftLeft(toUInt64(t - %d), %d), mask))", p.Base, p.Bits), noNumbers
		packed = fmt.Sprintf("\n\tWHERE t >= %d AND t <= %d", p.Base, read.packTo)
	}
	if p := read.pack; p != nil && p.Codes != nil {
		// The coded attributes' codes in the mask column (the others as text, above), each row's
		// worked out once, beside its columns; a row with a value the read's codes lack is left
		// out (attrValues).
		word, wordArgs, known := p.codesSQL()
		rows = `SELECT * FROM (
			SELECT *, ` + word + ` AS codes
			FROM (
			` + rows + `
			)` + packed + `
		)
		WHERE ` + known
		args, masks, packed = slices.Concat(wordArgs, args), "groupArray(codes)", ""
	}
	if read.keyAttr < 0 {
		query := `SELECT ` + person + `, r FROM (
	SELECT person, ` + FunnelUDFName + `(` + specOncePerBlock + `, ` + times + `, groupArray(seq), ` + masks + `, groupArray(id), ` + attrs + `,
		` + noStrings + `, ` + strings.Repeat(noNumbers+", ", 4) + strings.Repeat(noStrings+", ", 2) + noStrings + `) AS r
	FROM (
		` + rows + `
	)` + packed + `
	GROUP BY person
) WHERE r != ''`
		return s.readAnswers(ctx, read.answersSQL(query), append([]any{spec}, args...), fn)
	}
	if !id.shared && !read.visitsByKey {
		return s.matchPassWithPersonVisits(ctx, read, spec, id, r, fn, rows, args, person, times, masks, attrs, packed)
	}
	// The visits of each person's keys: the person's events grouped by person and key, each
	// group joined to its key's visits (grouped by key), then the groups of each person put
	// together (the attribute columns one after another, as above). Each event is in one group,
	// so a person of many keys (a kiosk, a shared account) costs their events once: grouped by
	// person first, their arrays, copied once per key (ARRAY JOIN) to meet each key's visits, took
	// 4 GiB for a person of 500 keys and 200,000 events. That way was faster at 1M events of one
	// key a person (2.4–2.6 s against 3.0–3.5 for a 3-step funnel by sessions), and was dropped.
	var byKey, perPerson []string // the attributes sent as text
	for _, i := range texts {
		perPerson = append(perPerson, fmt.Sprintf("arrayFlatten(groupArray(e.a%ds))", i))
		if i == read.keyAttr {
			// Every event of a (person, key) group has the key: its list is made once a group,
			// not gathered event by event (one pass of the 5-step funnel by channel, 10M events,
			// 26.7: 4.9–5.1 s against 5.4–6.1, ClickHouse's CPU 7.3–7.6 s against 8.2–9.3;
			// docs/query-scale.md).
			byKey = append(byKey, fmt.Sprintf(", arrayWithConstant(count(), key) AS a%ds", i))
			continue
		}
		byKey = append(byKey, fmt.Sprintf(", groupArray(a%d) AS a%ds", i, i))
	}
	attrs = noStrings
	if len(perPerson) > 0 {
		attrs = "arrayConcat(" + strings.Join(perPerson, ", ") + ")"
	}
	visits, visitArgs := s.passVisits(read.scan, id, r, read.visitsFrom, visitColumns{reasons: read.reasons})
	reasons, keyReasons := noStrings, "" // sent only when read (visitColumns.reasons)
	if read.reasons {
		reasons, keyReasons = "arrayFlatten(groupArray(v.reasons))", ",\n\t\t\tgroupArray(reason) AS reasons"
	}
	query := `SELECT ` + person + `, r FROM (
	SELECT person, ` + FunnelUDFName + `(` + specOncePerBlock + `, arrayFlatten(groupArray(e.ts)), arrayFlatten(groupArray(e.seqs)), arrayFlatten(groupArray(e.masks)),
		arrayFlatten(groupArray(e.ids)), ` + attrs + `,
		groupArray(key), groupArray(length(v.starts)), arrayFlatten(groupArray(v.starts)), arrayFlatten(groupArray(v.ends)),
		arrayFlatten(groupArray(v.start_seqs)), ` + reasons + `, ` + noStrings + `, ` + noStrings + `) AS r
	FROM (
		SELECT person, a` + strconv.Itoa(read.keyAttr) + ` AS key, ` + times + ` AS ts, groupArray(seq) AS seqs, ` + masks + ` AS masks,
			groupArray(id) AS ids` + strings.Join(byKey, "") + `
		FROM (
			` + rows + `
		)` + packed + `
		GROUP BY person, key
	) AS e
	LEFT JOIN (
		SELECT key, groupArray(start) AS starts, groupArray(end) AS ends, groupArray(start_seq) AS start_seqs` + keyReasons + `
		FROM (
			` + visits + `
		)
		GROUP BY key
	) AS v USING key
	GROUP BY person
) WHERE r != ''`
	return s.readAnswers(ctx, read.answersSQL(query), append(append([]any{spec}, args...), visitArgs...), fn)
}

// matchPassWithPersonVisits is matchPassInClickHouse's query for a read of visits when no device
// has sign-ins of several users (identitySnapshot.shared) and no key's text names two persons
// (keyOfSeveralPersons): then each visit belongs to the person its session was stored with
// (sessions.person_id, after the merges since, as events' person_id), so the visits are grouped
// by person on their own and joined to the person's events, grouped by person as in a read
// without visits. The keys column then holds each
// visit's key and the visits column is empty, one visit a key sent (the UDF takes a key's visits
// in any order, see visitRows). Grouping the events by person and key, joining each group to its key's visits and
// grouping the groups again by person, as a shared device needs, cost most of the pass: one pass
// of a 3-step funnel by sessions, 2M events, 26.7, without the UDF (lengths of its arguments), 1.9–2.5
// CPU-s and 315–400 MiB this way against 3.3–3.9 CPU-s and 643 MiB (3 runs each, alternating;
// docs/query-scale.md).
func (s *Store) matchPassWithPersonVisits(ctx context.Context, read engineRead, spec string, id identitySnapshot, r personRange,
	fn func(person, answer string) error, rows string, args []any, person, times, masks, attrs, packed string) error {
	visits, visitArgs := s.passVisits(read.scan, id, r, read.visitsFrom, visitColumns{person: true, reasons: read.reasons})
	inRange := r.sql(resolvedPerson)
	noStrings := "CAST([], 'Array(String)')"
	reasons, personReasons := noStrings, "" // sent only when read (visitColumns.reasons)
	if read.reasons {
		reasons, personReasons = "v.reasons", ", groupArray(reason) AS reasons"
	}
	// The visits' counts are sent empty: each key sent is one visit's (see the wire format).
	query := `SELECT ` + person + `, r FROM (
	SELECT person, ` + FunnelUDFName + `(` + specOncePerBlock + `, e.ts, e.seqs, e.masks, e.ids, e.attrs,
		v.keys, CAST([], 'Array(UInt64)'), v.starts, v.ends, v.start_seqs, ` + reasons + `, ` + noStrings + `, ` + noStrings + `) AS r
	FROM (
		SELECT person, ` + times + ` AS ts, groupArray(seq) AS seqs, ` + masks + ` AS masks, groupArray(id) AS ids,
			` + attrs + ` AS attrs
		FROM (
			` + rows + `
		)` + packed + `
		GROUP BY person
	) AS e
	LEFT JOIN (
		SELECT ` + resolvedPerson + ` AS person, groupArray(key) AS keys, groupArray(start) AS starts, groupArray(end) AS ends,
			groupArray(start_seq) AS start_seqs` + personReasons + `
		FROM (
			` + visits + `
		) AS v ANY LEFT JOIN (` + s.personOverrides(id.persons) + `) AS o USING person_id
		WHERE ` + inRange.sql + `
		GROUP BY person
	) AS v USING person
) WHERE r != ''`
	args = append(append(append([]any{spec}, args...), visitArgs...), inRange.args...)
	return s.readAnswers(ctx, read.answersSQL(query), args, fn)
}

// keyOfSeveralPersons reports whether some customer key's events are of several persons after
// the merges of id (their stored persons resolved, resolvedPerson): then a visit of that key holds
// the touchpoints of several persons, and is stored with one of them, so the visits of such a read
// go to each person by the keys of their events, as Waymark's own matching finds them
// (sessionSplit.split), not by the person stored with each visit (matchPassWithPersonVisits,
// where the other persons' touchpoints fell in no visit). Such keys, beside a device several
// users signed in on (identitySnapshot.shared, not looked for here):
//   - one text sent as a device's anonymousId and, alone, as another customer's userId
//     (ingest.DevicePerson keeps them apart; tester 52's F1);
//   - a device whose link to its user was refused, its user holding
//     sessionize.Config.MaxIDsPerPerson ids already: its anonymous events stay its own person's,
//     those sent with the userId are the user's (tester 59's F1), as after any refused link.
//
// One grouping of the events by key (each key's distinct stored persons), then of the keys of
// several stored persons, resolved: at 10M events on 26.7 0.51–0.67 s, against 0.28–0.34 s for
// the check of tester 52's case alone.
func (s *Store) keyOfSeveralPersons(ctx context.Context, id identitySnapshot) (bool, error) {
	var n uint64
	q := `SELECT count() FROM (
		SELECT customer_key FROM (
			SELECT customer_key, arrayJoin(persons) AS person_id FROM (
				SELECT customer_key, groupUniqArray(person_id) AS persons FROM ` + s.table("events") + `
				GROUP BY customer_key HAVING length(persons) > 1
			)
		) AS e ANY LEFT JOIN (` + s.personOverrides(id.persons) + `) AS o USING person_id
		GROUP BY customer_key HAVING min(` + resolvedPerson + `) != max(` + resolvedPerson + `) LIMIT 1
	)`
	if err := s.conn.QueryRow(ctx, q).Scan(&n); err != nil {
		return false, fmt.Errorf("look for a key of several persons: %w", err)
	}
	return n > 0, nil
}

// readAnswers runs a query of rows (person, answer) and hands fn each.
func (s *Store) readAnswers(ctx context.Context, query string, args []any, fn func(person, answer string) error) error {
	res, err := s.conn.Query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("match in clickhouse: %w", err)
	}
	defer res.Close()
	var who, out string
	for n := 1; res.Next(); n++ {
		if n%256 == 0 && ctx.Err() != nil {
			return fmt.Errorf("match in clickhouse: %w", ctx.Err())
		}
		if err := res.Scan(&who, &out); err != nil {
			return fmt.Errorf("match in clickhouse: read row: %w", err)
		}
		if err := fn(who, out); err != nil {
			return fmt.Errorf("match in clickhouse: %w", err)
		}
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("match in clickhouse: %w", err)
	}
	return nil
}
