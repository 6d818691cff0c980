package store_test

import (
	"context"
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

// TestDeviceTypeIsAField is tester 35's F3: bots could not be left out of any answer, the device
// type being only a breakdown. device.type is a field of step filters, exclusions and the journey
// map's conditions, with every operator, in SQL as in Go; a missing device type passes != as any
// missing field does, and a property named device.type is properties.device.type.
func TestDeviceTypeIsAField(t *testing.T) {
	t.Parallel()
	// ev with the stored values kv (keys and values), sorted as ingest stores them.
	with := func(e ingest.Event, kv ...string) ingest.Event {
		for i := 0; i < len(kv); i += 2 {
			at, _ := slices.BinarySearch(e.PropertyKeys, kv[i])
			e.PropertyKeys = slices.Insert(e.PropertyKeys, at, kv[i])
			e.PropertyValues = slices.Insert(e.PropertyValues, at, kv[i+1])
		}
		return e
	}
	var events []ingest.Event
	for _, u := range []struct{ user, device, property string }{
		{"crawler", "bot", ""}, {"laptop", "desktop", ""}, {"phone", "mobile", "bot"}, {"unknown", "", ""},
	} {
		for _, step := range []struct {
			name   string
			offset int
		}{{"Viewed", 0}, {"Visited", 5}, {"Bought", 10}} {
			e := ev(u.user, step.name, step.offset)
			if u.device != "" {
				e = with(e, ingest.DeviceTypeKey, u.device)
			}
			if u.property != "" {
				e = with(e, "device.type", u.property) // the property {"device": {"type": "bot"}}
			}
			events = append(events, e)
		}
	}
	jm, err := sessionize.ParseMap([]byte(`version: devices-1
stages:
  - name: people
    rules:
      - event: [Viewed]
        where:
          - field: device.type
            not_equals: bot
  - name: phones
    rules:
      - event: [Viewed]
        where:
          - field: device.type
            one_of: [mobile, tablet]
`))
	if err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	ctx := context.Background()
	channels := make([]string, len(events))
	for i := range events {
		channels[i] = jm.Channel(&events[i])
	}
	if err := s.Write(ctx, sessionize.Batch{Events: events, Channels: channels}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		step, exclude string
		want          []int64
	}{
		{"Viewed[device.type!=bot]", "", []int64{3, 3}},
		{"Viewed[device.type=bot]", "", []int64{1, 1}},
		{"Viewed[device.type=mobile|desktop]", "", []int64{2, 2}},
		{"Viewed[device.type!=bot|desktop]", "", []int64{2, 2}},
		{"Viewed[device.type^=mob]", "", []int64{1, 1}},
		{"Viewed[device.type~=^(bot|desktop)$]", "", []int64{2, 2}},
		{"Viewed[device.type=]", "", []int64{0, 0}}, // a missing device type is no value
		{"Viewed[ device.type != bot ]", "", []int64{3, 3}},
		{"Viewed[properties.device.type=bot]", "", []int64{1, 1}}, // the property, not the device type
		{"people", "", []int64{3, 3}},
		{"phones", "", []int64{1, 1}},
		{"Viewed", "Visited[device.type=bot]", []int64{4, 3}},
		{"Viewed", "Visited[device.type!=bot]", []int64{4, 1}},
	} {
		q := store.FunnelQuery{Steps: []string{tt.step, "Bought"}, Window: time.Hour}
		if tt.exclude != "" {
			q.Exclusions = []store.Exclusion{{Step: tt.exclude, After: 1, Before: 2}}
		}
		res, err := s.Funnel(ctx, jm, q)
		if err != nil {
			t.Fatalf("%s exclude %q: %v", tt.step, tt.exclude, err)
		}
		if got := customers(res); fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s exclude %q: customers %v, want %v", tt.step, tt.exclude, got, tt.want)
		}
	}
	// device and context.device_type are properties no event has: the error names the field.
	for _, step := range []string{"Viewed[device!=bot]", "Viewed[context.device_type!=bot]"} {
		_, err := s.Funnel(ctx, jm, store.FunnelQuery{Steps: []string{step}, Window: time.Hour})
		if err == nil || !strings.Contains(err.Error(), "[device.type!=bot]") {
			t.Errorf("%s: %v, want a 400 naming device.type", step, err)
		}
	}
	// In a breakdown, property:device is a shop's own property: the error names breakdown=device
	// (tester 36's F7).
	for _, name := range []string{"device", "context.device_type"} {
		_, err := s.Funnel(ctx, jm, store.FunnelQuery{Steps: []string{"Viewed"}, Window: time.Hour, Breakdown: store.Breakdown{By: "property", Name: name}})
		if err == nil || !strings.Contains(err.Error(), "breakdown=device") || strings.Contains(err.Error(), "[device.type") {
			t.Errorf("breakdown by property:%s: %v, want a 400 naming breakdown=device", name, err)
		}
	}
	// The other queries read the same filters.
	next, err := s.Next(ctx, jm, store.NextQuery{Anchor: "Viewed[device.type!=bot]", Window: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	paths, err := s.Paths(ctx, jm, store.PathsQuery{Anchor: "Viewed[device.type!=bot]", Window: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	retention, err := s.Retention(ctx, jm, store.RetentionQuery{Conversion: "Viewed[device.type!=bot]", Return: "Bought"})
	if err != nil {
		t.Fatal(err)
	}
	if next.Persons != 3 || paths.Persons != 3 || retention.Persons != 3 {
		t.Errorf("persons without bots: next %d, paths %d, retention %d; want 3", next.Persons, paths.Persons, retention.Persons)
	}
	// The Go matcher (sessions' stages, live metrics) agrees with the SQL.
	for _, st := range jm.Stages {
		users := map[string]bool{}
		for i := range events {
			for _, r := range st.Rules {
				if r.Matches(&events[i], channels[i]) {
					users[events[i].UserID] = true
				}
			}
		}
		res, err := s.Funnel(ctx, jm, store.FunnelQuery{Steps: []string{st.Name}, Window: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if res.Steps[0].Customers != int64(len(users)) {
			t.Errorf("stage %s: SQL finds %d customers, Go %d", st.Name, res.Steps[0].Customers, len(users))
		}
	}
}

// TestPropertyLookalikesAreNamed is tester 35's F4: a property or trait name that differs from a
// stored one only in case, Unicode normalization or white space got no "did you mean", where an
// event name does; and F10's property "wrap " is reached by a breakdown as by a filter. A
// property asked for as a trait, or a trait as a property, is told the other's spelling (tester
// 36's F7, the part left then).
func TestPropertyLookalikesAreNamed(t *testing.T) {
	t.Parallel()
	with := func(e ingest.Event, key, value string) ingest.Event {
		e.PropertyKeys, e.PropertyValues = []string{key}, []string{value}
		return e
	}
	s := openStore(t)
	ctx := context.Background()
	if err := s.Write(ctx, sessionize.Batch{Events: []ingest.Event{
		with(ev("a", "Probe", 0), "Coupon", "SPRING"), with(ev("b", "Probe", 0), "coupon", "spring"),
		with(ev("c", "Probe", 0), "wrap ", "TRAIL"), with(ev("d", "Probe", 0), "Caf\u00e9", "x"),
		with(ev("e", "Probe", 0), ingest.TraitPrefix+"Plan", "pro"), with(ev("f", "Probe", 0), "Tier", "gold"),
		with(ev("g", "Probe", 0), ingest.TraitPrefix+"vip ", "yes"),
	}}); err != nil {
		t.Fatal(err)
	}
	jm := defaultMap(t)
	for _, tt := range []struct{ step, breakdown, hint string }{
		{"Probe[COUPON=SPRING]", "", `steps: no stored event has the property "COUPON" (did you mean "Coupon" or "coupon"? names are matched with their case)`},
		{"Probe[wrap=TRAIL]", "", `(did you mean "wrap "? names are matched with their white space, and spaces around a name are dropped: write it wrap\ )`},
		{"Probe[Cafe\u0301=x]", "", `the stored property "Caf\u00e9" differs from "Cafe\u0301" only in Unicode normalization`},
		{"Probe", "property:COUPON", `breakdown: no stored event has the property "COUPON" (did you mean "Coupon" or "coupon"?`},
		{"Probe", "trait:plan", `breakdown: no stored event has the trait "plan" (did you mean "Plan"? names are matched with their case)`},
		// A trait is no property's lookalike, nor a property a trait's.
		{"Probe[plan=pro]", "", `no stored event has the property "plan" (nested properties`},
		{"Probe", "trait:tier", `breakdown: no stored event has the trait "tier"`},
		// But a name stored as the other kind is told how to ask for it.
		{"Probe", "property:Plan", `breakdown: no stored event has the property "Plan"; a trait of that name is stored: breakdown=trait:Plan`},
		{"Probe", "trait:Tier", `breakdown: no stored event has the trait "Tier"; a property of that name is stored: breakdown=property:Tier`},
		{"Probe", "property:vip ", `a trait of that name is stored: breakdown=trait:vip\ `},
		{"Probe[Plan=pro]", "", `steps: no stored event has the property "Plan"; a trait of that name is stored, and a filter tests an event's properties: a funnel breaks down by it, breakdown=trait:Plan`},
	} {
		q := store.FunnelQuery{Steps: []string{tt.step}, Window: time.Hour}
		if tt.breakdown != "" {
			by, name, _ := strings.Cut(tt.breakdown, ":")
			q.Breakdown = store.Breakdown{By: by, Name: name}
		}
		_, err := s.Funnel(ctx, jm, q)
		if !store.IsParamError(err) || !strings.Contains(err.Error(), tt.hint) || strings.HasSuffix(tt.hint, `"tier"`) && strings.Contains(err.Error(), "did you mean") {
			t.Errorf("%s %s: %v, want a parameter error saying %s", tt.step, tt.breakdown, err, tt.hint)
		}
	}
	q, err := store.ParseFunnelQuery(url.Values{"steps": {"Probe"}, "breakdown": {`property:wrap\ `}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Funnel(ctx, jm, q)
	if err != nil {
		t.Fatal(err)
	}
	if res.Breakdown != `property:wrap\ ` || !slices.ContainsFunc(res.Groups, func(g store.FunnelGroup) bool { return g.Value == "TRAIL" }) {
		t.Errorf("breakdown property:wrap\\ : %s %+v, want the group TRAIL", res.Breakdown, res.Groups)
	}
}
