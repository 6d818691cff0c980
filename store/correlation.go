package store

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/waymark-dev/waymark/sessionize"
)

// Correlation analysis answers "what made the ones who converted different?": for every
// touchpoint, how many of the units that entered a funnel and converted did it on their way, how
// many of those that did not, and the odds ratio of the two. The rule is PostHog's funnel
// correlation analysis (posthog/hogql_queries/insights/funnels/funnel_correlation_query_runner.py;
// https://posthog.com/docs/product-analytics/correlation), on Waymark's units, touchpoints and
// tie rule:
//   - the units are the funnel's (persons, or sessions with count_by=sessions) that took step 1;
//     a success reached the last step, a failure did not;
//   - a unit's touchpoints counted are those after its step-1 event: a success's before the event
//     that took its last step, a failure's up to the end of the conversion window (inclusive, as
//     the funnel's window is), "after" and "before" in the one tie rule's order (time, seq, id),
//     as next and dropoff read them (PostHog: strictly between in time); each touchpoint counts
//     once a unit, by its label (event name, or page's);
//   - a touchpoint that can take a step of the funnel is not counted (PostHog leaves out the
//     steps' event names): it would tell converters apart by the funnel itself;
//   - odds ratio = (s+1)(F−f+1) / ((S−s+1)(f+1)), s and f the successes and failures that did the
//     touchpoint, S and F all successes and failures, 1 the prior count PostHog adds to every
//     cell; over 1 it is a success correlation, else a failure one;
//   - a touchpoint done by fewer than min(25, 2% of the units) is left out as insignificant
//     (PostHog's MIN_PERSON_COUNT and MIN_PERSON_PERCENTAGE), counted in LeftOut;
//   - Skewed says one side has more than 10 times the other's units, or none (PostHog's warning).
//
// The matching runs where the funnel's does (Config.FunnelMatching): inside ClickHouse when the
// server has waymark_funnel (current ClickHouse), whose UDF answers each unit's labels
// (correlationPlan.labels, encodeCorrelated) and ClickHouse counts the persons of each distinct
// answer, so Waymark sums a row per distinct answer (matchCountedInClickHouse); else (18.16) in
// Waymark, with the same correlationPlan.labels over the same units.
//
// With a breakdown it ranks the breakdown's values instead of touchpoints (PostHog's property
// correlation, "properties"): each unit counts once, with the value the funnel broken down by it
// gives the unit (the step-1 event's channel, campaign, device or property, or the person's
// latest trait; none when unset), on the success side when it converted; the odds ratio,
// thresholds and skew are the same. It is the funnel's answer, so it runs where the funnel does
// (in the UDF on current ClickHouse) and takes mode any too.

// CorrelationQuery asks which touchpoints tell the units that converted through a funnel from
// those that entered it and did not.
type CorrelationQuery struct {
	// Funnel is the funnel, mode ordered or strict (a funnel in any order has no last step's event
	// to end a success's touchpoints at), without a hold. With a breakdown (any mode), the
	// breakdown's values are ranked instead of touchpoints; its BreakdownLimit is not read.
	Funnel FunnelQuery
	// Limit is how many touchpoints each side lists (default 10, as PostHog).
	Limit int
}

// CorrelationResult is a correlation analysis (see CorrelationQuery): the success correlations,
// largest odds ratio first, then the failure ones, smallest first, each at most the query's limit.
type CorrelationResult struct {
	// CountBy is what the totals and counts count: persons or sessions (the funnel's count_by).
	CountBy string `json:"count_by"`
	// Breakdown is the breakdown whose values Events ranks, as the parameter takes it
	// (channel, trait:plan, …); omitted when Events ranks touchpoints.
	Breakdown string `json:"breakdown,omitempty"`
	// SuccessTotal is the units that entered the funnel and converted; FailureTotal those that
	// entered it and did not.
	SuccessTotal int64 `json:"success_total"`
	FailureTotal int64 `json:"failure_total"`
	// Skewed is set when one side has more than 10 times the other's units, or none: the odds
	// ratios then say little (and none is listed when a side is empty).
	Skewed bool `json:"skewed"`
	// Events are the touchpoints ranked, or with Breakdown its values (each a Value or a Marker
	// none, with no Step), as PostHog lists property values among its "events".
	Events []CorrelatedTouchpoint `json:"events"`
	// LeftOut is how many touchpoints (values) were done by (had) too few units to be listed
	// (insignificant).
	LeftOut int `json:"left_out"`
}

// CorrelatedTouchpoint is one touchpoint of a correlation analysis.
type CorrelatedTouchpoint struct {
	Value  string `json:"value"`            // the label; "" when Marker is set
	Marker string `json:"marker,omitempty"` // a touchpoint of no name (labels.go)
	// Step asks about the touchpoint as it was counted (TouchpointStep), to put into steps,
	// anchor or exclude; "" with a marker.
	Step string `json:"step,omitempty"`
	// SuccessCount and FailureCount are the units of each side that did it.
	SuccessCount int64 `json:"success_count"`
	FailureCount int64 `json:"failure_count"`
	// OddsRatio is rounded to 4 decimals (see the rule above).
	OddsRatio float64 `json:"odds_ratio"`
	// CorrelationType is "success" (odds ratio over 1) or "failure".
	CorrelationType string `json:"correlation_type"`
}

// Correlation types of a CorrelatedTouchpoint, PostHog's words.
const (
	CorrelationSuccess = "success"
	CorrelationFailure = "failure"
)

// The thresholds and prior of a correlation analysis, PostHog's (see CorrelationQuery).
const (
	correlationMinUnits   = 25
	correlationMinShare   = 0.02
	correlationPrior      = 1
	correlationSkewFactor = 10
)

// ParseCorrelationQuery reads the funnel's parameters, but its breakdown limit and hold, plus
// limit.
func ParseCorrelationQuery(v url.Values) (CorrelationQuery, error) {
	p := newParams(v, correlationParams())
	fq := parseFunnel(p)
	q := CorrelationQuery{Funnel: fq}
	if p.err == nil && len(fq.Steps) == 1 {
		p.fail("steps", "a correlation analysis needs at least two steps, got one: a step and one to convert to after it")
	}
	if p.err == nil && fq.Mode == ModeAny && fq.Breakdown.By == "" {
		p.fail("mode", "a correlation analysis takes ordered or strict: a funnel in any order has no last step's event to end a converter's touchpoints at")
	}
	q.Limit = p.int("limit", 1, 1000)
	if err := p.finish(); err != nil {
		return q, err
	}
	return q, fq.Validate()
}

// Correlation answers a CorrelationQuery in one pass over the events, matched inside ClickHouse
// when the server has waymark_funnel (Config.FunnelMatching, docs/udf.md), else here.
func (s *Store) Correlation(ctx context.Context, jm *sessionize.Map, q CorrelationQuery) (*CorrelationResult, error) {
	return runQuery(ctx, s, "correlation", func(ctx context.Context) (*CorrelationResult, error) { return s.correlationQuery(ctx, jm, q) })
}

func (s *Store) correlationQuery(ctx context.Context, jm *sessionize.Map, q CorrelationQuery) (*CorrelationResult, error) {
	fq := q.Funnel
	if q.Limit <= 0 {
		q.Limit = 10
	}
	if fq.Hold != "" {
		return nil, paramErrorf("hold", "a correlation analysis holds no property constant")
	}
	if fq.Breakdown.By != "" {
		return s.correlationOfValues(ctx, jm, q)
	}
	if fq.Mode == ModeAny {
		return nil, paramErrorf("mode", "a correlation analysis of touchpoints takes ordered or strict")
	}
	plan, tracked, first, err := s.planTouchpointWalk(ctx, jm, &fq, "a correlation analysis", labelSQL)
	if err != nil {
		return nil, err
	}
	n := len(fq.Steps)
	plan.correlation = &correlationPlan{tracked: tracked, label: first}
	c := correlationCounts{success: map[string]int64{}, failure: map[string]int64{}}
	err = s.matchPlan(ctx, plan, func() error {
		d := correlationDecoder{steps: n, bySessions: plan.bySessions}
		return s.matchCountedInClickHouse(ctx, plan, func(answer string, units int64) error {
			return d.add(&c, answer, units)
		})
	}, func() error {
		var labels []string
		return s.matchHere(ctx, "correlation", plan, fq, newFunnelAgg(n, false), func(_ string, unit []unitEvent, attrs attrTable, level int, path []int) {
			if level > 0 {
				labels = plan.correlation.labels(labels[:0], unit, attrs, path, level == n, plan.spec.window)
				c.add(level == n, labels, 1)
			}
		})
	})
	if err != nil {
		return nil, err
	}
	res := c.result(q.Limit, func(label string) string { return TouchpointStep(jm, label) })
	res.CountBy = fq.CountBy
	return res, nil
}

// correlationOfValues answers a correlation analysis of a breakdown's values from the funnel
// broken down by it, every value listed: a value's successes are its units at the last step, its
// failures its units at step 1 less those.
func (s *Store) correlationOfValues(ctx context.Context, jm *sessionize.Map, q CorrelationQuery) (*CorrelationResult, error) {
	fq := q.Funnel
	fq.BreakdownLimit = math.MaxInt32 // every value, none summed as other
	f, err := s.funnel(ctx, jm, fq)
	if err != nil {
		return nil, err
	}
	last := len(fq.Steps) - 1
	c := correlationCounts{success: map[string]int64{}, failure: map[string]int64{}}
	for _, g := range f.Groups {
		label := g.Value
		if g.Marker != "" {
			label = markPrefix + g.Marker
		}
		c.success[label] = g.Steps[last].Customers
		c.failure[label] = g.Steps[0].Customers - g.Steps[last].Customers
	}
	c.successTotal, c.failureTotal = f.Steps[last].Customers, f.Steps[0].Customers-f.Steps[last].Customers
	res := c.result(q.Limit, nil)
	res.CountBy, res.Breakdown = f.CountBy, f.Breakdown
	return res, nil
}

// correlationSpan returns the events of the unit a correlation analysis reads (see
// CorrelationQuery), unit[start:end]: after its step-1 event, up to the event of its last step
// when it converted (exclusive; none when that is not after the step-1 event), else to the end of
// the window from its step-1 event (µs, inclusive).
func correlationSpan(unit []unitEvent, path []int, converted bool, window int64) (start, end int) {
	start = path[0] + 1
	if converted {
		// The last step's event comes before the step-1 event's successor when the steps share
		// their time and the tie rule gives the last one an earlier event: nothing between.
		return start, max(stepEvent(unit, path), start)
	}
	last := unit[path[0]].t + window
	for end = start; end < len(unit) && unit[end].t <= last; end++ {
	}
	return start, end
}

// correlationPlan is what a correlation analysis of touchpoints reads besides its funnel: the
// mask bit of the tracked touchpoints and the attribute column of their labels. Both places
// count a unit with labels: Waymark's matching (matchHere) and the UDF's (udfMatcher.answerPart,
// which sends them, encodeCorrelated's text, for Waymark to sum).
type correlationPlan struct {
	tracked uint64
	label   int
}

// labels appends to dst, sorted and each once, the labels a unit that took step 1 counts (see
// CorrelationQuery): its tracked touchpoints that can take no step, in its span
// (correlationSpan), given the events of its steps (path) and whether it converted.
func (c *correlationPlan) labels(dst []string, unit []unitEvent, attrs attrTable, path []int, converted bool, window int64) []string {
	start, end := correlationSpan(unit, path, converted, window)
	for _, e := range unit[start:end] {
		if e.mask&c.tracked != 0 && e.steps == 0 {
			dst = append(dst, attrs.value(e.at, c.label))
		}
	}
	slices.Sort(dst)
	return slices.Compact(dst)
}

// encodeCorrelated appends a unit's answer to a correlation analysis in the UDF: the steps it
// reached (1 or more), then its labels, each appendText's.
func encodeCorrelated(b []byte, level int, labels []string) []byte {
	b = strconv.AppendInt(b, int64(level), 10)
	for _, l := range labels {
		b = appendText(b, l)
	}
	return b
}

// correlationDecoder sums the UDF's answers to a correlation analysis of a funnel of steps steps
// (a person's answer: encodeCorrelated's text, or when bySessions a list of them, appendText's,
// one per session that took step 1) into a correlationCounts, in space it reuses.
type correlationDecoder struct {
	steps       int
	bySessions  bool
	list, texts []string
}

// add counts the units of answer, given by n persons, into c.
func (d *correlationDecoder) add(c *correlationCounts, answer string, n int64) error {
	if !d.bySessions {
		return d.one(c, answer, n)
	}
	head, list, err := cutTexts(answer, d.list[:0])
	if d.list = list; err != nil || head != "" || len(list) == 0 {
		return fmt.Errorf("sessions' correlation answers %.60q: want a list of texts (%v)", answer, err)
	}
	for _, unit := range list {
		if err := d.one(c, unit, n); err != nil {
			return err
		}
	}
	return nil
}

// one counts one unit's answer, given by n persons, into c.
func (d *correlationDecoder) one(c *correlationCounts, answer string, n int64) error {
	head, labels, err := cutTexts(answer, d.texts[:0])
	if d.texts = labels; err != nil {
		return fmt.Errorf("correlation answer: %w", err)
	}
	level, err := strconv.Atoi(head)
	if err != nil || level < 1 || level > d.steps || head != strconv.Itoa(level) || n < 1 {
		return fmt.Errorf("correlation answer %.60q (of %d persons): want a level of 1 to %d and labels", answer, n, d.steps)
	}
	c.add(level == d.steps, labels, n)
	return nil
}

// correlationCounts gathers a correlation analysis: per touchpoint label the units of each side
// that did it, and the units of each side.
type correlationCounts struct {
	success, failure           map[string]int64
	successTotal, failureTotal int64
}

// add counts n units with labels (each label once), on the success side when converted. A new
// label is stored as a copy, as countKey does: labels are cut from a row's text.
func (c *correlationCounts) add(converted bool, labels []string, n int64) {
	counts := c.failure
	if converted {
		counts, c.successTotal = c.success, c.successTotal+n
	} else {
		c.failureTotal += n
	}
	for _, label := range labels {
		if _, ok := counts[label]; ok {
			counts[label] += n
		} else {
			counts[strings.Clone(label)] = n
		}
	}
}

// result lists the correlations (see CorrelationQuery), each side at most limit long; stepOf
// gives a touchpoint's Step, nil for a breakdown's values.
func (c *correlationCounts) result(limit int, stepOf func(label string) string) *CorrelationResult {
	S, F := c.successTotal, c.failureTotal
	res := &CorrelationResult{SuccessTotal: S, FailureTotal: F, Events: []CorrelatedTouchpoint{},
		Skewed: S == 0 || F == 0 || S > correlationSkewFactor*F || F > correlationSkewFactor*S}
	if S == 0 || F == 0 {
		return res
	}
	labels := map[string]bool{}
	for l := range c.success {
		labels[l] = true
	}
	for l := range c.failure {
		labels[l] = true
	}
	type scored struct {
		label string
		s, f  int64
		odds  float64
	}
	var success, failure []scored
	for label := range labels {
		s, f := c.success[label], c.failure[label]
		if float64(s+f) < min(correlationMinUnits, correlationMinShare*float64(S+F)) {
			res.LeftOut++
			continue
		}
		const k = correlationPrior
		odds := float64((s+k)*(F-f+k)) / float64((S-s+k)*(f+k))
		if odds > 1 {
			success = append(success, scored{label, s, f, odds})
		} else {
			failure = append(failure, scored{label, s, f, odds})
		}
	}
	split, sortKey := splitValue, func(text string) string { return text }
	if stepOf != nil { // touchpoint labels (labelSQL)
		split, sortKey = splitLabel, labelSortKey
	}
	slices.SortFunc(success, func(a, b scored) int {
		return cmp.Or(cmp.Compare(b.odds, a.odds), cmp.Compare(sortKey(a.label), sortKey(b.label)), cmp.Compare(a.label, b.label))
	})
	slices.SortFunc(failure, func(a, b scored) int {
		return cmp.Or(cmp.Compare(a.odds, b.odds), cmp.Compare(sortKey(a.label), sortKey(b.label)), cmp.Compare(a.label, b.label))
	})
	for _, side := range []struct {
		list []scored
		typ  string
	}{{success, CorrelationSuccess}, {failure, CorrelationFailure}} {
		for _, sc := range side.list[:min(limit, len(side.list))] {
			value, marker := split(sc.label)
			t := CorrelatedTouchpoint{Value: value, Marker: marker, SuccessCount: sc.s, FailureCount: sc.f,
				OddsRatio: math.Round(sc.odds*1e4) / 1e4, CorrelationType: side.typ}
			if marker == "" && stepOf != nil {
				t.Step = stepOf(sc.label)
			}
			res.Events = append(res.Events, t)
		}
	}
	return res
}
