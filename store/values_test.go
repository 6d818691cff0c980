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
	return storeJSONLines(t, valuesFixture, nil)
}

// storeJSONLines decodes the Segment messages of a JSON-lines file as the consumer does, passes
// each event to edit (when not nil), stores them, and returns a store per place queries can
// match on the test engine (storedRefDataPaths), with the events.
func storeJSONLines(t *testing.T, file string, edit func(*ingest.Event)) ([]matchingPath, []ingest.Event) {
	t.Helper()
	raw, err := os.ReadFile(file)
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
		if edit != nil {
			edit(&e)
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

// onEveryPath runs check on a store of the values fixture in every matching path
// (storeValuesFixture), a subtest each, with the fixture's events.
func onEveryPath(t *testing.T, check func(*testing.T, *store.Store, []ingest.Event)) {
	paths, events := storeValuesFixture(t)
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) { check(t, path.s, events) })
	}
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
	t.Parallel()
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
		// The units with no value are a group of their own and take no place of the limit
		// (tester 49's F1: they were summed into other values past it).
		{2, "<none>=3 SPRING=2 (none)=1 <other>=1"},
		{1, "<none>=3 SPRING=2 <other>=2"},
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
	if got, want := rankedLabels(drop.NextEvents)+"; "+rankedLabels(drop.LastLocations), "<exit>=6; <none>=6"; got != want {
		t.Errorf("dropoff next events; last locations: %s, want %s", got, want)
	}
}

// TestValuesStartingWithNUL: a property value or page path starting with a NUL (ingest.Internal,
// which starts Waymark's own texts: an unnamed page's label, a device's person) is listed as it
// was sent, apart from the value without it and from the markers, while a page sent without a
// name is still listed as page (tester 59's F2: "\x00page" was listed as page beside a real
// page, "\x00none" as none, "\x00" as an empty value).
func TestValuesStartingWithNUL(t *testing.T) {
	t.Parallel()
	paths, _ := storeJSONLines(t, "testdata/nul-values.jsonl", nil)
	jm := defaultMap(t)
	ctx := context.Background()
	quoted := func(value, marker string, n int64) string {
		if marker != "" {
			return fmt.Sprintf("<%s>=%d", marker, n)
		}
		return fmt.Sprintf("%q=%d", value, n)
	}
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) {
			f, err := path.s.Funnel(ctx, jm, store.FunnelQuery{Steps: []string{"NUL Viewed"}, Window: time.Hour,
				Breakdown: store.Breakdown{By: "property", Name: "m"}})
			if err != nil {
				t.Fatal(err)
			}
			var groups []string
			for _, g := range f.Groups {
				groups = append(groups, quoted(g.Value, g.Marker, g.Steps[0].Customers))
			}
			// Equal counts in byte order, the markers last.
			if got, want := strings.Join(groups, " "), `"page"=2 "\x00"=1 "\x00\x00x"=1 "\x00none"=1 "\x00page"=1 <none>=1`; got != want {
				t.Errorf("breakdown property:m: %s, want %s", got, want)
			}
			d, err := path.s.Dropoff(ctx, jm, store.DropoffQuery{Funnel: store.FunnelQuery{Steps: []string{"NUL Viewed", "Order Completed"}, Window: time.Hour}, Step: 1})
			if err != nil {
				t.Fatal(err)
			}
			var events, locations []string
			for _, r := range d.LastEvents {
				events = append(events, quoted(r.Value, r.Marker, r.Count))
			}
			for _, r := range d.LastLocations {
				locations = append(locations, quoted(r.Value, r.Marker, r.Count))
			}
			// nul1's last touchpoint is the page without a name, at /p.
			if got, want := strings.Join(events, " ")+"; "+strings.Join(locations, " "),
				`"NUL Viewed"=6 "page"=1; "page"=2 "\x00"=1 "\x00\x00x"=1 "\x00none"=1 "/p"=1 <none>=1`; got != want {
				t.Errorf("dropoff last events; last locations: %s, want %s", got, want)
			}
		})
	}
}

// TestNullTraitClearsTrait: a trait's value is the latest one a person was given, and JSON null
// (in traits or context.traits) given later clears it; a null given earlier does not.
func TestNullTraitClearsTrait(t *testing.T) {
	t.Parallel()
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

// TestTraitsAreReplacedWhole: setting a trait replaces all of it (Segment's, PostHog's and
// Mixpanel's identify set traits at the top level): a later object, string, null or {} leaves no
// member of the earlier object behind, a later member replaces an earlier string, and traits
// given in traits replace those in context.traits. A user's traits come only from identify's
// traits and context.traits: a property named traits (or traits.plan, or context.device_type)
// and a group call's traits are not the user's, and the property keeps its name for filters.
func TestTraitsAreReplacedWhole(t *testing.T) {
	t.Parallel()
	paths, _ := storeValuesFixture(t)
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) { traitsReplacedWhole(t, path.s) })
	}
}

func traitsReplacedWhole(t *testing.T, s *store.Store) {
	ctx := context.Background()
	for _, tt := range []struct {
		step string
		by   store.Breakdown
		want string
	}{
		// tn1 {Paris, 75001} then {Lyon}; tn2 then "Lyon, France"; tn3 then null; tn4 "Lyon,
		// France" then {Nice}; tn5 then {}; tn7 {Lyon} over context.traits' {zip}; tn8 {Paris, 75008}.
		{"Address Viewed", store.Breakdown{By: "trait", Name: "address.city"}, "<none>=3 Lyon=2 Nice=1 Paris=1"},
		{"Address Viewed", store.Breakdown{By: "trait", Name: "address.zip"}, "<none>=6 75008=1"},
		{"Address Viewed", store.Breakdown{By: "trait", Name: "address"}, "<none>=6 Lyon, France=1"},
		// tp1, tp2: free, then a property traits / traits.plan; tp3: free, then a group's plan;
		// tp4: free, then context.traits pro; tp5: only a track call's top-level traits.
		{"Plan Viewed", store.Breakdown{By: "trait", Name: "plan"}, "free=3 pro=1 <none>=1"},
		{"Filter Used", store.Breakdown{By: "property", Name: "traits.plan"}, "enterprise=2 <none>=2"},
		{"Filter Used", store.Breakdown{By: "device"}, "<none>=4"},
		{"Filter Used[traits.plan=enterprise]", store.Breakdown{}, "2"},
		{"Filter Used[context.device_type=fridge]", store.Breakdown{}, "1"},
	} {
		res, err := s.Funnel(ctx, defaultMap(t), store.FunnelQuery{Steps: []string{tt.step}, Window: time.Hour, Breakdown: tt.by})
		if err != nil {
			t.Fatal(tt.step, tt.by, err)
		}
		got := groupsText(res)
		if tt.by.By == "" {
			got = fmt.Sprint(res.Steps[0].Customers)
		}
		if got != tt.want {
			t.Errorf("%s by %s: %s, want %s", tt.step, tt.by, got, tt.want)
		}
	}
}

// TestNumbersAreOneValue: a JSON number is one value however it is written (100, 100.0, 1e2,
// 1.5E+2), in filters, breakdowns and ordering alike, in ClickHouse and in the journey map's Go
// matcher; a JSON string is its text ("100" is the number's text, "100.0" and "1e2" are not).
func TestNumbersAreOneValue(t *testing.T) {
	t.Parallel()
	onEveryPath(t, numbersAreOneValue)
}

func numbersAreOneValue(t *testing.T, s *store.Store, events []ingest.Event) {
	for _, tt := range []struct {
		op, value string
		want      int64
	}{
		{"=", "100", 4},                    // 100, "100", 1e2, 100.0
		{"=", "1e2", 5},                    // the same, and the string "1e2"
		{"=", "100.0", 5},                  // the same four, and the string "100.0"
		{"=", "100.00", 4},                 // as 100
		{"=", "100|150", 5},                // and 1.5E+2
		{"=", "100.5", 1},                  // 100.50
		{"=", "100.50", 1},                 //
		{"=", "12345678901234567890", 1},   // every digit kept
		{"=", "12345678901234567891", 0},   //
		{"=", "0", 1},                      // -0.0
		{"=", "-0", 1},                     //
		{">=", "100", 9},                   // all but 99.99 and -0.0 (the strings "100.0" and "1e2" read as numbers)
		{"<=", "100", 8},                   // 100 ×4, "100.0", "1e2", 99.99, -0.0
		{">", "100", 3},                    // 100.50, 1.5E+2, 12345678901234567890
		{"<", "100", 2},                    // 99.99, -0.0
		{"<=", "12345678901234567890", 11}, // every price: the bound is not rounded to 12345678901234567168
		{">=", "12345678901234567891", 0},  //
		{"!=", "100", 7},                   // all but the four 100s
		{"!=", "100.0|1e2", 5},             // all but those and the strings "100.0" and "1e2"
	} {
		step, inClickHouse, inGo := countFiltered(t, s, events, "Priced Viewed", "price", tt.op, strings.Split(tt.value, "|")...)
		if inClickHouse != tt.want || inGo != tt.want {
			t.Errorf("%s: %d in ClickHouse, %d in Go, want %d", step, inClickHouse, inGo, tt.want)
		}
	}
	if got, want := propertyBreakdown(t, s, "Priced Viewed", "price"), "100=4 0=1 100.0=1 100.5=1 12345678901234567890=1 150=1 1e2=1 99.99=1"; got != want {
		t.Errorf("breakdown property:price: %s\nwant %s", got, want)
	}
}

// numericTexts are stored texts that a numeric filter must read alike in ClickHouse and in Go:
// numbers, numbers padded or written in forms JSON does not have, numbers beyond float64, and text
// that is not a number at all.
var numericTexts = []string{
	"100", "100.0", "1e2", "1E2", "1e+2", "1.00E+2", "99.99", "100.5", "-100", "0", "-0", "0.0",
	" 100", "100 ", "\t100", "100\n", "\n100", "\u00a0100", "100\u200b", "１００", "١٠٠",
	"", " ", "inf", "-inf", "+inf", "Inf", "infinity", "-Infinity", "nan", "NaN", "-nan",
	"1e400", "-1e400", "1e999999999999", "-1e999999999999", "1e-400", "-1e-400", "1e-999999999999",
	"0e99999999999999999999", "1e99999999999999999999", "1e-99999999999999999999", "1e308", "1.7976931348623157e308",
	"1.7976931348623159e308", "4.9e-324", "2e-324", "0x64", "0X64", "0x1p4", "1_000", "1_0", "+5", "+.5", ".5",
	"5.", "-5.", "5.e1", ".5e1", ".", "+", "-", "e5", "1e", "1e+", "1e-", "--5", "+-5", "5e5e5", "1,5", "1.5.5",
	"00100", "0100.0", "100.000000000000000001", "99.9999999999999999999", "100.00000000000001",
	"99.999999999999986", "99.999999999999993", "12345678901234567890", "0.1", "5 EUR", "$5", "5%",
	"true", "null", "(none)", "100.000000000000007105427357601001", "-0e5", "0.000e-999999999999999999999",
	"0.0000001e7", "10e999999999998", "0.1e1000000000000", "0.10000000000000001", "-.0", "1e0000000000000000000002",
	// Next to negative and small bounds: at them, and a digit past them either side.
	"-1e2", "-100.0", "-100.000000000000000001", "-99.9999999999999999999", "-99.99", "-101", "-0.5", "-.5",
	"0.001", "1e-3", "0.000999999999999999999", "0.00100000000000000001", "-0.001", "-0.000999999999999999999",
	"-0.00100000000000000001", "1e-300", "-1e-300", "0.99999999999999999999e-299", "1.00000000000000000001e-300",
}

// numericFilters are the filters run over numericTexts: every bound operator and = with a number.
var numericFilters = []struct{ op, value string }{
	{"<", "100"}, {"<=", "100"}, {">", "100"}, {">=", "100"}, {">", "99"}, {"<=", "0"}, {">=", "0"}, {"<", "0"},
	{">", "0.5"}, {">=", "5"}, {"<", "1e308"}, {">", "-1e308"}, {">", "1e307"}, {"<", "-1e307"}, {">", "0"},
	{"<", "1e-300"}, {">=", "0.1"}, {">", "0.1"}, {"=", "100"}, {"=", "1e2"}, {"=", "0"}, {"=", "5"}, {"=", "0.5"}, {"=", ".5"},
	{">", "-100"}, {">=", "-100"}, {"<", "-100"}, {"<=", "-100"}, {">", "-0.5"}, {"<=", "-0.5"}, {">", "0.001"},
	{"<=", "0.001"}, {">=", "-0.001"}, {"<", "-0.001"}, {">", "1e-300"}, {">=", "-1e-300"},
}

// TestNumericFiltersAgreeWithGo: a filter gives the same answer in ClickHouse's SQL as
// sessionize.Condition.Matches for every stored text, so a value compares where it is a decimal
// number and nowhere else, and by its exact value (docs/values.md), whatever the engine.
func TestNumericFiltersAgreeWithGo(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	jm := defaultMap(t)
	events := writeValues(t, s, jm, "Amount Seen", "amt", numericTexts)
	ops := map[string]string{"=": "equals", ">=": "gte", "<=": "lte", ">": "gt", "<": "lt"}
	for _, f := range numericFilters {
		step := "Amount Seen[amt" + f.op + f.value + "]"
		inSQL := matchedIDs(t, s, jm, step)
		c, err := sessionize.NewCondition("amt", ops[f.op], f.value)
		if err != nil {
			t.Fatal(err)
		}
		matched := 0
		for i := range events {
			id := fmt.Sprint(i)
			inGo := c.Matches(&events[i])
			if inGo {
				matched++
			}
			if inGo != inSQL[id] {
				t.Errorf("%s on %q: %v in ClickHouse, %v in Go", step, numericTexts[i], inSQL[id], inGo)
			}
		}
		if matched == 0 && f.op != "=" {
			t.Errorf("%s matches no text: the table tests nothing", step)
		}
	}
}

// TestNumbersOfAnyExponentAreOneValue: JSON numbers with exponents beyond float64 and beyond int64
// are stored as one text per number (ingest.CanonicalNumber), so a breakdown lists each number
// once, = finds a zero written 0e99999999999999999999, and the bounds order them by value.
func TestNumbersOfAnyExponentAreOneValue(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	numbers := []string{"0e99999999999999999999", "-0.0e-99999999999999999999", "1e999999999999", "10e999999999998",
		"0.1e1000000000000", "1e400", "1E+400", "-1e400", "1e-400", "5"}
	var events []ingest.Event
	for i, n := range numbers {
		line := fmt.Sprintf(`{"type":"track","userId":"x%d","event":"Amount Seen","messageId":"x%d","timestamp":%q,"properties":{"amt":%s}}`,
			i, i, t0.Format(time.RFC3339), n)
		e, err := ingest.Decode([]byte(line), "test", t0)
		if err != nil {
			t.Fatalf("decode %s: %v", line, err)
		}
		events = append(events, e)
	}
	jm := defaultMap(t)
	channels := make([]string, len(events))
	for i := range events {
		channels[i] = jm.Channel(&events[i])
	}
	ctx := context.Background()
	if err := s.Write(ctx, sessionize.Batch{Events: events, Channels: channels}); err != nil {
		t.Fatal(err)
	}
	res, err := s.Funnel(ctx, jm, store.FunnelQuery{Steps: []string{"Amount Seen"}, Window: time.Hour,
		Breakdown: store.Breakdown{By: "property", Name: "amt"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := groupsText(res), "1e+999999999999=3 0=2 1e+400=2 -1e+400=1 1e-400=1 5=1"; got != want {
		t.Errorf("breakdown property:amt: %s\nwant %s", got, want)
	}
	for _, tt := range []struct {
		filter string
		want   int64
	}{
		{"amt=0", 2}, {"amt<=0", 3}, {"amt>0", 7}, {"amt>1e308", 5}, {"amt=1e400", 2}, {"amt<5", 4}, {"amt>=5", 6},
	} {
		res, err := s.Funnel(ctx, jm, store.FunnelQuery{Steps: []string{"Amount Seen[" + tt.filter + "]"}, Window: time.Hour})
		if err != nil {
			t.Fatal(tt.filter, err)
		}
		if got := res.Steps[0].Customers; got != tt.want {
			t.Errorf("Amount Seen[%s]: %d, want %d", tt.filter, got, tt.want)
		}
	}
}

// TestRegexpFiltersAgreeWithGo: a regular expression filter (~=) gives the same answer in
// ClickHouse's SQL (match) as sessionize.Condition.Matches, for values holding line breaks too:
// "." matches a newline in both (ClickHouse reads patterns with re2's dot_nl).
func TestRegexpFiltersAgreeWithGo(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	jm := defaultMap(t)
	texts := []string{"a\nb", "axb", "a\r\nb", "ab", "a\n", "\nb", "b", "é\né", "a\nb\nc"}
	events := writeValues(t, s, jm, "Note Seen", "note", texts)
	for _, re := range []string{`^a.b$`, `a.*b`, `^.+$`, `^.$`, `(?-s)^a.b$`, `(?m)^b$`, `^[^\n]*$`, `\n`, `^a.{2}b$`, `é.é`} {
		step := "Note Seen[note~=" + re + "]"
		inSQL := matchedIDs(t, s, jm, step)
		c, err := sessionize.NewCondition("note", "regexp", re)
		if err != nil {
			t.Fatal(err)
		}
		for i := range events {
			if inGo, id := c.Matches(&events[i]), fmt.Sprint(i); inGo != inSQL[id] {
				t.Errorf("%s on %q: %v in ClickHouse, %v in Go", step, texts[i], inSQL[id], inGo)
			}
		}
	}
}

// writeValues writes one event of name per text, each of its own user, with the text as
// property prop and the event's index as property id, and returns them as decoded.
func writeValues(t *testing.T, s *store.Store, jm *sessionize.Map, name, prop string, texts []string) []ingest.Event {
	t.Helper()
	var events []ingest.Event
	for i, text := range texts {
		line := mustJSON(t, map[string]any{"type": "track", "userId": fmt.Sprintf("%s%d", prop, i), "event": name,
			"messageId": fmt.Sprintf("%s%d", prop, i), "timestamp": t0.Format(time.RFC3339),
			"properties": map[string]string{prop: text, "id": fmt.Sprint(i)}})
		e, err := ingest.Decode([]byte(line), "test", t0)
		if err != nil {
			t.Fatalf("decode %s: %v", line, err)
		}
		events = append(events, e)
	}
	channels := make([]string, len(events))
	for i := range events {
		channels[i] = jm.Channel(&events[i])
	}
	if err := s.Write(context.Background(), sessionize.Batch{Events: events, Channels: channels}); err != nil {
		t.Fatal(err)
	}
	return events
}

// matchedIDs is the ids (property id, see writeValues) of the events a one-step funnel of step
// counts.
func matchedIDs(t *testing.T, s *store.Store, jm *sessionize.Map, step string) map[string]bool {
	t.Helper()
	res, err := s.Funnel(context.Background(), jm, store.FunnelQuery{Steps: []string{step}, Window: time.Hour,
		Breakdown: store.Breakdown{By: "property", Name: "id"}, BreakdownLimit: 1000})
	if err != nil {
		t.Fatal(step, err)
	}
	ids := map[string]bool{}
	for _, g := range res.Groups {
		if g.Steps[0].Customers > 0 {
			ids[g.Value] = true
		}
	}
	return ids
}

// TestArraysAreOneValue: a JSON array is one value however it is spaced or escaped, with its
// numbers as numbers are and its objects' members in one order (ingest.CanonicalArray), in
// breakdowns and filters, in ClickHouse and in the journey map's Go matcher; its order is part
// of it (["b","a"] is another value), and a string holding an array's text is text (tester 24's
// F1: ["a","b"] and ["a", "b"] were two values).
func TestArraysAreOneValue(t *testing.T) {
	t.Parallel()
	onEveryPath(t, arraysAreOneValue)
}

func arraysAreOneValue(t *testing.T, s *store.Store, events []ingest.Event) {
	for _, tt := range []struct {
		op     string   // = or !=
		values []string // as the filter's values, unescaped
		want   int64
	}{
		{"=", []string{`["a","b"]`}, 3},  // ta1, ta2, ta3
		{"=", []string{`["a", "b"]`}, 4}, // the same, and the string ta7 sent (its text is written so)
		{"=", []string{`[ "\u0061","b"]`}, 3},
		{"=", []string{`["b","a"]`}, 1},                         // order is part of an array
		{"=", []string{`[100,100,{"x":[true,null],"y":1}]`}, 2}, // ta5, ta6
		{"=", []string{`[1e2,1e2,{"y":1,"x":[true,null]}]`}, 2},
		{"=", []string{`[100,100]`}, 0},
		{"=", []string{`["b","a"]`, `[100,100,{"x":[true,null],"y":1}]`}, 3},
		// != passes every other event, those with no tags (ta8's null, ta9) too.
		{"!=", []string{`["a","b"]`}, 6},
		{"!=", []string{`[ "a","b" ]`}, 6},
		{"!=", []string{`["a", "b"]`}, 5},
		{"!=", []string{`["a","b"]`, `["b","a"]`}, 5},
		{"!=", []string{"x"}, 9},
	} {
		step, inClickHouse, inGo := countFiltered(t, s, events, "Tagged Viewed", "tags", tt.op, tt.values...)
		if inClickHouse != tt.want || inGo != tt.want {
			t.Errorf("%s: %d in ClickHouse, %d in Go, want %d", step, inClickHouse, inGo, tt.want)
		}
	}
	if got, want := propertyBreakdown(t, s, "Tagged Viewed", "tags"), `["a","b"]=3 [100,100,{"x":[true,null],"y":1}]=2 <none>=2 ["a", "b"]=1 ["b","a"]=1`; got != want {
		t.Errorf("breakdown property:tags: %s\nwant %s", got, want)
	}
}

// countFiltered counts the persons of events (one event each) named event that pass the filter
// field op values (op a step filter's operator, the values its choices), in ClickHouse (a one-step
// funnel, each value escaped but a regular expression) and in Go (sessionize.Condition.Matches), and returns the step asked.
func countFiltered(t *testing.T, s *store.Store, events []ingest.Event, event, field, op string, values ...string) (step string, inClickHouse, inGo int64) {
	t.Helper()
	var escaped []string
	for _, v := range values {
		if op == "~=" { // a regular expression keeps its backslashes: written as it is
			escaped = append(escaped, v)
			continue
		}
		escaped = append(escaped, store.EscapeStep(v))
	}
	step = event + "[" + field + op + strings.Join(escaped, "|") + "]"
	res, err := s.Funnel(context.Background(), defaultMap(t), store.FunnelQuery{Steps: []string{step}, Window: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	condOp := map[string]string{"=": "equals", "!=": "not_equals", ">=": "gte", "<=": "lte", ">": "gt", "<": "lt", "^=": "prefix", "~=": "regexp"}[op]
	if len(values) > 1 {
		condOp = map[string]string{"equals": "one_of", "not_equals": "not_one_of"}[condOp]
	}
	c, err := sessionize.NewCondition(field, condOp, values...)
	if err != nil {
		t.Fatal(err)
	}
	for i := range events {
		if events[i].Event == event && c.Matches(&events[i]) {
			inGo++
		}
	}
	return step, res.Steps[0].Customers, inGo
}

// propertyBreakdown is a one-step funnel of event broken down by the property name, as
// groupsText writes it.
func propertyBreakdown(t *testing.T, s *store.Store, event, name string) string {
	t.Helper()
	res, err := s.Funnel(context.Background(), defaultMap(t), store.FunnelQuery{Steps: []string{event}, Window: time.Hour,
		Breakdown: store.Breakdown{By: "property", Name: name}})
	if err != nil {
		t.Fatal(err)
	}
	return groupsText(res)
}
