package store_test

import (
	"context"
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

// TestEscapedNamesAndValues: event names and property values holding the step syntax's
// characters (, | ; [ ] and padding) are found by every query that reads steps, through the
// text parameters the API and the CLI pass, when escaped with a backslash; unescaped, a comma
// still separates steps and the error says how to escape it.
func TestEscapedNamesAndValues(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	const (
		checkout = "Checkout, Step 2"
		pay      = "Pay|Now"
		ship     = "Ship;Later"
		gift     = "Gift[wrap]"
	)
	type ev struct {
		user, event string
		minute      int
		props       map[string]string
	}
	var events []ingest.Event
	for i, e := range []ev{
		{"p1", checkout, 0, map[string]string{"city": "Washington, D.C.", "coupon": "A|B", "expr": "x;y", "sp": " padded ", "br": "a]b"}},
		{"p1", pay, 1, nil},
		{"p1", ship, 2, nil},
		{"p1", gift, 3, nil},
		{"p2", checkout, 0, map[string]string{"city": "Boston", "coupon": "B", "expr": "x", "sp": "padded", "br": "a"}},
		{"p2", pay, 1, nil},
		{"p3", "Checkout", 0, nil}, // what an unescaped comma would ask about
		{"p3", "Step 2", 1, nil},
	} {
		line := mustJSON(t, map[string]any{"type": "track", "userId": e.user, "event": e.event, "messageId": fmt.Sprint("esc", i),
			"timestamp": t0.Add(time.Duration(e.minute) * time.Minute).Format(time.RFC3339), "properties": e.props})
		d, err := ingest.Decode([]byte(line), "test", t0)
		if err != nil {
			t.Fatalf("decode %s: %v", line, err)
		}
		events = append(events, d)
	}
	if err := s.Write(context.Background(), sessionize.Batch{Events: events, Channels: make([]string, len(events))}); err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, name string, v url.Values) any {
		t.Helper()
		res, err := s.Query(context.Background(), defaultMap(t), name, v)
		if err != nil {
			t.Fatalf("%s %v: %v", name, v, err)
		}
		return res
	}
	esc := store.EscapeStep
	steps := strings.Join([]string{esc(checkout), esc(pay), esc(ship), esc(gift)}, ",")
	if steps != `Checkout\, Step 2,Pay\|Now,Ship\;Later,Gift\[wrap\]` {
		t.Errorf("EscapeStep wrote %s", steps)
	}

	t.Run("funnel", func(t *testing.T) {
		for _, tt := range []struct {
			steps, exclude string
			want           []int64
		}{
			{steps, "", []int64{2, 2, 1, 1}},
			{`Checkout\, Step 2,Pay\|Now,Ship\;Later,Gift\[wrap\]`, "", []int64{2, 2, 1, 1}},
			{`Checkout, Step 2`, "", []int64{1, 1}}, // two steps, Checkout and Step 2, as always
			{`Checkout, Step 2,Pay|Now`, "", []int64{1, 1, 0}},
			{`Checkout\, Step 2,Ship\;Later`, `Pay\|Now`, []int64{2, 0}},
			{`Checkout\, Step 2,Ship\;Later`, `Pay\|Now:1-2`, []int64{2, 0}},
			{`Checkout\, Step 2,Ship\;Later`, `Gift\[wrap\]`, []int64{2, 1}},
			{`Checkout\, Step 2[city=Washington\, D.C.]`, "", []int64{1}},
			{`Checkout\, Step 2[coupon=A\|B]`, "", []int64{1}},
			{`Checkout\, Step 2[coupon=A|B]`, "", []int64{1}}, // one of A, B: p2's B
			{`Checkout\, Step 2[expr=x\;y]`, "", []int64{1}},
			{`Checkout\, Step 2[sp=\ padded\ ]`, "", []int64{1}},
			{`Checkout\, Step 2[sp= padded ]`, "", []int64{1}}, // unescaped spaces are dropped: p2's "padded"
			{`Checkout\, Step 2[br=a\]b]`, "", []int64{1}},
			{`Checkout\, Step 2[city~=^Washington\, D\.C\.$]`, "", []int64{1}},
			{`Checkout\, Step 2[sp~=^\ padded\ $]`, "", []int64{1}},
			{`Checkout\, Step 2[expr~=^x\;y$]`, "", []int64{1}},
		} {
			v := url.Values{"steps": {tt.steps}}
			if tt.exclude != "" {
				v.Set("exclude", tt.exclude)
			}
			res := run(t, "funnel", v).(*store.FunnelResult)
			if got := customers(res); !slices.Equal(got, tt.want) {
				t.Errorf("steps=%s exclude=%s: %v, want %v", tt.steps, tt.exclude, got, tt.want)
			}
		}
	})
	t.Run("dropoff", func(t *testing.T) {
		res := run(t, "dropoff", url.Values{"steps": {steps}, "step": {"2"}}).(*store.DropoffResult)
		if res.Reached != 2 || res.Dropped != 1 || res.StepName != esc(pay) || res.NextStep != esc(ship) {
			t.Errorf("dropoff at step 2: %+v", res)
		}
	})
	t.Run("paths", func(t *testing.T) {
		res := run(t, "paths", url.Values{"anchor": {esc(checkout)}, "convert": {esc(gift)}, "depth": {"4"}}).(*store.PathsResult)
		var converted int64
		var got [][]string
		for _, p := range res.Paths {
			converted += p.Converted
			got = append(got, p.Touchpoints)
		}
		want := [][]string{{checkout, pay, ship, gift}, {checkout, pay}}
		if res.Persons != 2 || converted != 1 || !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("paths: %d persons, %d converted, %q; want 2, 1, %q", res.Persons, converted, got, want)
		}
	})
	t.Run("next", func(t *testing.T) {
		for _, anchor := range []string{esc(pay), `Pay\|Now`, `Pay|Now`} { // one step: | is only syntax in a filter
			res := run(t, "next", url.Values{"anchor": {anchor}}).(*store.NextResult)
			if res.Persons != 2 || !slices.ContainsFunc(res.Touchpoints, func(r store.Ranked) bool { return r.Value == ship && r.Count == 1 }) {
				t.Errorf("next after %s: %+v", anchor, res)
			}
		}
		res := run(t, "next", url.Values{"anchor": {esc(checkout)}}).(*store.NextResult)
		if res.Persons != 2 || len(res.Touchpoints) != 1 || res.Touchpoints[0].Value != pay || res.Touchpoints[0].Count != 2 {
			t.Errorf("next after %s: %+v", checkout, res)
		}
	})
	t.Run("retention", func(t *testing.T) {
		res := run(t, "retention", url.Values{"conversion": {esc(checkout)}, "return": {esc(gift)}}).(*store.RetentionResult)
		if res.Persons != 2 {
			t.Errorf("retention from %s: %d persons, want 2", checkout, res.Persons)
		}
	})
	t.Run("errors", func(t *testing.T) {
		for _, steps := range []string{
			"Gift[wrap],Checkout[city=Washington, D.C.]", // "Gift" with a filter "wrap"
			`Checkout\, Step 3`,                          // not stored
		} {
			_, err := s.Query(context.Background(), defaultMap(t), "funnel", url.Values{"steps": {steps}})
			var pe *store.ParamError
			if !errors.As(err, &pe) || pe.Param != "steps" || !strings.Contains(err.Error(), `Checkout\, Step 2`) {
				t.Errorf("steps=%s: %v, want an error about steps saying how to escape", steps, err)
			}
		}
	})
}

// TestStagesOfAnyName: the stages query reads each stage of the journey map by its name, whatever
// characters of the step syntax the name holds ("Look [web]" is a stage, not the step Look with
// a filter web; "Pay\, now" keeps its backslash; padding is the name's).
func TestStagesOfAnyName(t *testing.T) {
	t.Parallel()
	jm, err := sessionize.ParseMap([]byte(`version: names-1
stages:
  - name: "Look [web]"
    rules:
      - event: [Product Viewed]
  - name: 'Pay\, now '
    rules:
      - event: [Order Completed]
`))
	if err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	writeEvents(t, s, []ingest.Event{ev("a", "Product Viewed", 0), ev("a", "Order Completed", 60), ev("b", "Product Viewed", 0)})
	res, err := s.Stages(context.Background(), jm, store.StagesQuery{Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, st := range res.Stages {
		got = append(got, fmt.Sprintf("%q entered %d", st.Stage, st.Entered))
	}
	if want := []string{`"Look [web]" entered 2`, `"Pay\\, now " entered 1`}; !slices.Equal(got, want) {
		t.Errorf("stages %v, want %v", got, want)
	}
}

// TestLongestNamesAreAskable: every name ingest stores can be asked about, however long
// (ingest.MaxNameBytes) and however much of it needs escaping, with a filter beside it: the
// steps the answers give for it (Ranked.Step, PathRow.Steps) are taken back by every query that
// reads steps. A 20 KB event name used to be stored and then refused by every query (steps
// were at most 1000 bytes).
func TestLongestNamesAreAskable(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	names := []string{
		strings.Repeat(",", ingest.MaxNameBytes),              // every byte escaped: twice as long as a step
		strings.Repeat("😀", ingest.MaxNameBytes/4),            // four bytes a character
		strings.Repeat("x", ingest.MaxNameBytes-1) + " ",      // an escaped space at the end
		"event:" + strings.Repeat("|", ingest.MaxNameBytes-6), // escaped colon
	}
	value := strings.Repeat(";", ingest.MaxNameBytes/2) // a property value to filter on, escaped too
	var events []ingest.Event
	for i, name := range names {
		user := fmt.Sprint("long", i)
		for j, e := range []map[string]any{
			{"type": "track", "event": "Start"},
			{"type": "track", "event": name, "properties": map[string]any{"v": value}},
			{"type": "track", "event": "Order Completed"},
		} {
			e["userId"], e["messageId"] = user, fmt.Sprint(user, "-", j)
			e["timestamp"] = t0.Add(time.Duration(j) * time.Minute).Format(time.RFC3339)
			line := mustJSON(t, e)
			d, err := ingest.Decode([]byte(line), "test", t0)
			if err != nil {
				t.Fatalf("decode %.80s…: %v", line, err)
			}
			events = append(events, d)
		}
	}
	if err := s.Write(context.Background(), sessionize.Batch{Events: events, Channels: make([]string, len(events))}); err != nil {
		t.Fatal(err)
	}
	jm := defaultMap(t)
	run := func(t *testing.T, name string, v url.Values) any {
		t.Helper()
		res, err := s.Query(context.Background(), jm, name, v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return res
	}
	// The step the next answer gives for each name, after Start.
	next := run(t, "next", url.Values{"anchor": {"Start"}, "limit": {"10"}}).(*store.NextResult)
	given := map[string]string{}
	for _, r := range next.Touchpoints {
		given[r.Value] = r.Step
	}
	for i, name := range names {
		step := given[name]
		if step != store.TouchpointStep(jm, name) {
			t.Fatalf("name %d: next gave the step %.80q…, want TouchpointStep's", i, step)
		}
		filtered := step + "[v=" + store.EscapeStep(value) + "]"
		t.Run(fmt.Sprint("name", i), func(t *testing.T) {
			funnel := run(t, "funnel", url.Values{"steps": {"Start," + filtered + ",Order Completed"}, "exclude": {step + ":1-2"}}).(*store.FunnelResult)
			if got := customers(funnel); !slices.Equal(got, []int64{4, 1, 1}) {
				t.Errorf("funnel: %v, want [4 1 1]", got)
			}
			drop := run(t, "dropoff", url.Values{"steps": {"Start," + step}, "step": {"1"}}).(*store.DropoffResult)
			if drop.Reached != 4 || drop.Dropped != 3 || drop.NextStep != step {
				t.Errorf("dropoff: reached %d, dropped %d, next step %.80q", drop.Reached, drop.Dropped, drop.NextStep)
			}
			paths := run(t, "paths", url.Values{"anchor": {filtered}, "convert": {"Order Completed"}, "depth": {"2"}}).(*store.PathsResult)
			if paths.Persons != 1 || len(paths.Paths) != 1 || paths.Paths[0].Converted != 1 || paths.Paths[0].Steps[0] != step {
				t.Errorf("paths: %d persons, %+v", paths.Persons, paths.Paths)
			}
			ret := run(t, "retention", url.Values{"conversion": {step}, "return": {filtered}})
			if ret == nil {
				t.Error("retention: no answer")
			}
		})
	}
}
