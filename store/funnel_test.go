package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
	"github.com/waymark-dev/waymark/store"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// unnamedPage is a page call of customer user, sent without a name, at t0 + offset seconds.
func unnamedPage(user string, offset int) ingest.Event {
	e := ev(user, "", offset)
	e.Type = "page"
	return e
}

// ev is a track event of customer user at t0 + offset seconds.
func ev(user, event string, offset int) ingest.Event {
	return ingest.Event{
		Source: "test", Type: "track", Event: event, UserID: user,
		MessageID: fmt.Sprintf("%s-%s-%d", user, event, offset),
		Timestamp: t0.Add(time.Duration(offset) * time.Second), ReceivedAt: t0,
		Raw: []byte(`{}`),
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func defaultMap(t testing.TB) *sessionize.Map {
	t.Helper()
	m, err := sessionize.LoadMap("")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func customers(res *store.FunnelResult) []int64 {
	var out []int64
	for _, s := range res.Steps {
		out = append(out, s.Customers)
	}
	return out
}

func TestFunnelSemantics(t *testing.T) {
	t.Parallel()
	const (
		view  = "Product Viewed"
		add   = "Product Added"
		order = "Order Completed"
	)
	events := []ingest.Event{
		// a: view, add, order in order: converts; then a page sent without a name.
		ev("a", view, 0), ev("a", add, 10), ev("a", order, 20), unnamedPage("a", 30),
		// b: add before view (wrong order): reaches step 1 only.
		ev("b", add, 0), ev("b", view, 10), ev("b", order, 20),
		// c: view, add and order at the same second: ties count in either order.
		ev("c", order, 5), ev("c", add, 5), ev("c", view, 5),
		// d: order after the 1h window: reaches step 2.
		ev("d", view, 0), ev("d", add, 60), ev("d", order, 3601),
		// e: a second view later gives a start whose window holds the order.
		ev("e", view, 0), ev("e", add, 4000), ev("e", view, 3900), ev("e", order, 4100),
		// f: one order only: steps order,order need two distinct events.
		ev("f", view, 0), ev("f", order, 10),
		// g: two orders at the same second.
		ev("g", view, 0), ev("g", order, 10), ev("g", order+"", 10),
	}
	events[len(events)-1].MessageID += "-second"
	s := openStore(t)
	ctx := context.Background()
	// Written twice: a redelivered batch changes nothing.
	for range 2 {
		if err := s.Write(ctx, sessionize.Batch{Events: events}); err != nil {
			t.Fatal(err)
		}
	}
	jm := defaultMap(t)
	tests := []struct {
		name     string
		steps    []string
		window   time.Duration
		from, to time.Time
		want     []int64
	}{
		{"ordered with ties and window", []string{view, add, order}, time.Hour, time.Time{}, time.Time{}, []int64{7, 4, 3}},
		{"same event twice needs two events", []string{view, order, order}, time.Hour, time.Time{}, time.Time{}, []int64{7, 6, 1}},
		{"stages", []string{"awareness", "consideration", "conversion", "loyalty"}, time.Hour, time.Time{}, time.Time{}, []int64{7, 4, 3, 0}},
		{"from excludes earlier starts", []string{view, add}, time.Hour, t0.Add(time.Second), time.Time{}, []int64{3, 2}},
		{"to bounds the first step only", []string{view, order}, time.Hour, time.Time{}, t0.Add(time.Second), []int64{5, 3}},
		{"single step", []string{order}, time.Hour, time.Time{}, time.Time{}, []int64{7}},
		{"page label", []string{"page", view}, time.Hour, time.Time{}, time.Time{}, []int64{1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := s.Funnel(ctx, jm, store.FunnelQuery{Steps: tt.steps, Window: tt.window, From: tt.from, To: tt.to})
			if err != nil {
				t.Fatal(err)
			}
			if got := customers(res); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("customers = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestEventNamedLikeAStage asks about a shop's event named "conversion", which the default
// journey map also names a stage: a bare name is the stage, "event:" picks the event, "stage:"
// the stage, and "stage:" with no such stage is a parameter error.
func TestEventNamedLikeAStage(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := context.Background()
	events := []ingest.Event{
		ev("a", "conversion", 0),
		ev("b", "Order Completed", 0), ev("c", "Order Completed", 0),
		ev("d", "event:conversion", 0), // an event whose name has the prefix, asked with its colon escaped
	}
	if err := s.Write(ctx, sessionize.Batch{Events: events}); err != nil {
		t.Fatal(err)
	}
	jm := defaultMap(t)
	for _, tt := range []struct {
		step string
		want int64
	}{
		{"conversion", 2}, {"stage:conversion", 2}, {"stage: conversion", 2},
		{"event:conversion", 1}, {`event\:conversion`, 1}, {"event:Order Completed", 2},
	} {
		res, err := s.Funnel(ctx, jm, store.FunnelQuery{Steps: []string{tt.step}, Window: time.Hour})
		if err != nil {
			t.Fatalf("%s: %v", tt.step, err)
		}
		if got := customers(res); len(got) != 1 || got[0] != tt.want {
			t.Errorf("%s: customers = %v, want [%d]", tt.step, got, tt.want)
		}
	}
	_, err := s.Funnel(ctx, jm, store.FunnelQuery{Steps: []string{"stage:Order Completed"}, Window: time.Hour})
	if !store.IsParamError(err) || !strings.Contains(err.Error(), `no stage "Order Completed"`) {
		t.Errorf("stage: naming an event: %v, want a parameter error", err)
	}
	// event: asks for an event alone: the error says no event is so named, not that the name
	// is "neither a stage nor an event" (it is a stage), and how the stage is written.
	for step, want := range map[string]string{
		"event:awareness": `steps: event:awareness: no stored event is named "awareness" (event: names an event; the stage is written awareness)`,
		"event:Nope":      `steps: event:Nope: no stored event is named "Nope"; a backslash makes`,
	} {
		_, err = s.Funnel(ctx, jm, store.FunnelQuery{Steps: []string{step}, Window: time.Hour})
		if !store.IsParamError(err) || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: %v, want a parameter error starting %q", step, err, want)
		}
	}
}

func TestUnknownNamesAreRejected(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := context.Background()
	cafe := "Caf\u00e9 \u2615" // é as one code point (NFC), as most clients send it
	if err := s.Write(ctx, sessionize.Batch{Events: []ingest.Event{ev("a", "Product Viewed", 0), ev("a", cafe, 1),
		ev("a", "Checkout Begun ", 2), ev("a", "\u00a0Coupon  Applied", 3)}}); err != nil {
		t.Fatal(err)
	}
	jm := defaultMap(t)
	_, err := s.Funnel(ctx, jm, store.FunnelQuery{Steps: []string{"Product Viewed", "Prodcut Added"}, Window: time.Hour})
	if !store.IsParamError(err) || !strings.HasPrefix(err.Error(), `steps: "Prodcut Added" is neither a stage`) || strings.Contains(err.Error(), "(did you mean") {
		t.Errorf("typo in a step: %v", err)
	}
	// Lookalikes of stored names (tester 14's note): matched byte for byte, but named in the error.
	for step, hint := range map[string]string{
		"Cafe\u0301 \u2615": `the stored event "Caf\u00e9 \u2615" differs from "Cafe\u0301 \u2615" only in Unicode normalization`,
		"product viewed":    `(did you mean "Product Viewed"? names are matched with their case)`,
		"CAFE\u0301 \u2615": `(did you mean "` + cafe + `"?`,
		// White space around or within a name (tester 33's F4): the step's own around it is dropped.
		"Checkout Begun":  `(did you mean "Checkout Begun "? names are matched with their white space, and spaces around a step are dropped: write it Checkout Begun\ )`,
		"coupon applied":  `(did you mean "\u00a0Coupon  Applied"?`,
		"Checkout  Begun": `(did you mean "Checkout Begun "?`,
	} {
		_, err = s.Funnel(ctx, jm, store.FunnelQuery{Steps: []string{step}, Window: time.Hour})
		if !store.IsParamError(err) || !strings.Contains(err.Error(), hint) {
			t.Errorf("%+q: %v, want a parameter error saying %s", step, err, hint)
		}
	}
	for _, step := range []string{`Product Viewed[p~=\]`, `Product Viewed[p=x\]`} {
		_, err = s.Funnel(ctx, jm, store.FunnelQuery{Steps: []string{step}, Window: time.Hour})
		if !store.IsParamError(err) || !strings.Contains(err.Error(), `opens no filter`) {
			t.Errorf("%s, a filter whose ] is escaped: %v", step, err)
		}
	}
	_, err = s.Funnel(ctx, jm, store.FunnelQuery{Steps: []string{"awareness", "Product Viewed"}, Window: time.Hour,
		Exclusions: []store.Exclusion{{Step: "Nope", After: 1, Before: 2}}})
	if !store.IsParamError(err) || !strings.HasPrefix(err.Error(), "exclude:") {
		t.Errorf("unknown exclusion: %v", err)
	}
	_, err = s.Next(ctx, jm, store.NextQuery{Anchor: "Nope", Window: time.Hour})
	if !store.IsParamError(err) || !strings.HasPrefix(err.Error(), "anchor:") {
		t.Errorf("unknown anchor: %v", err)
	}
	_, err = s.Retention(ctx, jm, store.RetentionQuery{Conversion: "Product Viewed", Return: "Nope"})
	if !store.IsParamError(err) || !strings.HasPrefix(err.Error(), "return:") {
		t.Errorf("unknown return event: %v", err)
	}
	// "page" and "screen" mean the calls of that type sent without a name: a step of them with
	// none stored (every screen named) is refused rather than a silent zero (tester 15's F14).
	page, screen := unnamedPage("a", 2), ev("a", "Home", 3)
	screen.Type = "screen"
	if err := s.Write(ctx, sessionize.Batch{Events: []ingest.Event{page, screen}}); err != nil {
		t.Fatal(err)
	}
	if _, err = s.Funnel(ctx, jm, store.FunnelQuery{Steps: []string{"page"}, Window: time.Hour}); err != nil {
		t.Errorf("page, with an unnamed page stored: %v", err)
	}
	_, err = s.Funnel(ctx, jm, store.FunnelQuery{Steps: []string{"page", "screen"}, Window: time.Hour})
	if !store.IsParamError(err) || !strings.HasPrefix(err.Error(), `steps: "screen" means screen calls sent without a name`) {
		t.Errorf("screen, with only named screens stored: %v", err)
	}
}

func TestFunnelResultFields(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := context.Background()
	events := []ingest.Event{ev("a", "A", 0), ev("a", "B", 1), ev("b", "A", 0), ev("c", "A", 0), ev("c", "B", 1), ev("c", "C", 2)}
	if err := s.Write(ctx, sessionize.Batch{Events: events}); err != nil {
		t.Fatal(err)
	}
	res, err := s.Funnel(ctx, defaultMap(t), store.FunnelQuery{Steps: []string{"A", "B", "C"}, Window: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	one := 1.0
	want := []store.FunnelStep{
		{Name: "A", Customers: 3, ConversionFromFirst: 1, ConversionFromPrevious: 1, DropOff: 1, DropOffRate: 0.3333, LargestDropOff: true},
		{Name: "B", Customers: 2, ConversionFromFirst: 0.6667, ConversionFromPrevious: 0.6667, DropOff: 1, DropOffRate: 0.5,
			MedianSecondsFromPrevious: &one, P90SecondsFromPrevious: &one},
		{Name: "C", Customers: 1, ConversionFromFirst: 0.3333, ConversionFromPrevious: 0.5, MedianSecondsFromPrevious: &one, P90SecondsFromPrevious: &one},
	}
	if got, want := mustJSON(t, res.Steps), mustJSON(t, want); got != want {
		t.Errorf("steps =\n%s\nwant\n%s", got, want)
	}
	if res.WindowSeconds == nil || *res.WindowSeconds != 60 {
		t.Errorf("window_seconds = %v, want 60", res.WindowSeconds)
	}
	// Counted by sessions, the session is the window: the window given is not read, and the
	// answer does not echo it (tester 24).
	res, err = s.Funnel(ctx, defaultMap(t), store.FunnelQuery{Steps: []string{"A", "B", "C"}, Window: time.Minute, CountBy: store.CountSessions})
	if err != nil {
		t.Fatal(err)
	}
	if got := mustJSON(t, res); strings.Contains(got, "window_seconds") {
		t.Errorf("counted by sessions: %s, want no window_seconds", got)
	}
}

// TestEmptyListEntriesAreRefused: an empty entry in a list parameter ("A,,B", a comma at an end)
// is a ParamError naming the parameter; it was dropped, and the query answered for another list
// than the one written. An empty parameter is still its default.
func TestEmptyListEntriesAreRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query string
		v     url.Values
		param string // "" when the parameters are accepted
	}{
		{"funnel", url.Values{"steps": {"A,,B"}}, "steps"},
		{"funnel", url.Values{"steps": {"A,B,"}}, "steps"},
		{"funnel", url.Values{"steps": {",A"}}, "steps"},
		{"funnel", url.Values{"steps": {"A, ,B"}}, "steps"},
		{"funnel", url.Values{"steps": {" , "}}, "steps"},
		{"dropoff", url.Values{"steps": {"A,,B"}}, "steps"},
		{"funnel", url.Values{"steps": {"A,B"}, "exclude": {"X,,Y"}}, "exclude"},
		{"funnel", url.Values{"steps": {"A , B"}, "exclude": {"X, Y:1-2"}}, ""},
		{"funnel", url.Values{"steps": {"A,B"}, "exclude": {""}}, ""},
	}
	for _, tt := range tests {
		err := store.CheckParams(tt.query, tt.v)
		var pe *store.ParamError
		switch {
		case tt.param == "" && err != nil:
			t.Errorf("%s?%s: %v", tt.query, tt.v.Encode(), err)
		case tt.param != "" && (!errors.As(err, &pe) || pe.Param != tt.param || !strings.Contains(err.Error(), "empty")):
			t.Errorf("%s?%s: %v, want a ParamError naming %s saying an entry is empty", tt.query, tt.v.Encode(), err, tt.param)
		}
	}
}

// TestBreakdownLimitNeedsABreakdown: breakdown_limit given without a breakdown limits nothing,
// and is refused naming it, as every parameter's problem is; it was taken and ignored (tester
// 50's F9). The API, a batch and the CLI read their parameters here.
func TestBreakdownLimitNeedsABreakdown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query string
		v     url.Values
		param string // "" when the parameters are accepted
	}{
		{"funnel", url.Values{"steps": {"A,B"}, "breakdown_limit": {"5"}}, "breakdown_limit"},
		{"funnel", url.Values{"steps": {"A,B"}, "breakdown_limit": {"20"}}, "breakdown_limit"}, // the default, given
		{"funnel", url.Values{"steps": {"A,B"}, "breakdown": {""}, "breakdown_limit": {"5"}}, "breakdown_limit"},
		{"funnel", url.Values{"steps": {"A,B"}, "breakdown": {"channel"}, "breakdown_limit": {"5"}}, ""},
		{"funnel", url.Values{"steps": {"A,B"}, "breakdown": {"property:plan"}, "breakdown_limit": {"1000"}}, ""},
		{"funnel", url.Values{"steps": {"A,B"}}, ""},
		// Out of range is said first: it is wrong with a breakdown too.
		{"funnel", url.Values{"steps": {"A,B"}, "breakdown_limit": {"0"}}, "breakdown_limit"},
	}
	for _, tt := range tests {
		err := store.CheckParams(tt.query, tt.v)
		var pe *store.ParamError
		switch {
		case tt.param == "" && err != nil:
			t.Errorf("%s?%s: %v", tt.query, tt.v.Encode(), err)
		case tt.param == "":
		case !errors.As(err, &pe) || pe.Param != tt.param:
			t.Errorf("%s?%s: %v, want a ParamError naming %s", tt.query, tt.v.Encode(), err, tt.param)
		case tt.v.Get("breakdown_limit") != "0" && err.Error() != "breakdown_limit: needs a breakdown: it caps the values a breakdown lists, and none was given":
			t.Errorf("%s?%s: %v, want it to say breakdown_limit needs a breakdown", tt.query, tt.v.Encode(), err)
		}
	}
}

// TestBreakdownErrorsQuoteItAsWritten: a breakdown refused is quoted as the query wrote it;
// property: with no name was quoted as "property" (tester 50's F10), and channel: was read as
// channel. A correlation reads its breakdown as a funnel does.
func TestBreakdownErrorsQuoteItAsWritten(t *testing.T) {
	t.Parallel()
	const takeAName = ": trait and property take a name (trait:customer_type), the others none"
	tests := []struct {
		query, breakdown string
		want             string // the error; "" when the breakdown is taken
	}{
		{"funnel", "property:", `breakdown: "property:"` + takeAName},
		{"funnel", "property: ", `breakdown: "property:"` + takeAName}, // trimmed as every parameter is
		{"funnel", "trait:", `breakdown: "trait:"` + takeAName},
		{"funnel", "channel:", `breakdown: "channel:"` + takeAName},
		{"funnel", "channel:x", `breakdown: "channel:x"` + takeAName},
		{"funnel", "property", `breakdown: "property"` + takeAName},
		{"funnel", `Property:a\,b`, `breakdown: "Property:a\\,b" is not one of channel, campaign, device, trait:NAME, property:NAME`},
		{"correlation", "property:", `breakdown: "property:"` + takeAName},
		{"funnel", `property:\ `, ""},
		{"funnel", "channel", ""},
	}
	for _, tt := range tests {
		err := store.CheckParams(tt.query, url.Values{"steps": {"A,B"}, "breakdown": {tt.breakdown}})
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s breakdown=%q: %v", tt.query, tt.breakdown, err)
		case tt.want != "" && (err == nil || err.Error() != tt.want):
			t.Errorf("%s breakdown=%q: %v, want %s", tt.query, tt.breakdown, err, tt.want)
		}
	}
}

func TestFunnelRejectsBadQueries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		q    store.FunnelQuery
		want string // the error's start: the parameter
		says string // in the error, when set
	}{
		{"no steps", store.FunnelQuery{Window: time.Hour}, "steps", ""},
		{"empty step", store.FunnelQuery{Steps: []string{"A", " "}, Window: time.Hour}, "steps", ""},
		{"no window", store.FunnelQuery{Steps: []string{"A"}}, "window", ""},
		// The API and the CLI name to for a range that holds no time (store.CheckRange).
		{"to not after from", store.FunnelQuery{Steps: []string{"A"}, Window: time.Hour, From: t0, To: t0}, "to", ""},
		// Not "between steps 1 and 1: need 1 ≤ first < second ≤ 1" (tester 28's F6).
		{"an exclusion in a funnel of one step", store.FunnelQuery{Steps: []string{"A"}, Window: time.Hour, Exclusions: []store.Exclusion{{Step: "X", After: 1, Before: 1}}},
			"exclude", "an exclusion applies between two steps, and the funnel has one step"},
		{"an exclusion's steps the wrong way round", store.FunnelQuery{Steps: []string{"A", "B", "C"}, Window: time.Hour, Exclusions: []store.Exclusion{{Step: "X", After: 3, Before: 2}}},
			"exclude", "need 1 ≤ first < second ≤ 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.q.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("Validate() = %v, want an error about %s saying %q", err, tt.want, tt.says)
			}
		})
	}
}

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	for range 2 {
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFunnelConditionsMatchTheMapInGoAndSQL(t *testing.T) {
	t.Parallel()
	jm, err := sessionize.LoadMap("testdata/conditions-map.yaml")
	if err != nil {
		t.Fatal(err)
	}
	props := func(e ingest.Event, kv ...string) ingest.Event {
		for i := 0; i < len(kv); i += 2 {
			e.PropertyKeys, e.PropertyValues = append(e.PropertyKeys, kv[i]), append(e.PropertyValues, kv[i+1])
		}
		return e
	}
	page := func(user, path string, offset int) ingest.Event {
		e := ev(user, "", offset)
		e.Type, e.PagePath, e.MessageID = "page", path, e.MessageID+path
		return e
	}
	emailOrder := props(ev("e", "Order Completed", 1), "revenue", "5")
	emailOrder.CampaignMedium = "email"
	// Segment's products list by element (ingest.Event.ItemKeys): a's order has a hat of 10, b's
	// a hat of 5 and shoes of 20, c's none.
	items := func(e ingest.Event, kv ...string) ingest.Event {
		for i := 0; i < len(kv); i += 2 {
			e.ItemKeys, e.ItemValues = append(e.ItemKeys, kv[i]), append(e.ItemValues, kv[i+1])
		}
		return e
	}
	events := []ingest.Event{
		page("a", "/checkout/pay", 0), items(props(ev("a", "Order Completed", 1), "currency", "EUR", "revenue", "150.5"),
			"products.category", "hats", "products.price", "10"),
		page("b", "/check", 0), items(props(ev("b", "Order Completed", 1), "currency", "EUR", "revenue", "99"),
			"products.category", "hats", "products.price", "5", "products.category", "shoes", "products.price", "20"),
		page("c", "/checkout", 0), props(ev("c", "Order Completed", 1), "currency", "GBP", "revenue", "500"),
		page("d", "/checkout", 0), props(ev("d", "Order Completed", 1), "currency", "USD", "revenue", "lots"),
		page("e", "/checkout", 0), emailOrder,
		props(ev("f", "Signed Up", 0), "plan", "pro-annual"), props(ev("g", "Signed Up", 0), "plan", "professional"),
	}
	channels := make([]string, len(events))
	for i := range events {
		channels[i] = jm.Channel(&events[i])
	}
	s := openStore(t)
	ctx := context.Background()
	if err := s.Write(ctx, sessionize.Batch{Events: events, Channels: channels}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		steps []string
		want  []int64
	}{
		{[]string{"checkout", "big-order"}, []int64{4, 1}},
		{[]string{"checkout", "email-order"}, []int64{4, 1}},
		{[]string{"pro-plan"}, []int64{1}},
		{[]string{"hat-order"}, []int64{2}}, // a's, and b's: one item a hat, another 20 (items are matched each condition apart)
		{[]string{"no-hats"}, []int64{3}},   // c's, d's and e's orders
	}
	for _, tt := range tests {
		res, err := s.Funnel(ctx, jm, store.FunnelQuery{Steps: tt.steps, Window: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if got := customers(res); fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%v: customers %v, want %v", tt.steps, got, tt.want)
		}
	}
	// The Go matcher (used for sessions' stages) agrees with the SQL, event by event.
	for _, st := range jm.Stages {
		var goMatches int64
		users := map[string]bool{}
		for i := range events {
			for _, r := range st.Rules {
				if r.Matches(&events[i], channels[i]) && !users[events[i].UserID] {
					users[events[i].UserID] = true
					goMatches++
				}
			}
		}
		res, err := s.Funnel(ctx, jm, store.FunnelQuery{Steps: []string{st.Name}, Window: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if res.Steps[0].Customers != goMatches {
			t.Errorf("stage %s: SQL finds %d customers, Go %d", st.Name, res.Steps[0].Customers, goMatches)
		}
	}
}

// TestRatiosOfNoUnitsAreZero: every rate and share of an answer is 0 when what it is taken of is
// empty (of no units none converted), never 1: a funnel whose first step no one reached reported
// conversion_from_previous 1. Step 1's conversion_from_previous is its conversion_from_first.
func TestRatiosOfNoUnitsAreZero(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	writeEvents(t, s, []ingest.Event{
		ev("a", "A", 0), ev("a", "B", 10), ev("a", "Order Completed", 20), ev("a", "Order Completed", 86400*40),
		ev("b", "A", 0), ev("c", "C", 0),
	})
	empty := url.Values{"from": {"2020-01-01"}, "to": {"2020-01-02"}} // a range without events
	// steps is a funnel answer's steps as customers/conversion_from_first/conversion_from_previous/drop_off_rate.
	steps := func(body map[string]any) string {
		var out []string
		for _, st := range body["steps"].([]any) {
			m := st.(map[string]any)
			out = append(out, fmt.Sprintf("%v/%v/%v/%v", m["customers"], m["conversion_from_first"], m["conversion_from_previous"], m["drop_off_rate"]))
		}
		return strings.Join(out, " ")
	}
	tests := []struct {
		name, query string
		params      url.Values
		got         func(map[string]any) string
		want        string
	}{
		{"funnel, units at each step", "funnel", url.Values{"steps": {"A,B"}}, steps, "2/1/1/0.5 1/0.5/0.5/0"},
		{"funnel, no one at step 1", "funnel", withParams(empty, "steps", "A,B"), steps, "0/0/0/0 0/0/0/0"},
		{"funnel of one step, no one at it", "funnel", withParams(empty, "steps", "A"), steps, "0/0/0/0"},
		{"funnel, no one at step 2", "funnel", url.Values{"steps": {"A,C,B"}}, steps, "2/1/1/1 0/0/0/0 0/0/0/0"},
		{"funnel in any order, no one at step 1", "funnel", withParams(empty, "steps", "A,B", "mode", "any"), steps, "0/0/0/0 0/0/0/0"},
		{"funnel by sessions, none stored", "funnel", url.Values{"steps": {"A,B"}, "count_by": {"sessions"}}, steps, "0/0/0/0 0/0/0/0"},
		{"funnel broken down, no one at step 1", "funnel", withParams(empty, "steps", "A,B", "breakdown", "channel"), func(b map[string]any) string {
			groups, _ := b["breakdown_groups"].([]any) // left out when empty
			return steps(b) + fmt.Sprintf(" groups %d", len(groups))
		}, "0/0/0/0 0/0/0/0 groups 0"},
		{"retention, no one converted", "retention", empty, func(b map[string]any) string {
			cohorts, _ := b["cohorts"].([]any)
			return fmt.Sprintf("%v %v %d", b["persons"], b["repeat_rate"], len(cohorts))
		}, "0 0 0"},
		{"retention, one converted and returned", "retention", url.Values{"period": {"month"}}, func(b map[string]any) string {
			return fmt.Sprintf("%v %v", b["persons"], b["repeat_rate"])
		}, "1 1"},
		{"stages, no one entered", "stages", empty, func(b map[string]any) string {
			var out []string
			for _, st := range b["stages"].([]any) {
				m := st.(map[string]any)
				out = append(out, fmt.Sprintf("%v/%v", m["entered"], m["exit_rate"]))
			}
			return strings.Join(slices.Compact(out), " ")
		}, "0/0"},
		{"drop-off, no one at the step", "dropoff", withParams(empty, "steps", "A,B", "step", "1"), func(b map[string]any) string {
			return fmt.Sprint(b["dropped"])
		}, "0"},
		{"paths, no anchor in range", "paths", withParams(empty, "anchor", "A"), func(b map[string]any) string {
			paths, _ := b["paths"].([]any)
			return fmt.Sprint(len(paths))
		}, "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := ask(t, s, tt.query, tt.params)
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.got(body); got != tt.want {
				t.Errorf("%s?%s: %s, want %s", tt.query, tt.params.Encode(), got, tt.want)
			}
		})
	}
}

// withParams is v with the parameters kv (name, value, name, value…) set, v left as it was.
func withParams(v url.Values, kv ...string) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = vs
	}
	for i := 0; i < len(kv); i += 2 {
		out.Set(kv[i], kv[i+1])
	}
	return out
}

// TestSessionsRunPastTheRangesEnd: counted by sessions, to bounds a unit's first step only, so a
// session's later steps after it count, as counted by persons the window's do. The scan reads up
// to the last end of the visits that start before to, not every later event (a one-day drop-off
// by sessions read the whole table after its range).
func TestSessionsRunPastTheRangesEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t)
	events := []ingest.Event{ev("straddle", "Product Viewed", -300), ev("straddle", "Product Added", 300), ev("straddle", "Product Added", 90*86400)}
	visits := []sessionize.Session{
		{ID: "straddle-1", CustomerKey: "straddle", PersonID: "straddle", Start: t0.Add(-300 * time.Second), End: t0.Add(300 * time.Second), Version: 1},
		{ID: "straddle-2", CustomerKey: "straddle", PersonID: "straddle", Start: t0.Add(90 * 24 * time.Hour), End: t0.Add(90 * 24 * time.Hour), Version: 1},
	}
	if err := s.Write(ctx, sessionize.Batch{Events: events, Channels: make([]string, len(events)), Sessions: visits, Version: 1}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []store.FunnelQuery{
		{Steps: []string{"Product Viewed", "Product Added"}, Window: time.Minute, CountBy: store.CountSessions, To: t0},
		{Steps: []string{"Product Viewed", "Product Added"}, Window: time.Minute, CountBy: store.CountSessions, From: t0.Add(-time.Hour), To: t0},
	} {
		res, err := s.Funnel(ctx, defaultMap(t), q)
		if err != nil {
			t.Fatal(err)
		}
		if got := []int64{res.Steps[0].Customers, res.Steps[1].Customers}; !slices.Equal(got, []int64{1, 1}) {
			t.Errorf("from %s to %s by sessions: %v, want [1 1] (the session's add comes after to)", q.From, q.To, got)
		}
	}
}

// TestExclusionRangeErrorsQuoteTheRange: an exclusion's range too large for any funnel is refused
// quoting the range as written, not the largest int it was read as (tester 40's F3), and one
// written with signs is refused as a range, not looked up as an event's name (F2).
func TestExclusionRangeErrorsQuoteTheRange(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ exclude, says string }{
		{"Chat:1-99999999999999999999", "Chat:1-99999999999999999999"},
		{"Chat:1-99", "Chat:1-99"},
		{"Chat:-1-2", "a range of steps is FIRST-LAST"},
		{"Chat:1-+2", "a range of steps is FIRST-LAST"},
	} {
		_, err := store.ParseFunnelQuery(url.Values{"steps": {"View,Buy"}, "exclude": {tt.exclude}})
		var pe *store.ParamError
		if !errors.As(err, &pe) || pe.Param != "exclude" || !strings.Contains(err.Error(), tt.says) || strings.Contains(err.Error(), "9223372036854775807") {
			t.Errorf("exclude=%s: %v, want an error naming exclude saying %q", tt.exclude, err, tt.says)
		}
	}
}
