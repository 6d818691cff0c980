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
	"time"

	"github.com/waymark-dev/waymark/sessionize"
)

// SessionSummary describes the sessions that started in a time range, counted on persons.
type SessionSummary struct {
	Sessions              uint64            `json:"sessions"`
	Persons               uint64            `json:"persons"`
	Events                uint64            `json:"events"`
	MedianDurationSeconds float64           `json:"median_duration_seconds"`
	P90DurationSeconds    float64           `json:"p90_duration_seconds"`
	MeanEventsPerSession  float64           `json:"mean_events_per_session"`
	ByEndReason           map[string]uint64 `json:"by_end_reason"`
	ByEntryChannel        map[string]uint64 `json:"by_entry_channel"`
	// ByEntryTouchpoint and ByExitTouchpoint rank the sessions by their first and their last
	// touchpoint, labelled as next and paths label them (an event's or page's name, page or
	// screen for a call without one, each with its Step), at most the query's Limit of each,
	// largest first; Share is of all the sessions.
	ByEntryTouchpoint []Ranked   `json:"by_entry_touchpoint"`
	ByExitTouchpoint  []Ranked   `json:"by_exit_touchpoint"`
	From              *time.Time `json:"from,omitempty"`
	To                *time.Time `json:"to,omitempty"`
}

// SessionsQuery asks for a summary of the sessions that started in [From, To); zero times are
// unbounded.
type SessionsQuery struct {
	From, To time.Time
	// Limit is how many entry and how many exit touchpoints are listed; default 10, as next's.
	Limit int
	// Filter keeps the sessions that have at least one touchpoint passing every one of these
	// conditions (a step's filters: device.type!=bot leaves bots' sessions out), whole: their
	// other touchpoints still count in them. None: every session. A session, not a touchpoint,
	// is what it keeps, as a session filter in GA4 and PostHog keeps the sessions that include
	// a matching event.
	Filter []sessionize.Condition
}

// ParseSessionsQuery reads limit, filter, from and to.
func ParseSessionsQuery(v url.Values) (SessionsQuery, error) {
	p := newParams(v, sessionsParams())
	var q SessionsQuery
	q.Limit = p.int("limit", 1, 1000)
	if f := p.step("filter"); f != "" {
		conds, err := parseFilterParam(f)
		if err != nil {
			p.fail("filter", "%v", err) // its filter's text is in it
		}
		q.Filter = conds
	}
	q.From, q.To = p.timeRange()
	return q, p.finish()
}

// Sessions summarizes the sessions that started in the query's range (those with a touchpoint
// that passes q.Filter, when it has conditions), within the store's query limits as the other
// journey queries. A filter that tests a property never stored, or a regular expression
// ClickHouse cannot use, is a *ParamError naming filter.
//
// A session is a person's touchpoints within one visit of a device: the live stored sessions
// (latest version, not deleted) are the visits, cut per device key by the sessionizer, and the
// touchpoints of each visit are split by their person (merges and shared devices applied as in
// every scan), as funnels and drop-offs by sessions split them (sessionSplit.split, the one rule). A
// visit in which one person logs in is one session; a visit shared by several signed-in persons
// is one session per person, as Amplitude and Mixpanel count sessions per user. Each session
// starts at its person's first touchpoint in the visit (and is in the range when that is), ends
// at their last, enters by the channel of their first (in the sessionizer's order: time, seq,
// id), and ends for the visit's end reason. Its entry and exit touchpoints are its first and last
// touchpoints, labelled as next and paths label theirs (labelSQL), their steps by jm
// (TouchpointStep). Persons are the distinct persons of those sessions.
//
// Each message counts once per person, as in every other journey query: the earliest copy of a
// messageId counts (see dedupe), wherever and by whatever path (source) its copies were stored.
// The sessionizer drops a copy it meets again on the same device key, but it cannot know a copy
// sent with another anonymousId (or with the userId alone), or one read by another consumer, and
// sessionizes it on that key as a new event. The summary is what it would have been had only the earliest copy
// arrived, as Segment and Amplitude drop a repeated messageId or insert_id at ingest, before any
// session is made: a later copy is in no session, so a session has one event fewer, starts at its
// first remaining event, ends at its last and enters by the channel of its first; a visit left
// with no events of a person, made of later copies only, is no session of theirs. Two things stay
// as stored, as the query does not sessionize again (the gap and the longest session are the
// ingest's settings): a session's end reason, and a visit whose later copy bridged two visits
// stays one.
//
// The query holds one pass's visits at a time (the visits of the customer keys of the persons it
// reads, see visits), not every visit of the range: its memory follows the pass, as the other
// journey queries' does. At 10M synthetic events (9.2M visits) holding them all took 2.2 GiB.
func (s *Store) Sessions(ctx context.Context, jm *sessionize.Map, q SessionsQuery) (*SessionSummary, error) {
	return runQuery(ctx, s, "sessions", func(ctx context.Context) (*SessionSummary, error) { return s.sessions(ctx, jm, q) })
}

func (s *Store) sessions(ctx context.Context, jm *sessionize.Map, q SessionsQuery) (*SessionSummary, error) {
	from, to := q.From, q.To
	if err := CheckRange(from, to); err != nil {
		return nil, err
	}
	limit := cmp.Or(q.Limit, 10) // the default SessionsQuery documents
	if limit < 0 {
		return nil, paramErrorf("limit", "%d is negative", limit)
	}
	if len(q.Filter) > MaxStepFilters {
		return nil, paramErrorf("filter", "%d filters, at most %d", len(q.Filter), MaxStepFilters)
	}
	props, regexps := conditionNeeds(q.Filter, "filter", nil, nil)
	if err := s.checkConditions(ctx, "filter", props, regexps); err != nil {
		return nil, err
	}
	// lo and hi bound the sessions' first events (µs, as scannedEvent.t); the visits are read
	// from the milliseconds that hold them (loMs, hiMs: the visits table is in ms).
	lo, hi := int64(0), int64(math.MaxInt64)
	loMs, hiMs := lo, hi
	if !from.IsZero() {
		lo, loMs = from.UnixMicro(), from.UnixMilli()
	}
	if !to.IsZero() {
		hi, hiMs = to.UnixMicro(), (to.UnixMicro()+999)/1000
	}
	sum := &SessionSummary{ByEndReason: map[string]uint64{}, ByEntryChannel: map[string]uint64{},
		ByEntryTouchpoint: []Ranked{}, ByExitTouchpoint: []Ranked{}}
	if !from.IsZero() {
		sum.From = &from
	}
	if !to.IsZero() {
		sum.To = &to
	}
	// The latest end of the visits that began before the range ends bounds the events that can
	// be in a session of the range; the scan reads every event up to it, so that the earliest
	// copy of a message, wherever and whenever stored, is the one kept (see dedupe). Events
	// after it are in no session of the range, and later than every one of the range.
	_, last, err := s.visitBounds(ctx, loMs, hiMs)
	if err != nil {
		return nil, err
	}
	if last < 0 {
		return sum, nil
	}
	// Bit 0 of an event's mask: a touchpoint; bit 1: one that passes the filter (sessionsWalk.filtered).
	touchpoints := sessionize.Rule{Types: sessionize.TouchpointTypes()}
	preds := []predicate{rulePredicate(touchpoints)}
	w := &sessionsWalk{from: lo, to: hi}
	if len(q.Filter) > 0 {
		touchpoints.Where = q.Filter
		preds = append(preds, rulePredicate(touchpoints))
		w.filtered = 1 << 1
	}
	p := sessionsPlan(eventScan{
		preds: preds,
		attrs: []predicate{{sql: "customer_key"}, {sql: "channel"}, labelSQL}, // sessionKeyAttr, sessionChannelAttr, sessionLabelAttr
		to:    max(last*1000+999, 1),                                          // the last µs of the visits' last end (ms)
	}, w)
	agg := sessionsAgg{sum: sum, durations: newSpilledValues(), entries: map[string]int64{}, exits: map[string]int64{}}
	defer agg.durations.close()
	err = s.matchPlan(ctx, p, func() error {
		var d sessionsDecoder
		return s.matchInClickHouse(ctx, p, false, func(_, answer string) error {
			return d.add(answer, &agg)
		})
	}, func() error {
		visits := p.newVisits() // a pass's
		var outcomes []sessionOutcome
		return s.scanVisits(ctx, p.scan, visits, func(_ string, events []scannedEvent, attrs attrTable) error {
			outcomes = w.of(outcomes[:0], events, attrs, visits)
			return agg.addPerson(outcomes)
		})
	})
	if err != nil {
		return nil, err // runQuery names the query
	}
	if sum.Sessions > 0 {
		ms, err := agg.durations.nth(nearestRank(0.5, sum.Sessions), nearestRank(0.9, sum.Sessions))
		if err != nil {
			return nil, fmt.Errorf("sessions: durations: %w", err)
		}
		sum.MedianDurationSeconds, sum.P90DurationSeconds = float64(ms[0])/1000, float64(ms[1])/1000
		sum.MeanEventsPerSession = float64(sum.Events) / float64(sum.Sessions)
	}
	sum.ByEntryTouchpoint = rankTouchpoints(jm, agg.entries, int64(sum.Sessions), limit)
	sum.ByExitTouchpoint = rankTouchpoints(jm, agg.exits, int64(sum.Sessions), limit)
	return sum, nil
}

// The attribute columns a sessions query reads of each touchpoint (sessionsPlan's scan).
const sessionKeyAttr, sessionChannelAttr, sessionLabelAttr = 0, 1, 2

// sessionsPlan is the plan of a sessions query reading sc (its touchpoints: mask bit 0, and bit 1
// for those passing the filter; attribute columns sessionKeyAttr, sessionChannelAttr and
// sessionLabelAttr) whose persons w walks: in Waymark, or in the waymark_funnel UDF, which
// takes a plan of steps, so it has one, never matched (as plainPlan's). Its visits are those that
// end at or after the range's start (newVisits).
func sessionsPlan(sc eventScan, w *sessionsWalk) *funnelPlan {
	return &funnelPlan{conds: make([]condition, len(sc.preds)), blocks: make([]uint64, len(sc.preds)),
		steps: []stepPlan{{conds: []int{0}, nth: []int{1}}}, spec: matchSpec{steps: 1, mode: ModeOrdered},
		scan: sc, from: w.from, attr: -1, traitCond: -1, keyAttr: sessionKeyAttr, sessions: w}
}

// sessionsWalk is what a sessions query reads of each person: their sessions (sessionSplit.split,
// the one rule of the session unit) whose first touchpoint is in [from, to), and of those, when
// filtered is set, the ones with a touchpoint passing the query's filter. Waymark and the UDF
// both summarize a person's sessions with it (of), so both places give the same answer.
type sessionsWalk struct {
	from, to int64  // µs
	filtered uint64 // the mask bit of the touchpoints passing the filter; 0: no filter
	split    sessionSplit[scannedEvent]
	keys     []string
}

// sessionOutcome is one session as the summary counts it: its duration (ms, from its first
// touchpoint to its last, the µs cut), its touchpoints, the visit's end reason, and its entry's
// channel and label and its last touchpoint's label (labelSQL).
type sessionOutcome struct {
	durationMs                   uint64
	events                       int
	reason, channel, entry, exit string
}

// of appends to dst the outcomes of the sessions of one person's touchpoints (deduplicated, with
// the attributes of sessionsPlan's scan) in visits, in the order of their first touchpoints. Their
// texts are attrs' and visits', valid while those are.
func (w *sessionsWalk) of(dst []sessionOutcome, events []scannedEvent, attrs attrTable, visits *visits) []sessionOutcome {
	if !inScanOrder(events) {
		slices.SortFunc(events, compareScanned)
	}
	w.keys = w.keys[:0]
	for _, e := range events {
		w.keys = append(w.keys, attrs.value(e.at, sessionKeyAttr))
	}
	for _, ss := range w.split.split(events, w.keys, func(e scannedEvent) (int64, int64) { return e.t, e.seq }, visits) {
		first, end := ss.events[0], ss.events[len(ss.events)-1]
		if first.t < w.from || first.t >= w.to {
			continue
		}
		if w.filtered != 0 && !slices.ContainsFunc(ss.events, func(e scannedEvent) bool { return e.mask&w.filtered != 0 }) {
			continue
		}
		entry := ss.entry().at
		dst = append(dst, sessionOutcome{durationMs: uint64(end.t-first.t) / 1000, events: len(ss.events), reason: visits.reason(ss.visit),
			channel: attrs.value(entry, sessionChannelAttr), entry: attrs.value(entry, sessionLabelAttr), exit: attrs.value(end.at, sessionLabelAttr)})
	}
	return dst
}

// label is the outcome's text of kind: 0 its end reason, 1 its entry's channel, 2 its entry's
// label, 3 its exit's label (sessionsSum.labels).
func (o sessionOutcome) label(kind int) string {
	return [...]string{o.reason, o.channel, o.entry, o.exit}[kind]
}

// sessionsSum is a person's sessions summed, as a sessions query's UDF answer carries them (since
// spec version 22): their touchpoints, each one's duration (the exact quantiles need every
// one) and their counts by end reason, entry channel, entry and exit (sessionOutcome.label). A
// text a session made the answers of the benchmark's 100M events 4.8 GB a query, which Waymark's
// driver read with 25 GB of allocations (docs/query-scale.md).
type sessionsSum struct {
	durations []uint64 // ms, one a session
	events    uint64
	labels    [4][]labelCount
	index     map[string]int // scratch: a label's place in the kind being counted
}

// labelCount is how many of a person's sessions have a label.
type labelCount struct {
	label string
	n     uint64
}

// of makes s the sum of outcomes, in its own space; its labels are the outcomes' texts.
func (s *sessionsSum) of(outcomes []sessionOutcome) {
	s.durations, s.events = s.durations[:0], 0
	for _, o := range outcomes {
		s.durations = append(s.durations, o.durationMs)
		s.events += uint64(o.events)
	}
	if s.index == nil {
		s.index = map[string]int{}
	}
	for kind := range s.labels {
		clear(s.index)
		counts := s.labels[kind][:0]
		for _, o := range outcomes {
			l := o.label(kind)
			if i, ok := s.index[l]; ok {
				counts[i].n++
				continue
			}
			s.index[l] = len(counts)
			counts = append(counts, labelCount{l, 1})
		}
		s.labels[kind] = counts
	}
}

// encode appends s to b as text: the number of sessions, their touchpoints and each one's
// duration, then for each kind of label the number of its labels and each one's count, all
// separated by spaces; then the labels, kind after kind, as appendText texts.
func (s *sessionsSum) encode(b []byte) []byte {
	b = strconv.AppendInt(b, int64(len(s.durations)), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, s.events, 10)
	for _, d := range s.durations {
		b = append(b, ' ')
		b = strconv.AppendUint(b, d, 10)
	}
	for _, counts := range s.labels {
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(len(counts)), 10)
		for _, c := range counts {
			b = append(b, ' ')
			b = strconv.AppendUint(b, c.n, 10)
		}
	}
	for _, counts := range s.labels {
		for _, c := range counts {
			b = appendText(b, c.label)
		}
	}
	return b
}

// sessionsDecoder decodes a person's UDF answer to a sessions query (sessionsSum's encoding) into
// a sessionsAgg, in space it reuses from one answer to the next.
type sessionsDecoder struct {
	texts []string
}

// add parses a person's answer, a session at least, into a; an answer that does not follow the
// encoding is an error.
func (d *sessionsDecoder) add(answer string, a *sessionsAgg) error {
	nums, texts, err := cutTexts(answer, d.texts[:0])
	d.texts = texts
	if err != nil {
		return fmt.Errorf("sessions' sum %.60q: %w", answer, err)
	}
	// next reads the next number of nums.
	next := func() (uint64, bool) {
		var f string
		f, nums, _ = strings.Cut(nums, " ")
		n, err := strconv.ParseUint(f, 10, 64)
		return n, err == nil
	}
	sessions, ok1 := next()
	events, ok2 := next()
	if !ok1 || !ok2 || sessions < 1 || events < sessions {
		return fmt.Errorf("sessions' sum %.60q: bad sessions or touchpoints", answer)
	}
	a.sum.Persons++
	a.sum.Sessions += sessions
	a.sum.Events += events
	for range sessions {
		d, ok := next()
		if !ok {
			return fmt.Errorf("sessions' sum %.60q: want %d durations", answer, sessions)
		}
		if err := a.durations.add(d); err != nil {
			return err
		}
	}
	for kind := range 4 {
		k, ok := next()
		if !ok || k > sessions || k > uint64(len(texts)) {
			return fmt.Errorf("sessions' sum %.60q: bad labels", answer)
		}
		var total uint64
		for _, label := range texts[:k] {
			n, ok := next()
			if !ok || n < 1 {
				return fmt.Errorf("sessions' sum %.60q: bad label count", answer)
			}
			total += n
			switch kind {
			case 0:
				countKeyBy(a.sum.ByEndReason, label, n)
			case 1:
				countKeyBy(a.sum.ByEntryChannel, label, n)
			case 2:
				countKeyBy(a.entries, label, int64(n))
			case 3:
				countKeyBy(a.exits, label, int64(n))
			}
		}
		if total != sessions {
			return fmt.Errorf("sessions' sum %.60q: labels of %d sessions, want %d", answer, total, sessions)
		}
		texts = texts[k:]
	}
	if nums != "" || len(texts) != 0 {
		return fmt.Errorf("sessions' sum %.60q: more than the labels", answer)
	}
	return nil
}

// sessionsAgg sums persons' session outcomes into a SessionSummary, the sessions' durations
// (spilled, for their exact quantiles) and their entry and exit touchpoints' counts by label.
type sessionsAgg struct {
	sum            *SessionSummary
	durations      *spilledValues // ms
	entries, exits map[string]int64
}

// addPerson adds one person's sessions; a person of none is not counted.
func (a *sessionsAgg) addPerson(outcomes []sessionOutcome) error {
	if len(outcomes) == 0 {
		return nil
	}
	a.sum.Persons++
	for _, o := range outcomes {
		if err := a.addSession(o); err != nil {
			return err
		}
	}
	return nil
}

// addSession adds one session of a person counted (addPerson).
func (a *sessionsAgg) addSession(o sessionOutcome) error {
	sum := a.sum
	sum.Sessions++
	sum.Events += uint64(o.events)
	if err := a.durations.add(o.durationMs); err != nil {
		return err
	}
	countKey(sum.ByEndReason, o.reason)
	countKey(sum.ByEntryChannel, o.channel)
	countKey(a.entries, o.entry)
	countKey(a.exits, o.exit)
	return nil
}
