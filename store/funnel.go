package store

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
)

// MaxFunnelSteps is the most steps a funnel may have.
const MaxFunnelSteps = 32

// MaxWindow is the longest funnel window and query range.
const MaxWindow = 366 * 24 * time.Hour

// MaxExclusions is the most exclusions a funnel may have.
const MaxExclusions = 32

// Units a funnel can count.
const (
	CountPersons  = "persons"
	CountSessions = "sessions"
)

// Breakdown kinds: the value is read from a unit's step-1 event, except a trait, which is the
// person's latest value of it from identify calls.
var breakdownKinds = []string{"channel", "campaign", "device", "trait", "property"}

// FunnelQuery asks how many customers get through a sequence of steps.
type FunnelQuery struct {
	// Steps are event names or stage names of the journey map, in order.
	Steps []string
	// Window is the longest time from a unit's first step to its last (CountBy persons).
	Window time.Duration
	// From and To bound the time of the first step, [From, To); zero means unbounded.
	From, To time.Time
	// Mode is ordered (default), strict or any.
	Mode Mode
	// Exclusions fail a path with an excluded event strictly between two of its consecutive steps.
	Exclusions []Exclusion
	// CountBy is persons (default) or sessions, where a session is the window.
	CountBy string
	// Hold is the name of an event property held constant (Amplitude's and Mixpanel's "hold
	// property constant"), as a breakdown's property is named; "" holds none. A unit then takes
	// the steps with events of one value of it only: it reaches step k when, for some value v,
	// events with the value v take steps 1…k as the mode says, and an event without the property
	// (unset, null or empty, a breakdown's "none") takes no step. Amplitude: "An event property
	// can only hold constant when you instrument it for every event in the funnel"
	// (amplitude.com/docs/analytics/charts/funnel-analysis/funnel-analysis-hold-properties-constant).
	// A unit with several values counts once, at the furthest step any one value reaches, as
	// every unit counts once per step here (Mixpanel's unique users); Amplitude counts each
	// (user, value) pair that converts instead, "the user counts Y times" (the same page).
	// Exclusions and strict order are not held: any excluded (strict: any tracked) event of the
	// unit between two steps rules the path out, whatever its value. The canonical path is the
	// held value's that gets furthest, then whose canonical path is earliest, then of the smaller
	// breakdown value, then of the smaller held value (pathFinder.reachHeld).
	Hold string
	// Breakdown splits the answer by a value; zero: no breakdown.
	Breakdown Breakdown
	// BreakdownLimit is how many breakdown values are listed, the largest first; the rest are
	// summed in a group marked MarkerOther. The units with no value (MarkerNone) are a group of
	// their own, in its place by size, and take no place of the limit. Default 20.
	BreakdownLimit int
}

// Exclusion is an event (or stage) that must not happen between steps After and Before (1-based):
// strictly between the times of any two consecutive steps from After to Before.
type Exclusion struct {
	Step          string
	After, Before int
}

// Breakdown names what a funnel is split by: channel, campaign, device, trait (Name: the trait)
// or property (Name: the event property).
type Breakdown struct {
	By, Name string
}

// String is the breakdown's parameter form, e.g. "trait:customer_type": the name written as
// the parameter reads it back (EscapeStep: "property:coupon\ " for the property "coupon ").
func (b Breakdown) String() string {
	if b.Name == "" {
		return b.By
	}
	return b.By + ":" + EscapeStep(b.Name)
}

// FunnelStep is one row of a funnel answer. Its rates are ratios as ratio computes them, 0 when
// the step they are taken of has no units: step 1's ConversionFromPrevious is 1 when anyone
// reached it, like its ConversionFromFirst, and 0 when no one did.
type FunnelStep struct {
	Name                   string  `json:"name"`
	Customers              int64   `json:"customers"`
	ConversionFromFirst    float64 `json:"conversion_from_first"`    // Customers / step 1's
	ConversionFromPrevious float64 `json:"conversion_from_previous"` // Customers / the previous step's
	DropOff                int64   `json:"drop_off"`                 // Customers - the next step's
	DropOffRate            float64 `json:"drop_off_rate"`            // DropOff / Customers
	LargestDropOff         bool    `json:"largest_drop_off,omitempty"`
	// Time from the previous step on the units' canonical paths, in seconds (not for step 1, nor
	// in mode any).
	MedianSecondsFromPrevious *float64 `json:"median_seconds_from_previous,omitempty"`
	P90SecondsFromPrevious    *float64 `json:"p90_seconds_from_previous,omitempty"`
}

// FunnelGroup is the funnel of the units with one breakdown value.
type FunnelGroup struct {
	Value string `json:"value"` // "" when Marker is set
	// Marker is MarkerNone for the units with no value (unset, empty or null), MarkerOther for
	// the values beyond BreakdownLimit summed; empty for a real value (labels.go).
	Marker string       `json:"marker,omitempty"`
	Steps  []FunnelStep `json:"steps"`
}

// FunnelResult is the answer to a FunnelQuery.
type FunnelResult struct {
	Steps     []FunnelStep  `json:"steps"`
	Mode      Mode          `json:"mode"`
	CountBy   string        `json:"count_by"`
	Hold      string        `json:"hold,omitempty"` // the held property as hold takes it (property:product_id); omitted: none
	Breakdown string        `json:"breakdown,omitempty"`
	Groups    []FunnelGroup `json:"breakdown_groups,omitempty"`
	// TimeToConvert is the distribution of the time from the first step to the last among the
	// units that reach the last step; nil (left out of the JSON) in mode any, where steps are
	// taken in any order and no time from the first to the last is computed.
	TimeToConvert []Bucket `json:"time_to_convert,omitempty"`
	// WindowSeconds is the conversion window, with its sub-second part (1µs: 1e-06); nil
	// (omitted) when counting by sessions, whose session is the window and a window given is not
	// read, so that the answer does not echo a window it did not use (tester 24).
	WindowSeconds *float64   `json:"window_seconds,omitempty"`
	From          *time.Time `json:"from,omitempty"`
	To            *time.Time `json:"to,omitempty"`
}

func (q *FunnelQuery) setDefaults() {
	if q.Mode == "" {
		q.Mode = ModeOrdered
	}
	if q.CountBy == "" {
		q.CountBy = CountPersons
	}
	if q.BreakdownLimit <= 0 {
		q.BreakdownLimit = 20
	}
}

// Validate reports the first problem with the query, naming the parameter.
func (q *FunnelQuery) Validate() error {
	q.setDefaults()
	switch {
	case len(q.Steps) == 0:
		return paramErrorf("steps", "at least one step is required")
	case len(q.Steps) > MaxFunnelSteps:
		return paramErrorf("steps", "at most %d steps, got %d", MaxFunnelSteps, len(q.Steps))
	case q.Window <= 0:
		return paramErrorf("window", "must be positive, got %s", q.Window)
	case q.Window > MaxWindow:
		return paramErrorf("window", "at most 366d, got %s", q.Window)
	case len(q.Exclusions) > MaxExclusions:
		return paramErrorf("exclude", "at most %d exclusions, got %d", MaxExclusions, len(q.Exclusions))
	case !slices.Contains([]Mode{ModeOrdered, ModeStrict, ModeAny}, q.Mode):
		return paramErrorf("mode", "%q is not one of ordered, strict, any", q.Mode)
	case q.CountBy != CountPersons && q.CountBy != CountSessions:
		return paramErrorf("count_by", "%q is not one of persons, sessions", q.CountBy)
	case q.Mode == ModeAny && len(q.Exclusions) > 0:
		return paramErrorf("exclude", "exclusions need mode ordered or strict")
	case len(q.Hold) > MaxTextBytes:
		return paramErrorf("hold", "%d bytes, at most %d", len(q.Hold), MaxTextBytes)
	}
	if err := CheckRange(q.From, q.To); err != nil {
		return err
	}
	for i, s := range q.Steps {
		if strings.TrimSpace(s) == "" {
			return paramErrorf("steps", "step %d is empty", i+1)
		}
		if len(s) > MaxTextBytes {
			return paramErrorf("steps", "step %d is %d bytes, at most %d", i+1, len(s), MaxTextBytes)
		}
	}
	for _, x := range q.Exclusions {
		if strings.TrimSpace(x.Step) == "" {
			return paramErrorf("exclude", "an exclusion has no event")
		}
		if len(x.Step) > MaxTextBytes {
			return paramErrorf("exclude", "%.40q… is %d bytes, at most %d", x.Step, len(x.Step), MaxTextBytes)
		}
		if len(q.Steps) < 2 { // an exclusion given no steps is between the first and the last
			return paramErrorf("exclude", "%s: an exclusion applies between two steps, and the funnel has one step", x.Step)
		}
		if x.After < 1 || x.Before > len(q.Steps) || x.After >= x.Before {
			return paramErrorf("exclude", "%s between steps %d and %d: need 1 ≤ first < second ≤ %d", x.Step, x.After, x.Before, len(q.Steps))
		}
	}
	if b := q.Breakdown; b.By != "" {
		return breakdownError(b.By, b.Name, b.Name != "", b.String())
	}
	return nil
}

// breakdownError returns the problem with a breakdown of the kind by and the name, quoting it
// as written: a query's text where there is one (parseFunnel), so that property: is quoted so,
// not as property (tester 50's F10); nil when there is none. named says a name was written,
// after a colon: channel: is refused with the others taking a name.
func breakdownError(by, name string, named bool, written string) error {
	switch {
	case !slices.Contains(breakdownKinds, by):
		return paramErrorf("breakdown", "%q is not one of channel, campaign, device, trait:NAME, property:NAME", written)
	case (by == "trait" || by == "property") != (name != "") || by != "trait" && by != "property" && named:
		return paramErrorf("breakdown", "%q: trait and property take a name (trait:customer_type), the others none", written)
	}
	return nil
}

// Funnel counts, per step, the units (persons or sessions) that reach it. In the default
// ordered mode a unit reaches step k when distinct events e1…ek match steps 1…k with
// non-decreasing times (equal times in either order), e1 in [From, To) and ek within Window of e1,
// and no excluded event lies strictly between two consecutive steps an exclusion covers.
//
// ClickHouse selects the events that can matter, per person; the exact matching (which
// windowFunnel gets wrong on ties and on steps matching the same event) runs on each person's
// list, deduplicated: inside ClickHouse, in the waymark_funnel executable UDF, when the server has
// it (Config.FunnelMatching), else here as rows stream in. Counting sessions, or breaking down by
// channel or campaign (the entry of the step-1 event's session, its person's first touchpoint in
// the visit, see funnelPlan.units), reads the visits too: here pass by pass (see visits), in the
// UDF each person's (matchPassInClickHouse).
func (s *Store) Funnel(ctx context.Context, jm *sessionize.Map, q FunnelQuery) (*FunnelResult, error) {
	return runQuery(ctx, s, "funnel", func(ctx context.Context) (*FunnelResult, error) { return s.funnel(ctx, jm, q) })
}

func (s *Store) funnel(ctx context.Context, jm *sessionize.Map, q FunnelQuery) (*FunnelResult, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	if err := s.checkFunnelNames(ctx, jm, q); err != nil {
		return nil, err
	}
	plan, err := planFunnel(jm, q)
	if err != nil {
		return nil, err
	}
	if err := s.boundVisits(ctx, plan, q); err != nil {
		return nil, err
	}
	var res *FunnelResult
	err = s.matchPlan(ctx, plan, func() (err error) {
		res, err = s.funnelInEngine(ctx, plan, q)
		return err
	}, func() error {
		agg := newFunnelAgg(len(q.Steps), q.Breakdown.By != "")
		if err := s.matchHere(ctx, "funnel", plan, q, agg, nil); err != nil {
			return err
		}
		res = agg.result(q)
		return nil
	})
	return res, err
}

// largeUnit is how many events a unit has when its matching is logged before it starts: it may
// take long (a bot sends that many), and the log says why a query is slow.
const largeUnit = 10_000

// boundVisits bounds the scan of a plan that reads visits to the events its units can hold.
// Counting sessions with a To: a session's steps are all in its visit, which starts before To
// (its first step does) and ends by the latest end of the visits that start before To and end
// at or after From; later events are in no unit of the range, and are not read (the sessions
// summary bounds its scan alike). Unbounded, a one-day drop-off read every later event. Broken
// down by a session's entry with a From: the entry is its person's first touchpoint in the
// visit (sessionPart.entry), which can be before From, so the scan reads from the earliest start
// of those visits on.
func (s *Store) boundVisits(ctx context.Context, plan *funnelPlan, q FunnelQuery) error {
	toEnd, fromStart := plan.bySessions && !q.To.IsZero(), plan.entryBy != "" && plan.scan.from > 0
	if !toEnd && !fromStart {
		return nil
	}
	hi := int64(math.MaxInt64)
	if !q.To.IsZero() {
		hi = (q.To.UnixMicro() + 999) / 1000
	}
	first, last, err := s.visitBounds(ctx, max(q.From.UnixMilli(), 0), hi)
	if err != nil {
		return err
	}
	if toEnd {
		plan.scan.to = q.To.UnixMicro() // no stored visit: no unit, and the range's events suffice
		if last >= 0 {
			plan.scan.to = max(last*1000+999, plan.scan.to) // the last µs of the visits' last end (ms)
		}
	}
	if fromStart && first >= 0 {
		plan.scan.from = max(min(plan.scan.from, first*1000), 1) // the first µs of the visits' first start (ms)
	}
	return nil
}

// newVisits is the visits a plan that reads them (keyAttr) matches with, of no key yet (a scan
// loads each pass's, see scanVisits; the UDF each person's): those that end at or after its
// from, with their end reasons when it is a sessions summary's.
func (p *funnelPlan) newVisits() *visits {
	return &visits{from: max(p.from, 0), reasons: p.sessions != nil}
}

// matchHere is the matching in Waymark of a query of kind (funnel, dropoff): it reads plan's
// events person by person, matches each unit (a person, or each of their sessions when q counts
// sessions) against plan's steps and adds it to agg; then, unless each is nil, it hands each the
// unit's person, its events, the steps it reached (level) and the events that took them (path).
func (s *Store) matchHere(ctx context.Context, kind string, plan *funnelPlan, q FunnelQuery, agg *funnelAgg,
	each func(person string, unit []unitEvent, attrs attrTable, level int, path []int)) error {
	var sessions *visits // a pass's, when q counts sessions or breaks down by a session's entry
	if plan.keyAttr >= 0 {
		sessions = plan.newVisits()
	}
	finder := newPathFinder(plan.spec)
	return s.scanVisits(ctx, plan.scan, sessions, func(person string, events []scannedEvent, attrs attrTable) error {
		for _, unit := range plan.units(events, attrs, sessions) {
			if len(unit) >= largeUnit {
				s.log.Info("matching a unit with many events; --query-timeout bounds the query", "query", kind, "events", len(unit))
			}
			values := breakdownValues{attrs: attrs, col: plan.attr}
			level, path, unit, err := finder.reachHeld(ctx, unit, values, plan.hold)
			if err != nil {
				return err
			}
			agg.add(q.Mode, unit, values, level, path)
			if each != nil {
				each(person, unit, attrs, level, path)
			}
		}
		return nil
	})
}

// condition is a journey-map rule without its nth requirement; steps share conditions.
type condition struct {
	rule sessionize.Rule
	key  string // ruleKey(rule)
}

// stepPlan says which conditions match a step: any of them, each with its nth requirement.
type stepPlan struct {
	conds []int // index into plan.conds
	nth   []int // per entry of conds: the customer's nth or later matching event (1 = any)
}

type funnelPlan struct {
	conds []condition
	steps []stepPlan
	// needHistory is set when a step counts earlier events (nth > 1), so events before From are read.
	needHistory bool
	spec        matchSpec
	scan        eventScan
	from        int64
	blocks      []uint64         // per condition: the gaps an event matching it blocks
	attr        int              // index of the breakdown attribute read per event, or -1
	traitCond   int              // condition marking events that carry the trait, or -1
	keyAttr     int              // index of the customer_key attribute (count by sessions, entryBy), or -1
	hold        int              // 1 + the index of the held property's attribute (FunnelQuery.Hold); 0: none
	bySessions  bool             // the units are sessions (count by sessions), not persons
	keep        uint64           // conditions whose events are kept though they take no step
	dropoff     *dropoffPlan     // a drop-off's own reads, or nil
	correlation *correlationPlan // a correlation analysis's of touchpoints, or nil
	anchor      *anchorWalk      // what paths or next read around the anchor, or nil
	retention   *retentionWalk   // what a retention query reads of each person, or nil
	stages      *stagesWalk      // what a stages query reads of each person, or nil
	sessions    *sessionsWalk    // what a sessions query reads of each person, or nil
	udfTimeout  time.Duration    // in the UDF: the longest a chunk's matching may take, 0 unbounded
	// entryBy is "channel" or "campaign" when the breakdown is that of the session the unit's
	// step-1 event is in, the value of its entry (see units); "" otherwise. Then entryCond is the
	// condition of touchpoints, whose events the entries are found among.
	entryBy   string
	entryCond int
	// scratch space units reuses from person to person: a query matches one person at a time
	counts  []int
	unitBuf []unitEvent
	keyBuf  []string
	entries sessionEntries // the entries of the person's sessions (entryBy)
	cursor  visitCursor    // finds the visits of the person's events (entryBy)
	unitsOf [][]unitEvent
	split   sessionSplit[unitEvent]
	// what units works out once from steps: per condition, the steps an event matching it can
	// take whatever its place (nth 1), and the steps that need an nth match (nthSteps)
	condSteps []uint64
	nthSteps  []nthStep
}

// nthStep is a step that an event matching cond can take when it is the person's nth or a later
// match of cond.
type nthStep struct {
	step, cond, nth int
}

// stepsOfConds fills condSteps and nthSteps, once.
func (p *funnelPlan) stepsOfConds() {
	if p.condSteps != nil {
		return
	}
	p.condSteps = make([]uint64, len(p.conds))
	for k, sp := range p.steps {
		for j, c := range sp.conds {
			if sp.nth[j] <= 1 {
				p.condSteps[c] |= 1 << k
			} else {
				p.nthSteps = append(p.nthSteps, nthStep{step: k, cond: c, nth: sp.nth[j]})
			}
		}
	}
}

// addCondition returns the index of r's condition, adding it when new. Each condition keeps its
// key: computing the keys anew for every step made a funnel of 32 long steps spend seconds here.
func (p *funnelPlan) addCondition(r sessionize.Rule) int {
	key := ruleKey(r)
	for i, c := range p.conds {
		if c.key == key {
			return i
		}
	}
	p.conds = append(p.conds, condition{rule: r, key: key})
	return len(p.conds) - 1
}

func ruleKey(r sessionize.Rule) string {
	key := strings.Join(r.Types, "\x00") + "\x01" + strings.Join(r.Events, "\x00") + "\x01" + strings.Join(r.Channels, "\x00")
	for i := range r.Where {
		key += "\x01" + r.Where[i].Key()
	}
	return key
}

// checkFunnelNames checks the names of a funnel's steps and exclusions.
func (s *Store) checkFunnelNames(ctx context.Context, jm *sessionize.Map, q FunnelQuery) error {
	if err := s.checkNames(ctx, jm, "steps", q.Steps...); err != nil {
		return err
	}
	for _, x := range q.Exclusions {
		if err := s.checkNames(ctx, jm, "exclude", x.Step); err != nil {
			return err
		}
	}
	if q.Hold != "" {
		if err := s.checkHoldKey(ctx, q.Hold); err != nil {
			return err
		}
	}
	switch q.Breakdown.By {
	case "property":
		return s.checkBreakdownKey(ctx, "breakdown", ingest.PropertyKey(q.Breakdown.Name))
	case "trait":
		return s.checkBreakdownKey(ctx, "breakdown", ingest.TraitPrefix+q.Breakdown.Name)
	}
	return nil
}

// planSteps resolves the steps' names into conditions.
func planSteps(jm *sessionize.Map, names []string) funnelPlan {
	var p funnelPlan
	for _, name := range names {
		var sp stepPlan
		for _, r := range stepRules(jm, name) {
			nth := r.Needs()
			base := r
			base.Nth = 0
			sp.conds = append(sp.conds, p.addCondition(base))
			sp.nth = append(sp.nth, nth)
			p.needHistory = p.needHistory || nth > 1
		}
		p.steps = append(p.steps, sp)
	}
	return p
}

// plainPlan resolves names into conditions and a scan of the events matching them: no exclusions,
// breakdown or sessions, for the queries that read steps without running a funnel.
func plainPlan(jm *sessionize.Map, names []string) *funnelPlan {
	p := planSteps(jm, names)
	p.blocks = make([]uint64, len(p.conds))
	p.attr, p.traitCond, p.keyAttr, p.from = -1, -1, -1, math.MinInt64
	// Never matched as a funnel; its steps and a mode make it a plan the UDF takes (udfSpec).
	p.spec = matchSpec{steps: len(p.steps), mode: ModeOrdered}
	for _, c := range p.conds {
		p.scan.preds = append(p.scan.preds, rulePredicate(c.rule))
	}
	return &p
}

// planFunnel works out the conditions, the events to read and how to match them.
func planFunnel(jm *sessionize.Map, q FunnelQuery) (*funnelPlan, error) {
	p := planSteps(jm, q.Steps)
	n, stepConds := len(q.Steps), len(p.conds)
	p.blocks = make([]uint64, len(p.conds))
	block := func(c int, gaps uint64) {
		for len(p.blocks) <= c {
			p.blocks = append(p.blocks, 0)
		}
		p.blocks[c] |= gaps
	}
	for _, x := range q.Exclusions {
		var gaps uint64
		for g := x.After - 1; g < x.Before-1; g++ {
			gaps |= 1 << g
		}
		for _, r := range stepRules(jm, x.Step) {
			if r.Needs() > 1 {
				return nil, paramErrorf("exclude", "stage %q counts nth events, which an exclusion cannot use", x.Step)
			}
			block(p.addCondition(r), gaps)
		}
	}
	if q.Mode == ModeStrict {
		block(p.addCondition(sessionize.Rule{Types: sessionize.TouchpointTypes()}), 1<<n-1)
	}
	if b := q.Breakdown.By; b == "channel" || b == "campaign" {
		// A unit's value is the channel or campaign its step-1 event's session entered by: its
		// person's first touchpoint in the visit (sessionPart.entry), so every touchpoint is read.
		p.entryBy, p.entryCond = b, p.addCondition(sessionize.Rule{Types: sessionize.TouchpointTypes()})
		block(p.entryCond, 0)
	}
	p.attr, p.traitCond, p.keyAttr = -1, -1, -1
	var attrs []predicate
	switch b := q.Breakdown; b.By {
	case "channel":
		attrs = append(attrs, predicate{sql: "channel"})
	case "campaign":
		attrs = append(attrs, predicate{sql: "campaign_name"})
	case "device":
		attrs = append(attrs, storedValue(ingest.DeviceTypeKey))
	case "property":
		attrs = append(attrs, propertyValue(b.Name))
	case "trait":
		attrs = append(attrs, storedValue(ingest.TraitPrefix+b.Name))
	}
	if len(attrs) > 0 {
		p.attr = 0
	}
	if q.Hold != "" {
		attrs = append(attrs, heldValueSQL(q.Hold))
		p.hold = len(attrs) // 1 + its column
	}
	preds := make([]predicate, 0, len(p.conds)+1)
	for _, c := range p.conds {
		preds = append(preds, rulePredicate(c.rule))
	}
	if q.Breakdown.By == "trait" {
		// The events that set the trait's top-level trait in any way (a value, null, an object,
		// a member of one), which replaces all of it: the latest of them gives the person's value
		// (which reads "" when that event set the top-level trait but not this member).
		p.traitCond = len(preds)
		top := ingest.TraitPrefix + ingest.TopTrait(q.Breakdown.Name)
		preds = append(preds, predicate{sql: "arrayExists(k -> k = ? OR substring(k, 1, ?) = ?, arrayConcat(prop_keys, null_keys))",
			args: []any{top, len(top) + 1, top + "."}})
	}
	p.bySessions = q.CountBy == CountSessions
	if p.bySessions || p.entryBy != "" {
		p.keyAttr = len(attrs)
		attrs = append(attrs, predicate{sql: "customer_key"})
	}
	if len(preds) > 64 {
		param := "steps"
		if stepConds < 64 && len(q.Exclusions) > 0 {
			param = "exclude"
		}
		return nil, paramErrorf(param, "the steps, exclusions and breakdown need %d conditions, at most 64", len(preds))
	}
	p.spec = matchSpec{steps: n, mode: q.Mode, from: math.MinInt64, to: math.MaxInt64, window: q.Window.Microseconds()}
	p.from = math.MinInt64
	if !q.From.IsZero() {
		p.spec.from, p.from = q.From.UnixMicro(), q.From.UnixMicro()
	}
	if !q.To.IsZero() {
		p.spec.to = q.To.UnixMicro()
	}
	p.scan = eventScan{preds: preds, attrs: attrs}
	if !q.From.IsZero() && !p.needHistory && p.traitCond < 0 {
		p.scan.from = q.From.UnixMicro()
	}
	if q.CountBy == CountSessions {
		p.spec.window = math.MaxInt64 / 2 // the session is the window
	} else if !q.To.IsZero() {
		p.scan.to = q.To.Add(q.Window).UnixMicro()
	}
	return &p, nil
}

// units turns one person's events, with their attributes, into funnel units: the person, or
// each of their sessions. The units are valid until the next call: their space is reused from
// person to person.
func (p *funnelPlan) units(events []scannedEvent, attrs attrTable, sessions *visits) [][]unitEvent {
	if !inScanOrder(events) {
		slices.SortFunc(events, compareScanned)
	}
	p.stepsOfConds()
	clear(p.unitsOf) // not the last person's units, while this one's are made
	counts := append(p.counts[:0], make([]int, len(p.conds))...)
	conds := ^uint64(0) >> (64 - len(p.conds)) // the mask bits of p.conds; there are 1 to 64
	trait := int32(0)                          // the person's trait value, as unitEvent.attr
	// out is sized once, for a heavy person's sake
	out, keys := slices.Grow(p.unitBuf[:0], len(events)), p.keyBuf[:0]
	if p.entryBy != "" {
		p.entries.find(events, attrs, p.keyAttr, 1<<p.entryCond, sessions)
		p.cursor.reset(sessions)
	}
	defer func() { p.counts, p.unitBuf, p.keyBuf = counts, reuse(out), reuse(keys) }()
	for i := range events {
		e := &events[i]
		u := unitEvent{t: e.t, seq: e.seq, mask: e.mask, at: e.at}
		for m := e.mask & conds; m != 0; m &= m - 1 {
			c := bits.TrailingZeros64(m)
			counts[c]++
			u.blocks |= p.blocks[c]
			u.steps |= p.condSteps[c]
		}
		for _, ns := range p.nthSteps {
			if e.mask&(1<<ns.cond) != 0 && counts[ns.cond] >= ns.nth {
				u.steps |= 1 << ns.step
			}
		}
		if p.traitCond >= 0 && e.mask&(1<<p.traitCond) != 0 {
			trait = e.at + 1 // the latest value wins
		}
		if p.attr >= 0 {
			u.attr = e.at + 1
		}
		if (u.steps|u.blocks) == 0 && e.mask&p.keep == 0 || u.t < p.from {
			continue
		}
		if p.entryBy != "" {
			// The channel or campaign a session entered by is that of its first touchpoint (GA4's
			// session source, PostHog's $session_entry_utm_source), which an event later in the
			// visit mostly lacks: a product viewed three pages after arriving from a search ad
			// is of the paid_search session. A session is the person's part of the visit, so on
			// a shared device the second user to sign in enters by their own first touchpoint,
			// not the first user's campaign (see sessionEntries). An event of no stored visit, or
			// of a visit where its person has no touchpoint, keeps its own.
			if v := p.cursor.at(attrs.value(e.at, p.keyAttr), e.t, e.seq); v >= 0 {
				if at, ok := p.entries.of(v); ok {
					u.attr = at + 1
				}
			}
		}
		out = append(out, u)
		if p.keyAttr >= 0 {
			keys = append(keys, attrs.value(e.at, p.keyAttr))
		}
	}
	if p.traitCond >= 0 {
		for i := range out {
			out[i].attr = trait
		}
	}
	if !p.bySessions {
		p.unitsOf = append(p.unitsOf[:0], out)
		return p.unitsOf
	}
	p.unitsOf = p.unitsOf[:0]
	for _, part := range p.split.split(out, keys, func(e unitEvent) (int64, int64) { return e.t, e.seq }, sessions) {
		p.unitsOf = append(p.unitsOf, part.events)
	}
	return p.unitsOf
}

// sessionPart is one person's events within one visit: a session, as every query that counts
// sessions counts them (see sessionSplit.split).
type sessionPart[E any] struct {
	visit  span
	index  int32 // the visit's in the visits split by (visits.spans)
	events []E
}

// sessionSplit splits persons' events by session (see split), in space it reuses from one person
// to the next.
type sessionSplit[E any] struct {
	parts  []sessionPart[E]
	counts []int   // per part, its events
	unitOf []int32 // per event, its part; -1: none
	partOf []int32 // per visit (its index in visits.spans), its part + 1 while a person is split
	events []E     // the parts' events, side by side
	cursor visitCursor
}

// split is the rule of the session unit, which every query that counts sessions uses (funnels
// and drop-offs by sessions, the sessions summary): it splits one person's events, sorted, by the
// visit (stored session of their customer key, from sessions) each falls in, so a session is a
// person's events within one visit of a device. A visit in which one person logs in is one
// session; a visit shared by several signed-in persons is one session per person, as Amplitude
// and Mixpanel count sessions per user. keys[i] is the customer key of events[i], and at gives an
// event's time (µs, as the visits') and seq. Events of no stored session yet are left out. The
// sessions come in the order of their first events, and are valid until the next call.
//
// An event's visit is the latest of its key's visits that starts at or before it by the tie
// rule (span.startsBy: time, then seq, as the sessionizer ordered the events it cut visits
// from), unless that one ended before it. So visits of one key cut within one millisecond (a
// client session id changing between events 500 µs apart) or between events of one microsecond
// (a client session id changing within a second-precision timestamp, max_events over a burst
// stamped alike) are sessions apart. Visits of one key starting at one place (rows stored before
// start_seq) are one session here: the events there all fall in the last of them (by end, then
// end reason: see visitRows.sort), the one the search finds. So a session is named by that
// visit's index in sessions.spans.
func (s *sessionSplit[E]) split(events []E, keys []string, at func(E) (t, seq int64), sessions *visits) []sessionPart[E] {
	parts, counts := reuse(s.parts), reuse(s.counts)
	unitOf := slices.Grow(reuse(s.unitOf), len(events))[:len(events)]
	if len(s.partOf) < len(sessions.spans) {
		s.partOf = make([]int32, len(sessions.spans))
	}
	s.cursor.reset(sessions)
	for i, e := range events {
		t, seq := at(e)
		visit := s.cursor.at(keys[i], t, seq)
		if visit < 0 {
			unitOf[i] = -1
			continue
		}
		if s.partOf[visit] == 0 {
			parts, counts = append(parts, sessionPart[E]{visit: sessions.spans[visit], index: visit}), append(counts, 0)
			s.partOf[visit] = int32(len(parts))
		}
		u := s.partOf[visit] - 1
		unitOf[i] = u
		counts[u]++
	}
	all := slices.Grow(reuse(s.events), len(events))
	for u := range parts {
		s.partOf[parts[u].index] = 0 // for the next person
		parts[u].events = all[len(all) : len(all) : len(all)+counts[u]]
		all = all[:len(all)+counts[u]]
	}
	for i, e := range events {
		if u := unitOf[i]; u >= 0 {
			parts[u].events = append(parts[u].events, e)
		}
	}
	s.parts, s.counts, s.unitOf, s.events = parts, counts, unitOf, all
	return parts
}

// entry is the event the session enters by: its person's first touchpoint in the visit, the
// first of the part's events when the person's touchpoints were split (as the sessions summary
// splits them, and sessionEntries). The sessions summary's entry channel and a funnel's breakdown
// by channel or campaign take the entry's, the one rule of a session's entry: GA4's session
// source and PostHog's $session_entry_utm_source are the same.
func (s sessionPart[E]) entry() E { return s.events[0] }

// sessionEntries finds the entries (sessionPart.entry) of one person's sessions among their
// events, in space it reuses from person to person.
type sessionEntries struct {
	split   sessionSplit[scannedEvent]
	touched []scannedEvent // the person's touchpoints
	keys    []string       // their customer keys
	entryAt []int32        // per visit (its index in visits.spans): 1 + the at of its entry; 0: none
	set     []int32        // the visits entryAt is set for
}

// find finds the entries of the sessions of one person's events (sorted; the touchpoints are
// those matching a condition of touchpoint, their customer keys in attribute column keyAttr) in
// the visits v, for of.
func (s *sessionEntries) find(events []scannedEvent, attrs attrTable, keyAttr int, touchpoint uint64, v *visits) {
	for _, i := range s.set {
		s.entryAt[i] = 0
	}
	if len(s.entryAt) < len(v.spans) {
		s.entryAt = make([]int32, len(v.spans))
	}
	s.set, s.touched, s.keys = s.set[:0], s.touched[:0], s.keys[:0]
	for _, e := range events {
		if e.mask&touchpoint != 0 {
			s.touched, s.keys = append(s.touched, e), append(s.keys, attrs.value(e.at, keyAttr))
		}
	}
	for _, part := range s.split.split(s.touched, s.keys, func(e scannedEvent) (int64, int64) { return e.t, e.seq }, v) {
		s.entryAt[part.index], s.set = part.entry().at+1, append(s.set, part.index)
	}
}

// of is the at (scannedEvent.at) of the entry of the person's session in visit (its index in
// the visits' spans), ok false when the person has no touchpoint in it.
func (s *sessionEntries) of(visit int32) (at int32, ok bool) {
	if a := s.entryAt[visit]; a > 0 {
		return a - 1, true
	}
	return 0, false
}

// funnelAgg sums units into the funnel's steps, overall and per breakdown value.
type funnelAgg struct {
	steps     int
	total     *stepCounts
	groups    map[string]*stepCounts
	toConvert *histogram
}

// convertBars are the time-to-convert histogram's bars.
var convertBars = []bar{{"≤ 1m", time.Minute}, {"1–10m", 10 * time.Minute}, {"10m–1h", time.Hour}, {"1–6h", 6 * time.Hour},
	{"6–24h", 24 * time.Hour}, {"1–7d", 7 * 24 * time.Hour}, {"> 7d", math.MaxInt64}}

type stepCounts struct {
	reached []int64
	gaps    [][]int64 // per step: µs from the previous step on each unit's canonical path
}

func newStepCounts(steps int) *stepCounts {
	return &stepCounts{reached: make([]int64, steps), gaps: make([][]int64, steps)}
}

func newFunnelAgg(steps int, breakdown bool) *funnelAgg {
	a := &funnelAgg{steps: steps, total: newStepCounts(steps), toConvert: newHistogram(convertBars)}
	if breakdown {
		a.groups = map[string]*stepCounts{}
	}
	return a
}

func (a *funnelAgg) add(mode Mode, unit []unitEvent, values breakdownValues, level int, path []int) {
	if level == 0 {
		return
	}
	if level == a.steps && a.steps > 1 && mode != ModeAny {
		a.toConvert.add(time.Duration(unit[path[level-1]].t-unit[path[0]].t) * time.Microsecond)
	}
	targets := []*stepCounts{a.total}
	if a.groups != nil {
		targets = append(targets, a.group(values.of(unit[path[0]])))
	}
	for _, sc := range targets {
		for k := range level {
			sc.reached[k]++
			if k > 0 && mode != ModeAny {
				sc.gaps[k] = append(sc.gaps[k], unit[path[k]].t-unit[path[k-1]].t)
			}
		}
	}
}

// group is the counts of the units of breakdown value v ("" for none: MarkerNone).
func (a *funnelAgg) group(v string) *stepCounts {
	value := cmp.Or(v, markNone)
	g := a.groups[value]
	if g == nil {
		g = newStepCounts(a.steps)
		a.groups[strings.Clone(value)] = g // not the row's text the value was cut from
	}
	return g
}

// addStepOne adds n units that reached step 1 alone, of breakdown value v, as add adds each.
func (a *funnelAgg) addStepOne(v string, n int64) {
	a.total.reached[0] += n
	if a.groups != nil {
		a.group(v).reached[0] += n
	}
}

func (a *funnelAgg) result(q FunnelQuery) *FunnelResult {
	res := &FunnelResult{Mode: q.Mode, CountBy: q.CountBy, Breakdown: q.Breakdown.String()}
	if q.Hold != "" {
		res.Hold = "property:" + EscapeStep(q.Hold)
	}
	if q.CountBy != CountSessions {
		res.WindowSeconds = new(q.Window.Seconds())
	}
	if !q.From.IsZero() {
		res.From = &q.From
	}
	if !q.To.IsZero() {
		res.To = &q.To
	}
	res.Steps = funnelSteps(q.Steps, a.total)
	if q.Mode != ModeAny {
		res.TimeToConvert = a.toConvert.buckets()
	}
	if a.groups == nil {
		return res
	}
	values := make([]string, 0, len(a.groups))
	for v := range a.groups {
		values = append(values, v)
	}
	slices.SortFunc(values, func(x, y string) int {
		return cmp.Or(cmp.Compare(a.groups[y].reached[0], a.groups[x].reached[0]), cmp.Compare(x, y))
	})
	// The units with no value are their own group wherever their count ranks them, and take
	// none of the limit's places: the limit is on values, and the no-value group summed into
	// "other values" would hide what is often the largest group (tester 49's F1).
	var other *stepCounts
	listed := 0
	for _, v := range values {
		if v == markNone || listed < q.BreakdownLimit {
			if v != markNone {
				listed++
			}
			value, marker := splitValue(v)
			res.Groups = append(res.Groups, FunnelGroup{Value: value, Marker: marker, Steps: funnelSteps(q.Steps, a.groups[v])})
			continue
		}
		if other == nil {
			other = newStepCounts(a.steps)
		}
		for k := range a.steps {
			other.reached[k] += a.groups[v].reached[k]
			other.gaps[k] = append(other.gaps[k], a.groups[v].gaps[k]...)
		}
	}
	if other != nil {
		res.Groups = append(res.Groups, FunnelGroup{Marker: MarkerOther, Steps: funnelSteps(q.Steps, other)})
	}
	return res
}

func funnelSteps(names []string, sc *stepCounts) []FunnelStep {
	reached := sc.reached
	var steps []FunnelStep
	largest := -1
	for k, name := range names {
		st := FunnelStep{Name: name, Customers: reached[k]}
		st.ConversionFromFirst = ratio(reached[k], reached[0])
		st.ConversionFromPrevious = st.ConversionFromFirst // step 1 is its own previous
		if k > 0 {
			st.ConversionFromPrevious = ratio(reached[k], reached[k-1])
			st.MedianSecondsFromPrevious = quantileSeconds(sc.gaps[k], 0.5)
			st.P90SecondsFromPrevious = quantileSeconds(sc.gaps[k], 0.9)
		}
		if k+1 < len(reached) {
			st.DropOff = reached[k] - reached[k+1]
			st.DropOffRate = ratio(st.DropOff, reached[k])
			if st.DropOff > 0 && (largest < 0 || st.DropOff > steps[largest].DropOff) {
				largest = k
			}
		}
		steps = append(steps, st)
	}
	if largest >= 0 {
		steps[largest].LargestDropOff = true
	}
	return steps
}

// quantileSeconds is the nearest-rank q-quantile (nearestRank) of durations in µs, in seconds;
// nil when empty.
func quantileSeconds(us []int64, q float64) *float64 {
	if len(us) == 0 {
		return nil
	}
	slices.Sort(us)
	v := float64(us[nearestRank(q, uint64(len(us)))]) / 1e6
	return &v
}

// nearestRank is the 0-based index, in n > 0 sorted values, of their q-quantile (0 < q ≤ 1) by
// the nearest-rank method: the smallest value with at least q·n values at or below it, index
// ⌈q·n⌉−1, so the lower of the two middle ones is the median of an even count and the 90th
// percentile of ten values is the ninth. The rule of every median and p90 in an answer (funnel
// times, time to return, dwell, session durations).
func nearestRank(q float64, n uint64) uint64 {
	return min(uint64(max(math.Ceil(q*float64(n))-1, 0)), n-1)
}

// ratio is a/b rounded to 4 decimals, 0 when b is 0: the rule of every rate and share in an
// answer (funnel conversions and drop-off rates, drop-off shares, paths' conversion rates,
// retention rates, a stage's exit rate). Of no units none converted, so 0/0 is 0, never 100%.
func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return math.Round(float64(a)/float64(b)*1e4) / 1e4
}

// conditionSQL translates a journey-map condition into a predicate on the events table, with the
// same meaning as Condition.Matches: a missing field fails every operator but not_equals and
// not_one_of (Negated), which are the negation of equals and one_of; a property's list items
// (item_keys, item_values) match as its value does (itemSQL). A bound (gt, gte, lt, lte)
// compares the columns of its value's numberReading, which the predicate lists in numbers.
func conditionSQL(c *sessionize.Condition) predicate {
	value, present := contextColumn(c.Field), contextColumn(c.Field)+" != ''"
	name := ""
	if value == "" {
		name = sqlString(ingest.PropertyKey(strings.TrimPrefix(c.Field, "properties.")))
		value, present = "prop_values[indexOf(prop_keys, "+name+")]", "has(prop_keys, "+name+")"
	}
	p := predicate{}
	var op string
	switch {
	case c.Equals != nil || c.OneOf != nil || c.Negated():
		texts := c.EqualTexts()
		op, p.args = value+" IN ("+placeholders(len(texts))+")", appendStrings(nil, texts)
	case c.Prefix != nil:
		op, p.args = "substring("+value+", 1, ?) = ?", []any{len(*c.Prefix), *c.Prefix}
	case c.Regexp != nil:
		op, p.args = "match("+value+", ?)", []any{engineRegexp(*c.Regexp)}
	default:
		op, p.args = boundSQL(c, numberColumns(value))
		p.numbers = []string{value}
	}
	p.sql = "(" + present + " AND " + op + ")"
	if name != "" {
		items, args := itemSQL(c, name)
		p.sql = "(" + p.sql + " OR " + items + ")"
		p.args = append(p.args, args...)
	}
	if c.Negated() {
		p.sql = "(NOT " + p.sql + ")"
	}
	return p
}

// engineRegexp is a condition's regular expression as ClickHouse's match is given it: the same
// expression, as an alternative to one that matches nothing (\b\B). ClickHouse 18.16 first
// looks for a literal that every match must hold (OptimizedRegularExpression) and reads it
// without the pattern's flags or escapes: (?i)^hats$ then needs "hats" and misses Hats, ^h\x61ts$
// needs "hx61ts" and misses hats, where re2 itself and Go match (tester 34's F1). An alternative
// at the top level leaves it no literal to look for, on every version; re2 then decides alone.
func engineRegexp(re string) string { return "(?:" + re + `)|\b\B` }

// itemSQL is the condition that one of an event's list items stored under key (a SQL literal)
// passes c's operator (not_equals and not_one_of read as equals and one_of), as
// sessionize.Condition.Matches reads items, with its arguments. A bound compares the largest
// (gt, gte) or smallest (lt, lte) of the items under key that are numbers, as their
// sessionize.Decimal.OrderKey (item_number_keys, item_number_maxes, item_number_mins), with the
// bound's: some item is above a bound when the largest is. That needs no lambda, which 18.16
// analyses slowly (docs/values.md has the measures).
func itemSQL(c *sessionize.Condition, key string) (string, []any) {
	var op string
	var args []any
	switch {
	case c.Equals != nil || c.OneOf != nil || c.Negated():
		texts := c.EqualTexts()
		op, args = "has(["+placeholders(len(texts))+"], v)", appendStrings(nil, texts)
	case c.Prefix != nil:
		op, args = "substring(v, 1, ?) = ?", []any{len(*c.Prefix), *c.Prefix}
	case c.Regexp != nil:
		op, args = "match(v, ?)", []any{engineRegexp(*c.Regexp)}
	default:
		cmp, b := c.Bound()
		extreme := "item_number_maxes"
		if strings.HasPrefix(cmp, "<") {
			extreme = "item_number_mins"
		}
		return "(has(item_number_keys, " + key + ") AND " + extreme + "[indexOf(item_number_keys, " + key + ")] " + cmp + " ?)", []any{b.OrderKey()}
	}
	return "arrayExists((k, v) -> k = " + key + " AND " + op + ", item_keys, item_values)", args
}

// boundSQL renders a bound condition (gt, gte, lt, lte) as sessionize.Condition.Matches reads
// it, on the columns of its value's numberReading: the value must be a decimal number, and
// compares with the bound's sessionize.Decimal as sessionize.Decimal.Compare does, by sign, then
// magnitude.
func boundSQL(c *sessionize.Condition, n numberReading) (string, []any) {
	op, b := c.Bound()
	switch b.Sign {
	case 0:
		return n.number + " AND " + n.sign + " " + op + " 0", nil
	case 1:
		// A value that is not positive has positive "", below every magnitude.
		return n.number + " AND " + n.positive + " " + op + " ?", []any{magnitude(b)}
	}
	// Of negative numbers, the larger magnitude is the smaller number; a value that is not
	// negative has negative "", below every magnitude, and is above the bound.
	reversed := map[string]string{">": "<", ">=": "<=", "<": ">", "<=": ">="}[op]
	return n.number + " AND " + n.negative + " " + reversed + " ?", []any{magnitude(b)}
}

// magnitude is a text whose byte order is the order of the absolute values of non-zero decimals
// (sessionize.Decimal.Compare): d's Point plus pointOffset, which makes it 18 digits, then d's
// Digits. numberSQL writes the same text in SQL.
func magnitude(d sessionize.Decimal) string {
	return strconv.FormatInt(d.Point+pointOffset, 10) + d.Digits
}

// pointOffset is added to a decimal's point in its magnitude: a point from -4e17 to 4e17 becomes
// a number of 18 digits. A value's point is at most its text's length from its exponent, which
// sessionize.ParseDecimal holds to ±10^sessionize.MaxExponentDigits.
const pointOffset = 5e17

// numberReading names the columns a scan reads a text value into as a decimal number d
// (sessionize.ParseDecimal; see numberSQL): number (UInt8) says whether the text is one, sign is
// d.Sign (0 when not a number), and positive and negative are d's magnitude when d is positive,
// respectively negative, else "". The names are the value's: every bound on it shares them.
type numberReading struct{ number, sign, positive, negative string }

// numberColumns returns the names of value's numberReading (value is SQL over the events table).
func numberColumns(value string) numberReading {
	h := fnv.New64a()
	h.Write([]byte(value))
	prefix := fmt.Sprintf("num%x_", h.Sum64())
	return numberReading{number: prefix + "number", sign: prefix + "sign", positive: prefix + "positive", negative: prefix + "negative"}
}

// numberSQL is the SQL of the columns of value's numberReading, for the select list of a query on
// the events table (see personRows). The text must be a decimal number
// (sessionize.NumberPattern), and is read exactly as sessionize.ParseDecimal reads it.
// ClickHouse's own readers of numbers are not used: toFloat64OrZero reads " 100" and "+5" as 0 on
// 18.16 and 1e400 as inf, and the engines round long and extreme numbers differently.
//
// The reading is columns of a subquery, computed once a row, that bounds compare with one
// operator each. Written into each bound instead, as nested expressions or as aliases (which 18.16
// copies into each place that names them), it took 18.16 40 s to over a minute to analyse a funnel
// at its parameter limits (32 steps of 8 bounds). The pieces of the reading are aliases within it,
// inside if's branches, which current ClickHouse works out only for the rows that take them (a
// number, a non-zero one); 18.16 works out every piece for every row, as it did in the bounds.
func numberSQL(value string) string {
	n := numberColumns(value)
	prefix := strings.TrimSuffix(n.number, "number")
	// as defines a piece where it is first used; later uses name it.
	as := func(name, expr string) string { return "(" + expr + " AS " + prefix + name + ")" }
	text, whole, all, unled, digits, exp, expDigits, expAbs, mag := prefix+"text", prefix+"whole", prefix+"all",
		prefix+"unled", prefix+"digits", prefix+"exp", prefix+"expdigits", prefix+"expabs", prefix+"magnitude"
	number := "match(" + as("text", value) + ", " + sqlString(sessionize.NumberPattern) + ")"
	defDigits := as("digits", "if("+n.number+", replaceRegexpOne("+as("unled", "replaceRegexpOne("+as("all", "concat("+
		as("whole", "extract("+text+", '^[-+]{0,1}([0-9]*)')")+", extract("+text+", '[.]([0-9]*)'))")+
		", '^0+', '')")+", '0+$', ''), '')")
	sign := "if(" + defDigits + " = '', 0, if(match(" + text + ", '^-'), -1, 1))"
	defExpAbs := as("expabs", fmt.Sprintf("if(length(%s) > %d, toInt64(%d), toInt64OrZero(%s))",
		as("expdigits", "replaceRegexpOne("+as("exp", "extract("+text+", '[eE]([-+]{0,1}[0-9]+)$')")+", '^[-+]{0,1}0*', '')"),
		sessionize.MaxExponentDigits, int64(math.Pow10(sessionize.MaxExponentDigits)), expDigits))
	point := "toInt64(length(" + whole + ")) - (toInt64(length(" + all + ")) - toInt64(length(" + unled + "))) + " +
		"if(match(" + exp + ", '^-'), -" + defExpAbs + ", " + expAbs + ")"
	defMag := as("magnitude", fmt.Sprintf("concat(toString(%s + toInt64(%d)), %s)", point, int64(pointOffset), digits))
	return number + " AS " + n.number + ", " + sign + " AS " + n.sign +
		", if(" + n.sign + " = 1, " + defMag + ", '') AS " + n.positive +
		", if(" + n.sign + " = -1, " + mag + ", '') AS " + n.negative
}

// contextColumn is the SQL of a context field a condition can test (sessionize.ContextFields)
// on the events table, a column but for device.type, the value stored under
// ingest.DeviceTypeKey ("" when there is none, as for a column); "" for any other field.
func contextColumn(field string) string {
	switch field {
	case "device.type":
		return "prop_values[indexOf(prop_keys, " + sqlString(ingest.DeviceTypeKey) + ")]"
	case "page.path":
		return "page_path"
	case "page.referrer":
		return "referrer"
	case "campaign.source":
		return "campaign_source"
	case "campaign.medium":
		return "campaign_medium"
	case "campaign.name":
		return "campaign_name"
	}
	return ""
}

// sqlString quotes s as a ClickHouse string literal. "?" and "$" are written as the escapes
// \x3F and \x24: clickhouse-go binds every "?" of a query's text to an argument, inside a
// literal too, and refuses a query where "$1" stands beside "?" (bind.go), so a property name
// with either would shift the arguments, or make them part of the SQL, or fail the query. NUL
// (ingest.Internal, in Waymark's own ids and labels) is written as the escape \0.
func sqlString(s string) string {
	return "'" + sqlLiteralEscaper.Replace(s) + "'"
}

// sqlLiteralEscaper escapes a string for sqlString. It is never changed (strings.Replacer is safe
// for concurrent use).
var sqlLiteralEscaper = strings.NewReplacer(`\`, `\\`, `'`, `\'`, `?`, `\x3F`, `$`, `\x24`, "\x00", `\0`)

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

func appendStrings(args []any, values []string) []any {
	for _, v := range values {
		args = append(args, v)
	}
	return args
}
