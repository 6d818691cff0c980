package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/waymark-dev/waymark/sessionize"
)

// MaxFunnelSteps is the most steps a funnel may have.
const MaxFunnelSteps = 32

// FunnelQuery asks how many customers get through a sequence of steps.
type FunnelQuery struct {
	// Steps are event names or stage names of the journey map, in order.
	Steps []string
	// Window is the longest time from a customer's first step to their last.
	Window time.Duration
	// From and To bound the time of the first step, [From, To); zero means unbounded.
	From, To time.Time
}

// FunnelStep is one row of a funnel answer.
type FunnelStep struct {
	Name                   string  `json:"name"`
	Customers              int64   `json:"customers"`
	ConversionFromFirst    float64 `json:"conversion_from_first"`
	ConversionFromPrevious float64 `json:"conversion_from_previous"`
	DropOff                int64   `json:"drop_off"`
	DropOffRate            float64 `json:"drop_off_rate"`
	LargestDropOff         bool    `json:"largest_drop_off,omitempty"`
}

// FunnelResult is the answer to a FunnelQuery.
type FunnelResult struct {
	Steps         []FunnelStep `json:"steps"`
	WindowSeconds int64        `json:"window_seconds"`
	From          *time.Time   `json:"from,omitempty"`
	To            *time.Time   `json:"to,omitempty"`
}

// Validate reports the first problem with the query, naming the parameter.
func (q *FunnelQuery) Validate() error {
	switch {
	case len(q.Steps) == 0:
		return errors.New("steps: at least one step is required")
	case len(q.Steps) > MaxFunnelSteps:
		return fmt.Errorf("steps: at most %d steps, got %d", MaxFunnelSteps, len(q.Steps))
	case q.Window <= 0:
		return fmt.Errorf("window: must be positive, got %s", q.Window)
	case !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To):
		return fmt.Errorf("from: %s is not before to %s", q.From.Format(time.RFC3339), q.To.Format(time.RFC3339))
	}
	for i, s := range q.Steps {
		if strings.TrimSpace(s) == "" {
			return fmt.Errorf("steps: step %d is empty", i+1)
		}
	}
	return nil
}

// Funnel counts, per step, the customers who reach it, with the "ordered" semantics of the design:
// a customer reaches step k when distinct events e1…ek match steps 1…k with non-decreasing times
// (equal times in either order), e1 in [From, To) and ek within Window of e1.
//
// ClickHouse selects and deduplicates the matching events of each customer; the exact matching,
// which windowFunnel gets wrong on ties and on steps matching the same event, runs here on each
// customer's short list as it streams in.
func (s *Store) Funnel(ctx context.Context, jm *sessionize.Map, q FunnelQuery) (*FunnelResult, error) {
	start := time.Now()
	res, err := s.funnel(ctx, jm, q)
	s.metrics.querySeconds.WithLabelValues("funnel").Observe(time.Since(start).Seconds())
	if err != nil {
		s.metrics.queryErrors.WithLabelValues("funnel").Inc()
	}
	return res, err
}

func (s *Store) funnel(ctx context.Context, jm *sessionize.Map, q FunnelQuery) (*FunnelResult, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	plan := planSteps(jm, q.Steps)
	query, args := plan.sql(s.table("events"), s.table("persons"), q)
	rows, err := s.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("funnel query: %w", err)
	}
	defer rows.Close()
	m := newMatcher(plan, q)
	reached := make([]int64, len(q.Steps))
	var (
		person string
		times  []uint64
		masks  []uint64
		ids    []uint64
	)
	for rows.Next() {
		if err := rows.Scan(&person, &times, &masks, &ids); err != nil {
			return nil, fmt.Errorf("funnel query: read row: %w", err)
		}
		for k := range m.level(times, masks, ids) {
			reached[k]++
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("funnel query: %w", err)
	}
	return buildFunnelResult(q, reached), nil
}

func buildFunnelResult(q FunnelQuery, reached []int64) *FunnelResult {
	res := &FunnelResult{WindowSeconds: int64(q.Window / time.Second)}
	if !q.From.IsZero() {
		res.From = &q.From
	}
	if !q.To.IsZero() {
		res.To = &q.To
	}
	largest := -1
	for k, name := range q.Steps {
		st := FunnelStep{Name: name, Customers: reached[k]}
		st.ConversionFromFirst = ratio(reached[k], reached[0])
		st.ConversionFromPrevious = 1
		if k > 0 {
			st.ConversionFromPrevious = ratio(reached[k], reached[k-1])
		}
		if k+1 < len(reached) {
			st.DropOff = reached[k] - reached[k+1]
			st.DropOffRate = ratio(st.DropOff, reached[k])
			if st.DropOff > 0 && (largest < 0 || st.DropOff > res.Steps[largest].DropOff) {
				largest = k
			}
		}
		res.Steps = append(res.Steps, st)
	}
	if largest >= 0 {
		res.Steps[largest].LargestDropOff = true
	}
	return res
}

// ratio is a/b rounded to 4 decimals, 0 when b is 0.
func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return math.Round(float64(a)/float64(b)*1e4) / 1e4
}

// condition is one rule's base predicate; conditions are shared between steps.
type condition struct {
	rule sessionize.Rule
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
}

// planSteps resolves step names: a stage of the journey map means its rules, anything else an
// event name.
func planSteps(jm *sessionize.Map, names []string) funnelPlan {
	var p funnelPlan
	index := map[string]int{}
	add := func(r sessionize.Rule) int {
		key := strings.Join(r.Types, "\x00") + "\x01" + strings.Join(r.Events, "\x00") + "\x01" + strings.Join(r.Channels, "\x00")
		for i := range r.Where {
			key += "\x01" + r.Where[i].Key()
		}
		if i, ok := index[key]; ok {
			return i
		}
		index[key] = len(p.conds)
		p.conds = append(p.conds, condition{rule: r})
		return len(p.conds) - 1
	}
	for _, name := range names {
		var sp stepPlan
		rules := []sessionize.Rule{{Events: []string{name}}}
		if st, ok := jm.Stage(name); ok {
			rules = st.Rules
		}
		for _, r := range rules {
			nth := max(r.Nth, 1)
			base := r
			base.Nth = 0
			sp.conds = append(sp.conds, add(base))
			sp.nth = append(sp.nth, nth)
			p.needHistory = p.needHistory || nth > 1
		}
		p.steps = append(p.steps, sp)
	}
	return p
}

// sql builds the query returning, per person (customer keys resolved through identity links), the
// time, condition mask and id of each distinct event that matches any condition, within the time
// range the funnel can use.
func (p funnelPlan) sql(table, persons string, q FunnelQuery) (string, []any) {
	var preds []string
	var predArgs []any
	for _, c := range p.conds {
		var parts []string
		if len(c.rule.Types) > 0 {
			parts = append(parts, "type IN ("+placeholders(len(c.rule.Types))+")")
			predArgs = appendStrings(predArgs, c.rule.Types)
		}
		if len(c.rule.Events) > 0 {
			parts = append(parts, "event IN ("+placeholders(len(c.rule.Events))+")")
			predArgs = appendStrings(predArgs, c.rule.Events)
		}
		if len(c.rule.Channels) > 0 {
			parts = append(parts, "channel IN ("+placeholders(len(c.rule.Channels))+")")
			predArgs = appendStrings(predArgs, c.rule.Channels)
		}
		for i := range c.rule.Where {
			sql, args := conditionSQL(&c.rule.Where[i])
			parts = append(parts, sql)
			predArgs = append(predArgs, args...)
		}
		preds = append(preds, "("+strings.Join(parts, " AND ")+")")
	}
	maskTerms := make([]string, len(preds))
	for i, pred := range preds {
		maskTerms[i] = fmt.Sprintf("if(%s, toUInt64(%d), toUInt64(0))", pred, uint64(1)<<i)
	}
	// Placeholders are positional: the mask's predicates come first, then the WHERE clause's.
	args := append(slices.Clone(predArgs), predArgs...)
	where := "(" + strings.Join(preds, " OR ") + ")"
	if !q.From.IsZero() && !p.needHistory {
		where += " AND ts_ms >= ?"
		args = append(args, uint64(q.From.UnixMilli()))
	}
	if !q.To.IsZero() {
		where += " AND ts_ms <= ?"
		args = append(args, uint64(q.To.Add(q.Window).UnixMilli()))
	}
	query := `SELECT person, groupArray(t), groupArray(mask), groupArray(id)
FROM (
	SELECT if(person_id = '', customer_key, person_id) AS person, t, mask, id
	FROM (
		SELECT customer_key, any(ts_ms) AS t, any(` + strings.Join(maskTerms, " + ") + `) AS mask,
			cityHash64(source, message_id) AS id
		FROM ` + table + `
		WHERE ` + where + `
		GROUP BY customer_key, source, message_id
	) ANY LEFT JOIN (` + personsSQL(persons) + `) USING customer_key
)
GROUP BY person`
	return query, args
}

// conditionSQL translates a journey-map condition into a predicate on the events table, with the
// same meaning as Condition.Matches: a missing field fails every operator.
func conditionSQL(c *sessionize.Condition) (string, []any) {
	columns := map[string]string{"page.path": "page_path", "page.referrer": "referrer",
		"campaign.source": "campaign_source", "campaign.medium": "campaign_medium", "campaign.name": "campaign_name"}
	value, present := columns[c.Field], columns[c.Field]+" != ''"
	if value == "" {
		name := sqlString(strings.TrimPrefix(c.Field, "properties."))
		value, present = "prop_values[indexOf(prop_keys, "+name+")]", "has(prop_keys, "+name+")"
	}
	var op string
	var args []any
	switch {
	case c.Equals != nil:
		op, args = value+" = ?", []any{*c.Equals}
	case c.OneOf != nil:
		op, args = value+" IN ("+placeholders(len(c.OneOf))+")", appendStrings(nil, c.OneOf)
	case c.Prefix != nil:
		op, args = "substring("+value+", 1, ?) = ?", []any{len(*c.Prefix), *c.Prefix}
	case c.Regexp != nil:
		op, args = "match("+value+", ?)", []any{*c.Regexp}
	default:
		cmp, bound := ">", c.GT
		switch {
		case c.GTE != nil:
			cmp, bound = ">=", c.GTE
		case c.LT != nil:
			cmp, bound = "<", c.LT
		case c.LTE != nil:
			cmp, bound = "<=", c.LTE
		}
		// toFloat64OrZero reads anything that is not a number as 0: require a number, as Matches
		// does. (No "?" in the literal: the client binds every "?".)
		op = "match(" + value + ", " + sqlString(`^\s*[-+]{0,1}([0-9]+[.]{0,1}[0-9]*|[.][0-9]+)([eE][-+]{0,1}[0-9]+){0,1}\s*$`) + ") AND toFloat64OrZero(" + value + ") " + cmp + " ?"
		args = []any{*bound}
	}
	return "(" + present + " AND " + op + ")", args
}

// sqlString quotes s as a ClickHouse string literal.
func sqlString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// personsSQL selects each customer key's person, as last stitched.
func personsSQL(table string) string {
	return "SELECT customer_key, argMax(person_id, version) AS person_id FROM " + table + " GROUP BY customer_key"
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

func appendStrings(args []any, values []string) []any {
	for _, v := range values {
		args = append(args, v)
	}
	return args
}

// matcher computes how far one customer gets through the funnel.
type matcher struct {
	plan       funnelPlan
	from, to   int64 // ms; to is exclusive, math.MaxInt64 when unbounded
	window     int64 // ms
	events     []funnelEvent
	counts     []int
	assignment []int // per step in the current block: event index, or -1
}

type funnelEvent struct {
	t     int64
	id    uint64
	mask  uint64 // condition bits
	steps uint64 // step bits, after nth counting
}

func newMatcher(p funnelPlan, q FunnelQuery) *matcher {
	m := &matcher{plan: p, from: math.MinInt64, to: math.MaxInt64, window: q.Window.Milliseconds(), counts: make([]int, len(p.conds))}
	if !q.From.IsZero() {
		m.from = q.From.UnixMilli()
	}
	if !q.To.IsZero() {
		m.to = q.To.UnixMilli()
	}
	return m
}

// level returns how many steps the customer reaches (0 to len(steps)).
func (m *matcher) level(times, masks, ids []uint64) int {
	m.events = m.events[:0]
	for i := range times {
		m.events = append(m.events, funnelEvent{t: int64(times[i]), id: ids[i], mask: masks[i]})
	}
	slices.SortFunc(m.events, func(a, b funnelEvent) int {
		if a.t != b.t {
			return cmp.Compare(a.t, b.t)
		}
		return cmp.Compare(a.id, b.id)
	})
	// Step bits, counting each condition's matches in time order for nth requirements; events
	// before From only count.
	clear(m.counts)
	kept := m.events[:0]
	for _, e := range m.events {
		for c := range m.plan.conds {
			if e.mask&(1<<c) != 0 {
				m.counts[c]++
			}
		}
		for k, sp := range m.plan.steps {
			for j, c := range sp.conds {
				if e.mask&(1<<c) != 0 && m.counts[c] >= sp.nth[j] {
					e.steps |= 1 << k
					break
				}
			}
		}
		if e.steps != 0 && e.t >= m.from {
			kept = append(kept, e)
		}
	}
	m.events = kept
	n := len(m.plan.steps)
	best := 0
	for i := 0; i < len(m.events) && best < n; {
		j := i // the block of events at one time is events[i:j]
		startsHere := false
		for ; j < len(m.events) && m.events[j].t == m.events[i].t; j++ {
			startsHere = startsHere || m.events[j].steps&1 != 0
		}
		if m.events[i].t >= m.to {
			break
		}
		if startsHere {
			best = max(best, m.from1(i, n))
		}
		i = j
	}
	return best
}

// from1 returns the level reached with the first step taken in the block of events that begins at
// index start.
func (m *matcher) from1(start, n int) int {
	t1 := m.events[start].t
	lvl := 0
	for i := start; i < len(m.events) && lvl < n; {
		t := m.events[i].t
		if t-t1 > m.window {
			break
		}
		j := i
		for j < len(m.events) && m.events[j].t == t {
			j++
		}
		lvl += m.matchBlock(m.events[i:j], lvl, n)
		i = j
	}
	return lvl
}

// matchBlock returns the longest run of steps from lvl that distinct events of one timestamp can
// take, by growing a bipartite matching one step at a time.
func (m *matcher) matchBlock(block []funnelEvent, lvl, n int) int {
	owner := make([]int, len(block)) // event -> step, -1 free
	for i := range owner {
		owner[i] = -1
	}
	var try func(step int, seen []bool) bool
	try = func(step int, seen []bool) bool {
		for i, e := range block {
			if e.steps&(1<<step) == 0 || seen[i] {
				continue
			}
			seen[i] = true
			if owner[i] < 0 || try(owner[i], seen) {
				owner[i] = step
				return true
			}
		}
		return false
	}
	k := 0
	for lvl+k < n && k < len(block) {
		if !try(lvl+k, make([]bool, len(block))) {
			break
		}
		k++
	}
	return k
}
