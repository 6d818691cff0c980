package store

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/waymark-dev/waymark/sessionize"
)

// RetentionQuery asks who comes back after converting, by cohort of first conversion.
type RetentionQuery struct {
	Period  string // "week" (ISO weeks, Monday to Sunday) or "month", in Location; default week
	Periods int    // later periods reported per cohort; default 8
	// Conversion is the event or stage whose first occurrence puts a person in a cohort; when
	// empty, the journey map's stage conversion, and a ParamError when the map has no such stage
	// (defaultConversion).
	Conversion string
	Return     string // event or stage that counts as coming back; default Conversion (a repeat)
	From, To   time.Time
	// Location is the time zone whose weeks and months the periods are (nil: UTC), as a project
	// time zone sets Amplitude's and Mixpanel's: a Tokyo shop's order at 08:00 on 1 October is
	// in October's cohort, not September's (tester 37's F6).
	Location *time.Location
}

// Cohort is the persons whose first conversion fell in one period.
type Cohort struct {
	Start   time.Time `json:"start"`
	Persons int64     `json:"persons"`
	// ReturnedSamePeriod is how many came back later within the cohort's own period (the "+0"
	// column: a repeat order in the first month, which Amplitude shows as day or week 0 and
	// Mixpanel as "< 1 week"), so that every repeater the headline counts is in a cell (tester
	// 30's F7); SamePeriodRate is its share of Persons (a ratio: 0 when Persons is 0).
	ReturnedSamePeriod int64   `json:"returned_same_period"`
	SamePeriodRate     float64 `json:"same_period_rate"`
	// Returned[i] is how many came back in period i+1 after the cohort's; Rates their share of
	// Persons (a ratio: 0 when Persons is 0). Both stop at the period under way when the query
	// ran: a later one has not begun, so they may be shorter than the query's periods.
	Returned []int64   `json:"returned"`
	Rates    []float64 `json:"rates"`
}

// Bucket is one bar of a histogram.
type Bucket struct {
	Label string `json:"label"`
	Count int64  `json:"count"`
}

// ChannelRepeat is the repeat rate of the persons one channel first brought.
type ChannelRepeat struct {
	Channel    string  `json:"channel"`          // "" when Marker is set
	Marker     string  `json:"marker,omitempty"` // MarkerNone: no acquisition channel known
	Persons    int64   `json:"persons"`
	Repeaters  int64   `json:"repeaters"`
	RepeatRate float64 `json:"repeat_rate"` // Repeaters / Persons, 0 when Persons is 0 (ratio)
}

// RetentionResult answers a RetentionQuery. Persons are those whose first conversion ever is in
// [From, To); a repeater did the return event after it (strictly later, at any time).
type RetentionResult struct {
	Period        string          `json:"period"`
	Conversion    string          `json:"conversion"`
	Return        string          `json:"return"`
	Persons       int64           `json:"persons"`
	Repeaters     int64           `json:"repeaters"`
	RepeatRate    float64         `json:"repeat_rate"` // Repeaters / Persons, 0 when Persons is 0 (ratio)
	Cohorts       []Cohort        `json:"cohorts"`
	MedianSeconds *float64        `json:"median_seconds_to_return,omitempty"`
	P90Seconds    *float64        `json:"p90_seconds_to_return,omitempty"`
	Histogram     []Bucket        `json:"time_to_return_histogram"`
	ByChannel     []ChannelRepeat `json:"by_acquisition_channel"`
}

// ParseRetentionQuery reads period, periods, conversion, return, from, to and timezone.
func ParseRetentionQuery(v url.Values) (RetentionQuery, error) {
	p := newParams(v, retentionParams())
	q := RetentionQuery{Period: p.oneOf("period", "week", "month"), Periods: p.int("periods", 1, maxRetentionPeriods)}
	q.Conversion, q.Return = p.step("conversion"), p.step("return")
	q.From, q.To = p.timeRange()
	if q.Location = p.location("timezone"); q.Location == time.UTC {
		q.Location = nil
	}
	return q, p.finish()
}

// maxRetentionPeriods is the most periods a retention query counts returns in.
const maxRetentionPeriods = 52

// periodStart is the start of the week (Monday) or month holding us (unix µs), in loc (nil:
// UTC): its day's first instant there (StartOfDay), which a clock change may move off the hour
// in UTC.
func periodStart(period string, us int64, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	t := time.UnixMicro(us).In(loc)
	if period == "month" {
		return StartOfDay(t.Year(), t.Month(), 1, loc)
	}
	monday := time.Date(t.Year(), t.Month(), t.Day()-(int(t.Weekday())+6)%7, 12, 0, 0, 0, loc) // noon: a day's date whatever its clock change
	return StartOfDay(monday.Year(), monday.Month(), monday.Day(), loc)
}

// periodsBetween is how many whole periods lie from period start a to period start b (both of
// one location): counted in calendar days, so a week with a daylight saving change (167 or 169
// hours) is one.
func periodsBetween(period string, a, b time.Time) int {
	if period == "month" {
		return (b.Year()-a.Year())*12 + int(b.Month()) - int(a.Month())
	}
	day := func(t time.Time) time.Time { return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC) }
	return int(day(b).Sub(day(a)).Hours()/24) / 7
}

// bar is one bar of a duration histogram: the durations up to upTo that no earlier bar holds.
type bar struct {
	label string
	upTo  time.Duration
}

// histogram counts durations into bars.
type histogram struct {
	bars   []bar
	counts []int64
}

func newHistogram(bars []bar) *histogram {
	return &histogram{bars: bars, counts: make([]int64, len(bars))}
}

func (h *histogram) add(d time.Duration) {
	for i, b := range h.bars {
		if d <= b.upTo {
			h.counts[i]++
			return
		}
	}
}

func (h *histogram) buckets() []Bucket {
	out := make([]Bucket, len(h.bars))
	for i, b := range h.bars {
		out[i] = Bucket{Label: b.label, Count: h.counts[i]}
	}
	return out
}

// returnBars are the time-to-return histogram's bars.
var returnBars = []bar{{"≤ 1d", 24 * time.Hour}, {"1–7d", 7 * 24 * time.Hour}, {"7–30d", 30 * 24 * time.Hour},
	{"30–90d", 90 * 24 * time.Hour}, {"> 90d", math.MaxInt64}}

// retentionWalk is what a retention query reads of each person's events (step bit 0: the
// conversion, bit 1: the return, mask bit tracked: a touchpoint, attribute 0: the channel): the
// first conversion, which counts when in [from, to) (ms), the returns after it, by period (week
// or month) up to periods, and the first touchpoint's channel.
type retentionWalk struct {
	period   string
	periods  int
	loc      *time.Location // the periods' time zone; nil: UTC
	from, to int64
	tracked  uint64
}

// retentionOutcome is one person's part of a retention answer: their first conversion's time
// (unix µs), their acquisition channel ("" when none is set), the µs from the first conversion to the
// first return (-1: they never returned) and the periods after the first conversion's (0, its
// own, to periods, each once) in which they returned.
type retentionOutcome struct {
	first    int64
	acquired string
	gap      int64
	returned []int
}

// of reads one person's events, in the scan's order; ok is false when the person's first
// conversion is not in range (or they have none).
func (w *retentionWalk) of(ev []unitEvent, attrs attrTable) (o retentionOutcome, ok bool) {
	if len(ev) == 0 {
		return o, false
	}
	first := -1
	for i, e := range ev {
		if e.steps&1 != 0 {
			first = i
			break
		}
	}
	if first < 0 || ev[first].t < w.from || ev[first].t >= w.to {
		return o, false
	}
	o.first, o.gap = ev[first].t, -1
	// The acquisition channel is the first touchpoint's, by the tie rule (the events' order), as a
	// session's entry channel is: identify, alias and group are not touchpoints.
	for _, e := range ev {
		if e.mask&w.tracked != 0 {
			o.acquired = attrs.value(e.at, 0)
			break
		}
	}
	cohort := periodStart(w.period, o.first, w.loc)
	var seen uint64 // bit k: returned k periods after; periods ≤ maxRetentionPeriods
	for _, e := range ev[first+1:] {
		if e.steps&2 == 0 || e.t == o.first {
			continue // a return is strictly later than the first conversion
		}
		if o.gap < 0 {
			o.gap = e.t - o.first
		}
		k := periodsBetween(w.period, cohort, periodStart(w.period, e.t, w.loc))
		if k >= 0 && k <= w.periods && seen&(1<<k) == 0 {
			seen |= 1 << k
			o.returned = append(o.returned, k)
		}
	}
	return o, true
}

// encode writes o as text for the UDF's answer: the first conversion's time, the gap and the
// periods returned in, separated by spaces, then the channel as an appendText text.
func (o retentionOutcome) encode(b []byte) []byte {
	b = strconv.AppendInt(b, o.first, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, o.gap, 10)
	for _, k := range o.returned {
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(k), 10)
	}
	return appendText(b, o.acquired)
}

// decodeRetentionOutcome parses encode's text.
func decodeRetentionOutcome(s string) (retentionOutcome, error) {
	var o retentionOutcome
	head, texts, err := cutTexts(s, nil)
	if err != nil {
		return o, err
	}
	fields := strings.Fields(head)
	if len(texts) != 1 || len(fields) < 2 || len(fields) > 3+maxRetentionPeriods {
		return o, fmt.Errorf("retention outcome %.60q: want a time, a gap, at most %d periods and a channel", s, 1+maxRetentionPeriods)
	}
	o.acquired = texts[0]
	nums := make([]int64, len(fields))
	for i, f := range fields {
		if nums[i], err = strconv.ParseInt(f, 10, 64); err != nil {
			return o, fmt.Errorf("retention outcome %.60q: %w", s, err)
		}
	}
	o.first, o.gap = nums[0], nums[1]
	for _, k := range nums[2:] {
		o.returned = append(o.returned, int(k))
	}
	return o, nil
}

// Retention answers a RetentionQuery.
func (s *Store) Retention(ctx context.Context, jm *sessionize.Map, q RetentionQuery) (*RetentionResult, error) {
	return runQuery(ctx, s, "retention", func(ctx context.Context) (*RetentionResult, error) { return s.retentionQuery(ctx, jm, q) })
}

func (s *Store) retentionQuery(ctx context.Context, jm *sessionize.Map, q RetentionQuery) (*RetentionResult, error) {
	if err := CheckRange(q.From, q.To); err != nil {
		return nil, err
	}
	if q.Period == "" {
		q.Period = "week"
	}
	if q.Periods <= 0 {
		q.Periods = 8
	}
	if q.Period != "week" && q.Period != "month" {
		return nil, paramErrorf("period", "%q is not week or month", q.Period)
	}
	if q.Periods > maxRetentionPeriods {
		return nil, paramErrorf("periods", "%d periods, at most %d", q.Periods, maxRetentionPeriods)
	}
	if q.Conversion == "" {
		if q.Conversion = defaultConversion(jm); q.Conversion == "" {
			return nil, paramErrorf("conversion", "required: the journey map has no stage %q to default to; give the event or stage whose first occurrence puts a person in a cohort (its stages: %s)",
				conversionStage, strings.Join(stageNames(jm), ", "))
		}
	}
	if q.Return == "" {
		q.Return = q.Conversion
	}
	if err := s.checkNames(ctx, jm, "conversion", q.Conversion); err != nil {
		return nil, err
	}
	if err := s.checkNames(ctx, jm, "return", q.Return); err != nil {
		return nil, err
	}
	p := plainPlan(jm, []string{q.Conversion, q.Return})
	// Every touchpoint, for the person's first: its channel is the acquisition channel.
	tracked, _ := p.readAlso(predicate{sql: "channel"})
	if len(p.scan.preds) > 64 {
		return nil, paramErrorf("conversion", "too many conditions")
	}
	from, to := int64(math.MinInt64), int64(math.MaxInt64)
	if !q.From.IsZero() {
		from = q.From.UnixMicro()
	}
	if !q.To.IsZero() {
		to = q.To.UnixMicro()
	}
	w := &retentionWalk{period: q.Period, periods: q.Periods, loc: q.Location, from: from, to: to, tracked: tracked}
	p.retention = w
	type cohortCounts struct {
		persons, samePeriod int64
		returned            []int64
	}
	cohorts := map[time.Time]*cohortCounts{}
	type channelCounts struct{ persons, repeaters int64 }
	channels := map[string]*channelCounts{}
	res := &RetentionResult{Period: q.Period, Conversion: q.Conversion, Return: q.Return, Cohorts: []Cohort{}, ByChannel: []ChannelRepeat{}}
	var gaps []int64
	hist := newHistogram(returnBars)
	add := func(o retentionOutcome) error {
		res.Persons++
		cohort := periodStart(q.Period, o.first, q.Location)
		c := cohorts[cohort]
		if c == nil {
			c = &cohortCounts{returned: make([]int64, q.Periods)}
			cohorts[cohort] = c
		}
		c.persons++
		acquired := cmp.Or(o.acquired, markNone)
		ch := channels[acquired]
		if ch == nil {
			ch = &channelCounts{}
			channels[strings.Clone(acquired)] = ch // not the row's text it was cut from
		}
		ch.persons++
		for _, k := range o.returned {
			switch {
			case k < 0 || k > q.Periods:
				return fmt.Errorf("retention: a return %d periods after the first conversion, want 0 to %d", k, q.Periods)
			case k == 0:
				c.samePeriod++
			default:
				c.returned[k-1]++
			}
		}
		if o.gap >= 0 {
			gaps = append(gaps, o.gap)
			hist.add(time.Duration(o.gap) * time.Microsecond)
			res.Repeaters++
			ch.repeaters++
		}
		return nil
	}
	err := s.matchPlan(ctx, p, func() error {
		return s.matchInClickHouse(ctx, p, false, func(_, answer string) error {
			o, err := decodeRetentionOutcome(answer)
			if err != nil {
				return err
			}
			return add(o)
		})
	}, func() error {
		return s.scan(ctx, p.scan, func(_ string, events []scannedEvent, attrs attrTable) error {
			if o, ok := w.of(p.units(events, attrs, nil)[0], attrs); ok {
				return add(o)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	res.RepeatRate = ratio(res.Repeaters, res.Persons)
	res.MedianSeconds, res.P90Seconds = quantileSeconds(gaps, 0.5), quantileSeconds(gaps, 0.9)
	res.Histogram = hist.buckets()
	// A period that has not begun yet holds no return to count: it is left out rather than
	// shown as 0%, as Amplitude leaves a cohort's future periods blank. The current period,
	// begun but not over, is in (Amplitude marks it incomplete).
	now := periodStart(q.Period, time.Now().UnixMicro(), q.Location)
	for start, c := range cohorts {
		begun := max(min(q.Periods, periodsBetween(q.Period, start, now)), 0)
		co := Cohort{Start: start, Persons: c.persons, ReturnedSamePeriod: c.samePeriod, SamePeriodRate: ratio(c.samePeriod, c.persons),
			Returned: c.returned[:begun], Rates: make([]float64, 0, begun)} // [] when none has begun, as returned
		for _, n := range co.Returned {
			co.Rates = append(co.Rates, ratio(n, c.persons))
		}
		res.Cohorts = append(res.Cohorts, co)
	}
	slices.SortFunc(res.Cohorts, func(a, b Cohort) int { return a.Start.Compare(b.Start) })
	names := make([]string, 0, len(channels))
	for name := range channels {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int { // markers (markPrefix) after the channels
		return cmp.Or(cmp.Compare(channels[b].persons, channels[a].persons), cmp.Compare(a, b))
	})
	for _, name := range names {
		c := channels[name]
		channel, marker := splitValue(name)
		res.ByChannel = append(res.ByChannel, ChannelRepeat{Channel: channel, Marker: marker, Persons: c.persons, Repeaters: c.repeaters, RepeatRate: ratio(c.repeaters, c.persons)})
	}
	return res, nil
}

// StagesQuery asks how each journey stage is doing for persons active in [From, To).
type StagesQuery struct {
	From, To time.Time
	Limit    int // touchpoints listed per stage; default 5
}

// StageHealth is one stage's numbers in a range. A person's stage at any moment is the furthest
// stage they have entered so far, over their whole history (sessionize.EnteredStages: a stage
// reached after a further one is skipped, not entered); they enter a stage once, and dwell in it
// from entering it until first entering a later one.
type StageHealth struct {
	Stage   string `json:"stage"`
	Entered int64  `json:"entered"` // persons who first entered the stage in range
	// EnteredMovedOn is the persons of Entered who went on from the stage before the range
	// ends: Entered's conversion, at most Entered (as Amplitude's and Mixpanel's funnels count
	// the converted of the persons who entered). Entered - EnteredMovedOn left the stage or are
	// in it still.
	EnteredMovedOn int64 `json:"entered_moved_on"`
	// MovedOn is the flow out of the stage: the persons who went on from it in range, whenever
	// they entered it (a repeat order in March moves on from the conversion of January), so it
	// may be larger than Entered in a range after many entered. It is no share of Entered.
	MovedOn int64 `json:"moved_on"`
	// ExitRate is 1 - EnteredMovedOn / Entered, from 0 to 1: the share of Entered that did not
	// go on before the range ends; 0 when Entered is 0 (see ratio).
	ExitRate float64 `json:"exit_rate"`
	// MedianDwellSeconds is the median of MovedOn's dwells: from entering the stage (maybe
	// before the range) to going on.
	MedianDwellSeconds *float64 `json:"median_dwell_seconds,omitempty"`
	TopTouchpoints     []Ranked `json:"top_touchpoints"`
	// SurveyResponses are the scores of Survey Answered events (sessionize.SurveyAnsweredEvent:
	// CSAT, CES, any survey) given in the stage, MeanScore their mean; NPS Submitted answers are
	// in NPS, on their own scale, and in neither.
	SurveyResponses int64    `json:"survey_responses"`
	MeanScore       *float64 `json:"mean_score,omitempty"`
	// NPS is the Net Promoter Score of the NPS Submitted answers given in the stage, nil when
	// there is none.
	NPS *StageNPS `json:"nps,omitempty"`
	// IgnoredScores counts the survey scores given in the stage that are left out of MeanScore
	// and NPS, by reason (sessionize.SurveyScore: not_a_number, not_finite, out_of_scale).
	IgnoredScores map[string]int64 `json:"ignored_scores,omitempty"`
}

// StageNPS is the Net Promoter Score of a stage's answers to the Net Promoter question
// (sessionize.NPSEvent, 0–10): how many answered, how many of them are promoters (9–10),
// passives (7–8) and detractors (0–6) (sessionize.NPSCategory), the score, % promoters − %
// detractors from −100 to 100 (sessionize.NetPromoterScore), and the mean answer on the 0–10
// scale, for those who read a mean.
type StageNPS struct {
	Responses  int64   `json:"responses"`
	Promoters  int64   `json:"promoters"`
	Passives   int64   `json:"passives"`
	Detractors int64   `json:"detractors"`
	Score      float64 `json:"score"`
	MeanAnswer float64 `json:"mean_answer"`
}

// StagesResult lists the stages of the journey map in order.
type StagesResult struct {
	Stages []StageHealth `json:"stages"`
	// IgnoredScores counts the survey scores given in range before the person's first stage,
	// which no stage's mean holds, by reason: sessionize.ScoreNoStage for one that would count,
	// else the reason it cannot (as in StageHealth.IgnoredScores).
	IgnoredScores map[string]int64 `json:"ignored_scores,omitempty"`
}

// ParseStagesQuery reads from, to and limit.
func ParseStagesQuery(v url.Values) (StagesQuery, error) {
	p := newParams(v, stagesParams())
	q := StagesQuery{Limit: p.int("limit", 1, 100)}
	q.From, q.To = p.timeRange()
	return q, p.finish()
}

// trackScore is the survey score of an event: its property sessionize.ScoreProperty when it is a
// track call, "" (no score) otherwise. A survey is a track event (NPS Submitted); a page or screen
// named so is stored under the same label, and is no answer, as the live metrics count it.
var trackScore = predicate{
	sql:  "if(type = 'track', " + propertyValue(sessionize.ScoreProperty).sql + ", '')",
	args: propertyValue(sessionize.ScoreProperty).args,
}

// stagesWalk is what a stages query reads of each person's events: step bit st marks the events
// that reach stage st; tracked touchpoints (mask bit tracked) carry their label (attribute 0) and
// their score (attribute 1, trackScore). It counts what happens in [from, to)
// (µs), but reads the person's stage events from their first on: a person enters a stage once in
// their life, so their stage at from, and when they entered it, is what their history says.
type stagesWalk struct {
	from, to int64
	tracked  uint64
}

// stagesSink takes what stagesWalk.of reads of one person in range: the stages they entered,
// those they went on from (after dwell µs, from entering, which may be before the range;
// enteredInRange: it was in the range, and enter was called for it), the touchpoints they had
// in each and the survey scores they gave in each (nps: an answer to the Net Promoter question,
// sessionize.NPSEvent), or the reason a score they gave is left out
// (sessionize.ScoreReasons); stage -1 is no stage (a score given before the person's first
// stage, sessionize.ScoreNoStage, or one that cannot count).
type stagesSink interface {
	enter(stage int)
	moveOn(stage int, dwell int64, enteredInRange bool)
	touch(stage int, label string, n int64)
	respond(stage int, nps bool, score sessionize.Score)
	ignoreScore(stage int, reason string)
}

// of reads one person's events, in the scan's order, into sink; entered and left are scratch
// space, one per stage. A person's stage at any moment is the furthest they have entered so far
// (sessionize.EnteredStages: a stage reached after a further one is skipped); events of one time
// move the person on together, then count in the stage reached, so the answer does not depend on
// how ties are stored.
func (w *stagesWalk) of(unit []unitEvent, attrs attrTable, entered []int64, left []bool, sink stagesSink) {
	for i := range entered {
		entered[i], left[i] = -1, false
	}
	current := -1
	var reached uint64 // the stages reached so far, skipped ones included
	for i := 0; i < len(unit); {
		j := i
		var steps uint64
		for ; j < len(unit) && unit[j].t == unit[i].t; j++ {
			steps |= unit[j].steps
		}
		block, t := unit[i:j], unit[i].t
		i = j
		if t >= w.to {
			break
		}
		inRange := t >= w.from
		if enter := sessionize.EnteredStages(reached, steps); enter != 0 {
			for st := range entered {
				if enter&(1<<st) != 0 {
					entered[st] = t
					if inRange {
						sink.enter(st)
					}
				}
			}
			// Moving on: every stage entered before the furthest one is left now.
			furthest := bits.Len64(enter) - 1
			for st := range furthest {
				if entered[st] >= 0 && !left[st] {
					left[st] = true
					if inRange {
						sink.moveOn(st, t-entered[st], entered[st] >= w.from)
					}
				}
			}
			current = furthest
		}
		reached |= steps
		if !inRange {
			continue
		}
		for _, e := range block {
			if e.mask&w.tracked == 0 {
				continue
			}
			label := attrs.value(e.at, 0)
			score, ignored, ok := sessionize.SurveyScore(label, attrs.value(e.at, 1))
			if current < 0 {
				// Before the first stage: no stage to count the touchpoint in, nor the score.
				if ok {
					ignored = sessionize.ScoreNoStage
				}
				if ignored != "" {
					sink.ignoreScore(-1, ignored)
				}
				continue
			}
			sink.touch(current, label, 1)
			switch {
			case ok:
				sink.respond(current, label == sessionize.NPSEvent, score)
			case ignored != "":
				sink.ignoreScore(current, ignored)
			}
		}
	}
}

// stageAggs sums what persons did in each stage, and the scores given in none (a stagesSink).
type stageAggs struct {
	stages  []stageAgg
	noStage map[string]int64 // scores given before the person's first stage, by reason
}

type stageAgg struct {
	entered, movedOn int64
	enteredMovedOn   int64 // of entered, those who went on (StageHealth.EnteredMovedOn)
	dwell            []int64
	touchpoints      map[string]int64
	responses        int64
	scoreSum         *big.Float // exact (see exactSumPrec): the same whatever order persons come in
	// npsCategories counts the NPS answers by category, in sessionize.NPSCategories' order; npsSum
	// is their sum, exact as scoreSum.
	npsCategories [3]int64
	npsSum        *big.Float
	ignoredScores map[string]int64
}

// exactSumPrec is the precision, in bits, of a sum of float64 values that holds it exactly: the
// 2,098 bits from a float64's largest exponent to its smallest subnormal's, and 64 more for the
// carries of up to 2^64 terms. A plain float64 sum depends on the order of its terms, and the
// persons of a query come in ClickHouse's grouping order, which changes from run to run.
const exactSumPrec = 2098 + 64

// meanScore is sum/n rounded to 4 decimals (not rounded past 1e15, where a float64 has no
// decimals left and the rounding would overflow).
func meanScore(sum *big.Float, n int64) float64 {
	mean, _ := new(big.Float).Quo(sum, new(big.Float).SetInt64(n)).Float64()
	if math.Abs(mean) < 1e15 {
		mean = math.Round(mean*1e4) / 1e4
	}
	return mean
}

func (a stageAggs) enter(st int) { a.stages[st].entered++ }
func (a stageAggs) moveOn(st int, dwell int64, enteredInRange bool) {
	a.stages[st].movedOn++
	if enteredInRange {
		a.stages[st].enteredMovedOn++
	}
	a.stages[st].dwell = append(a.stages[st].dwell, dwell)
}
func (a stageAggs) touch(st int, label string, n int64) {
	m := a.stages[st].touchpoints
	if _, ok := m[label]; !ok {
		label = strings.Clone(label) // not the row's text it was cut from
	}
	m[label] += n
}
func (a stageAggs) respond(st int, nps bool, score sessionize.Score) {
	agg := &a.stages[st]
	sum := &agg.scoreSum
	if nps {
		agg.npsCategories[slices.Index(sessionize.NPSCategories(), sessionize.NPSCategory(score))]++
		sum = &agg.npsSum
	} else {
		agg.responses++
	}
	if *sum == nil {
		*sum = new(big.Float).SetPrec(exactSumPrec)
	}
	(*sum).Add(*sum, big.NewFloat(score.Value))
}

// nps is the stage's StageNPS, nil when it has no NPS answer.
func (a *stageAgg) nps() *StageNPS {
	c := a.npsCategories
	n := c[0] + c[1] + c[2]
	if n == 0 {
		return nil
	}
	return &StageNPS{Responses: n, Promoters: c[0], Passives: c[1], Detractors: c[2],
		Score: sessionize.NetPromoterScore(c[0], c[2], n), MeanAnswer: meanScore(a.npsSum, n)}
}
func (a stageAggs) ignoreScore(st int, reason string) {
	if st < 0 {
		a.noStage[reason]++
		return
	}
	if a.stages[st].ignoredScores == nil {
		a.stages[st].ignoredScores = map[string]int64{}
	}
	a.stages[st].ignoredScores[reason]++
}

// stagesOutcome is one person's part of a stages answer, as the UDF sends it (a stagesSink).
type stagesOutcome struct {
	entered []bool
	dwell   []int64 // per stage: µs from entering it (maybe before the range) to going on from it in range, -1 when they did not
	touches []stageTouch
	scores  []stageScore
	// touchIndex is where each (stage, label) is in touches: a bot has many labels
	touchIndex map[stageLabel]int
}

// stageLabel is a touchpoint's label in a stage.
type stageLabel struct {
	stage int
	label string
}

type stageTouch struct {
	stage int
	label string
	n     int64
}

// stageScore is a score given in a stage (-1: in none; nps: an answer to the Net Promoter
// question), or the reason it is left out (ignored, not "").
type stageScore struct {
	stage   int
	nps     bool
	score   sessionize.Score
	ignored string
}

// reset makes o an empty outcome of n stages, keeping its space.
func (o *stagesOutcome) reset(n int) {
	o.entered, o.dwell = slices.Grow(o.entered[:0], n)[:n], slices.Grow(o.dwell[:0], n)[:n]
	for st := range n {
		o.entered[st], o.dwell[st] = false, -1
	}
	o.touches, o.scores = o.touches[:0], o.scores[:0]
	if o.touchIndex == nil {
		o.touchIndex = map[stageLabel]int{}
	}
	clear(o.touchIndex)
}

func (o *stagesOutcome) enter(st int) { o.entered[st] = true }

// moveOn keeps no enteredInRange: it is o.entered[st], which decodeStagesOutcome reads it from.
func (o *stagesOutcome) moveOn(st int, dwell int64, _ bool) { o.dwell[st] = dwell }
func (o *stagesOutcome) respond(st int, nps bool, score sessionize.Score) {
	o.scores = append(o.scores, stageScore{stage: st, nps: nps, score: score})
}
func (o *stagesOutcome) ignoreScore(st int, reason string) {
	o.scores = append(o.scores, stageScore{stage: st, ignored: reason})
}
func (o *stagesOutcome) touch(st int, label string, n int64) {
	k := stageLabel{st, label}
	if i, ok := o.touchIndex[k]; ok {
		o.touches[i].n += n
		return
	}
	o.touchIndex[k] = len(o.touches)
	o.touches = append(o.touches, stageTouch{st, label, n})
}

// encode writes o as text for the UDF's answer, "" when the person did nothing in range: the
// number of stages; per stage 1 or 0 (entered) and the dwell (-1: not gone on); the number of
// touchpoint counts and, per count, its stage and count; the number of scores and, per score, its
// stage (-1: none), 1 for an NPS answer or 0 for another survey's, and its score as stored (a
// decimal number, sessionize.NumberPattern, so that its category is decided on it exactly, as
// where it was read) or the reason it is left out (sessionize.ScoreReasons, which no number reads
// as); all separated by spaces, then the touchpoints' labels as appendText texts.
func (o *stagesOutcome) encode(b []byte) []byte {
	if !slices.Contains(o.entered, true) && !slices.ContainsFunc(o.dwell, func(d int64) bool { return d >= 0 }) &&
		len(o.touches) == 0 && len(o.scores) == 0 {
		return b
	}
	// nums appends each of vs, after a space.
	nums := func(vs ...int64) {
		for _, v := range vs {
			b = append(b, ' ')
			b = strconv.AppendInt(b, v, 10)
		}
	}
	b = strconv.AppendInt(b, int64(len(o.entered)), 10)
	for st, e := range o.entered {
		entered := int64(0)
		if e {
			entered = 1
		}
		nums(entered, o.dwell[st])
	}
	nums(int64(len(o.touches)))
	for _, t := range o.touches {
		nums(int64(t.stage), t.n)
	}
	nums(int64(len(o.scores)))
	for _, s := range o.scores {
		nps := int64(0)
		if s.nps {
			nps = 1
		}
		nums(int64(s.stage), nps)
		b = append(b, ' ')
		if s.ignored != "" {
			b = append(b, s.ignored...)
		} else {
			b = append(b, s.score.Text...)
		}
	}
	for _, t := range o.touches {
		b = appendText(b, t.label)
	}
	return b
}

// decodeStagesOutcome parses encode's text for n stages into sink.
func decodeStagesOutcome(s string, n int, sink stagesSink) error {
	head, texts, err := cutTexts(s, nil)
	if err != nil {
		return err
	}
	fields := strings.Fields(head)
	bad := func(what string) error { return fmt.Errorf("stages outcome %.60q: %s", s, what) }
	pos := 0
	next := func(lo, hi int64) (int64, bool) {
		if pos == len(fields) {
			return 0, false
		}
		v, err := strconv.ParseInt(fields[pos], 10, 64)
		pos++
		return v, err == nil && v >= lo && v <= hi
	}
	if k, ok := next(int64(n), int64(n)); !ok {
		return bad(fmt.Sprintf("want %d stages, not %d", n, k))
	}
	for st := range n {
		entered, ok1 := next(0, 1)
		dwell, ok2 := next(-1, math.MaxInt64)
		if !ok1 || !ok2 {
			return bad(fmt.Sprintf("stage %d", st))
		}
		if entered == 1 {
			sink.enter(st)
		}
		if dwell >= 0 {
			// A person enters a stage once: entered in range and gone on in range is one entry.
			sink.moveOn(st, dwell, entered == 1)
		}
	}
	touches, ok := next(0, int64(len(texts)))
	if !ok || touches != int64(len(texts)) {
		return bad("touchpoint counts and labels differ")
	}
	for i := range touches {
		st, ok1 := next(0, int64(n-1))
		count, ok2 := next(1, math.MaxInt64)
		if !ok1 || !ok2 {
			return bad("a touchpoint count")
		}
		sink.touch(int(st), texts[i], count)
	}
	scores, ok := next(0, math.MaxInt32)
	if !ok {
		return bad("the scores")
	}
	for range scores {
		st, ok1 := next(-1, int64(n-1))
		nps, ok2 := next(0, 1)
		if !ok1 || !ok2 || pos == len(fields) {
			return bad("a score")
		}
		text := fields[pos]
		pos++
		if slices.Contains(sessionize.ScoreReasons(), text) {
			sink.ignoreScore(int(st), text)
			continue
		}
		score, ok := sessionize.ReadScore(text)
		if !ok || math.IsInf(score.Value, 0) || st < 0 {
			return bad("a score")
		}
		sink.respond(int(st), nps == 1, score)
	}
	if pos != len(fields) {
		return bad("more after the scores")
	}
	return nil
}

// Stages answers a StagesQuery.
func (s *Store) Stages(ctx context.Context, jm *sessionize.Map, q StagesQuery) (*StagesResult, error) {
	return runQuery(ctx, s, "stages", func(ctx context.Context) (*StagesResult, error) { return s.stagesQuery(ctx, jm, q) })
}

func (s *Store) stagesQuery(ctx context.Context, jm *sessionize.Map, q StagesQuery) (*StagesResult, error) {
	if err := CheckRange(q.From, q.To); err != nil {
		return nil, err
	}
	if q.Limit <= 0 {
		q.Limit = 5
	}
	var names []string
	for _, st := range jm.Stages {
		names = append(names, EscapeStep(st.Name)) // a step that means the stage, whatever its name holds
	}
	p := plainPlan(jm, names)
	tracked, _ := p.readAlso(labelSQL, trackScore)
	if len(p.scan.preds) > 64 {
		return nil, paramErrorf("journey_map", "too many conditions")
	}
	from, to := int64(math.MinInt64), int64(math.MaxInt64)
	if !q.From.IsZero() {
		// Every stage event before from is read (the person's stage at from, and when they
		// entered it, is what their history says: stagesWalk), but the touchpoints only from
		// the look-back that finds their earlier copies (eventScan.readFrom): those before from
		// count nowhere.
		from = q.From.UnixMicro()
		t := &p.scan.preds[bits.TrailingZeros64(tracked)]
		t.sql = "(" + t.sql + ") AND " + eventTime + " >= ?"
		t.args = append(slices.Clip(t.args), uint64(eventScan{from: from}.readFrom()))
	}
	if !q.To.IsZero() {
		to = q.To.UnixMicro()
		p.scan.to = to - 1
	}
	n := len(names)
	w := &stagesWalk{from: from, to: to, tracked: tracked}
	p.stages = w
	aggs := stageAggs{stages: make([]stageAgg, n), noStage: map[string]int64{}}
	for i := range aggs.stages {
		aggs.stages[i].touchpoints = map[string]int64{}
	}
	err := s.matchPlan(ctx, p, func() error {
		return s.matchInClickHouse(ctx, p, false, func(_, answer string) error {
			return decodeStagesOutcome(answer, n, aggs)
		})
	}, func() error {
		entered := make([]int64, n) // per stage: when the person entered it, -1 not yet
		left := make([]bool, n)     // per stage: whether the person went on to a later one
		return s.scan(ctx, p.scan, func(_ string, events []scannedEvent, attrs attrTable) error {
			w.of(p.units(events, attrs, nil)[0], attrs, entered, left, aggs)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	res := &StagesResult{}
	if len(aggs.noStage) > 0 {
		res.IgnoredScores = aggs.noStage
	}
	for i, a := range aggs.stages {
		h := StageHealth{Stage: jm.Stages[i].Name, Entered: a.entered, EnteredMovedOn: a.enteredMovedOn, MovedOn: a.movedOn,
			MedianDwellSeconds: quantileSeconds(a.dwell, 0.5), SurveyResponses: a.responses, IgnoredScores: a.ignoredScores}
		if a.entered > 0 {
			h.ExitRate = math.Round((1-ratio(a.enteredMovedOn, a.entered))*1e4) / 1e4
		}
		var total int64
		for _, c := range a.touchpoints {
			total += c
		}
		h.TopTouchpoints = rankTouchpoints(jm, a.touchpoints, total, q.Limit)
		if a.responses > 0 {
			mean := meanScore(a.scoreSum, a.responses)
			h.MeanScore = &mean
		}
		h.NPS = a.nps()
		res.Stages = append(res.Stages, h)
	}
	return res, nil
}
