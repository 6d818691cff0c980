package store_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
	"github.com/waymark-dev/waymark/store"
)

// TestCorrelationCountsTheSpanOfEachUnit: a correlation analysis of Product Viewed → Order
// Completed (1 h) over five converters and five who did not, on a real ClickHouse. Counted:
// the touchpoints after the step-1 event, up to the order (exclusive, in the tie rule's order:
// a chat opened in the order's second and sent before it counts, a wishlist add sent after it
// does not) or to the window's end (inclusive: shipping costs read at 1 h count, a coupon at 1 h
// 1 s does not). Not counted: what came before step 1 (a newsletter), after the order (a review
// written), a second product view (it can take step 1), and the units that never took step 1.
func TestCorrelationCountsTheSpanOfEachUnit(t *testing.T) {
	t.Parallel()
	seq := int64(0)
	at := func(user, name string, offset int) ingest.Event {
		seq++
		e := ev(user, name, offset)
		e.Seq, e.MessageID = seq, fmt.Sprintf("%s-%d", user, seq)
		return e
	}
	var events []ingest.Event
	for _, c := range []string{"c1", "c2", "c3"} {
		events = append(events, at(c, "Product Viewed", 0), at(c, "Size Guide Opened", 60), at(c, "Order Completed", 300))
	}
	events = append(events,
		at("c1", "Review Read", 120), at("c1", "Review Written", 400),
		at("c4", "Newsletter Opened", -100), at("c4", "Product Viewed", 0), at("c4", "Order Completed", 300),
		at("c5", "Product Viewed", 0), at("c5", "Chat Opened", 300), at("c5", "Order Completed", 300), at("c5", "Wishlist Added", 300),
		at("f1", "Product Viewed", 0), at("f1", "Shipping Costs Viewed", 60),
		at("f2", "Product Viewed", 0), at("f2", "Shipping Costs Viewed", 60),
		at("f3", "Product Viewed", 0), at("f3", "Shipping Costs Viewed", 60), at("f3", "Size Guide Opened", 120),
		at("f4", "Product Viewed", 0), at("f4", "Shipping Costs Viewed", 3600), at("f4", "Coupon Entered", 3601),
		at("f5", "Product Viewed", 0), at("f5", "Product Viewed", 30), at("f5", "Review Read", 50),
		at("n1", "Shipping Costs Viewed", 0), at("n1", "Coupon Entered", 10),
	)
	s := openStore(t)
	writeEvents(t, s, events)
	jm := defaultMap(t)
	// The odds ratios by hand, S = F = 5: Size Guide Opened (3+1)(5-1+1)/((5-3+1)(1+1)) = 20/6;
	// Chat Opened 2·6/(5·1); Shipping Costs Viewed 1·2/(6·5); Review Read 2·5/(5·2) = 1, a failure.
	for _, tt := range []struct {
		limit int
		want  string
	}{
		{10, "success Size Guide Opened 3/1 3.3333; success Chat Opened 1/0 2.4; failure Shipping Costs Viewed 0/4 0.0667; failure Review Read 1/1 1"},
		{1, "success Size Guide Opened 3/1 3.3333; failure Shipping Costs Viewed 0/4 0.0667"},
	} {
		v := url.Values{"steps": {"Product Viewed,Order Completed"}, "window": {"1h"}, "limit": {fmt.Sprint(tt.limit)}}
		res, err := s.Query(context.Background(), jm, "correlation", v)
		if err != nil {
			t.Fatal(err)
		}
		r := res.(*store.CorrelationResult)
		var got []string
		for _, e := range r.Events {
			got = append(got, fmt.Sprintf("%s %s %d/%d %v", e.CorrelationType, e.Value, e.SuccessCount, e.FailureCount, e.OddsRatio))
		}
		if g := strings.Join(got, "; "); g != tt.want || r.SuccessTotal != 5 || r.FailureTotal != 5 || r.Skewed || r.LeftOut != 0 || r.CountBy != store.CountPersons {
			t.Errorf("limit %d: %d converted, %d not, skewed %t, left out %d, by %s: %s\nwant 5, 5, false, 0, persons: %s",
				tt.limit, r.SuccessTotal, r.FailureTotal, r.Skewed, r.LeftOut, r.CountBy, g, tt.want)
		}
	}
	// Strict: a tracked event strictly between the steps in time stops the unit, so c4 (nothing
	// between its view and its order) and c5 (its chat is in the order's second) convert; every
	// other unit that took step 1 is a failure, whose span is its window.
	res, err := s.Correlation(context.Background(), jm, store.CorrelationQuery{Funnel: store.FunnelQuery{
		Steps: []string{"Product Viewed", "Order Completed"}, Window: time.Hour, Mode: store.ModeStrict}, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if res.SuccessTotal != 2 || res.FailureTotal != 8 || res.Skewed {
		t.Errorf("strict: %d converted, %d not, skewed %t; want 2, 8, false", res.SuccessTotal, res.FailureTotal, res.Skewed)
	}
}

// TestCorrelationParameters: what a correlation analysis refuses, naming the parameter.
func TestCorrelationParameters(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		query, param string
	}{
		{"steps=A", "steps"},
		{"steps=A,B&mode=any", "mode"},
		{"steps=A,B&breakdown=colour", "breakdown"},
		{"steps=A,B&breakdown=channel&breakdown_limit=5", "breakdown_limit"},
		{"steps=A,B&hold=property:product_id", "hold"},
		{"steps=A,B&limit=0", "limit"},
		{"steps=A,B&step=1", "step"},
	} {
		v, err := url.ParseQuery(tt.query)
		if err != nil {
			t.Fatal(err)
		}
		err = store.CheckParams("correlation", v)
		var pe *store.ParamError
		if !errors.As(err, &pe) || pe.Param != tt.param {
			t.Errorf("%s: %v, want an error naming %s", tt.query, err, tt.param)
		}
	}
	for _, ok := range []string{"steps=A,B&mode=strict&count_by=sessions", "steps=A,B&mode=any&breakdown=trait:plan"} {
		v, err := url.ParseQuery(ok)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.CheckParams("correlation", v); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

// refCorrelation is a correlation analysis by brute force over the generated shop (see
// CorrelationQuery): per unit that took step 1, the labels of its tracked events after its
// step-1 event, up to its last step's event (a success) or the window's end (a failure), that can
// take no step; it returns each label's successes and failures, and the totals.
func refCorrelation(jm *sessionize.Map, d refData, q store.FunnelQuery) (map[string][2]int64, [2]int64) {
	counts, totals := map[string][2]int64{}, [2]int64{}
	refEachEntered(jm, d, q, func(unit []refEvent, level int, path []int, _ func(refEvent) string) {
		side := 1 // failure
		end := len(unit)
		if level == len(q.Steps) {
			side, end = 0, refStepEvent(jm, q, unit, path)
		}
		seen := map[string]bool{}
		for i := path[0] + 1; i < end && unit[i].t <= unit[path[0]].t+q.Window.Microseconds(); i++ {
			takes := false
			for _, step := range q.Steps {
				takes = takes || matchesStep(jm, step, unit, i)
			}
			if unit[i].tracked && !takes {
				seen[unit[i].label()] = true
			}
		}
		totals[side]++
		for label := range seen {
			c := counts[label]
			c[side]++
			counts[label] = c
		}
	})
	return counts, totals
}

// TestCorrelationAgreesWithTheReference: every touchpoint a correlation analysis lists has the
// reference's counts, the listed and the left-out ones are every touchpoint the reference
// counts, and the totals are the reference's; by persons and by sessions, ordered and strict,
// with an exclusion and a range; matched in Waymark and, where the engine has the UDF, in
// ClickHouse, whose answers are the same bytes.
func TestCorrelationAgreesWithTheReference(t *testing.T) {
	t.Parallel()
	d, paths := storedRefDataPaths(t, 17, 300)
	jm := defaultMap(t)
	for _, q := range []store.FunnelQuery{
		{Steps: []string{"Product Viewed", "Product Added", "Order Completed"}, Window: 24 * time.Hour},
		{Steps: []string{"Product Viewed", "Order Completed"}, Window: 2 * time.Hour, Mode: store.ModeStrict},
		{Steps: []string{"awareness", "conversion"}, Window: 7 * 24 * time.Hour, CountBy: store.CountSessions},
		{Steps: []string{"Product Viewed", "Checkout Started"}, Window: 24 * time.Hour, Exclusions: []store.Exclusion{{Step: "Product Added", After: 1, Before: 2}},
			From: t0.Add(24 * time.Hour), To: t0.Add(20 * 24 * time.Hour)},
	} {
		ref := q
		ref.Mode = cmp.Or(ref.Mode, store.ModeOrdered)
		counts, totals := refCorrelation(jm, d, ref)
		if totals[0] == 0 || totals[1] == 0 || len(counts) < 3 {
			t.Fatalf("%+v: the reference has %v units and %d touchpoints: the data tests nothing", q, totals, len(counts))
		}
		var first []byte
		for _, p := range paths {
			res, err := p.s.Correlation(context.Background(), jm, store.CorrelationQuery{Funnel: q, Limit: 1000})
			if err != nil {
				t.Fatalf("matched in %s: %v", p.name, err)
			}
			checkCorrelation(t, q, res, counts, totals, "touchpoints")
			b, err := json.Marshal(res)
			if err != nil {
				t.Fatal(err)
			}
			if first == nil {
				first = b
			} else if !bytes.Equal(b, first) {
				t.Errorf("%+v: matched in %s:\n%s\nin %s:\n%s", q, p.name, b, paths[0].name, first)
			}
		}
	}
}

// checkCorrelation fails t unless res, the answer to a correlation analysis of q, has the
// reference's totals, each listed touchpoint (value) the reference's counts, and every one the
// reference counts (what) listed or left out.
func checkCorrelation(t *testing.T, q store.FunnelQuery, res *store.CorrelationResult, counts map[string][2]int64, totals [2]int64, what string) {
	t.Helper()
	if res.SuccessTotal != totals[0] || res.FailureTotal != totals[1] {
		t.Errorf("%+v: totals %d/%d, want %d/%d", q, res.SuccessTotal, res.FailureTotal, totals[0], totals[1])
	}
	for _, e := range res.Events {
		if got, want := [2]int64{e.SuccessCount, e.FailureCount}, counts[shown(e.Value, e.Marker)]; got != want {
			t.Errorf("%+v: %s: %v, want %v", q, shown(e.Value, e.Marker), got, want)
		}
	}
	if len(res.Events)+res.LeftOut != len(counts) {
		t.Errorf("%+v: %d listed and %d left out, want %d %s (%v)", q, len(res.Events), res.LeftOut, len(counts), what, counts)
	}
}

// refCorrelationOfValues is a correlation analysis of a breakdown's values by brute force over
// the generated shop: per unit that took step 1, its breakdown value (the reference funnel's),
// on the success side when it reached the last step; it returns each value's successes and
// failures, and the totals.
func refCorrelationOfValues(jm *sessionize.Map, d refData, q store.FunnelQuery) (map[string][2]int64, [2]int64) {
	counts, totals := map[string][2]int64{}, [2]int64{}
	refEachEntered(jm, d, q, func(unit []refEvent, level int, path []int, attr func(refEvent) string) {
		side := 1 // failure
		if level == len(q.Steps) {
			side = 0
		}
		value := cmp.Or(attr(unit[path[0]]), refMarker(store.MarkerNone))
		c := counts[value]
		c[side]++
		counts[value], totals[side] = c, totals[side]+1
	})
	return counts, totals
}

// TestCorrelationOfValuesAgreesWithTheReference: with a breakdown, a correlation analysis ranks
// its values: every value listed has the reference's successes and failures, the listed and the
// left-out ones are every value the reference counts, and the totals are the reference's; by each
// kind of breakdown, by persons and by sessions, in every mode.
func TestCorrelationOfValuesAgreesWithTheReference(t *testing.T) {
	t.Parallel()
	d, s := storedRefData(t, 23, 300)
	jm := defaultMap(t)
	const day = 24 * time.Hour
	for _, q := range []store.FunnelQuery{
		{Steps: []string{"Product Viewed", "Product Added", "Order Completed"}, Window: day, Breakdown: store.Breakdown{By: "channel"}},
		{Steps: []string{"Product Viewed", "Order Completed"}, Window: 7 * day, Breakdown: store.Breakdown{By: "device"}},
		{Steps: []string{"Product Viewed", "Order Completed"}, Window: 7 * day, Mode: store.ModeStrict, Breakdown: store.Breakdown{By: "property", Name: "category"}},
		{Steps: []string{"Product Viewed", "Product Added", "Order Completed"}, Window: 7 * day, Breakdown: store.Breakdown{By: "trait", Name: "customer_type"}},
		{Steps: []string{"Product Added", "Order Completed"}, Window: day, Mode: store.ModeAny, Breakdown: store.Breakdown{By: "campaign"}, CountBy: store.CountSessions},
	} {
		ref := q
		ref.Mode = cmp.Or(ref.Mode, store.ModeOrdered)
		ref.CountBy = cmp.Or(ref.CountBy, store.CountPersons)
		counts, totals := refCorrelationOfValues(jm, d, ref)
		res, err := s.Correlation(context.Background(), jm, store.CorrelationQuery{Funnel: q, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if totals[0] == 0 || totals[1] == 0 || len(counts) < 2 {
			t.Fatalf("%+v: the reference has %v units and %d values: the data tests nothing", q, totals, len(counts))
		}
		if res.Breakdown != q.Breakdown.String() {
			t.Errorf("%+v: by %q, want by %q", q, res.Breakdown, q.Breakdown)
		}
		for _, e := range res.Events {
			if e.Step != "" {
				t.Errorf("%+v: %s has step %q: a value is no touchpoint", q, shown(e.Value, e.Marker), e.Step)
			}
		}
		checkCorrelation(t, q, res, counts, totals, "values")
	}
}
