package store_test

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
	"github.com/waymark-dev/waymark/store"
)

// The reference implementations below answer each journey question in plain Go, by brute force,
// straight from the events as written; the tests check the store's answers against them.

// refEvent is one distinct event of a person.
type refEvent struct {
	ingest.Event
	key     string // customer key
	t       int64  // µs (the stored time, eventTime)
	channel string
	tracked bool
}

func (e refEvent) label() string {
	if e.Event.Event != "" {
		return e.Event.Event
	}
	return e.Type
}

// refData is a generated shop: events (some sent twice, some again from another device of the
// person at another time), channels, identity merges made after
// the fact, and the sessions of each customer key.
type refData struct {
	events   []ingest.Event
	channels []string
	links    []sessionize.PersonLink
	sessions []sessionize.Session
}

var refNames = []string{"Product Viewed", "Product Viewed", "Product Added", "Checkout Started", "Order Completed",
	"Order Completed", "Coupon Removed", "Survey Answered", "Product Reviewed"}

func generateRefData(seed uint64, persons int) refData {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	var d refData
	channels := []string{"", "email", "cpc", "social"}
	for p := range persons {
		user := fmt.Sprintf("u%03d", p)
		keys := []string{user}
		if rng.IntN(3) == 0 { // browsed anonymously first, identified later
			keys = append(keys, fmt.Sprintf("anon-%03d", p))
			d.links = append(d.links, sessionize.PersonLink{CustomerKey: keys[1], PersonID: user})
		}
		day := t0.Add(time.Duration(rng.IntN(60)) * 24 * time.Hour)
		for i := range 2 + rng.IntN(7) {
			if rng.IntN(6) == 0 { // a later visit, weeks on
				day = day.Add(time.Duration(1+rng.IntN(20)) * 24 * time.Hour)
			}
			key := keys[rng.IntN(len(keys))]
			e := ingest.Event{Source: "ref", Type: "track", Event: refNames[rng.IntN(len(refNames))],
				MessageID: fmt.Sprintf("%s-%d", key, i), Timestamp: day.Add(time.Duration(rng.IntN(8)) * 10 * time.Minute),
				ReceivedAt: t0, Raw: []byte(`{}`)}
			if rng.IntN(2) == 0 {
				// Microseconds, as Segment's Python, Go and Java libraries send: events within one
				// millisecond are in the order of their times, not of their seq.
				e.Timestamp = e.Timestamp.Add(time.Duration(rng.IntN(4)) * 300 * time.Microsecond)
			}
			if key == user {
				e.UserID = user
			} else {
				e.AnonymousID = key
			}
			switch rng.IntN(8) {
			case 0:
				e.Type, e.Event, e.PagePath = "page", "", "/p/"+strconv.Itoa(rng.IntN(3))
			case 1:
				e.Type, e.Event = "identify", ""
				e.PropertyKeys, e.PropertyValues = []string{"traits.customer_type"}, []string{[]string{"new", "pro"}[rng.IntN(2)]}
			}
			if e.Event == "Survey Answered" {
				e.PropertyKeys, e.PropertyValues = []string{"score"}, []string{strconv.Itoa(rng.IntN(11))}
				if i%2 == 0 {
					e.Event = "NPS Submitted" // an answer to the Net Promoter question, 0–10
				}
			}
			if e.Event == "Order Completed" && i%3 != 2 { // Segment's products list, by element
				e.ItemKeys = []string{"products.category", "products.category"}[:2-i%3]
				e.ItemValues = []string{"shoes", "hats"}[i%3:]
			}
			if e.Event == "Product Viewed" {
				e.PropertyKeys, e.PropertyValues = []string{"category", ingest.DeviceTypeKey}, []string{[]string{"shoes", "hats"}[rng.IntN(2)], []string{"mobile", "desktop"}[rng.IntN(2)]}
			}
			e.Seq = int64(len(d.events) + 1) // the client's order, as a partition's offsets give it
			channel := channels[rng.IntN(len(channels))]
			if channel != "" {
				e.CampaignName = channel + "-campaign" // a campaign of its own, read by a session's entry
			}
			d.events = append(d.events, e)
			d.channels = append(d.channels, channel)
			if len(keys) == 2 && rng.IntN(5) == 0 {
				// The same message sent again from the person's other device, up to an hour
				// earlier or later: a copy the sessionizer cannot know, which queries drop.
				c := e
				c.UserID, c.AnonymousID = "", ""
				if other := keys[1-slices.Index(keys, key)]; other == user {
					c.UserID = user
				} else {
					c.AnonymousID = other
				}
				c.Timestamp = e.Timestamp.Add(time.Duration(rng.IntN(121)-60) * time.Minute)
				c.Seq = int64(len(d.events) + 1)
				d.events = append(d.events, c)
				d.channels = append(d.channels, channels[rng.IntN(len(channels))])
			}
		}
	}
	// Sessions per customer key: runs with gaps of at most 30 minutes, entered by the channel of
	// their first event (its campaign named after it), which the events after it mostly lack.
	type timed struct {
		t       int64
		channel string
	}
	byKey := map[string][]timed{}
	for i, e := range d.events {
		byKey[e.CustomerKey()] = append(byKey[e.CustomerKey()], timed{e.Timestamp.UnixMicro(), d.channels[i]})
	}
	for key, ts := range byKey {
		slices.SortStableFunc(ts, func(a, b timed) int { return cmp.Compare(a.t, b.t) })
		first := 0
		for i := range ts {
			if i+1 == len(ts) || ts[i+1].t-ts[i].t > 30*60*1_000_000 {
				entry := ts[first].channel
				d.sessions = append(d.sessions, sessionize.Session{ID: fmt.Sprintf("%s-%d", key, ts[first].t), CustomerKey: key,
					Start: time.UnixMicro(ts[first].t).UTC(), End: time.UnixMicro(ts[i].t).UTC(), Version: 1,
					EntryChannel: entry, EntryCampaign: cmp.Or(entry, "none") + "-campaign"})
				first = i + 1
			}
		}
	}
	return d
}

// write stores the data as it might arrive: every fifth event late, in a batch after the others
// although its time is earlier; then everything again (a redelivery changes nothing); then the
// identity merges.
func (d refData) write(t testing.TB, s *store.Store) {
	t.Helper()
	ctx := context.Background()
	var onTime sessionize.Batch
	for i := range d.events {
		if i%5 != 0 {
			onTime.Events = append(onTime.Events, d.events[i])
			onTime.Channels = append(onTime.Channels, d.channels[i])
		}
	}
	for _, b := range []sessionize.Batch{onTime, {Events: d.events, Channels: d.channels, Sessions: d.sessions, Version: 1}} {
		if err := s.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	// Each anonymous key was first its own person; the merge comes later, with a higher version.
	var own []sessionize.PersonLink
	for _, l := range d.links {
		own = append(own, sessionize.PersonLink{CustomerKey: l.CustomerKey, PersonID: l.CustomerKey})
	}
	if err := s.Write(ctx, sessionize.Batch{Persons: own, Version: 2}); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, sessionize.Batch{Persons: d.links, Version: 3}); err != nil {
		t.Fatal(err)
	}
}

// storedRefData generates a shop (seed, persons) and writes it into a store of its own.
func storedRefData(t testing.TB, seed uint64, persons int) (refData, *store.Store) {
	t.Helper()
	d := generateRefData(seed, persons)
	s := openStore(t)
	d.write(t, s)
	return d, s
}

// matchingPath is a store whose funnels match in one place.
type matchingPath struct {
	name string // process or engine
	s    *store.Store
}

// storedRefDataPaths is storedRefData with a store per place funnels can match on the test
// engine, all on the same database: in process, and in ClickHouse (the waymark_funnel UDF,
// required) when the engine has it.
func storedRefDataPaths(t testing.TB, seed uint64, persons int) (refData, []matchingPath) {
	t.Helper()
	d := generateRefData(seed, persons)
	var db string
	s := openStoreWith(t, func(c *store.Config) { db, c.FunnelMatching = c.Database, store.MatchProcess })
	d.write(t, s)
	return d, append([]matchingPath{{store.MatchProcess, s}}, enginePaths(t, db)...)
}

// enginePaths is a store on database db whose funnels must match in ClickHouse, when the test
// engine has the waymark_funnel UDF; none on 18.16.
func enginePaths(t testing.TB, db string) []matchingPath {
	t.Helper()
	if !server.FunnelUDF {
		return nil
	}
	return []matchingPath{{store.MatchEngine, openStoreWith(t, func(c *store.Config) { c.Database, c.FunnelMatching = db, store.MatchEngine })}}
}

// persons groups the distinct events by person, in time order, equal times in the client's order
// (Seq). Of an event's copies the earliest counts (the first sent, at equal times).
func (d refData) persons() map[string][]refEvent {
	person := map[string]string{}
	for _, l := range d.links {
		person[l.CustomerKey] = l.PersonID
	}
	earliest := map[string]int{}
	for i, e := range d.events {
		if j, ok := earliest[e.MessageID]; !ok || e.Timestamp.Before(d.events[j].Timestamp) || e.Timestamp.Equal(d.events[j].Timestamp) && e.Seq < d.events[j].Seq {
			earliest[e.MessageID] = i
		}
	}
	out := map[string][]refEvent{}
	for i, e := range d.events {
		if earliest[e.MessageID] != i {
			continue
		}
		key := e.CustomerKey()
		p := cmp.Or(person[key], key)
		out[p] = append(out[p], refEvent{Event: e, key: key, t: e.Timestamp.UnixMicro(), channel: d.channels[i],
			tracked: e.Type == "track" || e.Type == "page" || e.Type == "screen"})
	}
	for _, evs := range out {
		slices.SortFunc(evs, func(a, b refEvent) int { return cmp.Or(cmp.Compare(a.t, b.t), cmp.Compare(a.Seq, b.Seq)) })
	}
	return out
}

// matchesStep reports whether event i of evs matches a step (an event name, or a stage with its
// nth rules counted over evs in order).
func matchesStep(jm *sessionize.Map, step string, evs []refEvent, i int) bool {
	if name, filter, ok := strings.Cut(strings.TrimSuffix(step, "]"), "["); ok { // Name[key=value]
		key, value, _ := strings.Cut(filter, "=")
		got, set := evs[i].Property(key)
		if key == "device.type" { // the context field, not a property
			got = evs[i].DeviceType()
			set = got != ""
		}
		item := false // or any item of a list under key
		for j, k := range evs[i].ItemKeys {
			item = item || k == key && evs[i].ItemValues[j] == value
		}
		return (set && got == value || item) && matchesStep(jm, name, evs, i)
	}
	st, ok := jm.Stage(step)
	if !ok {
		return evs[i].Event.Event == step
	}
	for _, r := range st.Rules {
		if !r.Matches(&evs[i].Event, evs[i].channel) {
			continue
		}
		n := 0
		for j := 0; j <= i; j++ {
			if r.Matches(&evs[j].Event, evs[j].channel) {
				n++
			}
		}
		if n >= max(r.Nth, 1) {
			return true
		}
	}
	return false
}

// refPath is a unit's furthest step and canonical path (smallest times, then smallest breakdown
// value of the first event), by trying every sequence of distinct events. Holding a property
// constant (q.Hold), it tries the sequences of each value's events apart (an event without the
// property takes no step) and keeps the furthest, then the canonical one of those, then the one
// of the smallest value.
func refPath(jm *sessionize.Map, q store.FunnelQuery, evs []refEvent, attr func(refEvent) string) (int, []int) {
	n := len(q.Steps)
	match := make([][]bool, len(evs))
	for i := range evs {
		match[i] = make([]bool, n)
		for k, step := range q.Steps {
			match[i][k] = matchesStep(jm, step, evs, i)
		}
	}
	if q.Hold == "" {
		return refSearch(q, evs, attr, match)
	}
	var values []string
	for _, e := range evs {
		for _, v := range refHeld(q, e) {
			if !slices.Contains(values, v) {
				values = append(values, v)
			}
		}
	}
	slices.Sort(values)
	best, bestPath := 0, []int(nil)
	for _, v := range values {
		held := make([][]bool, len(evs))
		for i := range evs {
			held[i] = make([]bool, n)
			for k := range n {
				held[i][k] = match[i][k] && slices.Contains(refHeld(q, evs[i]), v)
			}
		}
		level, path := refSearch(q, evs, attr, held)
		if level > best || level == best && level > 0 && refEarlier(evs, attr, path, bestPath) {
			best, bestPath = level, path
		}
	}
	return best, bestPath
}

// refHeld is the values of the held property (q.Hold) on e: its own, when it has a value of it
// (not empty); else those of the items of its products list (Segment's e-commerce spec: an order
// lists its products).
func refHeld(q store.FunnelQuery, e refEvent) []string {
	if v, _ := e.Property(q.Hold); v != "" {
		return []string{v}
	}
	var vs []string
	for i, k := range e.ItemKeys {
		if k == ingest.PropertyKey("products."+q.Hold) && e.ItemValues[i] != "" && !slices.Contains(vs, e.ItemValues[i]) {
			vs = append(vs, e.ItemValues[i])
		}
	}
	return vs
}

// refPathValue is the held value of a unit's canonical path (refPath): the smallest value all
// its events have. Of equal paths refPath keeps the smallest value's, and any value all the
// path's events have gives that path.
func refPathValue(q store.FunnelQuery, unit []refEvent, path []int) string {
	best := ""
	for _, v := range refHeld(q, unit[path[0]]) {
		if (best == "" || v < best) && !slices.ContainsFunc(path, func(i int) bool { return !slices.Contains(refHeld(q, unit[i]), v) }) {
			best = v
		}
	}
	return best
}

// refEarlier reports whether path a comes before path b of the same length: smaller times in
// order, then a smaller breakdown value of its first event.
func refEarlier(evs []refEvent, attr func(refEvent) string, a, b []int) bool {
	for i := range a {
		if evs[a[i]].t != evs[b[i]].t {
			return evs[a[i]].t < evs[b[i]].t
		}
	}
	return attr(evs[a[0]]) < attr(evs[b[0]])
}

// refSearch is refPath where event i can take step k when match[i][k].
func refSearch(q store.FunnelQuery, evs []refEvent, attr func(refEvent) string, match [][]bool) (int, []int) {
	n := len(q.Steps)
	from, to := int64(math.MinInt64), int64(math.MaxInt64)
	if !q.From.IsZero() {
		from = q.From.UnixMicro()
	}
	if !q.To.IsZero() {
		to = q.To.UnixMicro()
	}
	window := q.Window.Microseconds()
	if q.CountBy == store.CountSessions {
		window = math.MaxInt64 / 2
	}
	less := func(a, b []int) bool { return refEarlier(evs, attr, a, b) }
	excluded := func(x refEvent, gap int) bool { // gap g: between step g+1 and g+2
		if q.Mode == store.ModeStrict && x.tracked {
			return true
		}
		for _, ex := range q.Exclusions {
			if gap >= ex.After-1 && gap < ex.Before-1 && x.Event.Event == ex.Step {
				return true
			}
		}
		return false
	}
	best, bestPath := 0, []int(nil)
	if q.Mode == store.ModeAny {
		first := -1
		for _, s := range evs {
			ts := s.t
			if ts < from || ts >= to {
				continue
			}
			used := make([]bool, len(evs))
			var fits func(step, k int, atStart bool) bool
			fits = func(step, k int, atStart bool) bool {
				if step == k {
					return atStart
				}
				for c, e := range evs {
					if !used[c] && match[c][step] && e.t >= ts && e.t-ts <= window {
						used[c] = true
						ok := fits(step+1, k, atStart || e.t == ts)
						used[c] = false
						if ok {
							return true
						}
					}
				}
				return false
			}
			for k := n; k > best || (k == best && k > 0 && ts < evs[first].t); k-- {
				if fits(0, k, false) {
					best, first = k, -1
					for c, e := range evs {
						if match[c][0] && e.t >= ts && e.t-ts <= window && (first < 0 || e.t < evs[first].t || e.t == evs[first].t && attr(e) < attr(evs[first])) {
							first = c
						}
					}
					break
				}
			}
		}
		if best == 0 {
			return 0, nil
		}
		return best, []int{first}
	}
	var path []int
	used := make([]bool, len(evs))
	var walk func()
	walk = func() {
		k := len(path)
		if k > best || (k == best && k > 0 && less(path, bestPath)) {
			best, bestPath = k, slices.Clone(path)
		}
		if k == n {
			return
		}
		for c, e := range evs {
			if used[c] || !match[c][k] {
				continue
			}
			if k == 0 && (e.t < from || e.t >= to) {
				continue
			}
			if k > 0 {
				prev := evs[path[k-1]]
				if e.t < prev.t || e.t-evs[path[0]].t > window {
					continue
				}
				blocked := false
				for _, x := range evs {
					blocked = blocked || (prev.t < x.t && x.t < e.t && excluded(x, k-1))
				}
				if blocked {
					continue
				}
			}
			used[c] = true
			path = append(path, c)
			walk()
			path = path[:k]
			used[c] = false
		}
	}
	walk()
	return best, bestPath
}

// refUnits splits a person's events into funnel units: the person, or their sessions.
func refUnits(d refData, q store.FunnelQuery, evs []refEvent) [][]refEvent {
	if q.CountBy != store.CountSessions {
		return [][]refEvent{evs}
	}
	var units [][]refEvent
	for _, s := range d.sessions {
		var u []refEvent
		for _, e := range evs {
			// A visit holds the events of its milliseconds (it is stored in ms).
			if e.key == s.CustomerKey && e.t/1000 >= s.Start.UnixMilli() && e.t/1000 <= s.End.UnixMilli() {
				u = append(u, e)
			}
		}
		if len(u) > 0 {
			units = append(units, u)
		}
	}
	return units
}

// breakdownAttr is an event's breakdown value: a channel or a campaign is that of its session's
// entry, its person's first tracked touchpoint (of evs, the person's distinct events in order) in
// the stored visit the event is in; or the event's own when it is in none, or its person has no
// touchpoint there. Never the visit's stored EntryChannel, EntryCampaign: a visit's first event
// may be a copy the queries drop, an identify call, or, on a shared device, another person's.
func breakdownAttr(b store.Breakdown, personTrait string, sessions []sessionize.Session, evs []refEvent) func(refEvent) string {
	in := func(e refEvent, s sessionize.Session) bool {
		return e.key == s.CustomerKey && e.t/1000 >= s.Start.UnixMilli() && e.t/1000 <= s.End.UnixMilli()
	}
	entry := func(e refEvent) refEvent {
		for _, s := range sessions {
			if !in(e, s) {
				continue
			}
			for _, f := range evs {
				if f.tracked && in(f, s) {
					return f
				}
			}
			break
		}
		return e
	}
	return func(e refEvent) string {
		v := ""
		switch b.By {
		case "channel":
			v = entry(e).channel
		case "campaign":
			v = entry(e).CampaignName
		case "device":
			v = e.DeviceType()
		case "property":
			v, _ = e.Property(b.Name)
		case "trait":
			v = personTrait
		}
		return v
	}
}

// nearestRank is the nearest-rank quantile of us (µs), in seconds, as text; "-" when empty.
func nearestRank(us []int64, q float64) string {
	if len(us) == 0 {
		return "-"
	}
	slices.Sort(us)
	return fmt.Sprint(float64(us[max(int(math.Ceil(q*float64(len(us))))-1, 0)]) / 1e6)
}

// refTrait is a person's value of the trait b breaks down by ("" when b is no trait's): the
// latest event that sets the trait's top-level trait in any way replaces it.
func refTrait(b store.Breakdown, evs []refEvent) string {
	trait := ""
	if b.By != "trait" {
		return trait
	}
	top := ingest.TraitPrefix + ingest.TopTrait(b.Name)
	for _, e := range evs {
		for _, k := range slices.Concat(e.PropertyKeys, e.NullKeys) {
			if k == top || strings.HasPrefix(k, top+".") {
				trait, _ = e.Trait(b.Name)
				break
			}
		}
	}
	return trait
}

// refEachEntered calls fn with each unit of the shop that took step 1 of q, the number of steps
// it reached, its path and the reader of its breakdown value (attr(unit[path[0]]) is the unit's).
func refEachEntered(jm *sessionize.Map, d refData, q store.FunnelQuery, fn func(unit []refEvent, level int, path []int, attr func(refEvent) string)) {
	for _, evs := range d.persons() {
		attr := breakdownAttr(q.Breakdown, refTrait(q.Breakdown, evs), d.sessions, evs)
		for _, unit := range refUnits(d, q, evs) {
			if level, path := refPath(jm, q, unit, attr); level > 0 {
				fn(unit, level, path, attr)
			}
		}
	}
}

// refFunnel answers a funnel by brute force, as text: per group, per step, customers and the
// median and p90 seconds from the previous step.
func refFunnel(jm *sessionize.Map, d refData, q store.FunnelQuery) string {
	type counts struct {
		reached []int
		gaps    [][]int64
	}
	groups := map[string]*counts{}
	toConvert := map[string]int{}
	get := func(g string) *counts {
		if groups[g] == nil {
			groups[g] = &counts{reached: make([]int, len(q.Steps)), gaps: make([][]int64, len(q.Steps))}
		}
		return groups[g]
	}
	get("")
	refEachEntered(jm, d, q, func(unit []refEvent, level int, path []int, attr func(refEvent) string) {
		if n := len(q.Steps); level == n && n > 1 && q.Mode != store.ModeAny {
			took := time.Duration(unit[path[n-1]].t-unit[path[0]].t) * time.Microsecond
			bucket := "> 7d"
			for _, b := range []struct {
				label string
				upTo  time.Duration
			}{{"≤ 1m", time.Minute}, {"1–10m", 10 * time.Minute}, {"10m–1h", time.Hour}, {"1–6h", 6 * time.Hour}, {"6–24h", 24 * time.Hour}, {"1–7d", 7 * 24 * time.Hour}} {
				if took <= b.upTo {
					bucket = b.label
					break
				}
			}
			toConvert[bucket]++
		}
		targets := []*counts{get("")}
		if q.Breakdown.By != "" {
			targets = append(targets, get("="+cmp.Or(attr(unit[path[0]]), refMarker(store.MarkerNone))))
		}
		for _, c := range targets {
			for k := range level {
				c.reached[k]++
				if k > 0 && q.Mode != store.ModeAny {
					c.gaps[k] = append(c.gaps[k], unit[path[k]].t-unit[path[k-1]].t)
				}
			}
		}
	})
	var out []string
	for _, g := range slices.Sorted(maps.Keys(groups)) {
		c := groups[g]
		var parts []string
		for k := range q.Steps {
			parts = append(parts, fmt.Sprintf("%d/%s/%s", c.reached[k], nearestRank(c.gaps[k], 0.5), nearestRank(c.gaps[k], 0.9)))
		}
		out = append(out, g+" "+strings.Join(parts, " "))
	}
	if q.Mode != store.ModeAny { // not computed in any order
		for _, b := range []string{"≤ 1m", "1–10m", "10m–1h", "1–6h", "6–24h", "1–7d", "> 7d"} {
			out = append(out, fmt.Sprintf("~%s %d", b, toConvert[b]))
		}
	}
	return strings.Join(out, "\n")
}

// funnelText renders the store's answer like refFunnel.
func funnelText(res *store.FunnelResult) string {
	steps := func(ss []store.FunnelStep) string {
		var parts []string
		for _, s := range ss {
			sec := func(p *float64) string {
				if p == nil {
					return "-"
				}
				return fmt.Sprint(*p)
			}
			parts = append(parts, fmt.Sprintf("%d/%s/%s", s.Customers, sec(s.MedianSecondsFromPrevious), sec(s.P90SecondsFromPrevious)))
		}
		return strings.Join(parts, " ")
	}
	out := []string{" " + steps(res.Steps)}
	for _, g := range res.Groups {
		out = append(out, "="+shown(g.Value, g.Marker)+" "+steps(g.Steps))
	}
	slices.Sort(out)
	for _, b := range res.TimeToConvert {
		out = append(out, fmt.Sprintf("~%s %d", b.Label, b.Count))
	}
	return strings.Join(out, "\n")
}

func TestFunnelAgreesWithTheReference(t *testing.T) {
	t.Parallel()
	d, paths := storedRefDataPaths(t, 7, 250)
	jm := defaultMap(t)
	const (
		view, add, checkout, order = "Product Viewed", "Product Added", "Checkout Started", "Order Completed"
	)
	day := 24 * time.Hour
	tests := []store.FunnelQuery{
		{Steps: []string{view, add, order}, Window: time.Hour},
		{Steps: []string{view, add, order}, Window: 30 * time.Minute}, // the grid is 10 minutes: boundaries are hit
		{Steps: []string{view, view, order, order}, Window: day},      // repeated steps need distinct events
		{Steps: []string{"awareness", "consideration", "conversion", "loyalty"}, Window: 30 * day},
		{Steps: []string{view, add, order}, Window: day, From: t0.Add(10 * day), To: t0.Add(40 * day)},
		{Steps: []string{view, add, order}, Window: day, Mode: store.ModeStrict},
		{Steps: []string{view + "[category=shoes]", order}, Window: 7 * day},         // a property filter
		{Steps: []string{"awareness[category=hats]", "conversion"}, Window: 7 * day}, // on a stage's rules
		{Steps: []string{view, order + "[products.category=hats]"}, Window: 7 * day}, // any item of a list
		{Steps: []string{"conversion[products.category=shoes]"}, Window: 7 * day},
		{Steps: []string{view + "[device.type=mobile]", order}, Window: 7 * day}, // the device type (tester 35's F3)
		{Steps: []string{view, add, checkout, order}, Window: day, Mode: store.ModeAny},
		{Steps: []string{view, add, order}, Window: day, Exclusions: []store.Exclusion{{Step: "Coupon Removed", After: 1, Before: 3}}},
		{Steps: []string{view, add, order}, Window: day, Exclusions: []store.Exclusion{{Step: view, After: 2, Before: 3}}},
		{Steps: []string{view, add, order}, Window: day, CountBy: store.CountSessions},
		{Steps: []string{view, add, order}, Window: day, Breakdown: store.Breakdown{By: "channel"}},
		{Steps: []string{view, order}, Window: 7 * day, Breakdown: store.Breakdown{By: "device"}},
		{Steps: []string{view, order}, Window: 7 * day, Breakdown: store.Breakdown{By: "property", Name: "category"}},
		{Steps: []string{view, add, order}, Window: 7 * day, Breakdown: store.Breakdown{By: "trait", Name: "customer_type"}},
		{Steps: []string{add, order}, Window: day, Mode: store.ModeAny, Breakdown: store.Breakdown{By: "channel"}, CountBy: store.CountSessions},
		{Steps: []string{view, order}, Window: 7 * day, Breakdown: store.Breakdown{By: "campaign"}},
		// Sessions of a range, broken down by their entry: the visits read beside a bounded scan.
		{Steps: []string{view, add}, Window: day, From: t0.Add(10 * day), To: t0.Add(40 * day), Breakdown: store.Breakdown{By: "campaign"}, CountBy: store.CountSessions},
		// From within visits (the grid is 10 minutes from each day's start): a session's entry
		// is its first touchpoint, read though it is before From.
		{Steps: []string{view, order}, Window: day, From: t0.Add(11*day + 40*time.Minute), Breakdown: store.Breakdown{By: "channel"}},
		{Steps: []string{view, add}, Window: day, From: t0.Add(29*day + 20*time.Minute), To: t0.Add(50 * day), Breakdown: store.Breakdown{By: "campaign"},
			CountBy: store.CountSessions},
	}
	// The reference answers, once for every path: each is a brute-force walk over all the events.
	wants := make([]string, len(tests))
	for i, q := range tests {
		q.Mode = cmp.Or(q.Mode, store.ModeOrdered)
		wants[i] = refFunnel(jm, d, q)
	}
	for _, p := range paths {
		for i, q := range tests {
			t.Run(fmt.Sprintf("%s/%d", p.name, i), func(t *testing.T) {
				res, err := p.s.Funnel(context.Background(), jm, q)
				if err != nil {
					t.Fatal(err)
				}
				if got := funnelText(res); got != wants[i] {
					t.Errorf("%+v\ngot:\n%s\nwant:\n%s", q, got, wants[i])
				}
			})
		}
	}
}

// TestFunnelMatchingPlace checks where Config.FunnelMatching puts a funnel's matching: forced into
// ClickHouse it fails without the waymark_funnel UDF (18.16) and runs with it (chdb), funnels
// counting sessions too (the UDF reads the visits since spec version 8).
func TestFunnelMatchingPlace(t *testing.T) {
	t.Parallel()
	d := generateRefData(3, 20)
	var db string
	s := openStoreWith(t, func(c *store.Config) { db = c.Database })
	d.write(t, s)
	forced := openStoreWith(t, func(c *store.Config) { c.Database, c.FunnelMatching = db, store.MatchEngine })
	jm := defaultMap(t)
	ctx := context.Background()
	for _, countBy := range []string{store.CountPersons, store.CountSessions} {
		q := store.FunnelQuery{Steps: []string{"Product Viewed", "Order Completed"}, Window: 24 * time.Hour, CountBy: countBy}
		_, err := forced.Funnel(ctx, jm, q)
		switch {
		case server.FunnelUDF && err != nil:
			t.Errorf("count by %s, engine with waymark_funnel: %v", countBy, err)
		case !server.FunnelUDF && (err == nil || !strings.Contains(err.Error(), "waymark_funnel")):
			t.Errorf("count by %s, engine without waymark_funnel: got %v, want an error naming it", countBy, err)
		}
	}
	if _, err := store.Open(ctx, store.Config{Addr: server.Addr, FunnelMatching: "gpu"}, slog.New(slog.DiscardHandler), nil); err == nil || !strings.Contains(err.Error(), "funnel matching") {
		t.Errorf("bad FunnelMatching: %v", err)
	}
}
