package store_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
	"github.com/waymark-dev/waymark/store"
)

// valuesFixture is testdata/property-values.jsonl: events whose names and property values read
// like the answers' markers ("(exit)", "(none)", "(other)", "(start)"), traits cleared with
// JSON null, and one price written as JSON numbers and strings in many ways. The pipeline test
// TestPropertyValuesThroughThePipeline sends the same file through the collector.
const valuesFixture = "testdata/property-values.jsonl"

// storeValuesFixture decodes the fixture as the consumer does and stores it, and returns a store
// per place queries can match on the test engine (storedRefDataPaths).
func storeValuesFixture(t *testing.T) ([]matchingPath, []ingest.Event) {
	t.Helper()
	raw, err := os.ReadFile(valuesFixture)
	if err != nil {
		t.Fatal(err)
	}
	var events []ingest.Event
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		e, err := ingest.Decode(sc.Bytes(), "test", t0)
		if err != nil {
			t.Fatalf("decode %s: %v", sc.Text(), err)
		}
		events = append(events, e)
	}
	jm := defaultMap(t)
	channels := make([]string, len(events))
	for i := range events {
		channels[i] = jm.Channel(&events[i])
	}
	var db string
	s := openStoreWith(t, func(c *store.Config) { db, c.FunnelMatching = c.Database, store.MatchProcess })
	if err := s.Write(context.Background(), sessionize.Batch{Events: events, Channels: channels}); err != nil {
		t.Fatal(err)
	}
	return append([]matchingPath{{store.MatchProcess, s}}, enginePaths(t, db)...), events
}

// label renders a value of an answer as these tests expect it: a marker as <marker>.
func label(value, marker string) string {
	if marker != "" {
		return "<" + marker + ">"
	}
	return value
}

func groupsText(res *store.FunnelResult) string {
	var out []string
	for _, g := range res.Groups {
		out = append(out, fmt.Sprintf("%s=%d", label(g.Value, g.Marker), g.Steps[0].Customers))
	}
	return strings.Join(out, " ")
}

func rankedLabels(rows []store.Ranked) string {
	var out []string
	for _, r := range rows {
		out = append(out, fmt.Sprintf("%s=%d", label(r.Value, r.Marker), r.Count))
	}
	return strings.Join(out, " ")
}

// TestMarkersApartFromRealValues: an answer's markers (no value, other values, exit, start) are
// never merged with an event or property value that reads like them.
func TestMarkersApartFromRealValues(t *testing.T) {
	paths, _ := storeValuesFixture(t)
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) { markersApart(t, path.s) })
	}
}

func markersApart(t *testing.T, s *store.Store) {
	jm := defaultMap(t)
	ctx := context.Background()
	for _, tt := range []struct {
		limit int
		want  string
	}{
		{0, "<none>=3 SPRING=2 (none)=1 (other)=1"},
		{2, "<none>=3 SPRING=2 <other>=2"},
	} {
		res, err := s.Funnel(ctx, jm, store.FunnelQuery{Steps: []string{"Collide Viewed"}, Window: time.Hour,
			Breakdown: store.Breakdown{By: "property", Name: "coupon"}, BreakdownLimit: tt.limit})
		if err != nil {
			t.Fatal(err)
		}
		if got := groupsText(res); got != tt.want {
			t.Errorf("breakdown property:coupon, limit %d: %s, want %s", tt.limit, got, tt.want)
		}
	}
	for _, tt := range []struct {
		direction, want string
	}{
		{"next", "<exit>=6 (exit)=1"},
		{"previous", "<start>=6 (start)=1"},
	} {
		res, err := s.Next(ctx, jm, store.NextQuery{Anchor: "Collide Viewed", Direction: tt.direction, Window: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if got := rankedLabels(res.Touchpoints); got != tt.want || res.Persons != 7 {
			t.Errorf("next %s: %d persons: %s, want 7: %s", tt.direction, res.Persons, got, tt.want)
		}
	}
	res, err := s.Paths(ctx, jm, store.PathsQuery{Anchor: "Collide Viewed", Depth: 3, Window: time.Hour, Convert: "Order Completed"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range res.Paths {
		got = append(got, fmt.Sprintf("%s %s %d/%d", strings.Join(p.Touchpoints, ">"), label("", p.Marker), p.Persons, p.Converted))
	}
	if want := "Collide Viewed <exit> 6/0; Collide Viewed>(exit)>Order Completed  1/1"; strings.Join(got, "; ") != want {
		t.Errorf("paths: %s, want %s", strings.Join(got, "; "), want)
	}
	drop, err := s.Dropoff(ctx, jm, store.DropoffQuery{Funnel: store.FunnelQuery{Steps: []string{"Collide Viewed", "Order Completed"}, Window: time.Hour}, Step: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rankedLabels(drop.NextEvents)+"; "+rankedLabels(drop.LastLocations), "<none>=6; <none>=6"; got != want {
		t.Errorf("dropoff next events; last locations: %s, want %s", got, want)
	}
}

// TestNullTraitClearsTrait: a trait's value is the latest one a person was given, and JSON null
// (in traits or context.traits) given later clears it; a null given earlier does not.
func TestNullTraitClearsTrait(t *testing.T) {
	paths, _ := storeValuesFixture(t)
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) { nullTraitClears(t, path.s) })
	}
}

func nullTraitClears(t *testing.T, s *store.Store) {
	res, err := s.Funnel(context.Background(), defaultMap(t), store.FunnelQuery{Steps: []string{"Tier Viewed"}, Window: time.Hour,
		Breakdown: store.Breakdown{By: "trait", Name: "tier"}})
	if err != nil {
		t.Fatal(err)
	}
	// nt1 (gold, then null) and nt4 (gold, then null in context.traits): none; nt2 and nt5
	// (null, then gold): gold; nt3 (null, then silver): silver.
	if got, want := groupsText(res), "gold=2 <none>=2 silver=1"; got != want {
		t.Errorf("breakdown trait:tier: %s, want %s", got, want)
	}
}

// TestNumbersAreOneValue: a JSON number is one value however it is written (100, 100.0, 1e2,
// 1.5E+2), in filters, breakdowns and ordering alike, in ClickHouse and in the journey map's Go
// matcher; a JSON string is its text ("100" is the number's text, "100.0" and "1e2" are not).
func TestNumbersAreOneValue(t *testing.T) {
	paths, events := storeValuesFixture(t)
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) { numbersAreOneValue(t, path.s, events) })
	}
}

func numbersAreOneValue(t *testing.T, s *store.Store, events []ingest.Event) {
	jm := defaultMap(t)
	ctx := context.Background()
	for _, tt := range []struct {
		op, value string
		want      int64
	}{
		{"=", "100", 4},                  // 100, "100", 1e2, 100.0
		{"=", "1e2", 5},                  // the same, and the string "1e2"
		{"=", "100.0", 5},                // the same four, and the string "100.0"
		{"=", "100.00", 4},               // as 100
		{"=", "100|150", 5},              // and 1.5E+2
		{"=", "100.5", 1},                // 100.50
		{"=", "100.50", 1},               //
		{"=", "12345678901234567890", 1}, // every digit kept
		{"=", "12345678901234567891", 0}, //
		{"=", "0", 1},                    // -0.0
		{"=", "-0", 1},                   //
		{">=", "100", 9},                 // all but 99.99 and -0.0 (the strings "100.0" and "1e2" read as numbers)
		{"<=", "100", 8},                 // 100 ×4, "100.0", "1e2", 99.99, -0.0
		{">", "100", 3},                  // 100.50, 1.5E+2, 12345678901234567890
		{"<", "100", 2},                  // 99.99, -0.0
	} {
		step := "Priced Viewed[price" + tt.op + tt.value + "]"
		res, err := s.Funnel(ctx, jm, store.FunnelQuery{Steps: []string{step}, Window: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		op := map[string]string{"=": "equals", ">=": "gte", "<=": "lte", ">": "gt", "<": "lt"}[tt.op]
		if op == "equals" && strings.Contains(tt.value, "|") {
			op = "one_of"
		}
		c, err := sessionize.NewCondition("price", op, tt.value)
		if err != nil {
			t.Fatal(err)
		}
		var inGo int64
		for i := range events {
			if events[i].Event == "Priced Viewed" && c.Matches(&events[i]) {
				inGo++
			}
		}
		if res.Steps[0].Customers != tt.want || inGo != tt.want {
			t.Errorf("%s: %d in ClickHouse, %d in Go, want %d", step, res.Steps[0].Customers, inGo, tt.want)
		}
	}
	res, err := s.Funnel(ctx, jm, store.FunnelQuery{Steps: []string{"Priced Viewed"}, Window: time.Hour,
		Breakdown: store.Breakdown{By: "property", Name: "price"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := groupsText(res), "100=4 0=1 100.0=1 100.5=1 12345678901234567890=1 150=1 1e2=1 99.99=1"; got != want {
		t.Errorf("breakdown property:price: %s\nwant %s", got, want)
	}
}
