package store_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
	"github.com/waymark-dev/waymark/store"
)

// refMarker is how the references write a marker where the store's answer has a real value:
// apart from every real value (0xff is never in one) and after all of them in the order of
// values, as the store ranks markers.
func refMarker(marker string) string { return "\xff(" + marker + ")" }

// shown renders a value of the store's answer as the references write it.
func shown(value, marker string) string {
	if marker != "" {
		return refMarker(marker)
	}
	return value
}

// rankText renders counts largest first (ties by value), as the store ranks them.
func rankText(counts map[string]int64) string {
	type kv struct {
		k string
		v int64
	}
	var rows []kv
	for k, v := range counts {
		rows = append(rows, kv{cmp.Or(k, refMarker(store.MarkerNone)), v})
	}
	slices.SortFunc(rows, func(a, b kv) int { return cmp.Or(cmp.Compare(b.v, a.v), cmp.Compare(a.k, b.k)) })
	var out []string
	for _, r := range rows {
		out = append(out, fmt.Sprintf("%s=%d", r.k, r.v))
	}
	return strings.Join(out, ",")
}

func rankedText(rows []store.Ranked) string {
	var out []string
	for _, r := range rows {
		out = append(out, fmt.Sprintf("%s=%d", shown(r.Value, r.Marker), r.Count))
	}
	return strings.Join(out, ",")
}

// refDropoff: for units that reached step k but not k+1, their last tracked touchpoint from the
// step-k event to the end of the window, and the event right after the step-k event.
func refDropoff(jm *sessionize.Map, d refData, q store.FunnelQuery, k int) string {
	events, locations, channels, next := map[string]int64{}, map[string]int64{}, map[string]int64{}, map[string]int64{}
	var persons []string
	for person, evs := range d.persons() {
		for _, unit := range refUnits(d, q, evs) {
			level, path := refPath(jm, q, unit, func(refEvent) string { return "" })
			if level != k {
				continue
			}
			at := refStepEvent(jm, q, unit, path)
			loc := func(e refEvent) string {
				if e.PagePath != "" {
					return e.PagePath
				}
				v, _ := e.Property("category")
				return v
			}
			// last: the last tracked event after the step event, in the unit's order (time,
			// then arrival), up to the window's end; next: the first.
			last, nxt := at, -1
			for i := at + 1; i < len(unit) && unit[i].t <= unit[path[0]].t+q.Window.Microseconds(); i++ {
				if unit[i].tracked {
					last = i
					if nxt < 0 {
						nxt = i
					}
				}
			}
			events[unit[last].label()]++
			locations[loc(unit[last])]++
			channels[unit[last].channel]++
			if nxt >= 0 {
				next[unit[nxt].label()]++
			} else {
				next[refMarker(store.MarkerExit)]++
			}
			if !slices.Contains(persons, person) {
				persons = append(persons, person)
			}
		}
	}
	slices.Sort(persons)
	return strings.Join([]string{rankText(events), rankText(locations), rankText(channels), rankText(next), strings.Join(persons, ",")}, "\n")
}

// refStepEvent is the event of unit a drop-off reads from: of the events at the time of the
// path's last event, in the unit's order, the one the path's last step takes when the path's
// steps at that time are given, in step order, each to the first such event that can take it
// and no earlier step took (in mode any, whose path is its step-1 event, step 1's). Holding a
// property constant, only the events of the path's value can take its steps.
func refStepEvent(jm *sessionize.Map, q store.FunnelQuery, unit []refEvent, path []int) int {
	k := len(path) - 1
	t := unit[path[k]].t
	first := k
	for first > 0 && unit[path[first-1]].t == t {
		first--
	}
	taken := map[int]bool{}
	at := path[k]
	for j := first; j <= k; j++ {
		pick := -1
		for i, e := range unit {
			if e.t == t && !taken[i] && matchesStep(jm, q.Steps[j], unit, i) && (q.Hold == "" || slices.Contains(refHeld(q, e), refPathValue(q, unit, path))) {
				pick = i
				break
			}
		}
		if pick < 0 {
			return path[k]
		}
		taken[pick], at = true, pick
	}
	return at
}

// TestDropoffAgreesWithTheReference asks drop-offs matched in Waymark and, on an engine with
// the waymark_funnel UDF, in ClickHouse; a bounded list of persons holds the smallest ids, and
// the answer says what it counts (count_by).
func TestDropoffAgreesWithTheReference(t *testing.T) {
	t.Parallel()
	d, paths := storedRefDataPaths(t, 11, 250)
	jm := defaultMap(t)
	for _, q := range []store.DropoffQuery{
		{Funnel: store.FunnelQuery{Steps: []string{"Product Viewed", "Product Added", "Order Completed"}, Window: 24 * time.Hour}, Step: 1},
		{Funnel: store.FunnelQuery{Steps: []string{"Product Viewed", "Product Added", "Order Completed"}, Window: 24 * time.Hour}, Step: 2},
		{Funnel: store.FunnelQuery{Steps: []string{"awareness", "conversion"}, Window: 7 * 24 * time.Hour, Mode: store.ModeStrict}, Step: 1},
		{Funnel: store.FunnelQuery{Steps: []string{"Product Viewed", "Order Completed"}, Window: 24 * time.Hour, Mode: store.ModeAny,
			Breakdown: store.Breakdown{By: "channel"}}, Step: 1},
		{Funnel: store.FunnelQuery{Steps: []string{"Product Viewed", "Product Added", "Order Completed"}, Window: 24 * time.Hour, CountBy: store.CountSessions}, Step: 1},
	} {
		q.Limit, q.IDsLimit = 1000, 1000
		ref := q.Funnel
		ref.Mode = cmp.Or(ref.Mode, store.ModeOrdered)
		want := refDropoff(jm, d, ref, q.Step) // once for every path: a brute-force walk over all the events
		all := strings.Split(want[strings.LastIndex(want, "\n")+1:], ",")
		for _, path := range paths {
			q := q
			res, err := path.s.Dropoff(context.Background(), jm, q)
			if err != nil {
				t.Fatal(path.name, err)
			}
			got := strings.Join([]string{rankedText(res.LastEvents), rankedText(res.LastLocations), rankedText(res.LastChannels),
				rankedText(res.NextEvents), strings.Join(res.Persons, ",")}, "\n")
			if got != want {
				t.Errorf("%s: %+v\ngot:\n%s\nwant:\n%s", path.name, q, got, want)
			}
			if want := cmp.Or(q.Funnel.CountBy, store.CountPersons); res.CountBy != want {
				t.Errorf("%s: count_by %q, want %q", path.name, res.CountBy, want)
			}
			persons := int64(len(res.Persons)) // a person may drop off from several sessions
			if res.Dropped == 0 || persons != res.Dropped && (q.Funnel.CountBy != store.CountSessions || persons > res.Dropped) || res.PersonsTruncated {
				t.Errorf("%s: dropped %d, persons %d, truncated %t", path.name, res.Dropped, len(res.Persons), res.PersonsTruncated)
			}
			for _, limit := range []int{0, 1, 7, len(all) - 1, len(all)} {
				q.IDsLimit = limit
				res, err := path.s.Dropoff(context.Background(), jm, q)
				if err != nil {
					t.Fatal(path.name, err)
				}
				if want := all[:limit]; !slices.Equal(res.Persons, want) || res.PersonsTruncated != (limit < len(all)) {
					t.Errorf("%s: ids_limit %d: got %q (truncated %t), want %q", path.name, limit, res.Persons, res.PersonsTruncated, want)
				}
			}
		}
	}
}

// refAnchor returns, per person with an anchor event in range, their tracked events and the
// index of the first anchor among them.
func refAnchor(jm *sessionize.Map, d refData, anchor string, from, to time.Time, visit func(evs []refEvent, at int)) {
	for _, all := range d.persons() {
		var evs []refEvent
		isAnchor := []bool{}
		for i := range all { // in the tie rule's order: equal times as the client sent them
			if all[i].tracked {
				evs = append(evs, all[i])
				isAnchor = append(isAnchor, matchesStep(jm, anchor, all, i))
			}
		}
		for i, e := range evs {
			if isAnchor[i] && (from.IsZero() || e.t >= from.UnixMicro()) && (to.IsZero() || e.t < to.UnixMicro()) {
				visit(evs, i)
				break
			}
		}
	}
}

// TestPathsAndNextAgreeWithTheReference asks paths and next read in Waymark and, on an engine
// with the waymark_funnel UDF, in ClickHouse.
func TestPathsAndNextAgreeWithTheReference(t *testing.T) {
	t.Parallel()
	d, paths := storedRefDataPaths(t, 13, 250)
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) { pathsAndNextAgree(t, d, path.s) })
	}
}

func pathsAndNextAgree(t *testing.T, d refData, s *store.Store) {
	jm := defaultMap(t)
	ctx := context.Background()
	for _, q := range []store.PathsQuery{
		{Anchor: "Product Viewed", Direction: "start", Depth: 3, Window: 24 * time.Hour, Convert: "Order Completed"},
		{Anchor: "consideration", Direction: "end", Depth: 4, Window: 7 * 24 * time.Hour, Convert: "Order Completed", Collapse: true},
		{Anchor: "Product Added", Direction: "start", Depth: 2, Window: time.Hour, Convert: "conversion", From: t0.Add(5 * 24 * time.Hour)},
		{Anchor: "conversion", Direction: "end", Depth: 3, Window: 24 * time.Hour, Convert: "conversion"},
		{Anchor: "Order Completed", Direction: "start", Depth: 2, Window: time.Hour, Convert: "Product Viewed"},
	} {
		q.Limit = 1000
		res, err := s.Paths(ctx, jm, q)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range res.Paths {
			seq := slices.Clone(p.Touchpoints)
			switch p.Marker {
			case store.MarkerExit:
				seq = append(seq, refMarker(p.Marker))
			case store.MarkerStart:
				seq = append([]string{refMarker(p.Marker)}, seq...)
			}
			got = append(got, fmt.Sprintf("%s %d %d", strings.Join(seq, ">"), p.Persons, p.Converted))
		}
		type counts struct{ persons, converted int }
		want := map[string]*counts{}
		w := q.Window.Microseconds()
		refAnchor(jm, d, q.Anchor, q.From, q.To, func(evs []refEvent, at int) {
			seq := []string{evs[at].label()}
			step := 1
			if q.Direction == "end" {
				step = -1
			}
			for i := at + step; i >= 0 && i < len(evs) && len(seq) < q.Depth && (evs[i].t-evs[at].t)*int64(step) <= w; i += step {
				if !q.Collapse || evs[i].label() != seq[len(seq)-1] {
					seq = append(seq, evs[i].label())
				}
			}
			if len(seq) < q.Depth {
				seq = append(seq, refMarker(map[int]string{1: store.MarkerExit, -1: store.MarkerStart}[step]))
			}
			if step < 0 {
				slices.Reverse(seq)
			}
			// Converted: a conversion event within the window after the anchor, or at its very
			// time, sent before it (the funnel's rule for equal times), or the anchor itself.
			converted := false
			for i := range evs {
				if evs[i].t >= evs[at].t && evs[i].t-evs[at].t <= w {
					converted = converted || matchesStep(jm, q.Convert, evs, i)
				}
			}
			key := strings.Join(seq, ">")
			if want[key] == nil {
				want[key] = &counts{}
			}
			want[key].persons++
			if converted {
				want[key].converted++
			}
		})
		var wantRows []string
		for k, c := range want {
			wantRows = append(wantRows, fmt.Sprintf("%s %d %d", k, c.persons, c.converted))
		}
		sortRows := func(rows []string) {
			slices.SortFunc(rows, func(a, b string) int {
				fa, fb := strings.Fields(a), strings.Fields(b)
				na, _ := strconv.Atoi(fa[len(fa)-2])
				nb, _ := strconv.Atoi(fb[len(fb)-2])
				return cmp.Or(cmp.Compare(nb, na), cmp.Compare(a, b))
			})
		}
		sortRows(got)
		sortRows(wantRows)
		if strings.Join(got, "\n") != strings.Join(wantRows, "\n") || len(got) == 0 {
			t.Errorf("%+v\ngot:\n%s\nwant:\n%s", q, strings.Join(got, "\n"), strings.Join(wantRows, "\n"))
		}
	}
	for _, q := range []store.NextQuery{
		{Anchor: "Product Viewed", Direction: "next", Window: 24 * time.Hour},
		{Anchor: "Product Viewed", Direction: "next", Window: 24 * time.Hour, Collapse: true},
		{Anchor: "Order Completed", Direction: "previous", Window: time.Hour},
		{Anchor: "consideration", Direction: "previous", Window: 24 * time.Hour, Collapse: true, From: t0.Add(3 * 24 * time.Hour), To: t0.Add(20 * 24 * time.Hour)},
	} {
		q.Limit = 1000
		res, err := s.Next(ctx, jm, q)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{}
		w := q.Window.Microseconds()
		refAnchor(jm, d, q.Anchor, q.From, q.To, func(evs []refEvent, at int) {
			found := refMarker(store.MarkerExit)
			step := 1
			if q.Direction == "previous" {
				found, step = refMarker(store.MarkerStart), -1
			}
			for i := at + step; i >= 0 && i < len(evs) && (evs[i].t-evs[at].t)*int64(step) <= w; i += step {
				if !q.Collapse || evs[i].label() != evs[at].label() {
					found = evs[i].label()
					break
				}
			}
			want[found]++
		})
		if got, want := rankedText(res.Touchpoints), rankText(want); got != want || got == "" {
			t.Errorf("%+v\ngot  %s\nwant %s", q, got, want)
		}
	}
}

// TestRetentionAgreesWithTheReference asks retention read in Waymark and, on an engine with the
// waymark_funnel UDF, in ClickHouse.
func TestRetentionAgreesWithTheReference(t *testing.T) {
	t.Parallel()
	d, paths := storedRefDataPaths(t, 17, 300)
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) { retentionAgrees(t, d, path.s) })
	}
}

func retentionAgrees(t *testing.T, d refData, s *store.Store) {
	jm := defaultMap(t)
	for _, q := range []store.RetentionQuery{
		{Period: "week", Periods: 6, Conversion: "Order Completed", Return: "Order Completed"},
		{Period: "month", Periods: 3, Conversion: "Product Added", Return: "Order Completed", From: t0.Add(7 * 24 * time.Hour)},
		{Period: "week", Periods: 52, Conversion: "consideration", Return: "Product Added", To: t0.Add(20 * 24 * time.Hour)},
	} {
		res, err := s.Retention(context.Background(), jm, q)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range res.Cohorts {
			got = append(got, fmt.Sprintf("%s %d +0:%d %v", c.Start.Format("2006-01-02"), c.Persons, c.ReturnedSamePeriod, c.Returned))
		}
		for _, c := range res.ByChannel {
			got = append(got, fmt.Sprintf("%s %d %d", shown(c.Channel, c.Marker), c.Persons, c.Repeaters))
		}
		got = append(got, fmt.Sprintf("%d %d %v", res.Persons, res.Repeaters, res.Histogram))

		cohorts := map[string][]int64{}
		cohortPersons, samePeriod := map[string]int{}, map[string]int{}
		chans := map[string][2]int{}
		var persons, repeaters int
		hist := make([]int64, 5)
		for _, evs := range d.persons() {
			first := -1
			for i := range evs {
				if matchesStep(jm, q.Conversion, evs, i) {
					first = i
					break
				}
			}
			if first < 0 || !q.From.IsZero() && evs[first].t < q.From.UnixMicro() || !q.To.IsZero() && evs[first].t >= q.To.UnixMicro() {
				continue
			}
			persons++
			start := refPeriodStart(q.Period, evs[first].Timestamp)
			key := start.Format("2006-01-02")
			if cohorts[key] == nil {
				cohorts[key] = make([]int64, q.Periods)
			}
			cohortPersons[key]++
			seen := map[int]bool{}
			returned := false
			for i := first + 1; i < len(evs); i++ {
				if !matchesStep(jm, q.Return, evs, i) || evs[i].t == evs[first].t {
					continue
				}
				if !returned {
					returned = true
					days := float64(evs[i].t-evs[first].t) / 86_400_000_000
					switch {
					case days <= 1:
						hist[0]++
					case days <= 7:
						hist[1]++
					case days <= 30:
						hist[2]++
					case days <= 90:
						hist[3]++
					default:
						hist[4]++
					}
				}
				p := refPeriods(q.Period, start, refPeriodStart(q.Period, evs[i].Timestamp))
				if p >= 0 && p <= q.Periods && !seen[p] {
					seen[p] = true
					if p == 0 {
						samePeriod[key]++
					} else {
						cohorts[key][p-1]++
					}
				}
			}
			ch := "" // the first touchpoint's channel
			for _, e := range evs {
				if e.tracked {
					ch = e.channel
					break
				}
			}
			ch = cmp.Or(ch, refMarker(store.MarkerNone))
			c := chans[ch]
			c[0]++
			if returned {
				repeaters++
				c[1]++
			}
			chans[ch] = c
		}
		var want []string
		for _, k := range slices.Sorted(maps.Keys(cohorts)) {
			// Periods that begin after today are left out: walk them from the cohort's start.
			start, _ := time.Parse("2006-01-02", k)
			begun := 0
			for begun < q.Periods && !refPeriodAfter(q.Period, start, begun+1).After(time.Now()) {
				begun++
			}
			want = append(want, fmt.Sprintf("%s %d +0:%d %v", k, cohortPersons[k], samePeriod[k], cohorts[k][:begun]))
		}
		chanNames := slices.Sorted(maps.Keys(chans))
		slices.SortStableFunc(chanNames, func(a, b string) int { return cmp.Compare(chans[b][0], chans[a][0]) })
		for _, ch := range chanNames {
			want = append(want, fmt.Sprintf("%s %d %d", ch, chans[ch][0], chans[ch][1]))
		}
		labels := []string{"≤ 1d", "1–7d", "7–30d", "30–90d", "> 90d"}
		var buckets []store.Bucket
		for i, n := range hist {
			buckets = append(buckets, store.Bucket{Label: labels[i], Count: n})
		}
		want = append(want, fmt.Sprintf("%d %d %v", persons, repeaters, buckets))
		if strings.Join(got, "\n") != strings.Join(want, "\n") || repeaters == 0 {
			t.Errorf("%+v\ngot:\n%s\nwant:\n%s", q, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

func refPeriodStart(period string, t time.Time) time.Time {
	t = t.UTC()
	if period == "month" {
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	for t.Weekday() != time.Monday {
		t = t.Add(-24 * time.Hour)
	}
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

func refPeriods(period string, a, b time.Time) int {
	n := 0
	for a.Before(b) {
		if period == "month" {
			a = a.AddDate(0, 1, 0)
		} else {
			a = a.AddDate(0, 0, 7)
		}
		n++
	}
	return n
}

// TestStagesAgreeWithTheReference asks the stages read in Waymark and, on an engine with the
// waymark_funnel UDF, in ClickHouse.
func TestStagesAgreeWithTheReference(t *testing.T) {
	t.Parallel()
	d, paths := storedRefDataPaths(t, 19, 300)
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) { stagesAgree(t, d, path.s) })
	}
}

func stagesAgree(t *testing.T, d refData, s *store.Store) {
	jm := defaultMap(t)
	day := 24 * time.Hour
	// The whole history, and ranges that start after many persons' first stages and end before
	// their last ones.
	for _, r := range [][2]time.Time{{}, {t0.Add(10 * day), t0.Add(25 * day)}, {t0.Add(25 * day), t0.Add(40*day + 5*time.Hour)},
		{t0.Add(40*day + 5*time.Hour), time.Time{}}, {t0.Add(30*day + 10*time.Minute), t0.Add(31 * day)}} {
		res, err := s.Stages(context.Background(), jm, store.StagesQuery{Limit: 100, From: r[0], To: r[1]})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, st := range res.Stages {
			score := "-"
			if st.MeanScore != nil {
				score = fmt.Sprint(*st.MeanScore)
			}
			dwell := "-"
			if st.MedianDwellSeconds != nil {
				dwell = fmt.Sprint(*st.MedianDwellSeconds)
			}
			nps := "-"
			if st.NPS != nil {
				nps = fmt.Sprintf("%d %d/%d/%d %v %v", st.NPS.Responses, st.NPS.Promoters, st.NPS.Passives, st.NPS.Detractors, st.NPS.Score, st.NPS.MeanAnswer)
			}
			got = append(got, fmt.Sprintf("%s %d %d %d %v %s %s %d %s nps %s", st.Stage, st.Entered, st.EnteredMovedOn, st.MovedOn, st.ExitRate, dwell, rankedText(st.TopTouchpoints), st.SurveyResponses, score, nps))
		}
		got = append(got, fmt.Sprintf("no stage %d", res.IgnoredScores["no_stage"]))
		want := refStages(t, jm, d, r[0], r[1])
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%v:\ngot:\n%s\nwant:\n%s", r, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

// refStages is the stages answer for [from, to) (zero: unbounded), worked out per person from
// when they first entered each stage over their whole history: a person's stage only moves
// forward, so stage st is entered at the first time it is reached while no further stage has
// been (a time's events together), it is left when the next stage entered is (any later one),
// and an event is in the furthest stage entered at or before its time. A range counts the
// entries and the leavings in it (a leaving's dwell from the entry, wherever that was), the
// touchpoints and scores in it, and the valid scores given in no stage; of the persons entering a
// stage in it, those who left it in it too.
func refStages(t *testing.T, jm *sessionize.Map, d refData, from, to time.Time) []string {
	in := func(us int64) bool {
		return (from.IsZero() || us >= from.UnixMicro()) && (to.IsZero() || us < to.UnixMicro())
	}
	n := len(jm.Stages)
	entered, enteredMoved, moved := make([]int, n), make([]int, n), make([]int, n)
	dwell := make([][]int64, n)
	touch := make([]map[string]int64, n)
	responses, sum := make([]int, n), make([]float64, n)
	noStage := 0
	// NPS answers per stage: promoters (9–10), passives (7–8), detractors (0–6), and their sum.
	promoters, passives, detractors, npsSum := make([]int, n), make([]int, n), make([]int, n), make([]float64, n)
	for i := range touch {
		touch[i] = map[string]int64{}
	}
	for _, evs := range d.persons() {
		reached := make([][]int64, n) // per stage: the times the person reached it, in order
		for st := range n {
			for j, e := range evs {
				if matchesStep(jm, jm.Stages[st].Name, evs, j) {
					reached[st] = append(reached[st], e.t)
				}
			}
		}
		// Stage st is entered when first reached, unless a further stage was reached earlier.
		enteredAt := make([]int64, n)
		for st := range n {
			enteredAt[st] = -1
			further := int64(math.MaxInt64)
			for k := st + 1; k < n; k++ {
				if len(reached[k]) > 0 {
					further = min(further, reached[k][0])
				}
			}
			if len(reached[st]) > 0 && reached[st][0] <= further {
				enteredAt[st] = reached[st][0]
			}
		}
		for st := range n {
			if enteredAt[st] < 0 {
				continue
			}
			if in(enteredAt[st]) {
				entered[st]++
			}
			for k := st + 1; k < n; k++ { // left on entering the next stage entered
				if enteredAt[k] >= 0 {
					if in(enteredAt[k]) {
						moved[st]++
						dwell[st] = append(dwell[st], enteredAt[k]-enteredAt[st])
						if in(enteredAt[st]) {
							enteredMoved[st]++
						}
					}
					break
				}
			}
		}
		for _, e := range evs {
			if !e.tracked || !in(e.t) {
				continue
			}
			current := -1
			for st := range n {
				if enteredAt[st] >= 0 && enteredAt[st] <= e.t {
					current = st
				}
			}
			score, err := 0.0, errors.New("no survey")
			if e.Event.Event == "Survey Answered" || e.Event.Event == "NPS Submitted" {
				v, _ := e.Property("score")
				score, err = strconv.ParseFloat(v, 64)
			}
			if current < 0 {
				if err == nil {
					noStage++
				}
				continue
			}
			touch[current][e.label()]++
			switch {
			case err != nil:
			case e.Event.Event == "Survey Answered":
				responses[current]++
				sum[current] += score
			default: // NPS Submitted
				npsSum[current] += score
				switch {
				case score >= 9:
					promoters[current]++
				case score >= 7:
					passives[current]++
				default:
					detractors[current]++
				}
			}
		}
	}
	var want []string
	for st := range n {
		score := "-"
		if responses[st] > 0 {
			score = fmt.Sprint(math.Round(sum[st]/float64(responses[st])*1e4) / 1e4)
		}
		exit := 0.0 // 1 - enteredMoved / entered, as ratios are rounded; 0 when none entered
		if entered[st] > 0 {
			exit = math.Round((1-math.Round(float64(enteredMoved[st])/float64(entered[st])*1e4)/1e4)*1e4) / 1e4
		}
		nps := "-"
		if r := promoters[st] + passives[st] + detractors[st]; r > 0 {
			nps = fmt.Sprintf("%d %d/%d/%d %v %v", r, promoters[st], passives[st], detractors[st],
				math.Round(100*float64(promoters[st]-detractors[st])/float64(r)*100)/100, math.Round(npsSum[st]/float64(r)*1e4)/1e4)
		}
		want = append(want, fmt.Sprintf("%s %d %d %d %v %s %s %d %s nps %s", jm.Stages[st].Name, entered[st], enteredMoved[st], moved[st], exit, nearestRank(dwell[st], 0.5), rankText(touch[st]), responses[st], score, nps))
	}
	return append(want, fmt.Sprintf("no stage %d", noStage))
}

// taobaoData reads the shop sample shipped in deploy/data as the pipeline would store it.
func taobaoData(t testing.TB, jm *sessionize.Map) refData {
	t.Helper()
	f, err := os.Open("../deploy/data/taobao/UserBehavior.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var d refData
	err = ingest.ReadDataset(f, "taobao", func(m ingest.Message) error {
		e, err := ingest.Decode(m.Value, "replay-taobao", t0)
		if err != nil {
			return err
		}
		d.events = append(d.events, e)
		d.channels = append(d.channels, jm.Channel(&e))
		return nil
	}, func(ingest.Skip) {})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestTaobaoSampleAgreesWithTheReference(t *testing.T) {
	t.Parallel()
	jm := defaultMap(t)
	d := taobaoData(t, jm)
	var db string
	s := openStoreWith(t, func(c *store.Config) { db, c.FunnelMatching = c.Database, store.MatchProcess })
	d.write(t, s)
	ctx := context.Background()
	paths := append([]matchingPath{{store.MatchProcess, s}}, enginePaths(t, db)...)
	for _, q := range []store.FunnelQuery{
		{Steps: []string{"Product Viewed", "Product Added", "Order Completed"}, Window: 24 * time.Hour},
		{Steps: []string{"awareness", "consideration", "conversion"}, Window: 7 * 24 * time.Hour, Mode: store.ModeStrict},
		{Steps: []string{"Product Viewed", "Order Completed"}, Window: 24 * time.Hour, Mode: store.ModeAny,
			Breakdown: store.Breakdown{By: "property", Name: "category"}, BreakdownLimit: 1000},
	} {
		ref := q
		ref.Mode = cmp.Or(q.Mode, store.ModeOrdered)
		want := refFunnel(jm, d, ref) // once for every path: a brute-force walk over all the events
		for _, p := range paths {
			res, err := p.s.Funnel(ctx, jm, q)
			if err != nil {
				t.Fatal(err)
			}
			if got := funnelText(res); got != want {
				t.Errorf("%s: %+v\ngot:\n%s\nwant:\n%s", p.name, q, got, want)
			}
		}
	}
	q := store.FunnelQuery{Steps: []string{"Product Viewed", "Product Added", "Order Completed"}, Window: 24 * time.Hour, Mode: store.ModeOrdered}
	res, err := s.Dropoff(ctx, jm, store.DropoffQuery{Funnel: q, Step: 2, Limit: 100000, IDsLimit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join([]string{rankedText(res.LastEvents), rankedText(res.LastLocations), rankedText(res.LastChannels),
		rankedText(res.NextEvents), strings.Join(res.Persons, ",")}, "\n")
	if want := refDropoff(jm, d, q, 2); got != want {
		t.Errorf("dropoff\ngot:\n%s\nwant:\n%s", got, want)
	}
}

// TestPathsKeepLabelsWhole: a touchpoint's label may hold any byte (a NUL, "|", ":"), and a path
// lists it as one touchpoint, in Waymark and in ClickHouse.
func TestPathsKeepLabelsWhole(t *testing.T) {
	t.Parallel()
	var db string
	s := openStoreWith(t, func(c *store.Config) { db, c.FunnelMatching = c.Database, store.MatchProcess })
	labels := []string{"Product Viewed", "a\x00b", "c|1:d", "e:f", ""}
	var events []ingest.Event
	for i, l := range labels {
		events = append(events, ev("u1", l, i), ev("u2", l, 10*i))
	}
	events = append(events, ev("u2", "Order Completed", 45))
	writeEvents(t, s, events)
	jm := defaultMap(t)
	for _, path := range append([]matchingPath{{store.MatchProcess, s}}, enginePaths(t, db)...) {
		res, err := path.s.Paths(context.Background(), jm, store.PathsQuery{Anchor: "Product Viewed", Depth: 5, Convert: "Order Completed"})
		if err != nil {
			t.Fatal(path.name, err)
		}
		want := []store.PathRow{{Touchpoints: []string{"Product Viewed", "a\x00b", "c|1:d", "e:f", "track"},
			Steps: []string{"Product Viewed", "a\x00b", `c\|1\:d`, `e\:f`, "track"}, Persons: 2, Converted: 1, ConversionRate: 0.5}}
		if !reflect.DeepEqual(res.Paths, want) || res.Persons != 2 || res.Direction != "start" {
			t.Errorf("%s: got %+v (%d persons, direction %q), want %+v", path.name, res.Paths, res.Persons, res.Direction, want)
		}
		next, err := path.s.Next(context.Background(), jm, store.NextQuery{Anchor: "c|1:d", Window: time.Hour})
		if err != nil {
			t.Fatal(path.name, err)
		}
		if got := rankedText(next.Touchpoints); got != "e:f=2" || next.Direction != "next" {
			t.Errorf("%s: next %q (direction %q)", path.name, got, next.Direction)
		}
	}
}

// TestPathsCountAnAnchorThatConverts: the anchor counts as its person's conversion when it is
// itself a conversion event, so a path ending at an order converted (tester 51's F2: one person
// who viewed, then ordered, converted anchored on the view and not on the order, and every "which
// ways lead to an order" read 0%). In Waymark and in ClickHouse.
func TestPathsCountAnAnchorThatConverts(t *testing.T) {
	t.Parallel()
	var db string
	s := openStoreWith(t, func(c *store.Config) { db, c.FunnelMatching = c.Database, store.MatchProcess })
	writeEvents(t, s, []ingest.Event{ev("u1", "Product Viewed", 0), ev("u1", "Order Completed", 300)})
	jm := defaultMap(t)
	for _, path := range append([]matchingPath{{store.MatchProcess, s}}, enginePaths(t, db)...) {
		for _, c := range []struct {
			q    store.PathsQuery
			want string // each path's touchpoints, marker, converted of persons
		}{
			{store.PathsQuery{Anchor: "Product Viewed"}, "Product Viewed>Order Completed exit 1/1"},
			{store.PathsQuery{Anchor: "conversion", Direction: "end"}, "Product Viewed>Order Completed start 1/1"},
			{store.PathsQuery{Anchor: "conversion", Direction: "start"}, "Order Completed exit 1/1"},
			{store.PathsQuery{Anchor: "Order Completed", Convert: "Order Completed"}, "Order Completed exit 1/1"},
			{store.PathsQuery{Anchor: "Order Completed", Direction: "end", Convert: "Product Viewed"}, "Product Viewed>Order Completed start 0/1"},
		} {
			res, err := path.s.Paths(context.Background(), jm, c.q)
			if err != nil {
				t.Fatal(path.name, err)
			}
			var got []string
			for _, p := range res.Paths {
				got = append(got, fmt.Sprintf("%s %s %d/%d", strings.Join(p.Touchpoints, ">"), p.Marker, p.Converted, p.Persons))
			}
			if strings.Join(got, "; ") != c.want {
				t.Errorf("%s: %+v: got %q, want %q", path.name, c.q, got, c.want)
			}
		}
	}
}

// refPeriodAfter is the start of the nth period (week or month) after the one starting at start.
func refPeriodAfter(period string, start time.Time, n int) time.Time {
	if period == "month" {
		return start.AddDate(0, n, 0)
	}
	return start.AddDate(0, 0, 7*n)
}

// TestRetentionLeavesOutPeriodsNotBegun: a cohort's periods stop at the one under way, so a
// cohort of this week has none yet and one of three weeks ago three or four (by the weekday),
// rather than zeros for periods that have not happened.
func TestRetentionLeavesOutPeriodsNotBegun(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	now := time.Now().UTC()
	order := func(user string, ago time.Duration) ingest.Event {
		e := ev(user, "Order Completed", 0)
		e.Timestamp, e.MessageID = now.Add(-ago), fmt.Sprintf("%s-%d", user, ago)
		return e
	}
	day := 24 * time.Hour
	writeEvents(t, s, []ingest.Event{order("a", 21*day), order("a", 8*day), order("b", time.Minute)})
	res, err := s.Retention(context.Background(), defaultMap(t), store.RetentionQuery{Period: "week", Periods: 8, Conversion: "Order Completed"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Cohorts) != 2 {
		t.Fatalf("cohorts %+v, want two", res.Cohorts)
	}
	var returned int64
	for _, c := range res.Cohorts {
		n := len(c.Returned)
		if len(c.Rates) != n {
			t.Errorf("cohort %s: %d returned, %d rates", c.Start, n, len(c.Rates))
		}
		if n > 0 && refPeriodAfter("week", c.Start, n).After(now) {
			t.Errorf("cohort %s: period %d has not begun, and is in %v", c.Start, n, c.Returned)
		}
		if n < 8 && !refPeriodAfter("week", c.Start, n+1).After(now) {
			t.Errorf("cohort %s: period %d has begun, and is not in %v", c.Start, n+1, c.Returned)
		}
		for _, r := range c.Returned {
			returned += r
		}
	}
	if len(res.Cohorts[1].Returned) != 0 || returned != 1 {
		t.Errorf("cohorts %+v: want this week's with no period, and a's return counted once", res.Cohorts)
	}
	// This week's cohort answers both lists empty, in JSON too (tester 19's T5: rates was null
	// beside returned [], breaking a client that maps over it).
	if b, err := json.Marshal(res.Cohorts[1]); err != nil || !strings.Contains(string(b), `"returned":[],"rates":[]`) {
		t.Errorf("this week's cohort in JSON: %s, %v; want returned and rates both []", b, err)
	}
}

// TestRetentionPeriodsInATimezone: with a timezone, retention's weeks and months are that
// zone's, and a date in from or to is the start of that day there (tester 37's F6): a Tokyo
// order at 08:00 on 1 October is in October's cohort, one at 23:00 on 30 September in
// September's; a Paris week across the spring's clock change (167 hours) is one week; a month
// whose first midnight the clocks skip (Asunción, October 2023) starts when they jump. Without
// one, UTC's. Matched in Waymark and, where the engine has the function (chdb), in ClickHouse.
func TestRetentionPeriodsInATimezone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	order := func(user, at string) ingest.Event {
		e := ev(user, "Order Completed", 0)
		ts, err := time.Parse(time.RFC3339, at)
		if err != nil {
			t.Fatal(err)
		}
		e.Timestamp, e.MessageID = ts, user+"-"+at
		return e
	}
	events := []ingest.Event{
		order("tokyo-oct", "2024-09-30T23:00:00Z"), order("tokyo-oct", "2024-10-31T16:00:00Z"), // 1 Oct 08:00, 1 Nov 01:00 in Tokyo
		order("tokyo-sep", "2024-09-30T14:00:00Z"),                                     // 30 Sep 23:00 in Tokyo
		order("paris", "2025-03-23T23:30:00Z"), order("paris", "2025-03-30T22:30:00Z"), // Mondays 00:30 in Paris, CET then CEST
		order("asuncion", "2023-10-15T12:00:00Z"), order("asuncion", "2023-11-10T12:00:00Z"), // October began at 01:00 there (tester 38's F1)
	}
	var db string
	process := openStoreWith(t, func(c *store.Config) { db, c.FunnelMatching = c.Database, store.MatchProcess })
	writeEvents(t, process, events)
	auto := openStoreWith(t, func(c *store.Config) { c.Database = db })
	jm := defaultMap(t)
	cohorts := func(res *store.RetentionResult) string {
		var out []string
		for _, c := range res.Cohorts {
			out = append(out, fmt.Sprintf("%s %d %v", c.Start.Format(time.RFC3339), c.Persons, c.Returned))
		}
		return strings.Join(out, "; ")
	}
	for _, tt := range []struct {
		params string
		want   string
	}{
		{"period=month&periods=2&from=2024-09-01&to=2024-11-01", "2024-09-01T00:00:00Z 2 [1 0]"},
		{"period=month&periods=2&from=2024-09-01&to=2024-11-01&timezone=Asia/Tokyo",
			"2024-09-01T00:00:00+09:00 1 [0 0]; 2024-10-01T00:00:00+09:00 1 [1 0]"},
		{"period=month&periods=2&from=2024-10-01&to=2024-10-02&timezone=Asia/Tokyo", "2024-10-01T00:00:00+09:00 1 [1 0]"},
		{"period=month&periods=2&from=2024-10-01&to=2024-10-02", ""},
		{"period=week&periods=2&from=2025-03-20&to=2025-03-28&timezone=Europe/Paris", "2025-03-24T00:00:00+01:00 1 [1 0]"},
		{"period=month&periods=2&from=2023-10-01&to=2023-11-01&timezone=America/Asuncion", "2023-10-01T01:00:00-03:00 1 [1 0]"},
	} {
		v, err := url.ParseQuery(tt.params + "&conversion=Order+Completed")
		if err != nil {
			t.Fatal(err)
		}
		for name, s := range map[string]*store.Store{"process": process, "auto": auto} {
			res, err := s.Query(ctx, jm, "retention", v)
			if err != nil {
				t.Fatalf("%s: retention?%s: %v", name, tt.params, err)
			}
			if got := cohorts(res.(*store.RetentionResult)); got != tt.want {
				t.Errorf("%s: retention?%s: cohorts %s, want %s", name, tt.params, got, tt.want)
			}
		}
	}
	for _, bad := range []string{"Mars/Olympus", "Local", "+09:00"} {
		_, err := process.Query(ctx, jm, "retention", url.Values{"timezone": {bad}})
		if !store.IsParamError(err) || !strings.HasPrefix(err.Error(), "timezone: ") {
			t.Errorf("timezone=%s: %v, want a problem with timezone", bad, err)
		}
	}
}
