package sessionize

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/ingest"
)

func TestDefaultMap(t *testing.T) {
	m, err := LoadMap("")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range m.Stages {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, ","); got != "awareness,consideration,conversion,loyalty,advocacy" {
		t.Errorf("stages = %s", got)
	}
	// One source: deploy/journey-map.yaml is a link to the embedded file, not a copy to keep
	// in step (go:embed takes no file outside the package, nor a link).
	if target, err := os.Readlink("../deploy/journey-map.yaml"); err != nil || target != "../sessionize/journey-map.yaml" {
		t.Errorf("deploy/journey-map.yaml: link to %q (%v), want a link to ../sessionize/journey-map.yaml", target, err)
	}
	shipped, err := os.ReadFile("../deploy/journey-map.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(shipped, DefaultMapYAML()) {
		t.Error("deploy/journey-map.yaml reads otherwise than the built-in map sessionize/journey-map.yaml")
	}
}

func TestRuleMatches(t *testing.T) {
	m, err := LoadMap("")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		typ, event string
		stages     []string // stages with a rule matching (nth not counted)
	}{
		{"page", "", []string{"awareness"}},
		{"screen", "Home", []string{"awareness"}},
		{"track", "Product Viewed", []string{"awareness"}},
		{"track", "Product Added to Wishlist", []string{"consideration"}},
		{"track", "Order Completed", []string{"conversion", "loyalty"}},
		{"track", "Referral Sent", []string{"advocacy"}},
		{"identify", "", nil},
		{"track", "Something Else", nil},
		{"track", "Subscription Renewed", []string{"loyalty"}},
		// A page or screen is labelled by its name, as a track call by its event: one named
		// like an e-commerce event is a page view (awareness), never that event. The map's
		// rules naming track events say type: [track].
		{"page", "Order Completed", []string{"awareness"}},
		{"screen", "Order Completed", []string{"awareness"}},
		{"page", "Product Added", []string{"awareness"}},
		{"screen", "Subscription Renewed", []string{"awareness"}},
		{"page", "Referral Sent", []string{"awareness"}},
		{"page", "Product Viewed", []string{"awareness"}},
		{"identify", "Order Completed", nil},
		{"group", "Product Viewed", nil},
	}
	for _, tt := range tests {
		t.Run(tt.typ+"/"+tt.event, func(t *testing.T) {
			e := ingest.Event{Type: tt.typ, Event: tt.event}
			var got []string
			for _, s := range m.Stages {
				for _, r := range s.Rules {
					if r.Matches(&e, Channel(&e)) {
						got = append(got, s.Name)
						break
					}
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.stages, ",") {
				t.Errorf("matching stages = %v, want %v", got, tt.stages)
			}
		})
	}
}

func TestParseMapErrorsNameLineAndField(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"bad file", "", []string{"line 6: name: stage \"awareness\" is listed twice", "line 8: rules: a rule of stage \"awareness\" sets no condition", "line 9: name: a stage needs a name", "line 9: rules: stage \"\" has no rules"}},
		{"unknown field", "version: v\nstages:\n  - name: a\n    rulez: []\n", []string{"line 4", "rulez"}},
		{"wrong type", "version: v\nstages:\n  - name: a\n    rules:\n      - event: 3\n        nth: many\n", []string{"line 6", "many"}},
		{"no version", "stages:\n  - name: a\n    rules: [{event: [A]}]\n", []string{"version: is required"}},
		{"bad regexp", "version: v\nstages:\n  - name: a\n    rules:\n      - where:\n          - field: plan\n            regexp: \"(\"\n", []string{"line 6: regexp"}},
		{"two operators", "version: v\nstages:\n  - name: a\n    rules:\n      - where:\n          - field: x\n            equals: \"1\"\n            gt: 0\n", []string{"line 6", "exactly one of"}},
		{"condition without field", "version: v\nstages:\n  - name: a\n    rules:\n      - where:\n          - equals: \"1\"\n", []string{"line 6: field"}},
		{"unknown operator", "version: v\nstages:\n  - name: a\n    rules:\n      - where:\n          - field: x\n            bigger: 1\n", []string{"line 7", "bigger"}},
		{"unknown channel", "version: v\nstages:\n  - name: a\n    rules:\n      - channel: [carrier-pigeon]\n", []string{"line 5: channel", "carrier-pigeon"}},
		{"channel rule without condition", "version: v\nchannels:\n  - channel: catchall\nstages:\n  - name: a\n    rules:\n      - channel: [catchall]\n", []string{"channels: rule 1 (catchall) has no condition"}},
		{"regexp holding a NUL", "version: v\nstages:\n  - name: a\n    rules:\n      - where:\n          - field: plan\n            regexp: \"gold\\0\"\n", []string{"line 6: regexp", "NUL"}},
		{"named group re2 refuses", "version: v\nstages:\n  - name: a\n    rules:\n      - where:\n          - field: plan\n            regexp: \"^(?<tier>gold|silver)$\"\n", []string{"line 6: regexp", "(?P<name>"}},
		{"misspelt call type", "version: v\nstages:\n  - name: a\n    rules:\n      - type: [trakc]\n", []string{"line 5: type", `"trakc" is not a Segment call type`}},
		{"blank event name", "version: v\nstages:\n  - name: a\n    rules:\n      - event: [\"Order Completed\", \" \"]\n", []string{"line 5: event", "blank event name"}},
		{"negative nth", "version: v\nstages:\n  - name: a\n    rules:\n      - event: [A]\n        nth: -1\n", []string{"line 5: nth: must be 1 or more"}},
		// Lists that state nothing (tester 29's F2 and F3): each read as no condition, or as SQL
		// no engine takes.
		{"empty one_of", "version: v\nstages:\n  - name: a\n    rules:\n      - where:\n          - field: coupon\n            one_of: []\n", []string{"line 7: one_of: an empty list"}},
		{"empty not_one_of", "version: v\nstages:\n  - name: a\n    rules:\n      - where:\n          - field: coupon\n            not_one_of: []\n", []string{"line 7: not_one_of: an empty list"}},
		{"null event", "version: v\nstages:\n  - name: a\n    rules:\n      - type: [track]\n        event: [~]\n", []string{"line 6: event: item 1 is null"}},
		{"event Null unquoted", "version: v\nstages:\n  - name: a\n    rules:\n      - type: [track]\n        event: [Order Completed, Null]\n", []string{"line 6: event: item 2 is null", `quote it ("null")`}},
		{"empty list item", "version: v\nstages:\n  - name: a\n    rules:\n      - type: [track]\n        event:\n          - A\n          -\n", []string{"line 8: event: item 2 is null"}},
		{"empty event list", "version: v\nstages:\n  - name: a\n    rules:\n      - type: [track]\n        event: []\n", []string{"line 6: event: an empty list"}},
		{"event without value", "version: v\nstages:\n  - name: a\n    rules:\n      - type: [track]\n        event:\n", []string{"line 6: event: no value"}},
		{"empty channel list", "version: v\nstages:\n  - name: a\n    rules:\n      - type: [track]\n        channel: []\n", []string{"line 6: channel: an empty list"}},
		{"empty where", "version: v\nstages:\n  - name: a\n    rules:\n      - type: [track]\n        where: []\n", []string{"line 6: where: an empty list"}},
		{"null condition", "version: v\nstages:\n  - name: a\n    rules:\n      - type: [track]\n        where: [~]\n", []string{"line 6: where: item 1 is null"}},
		{"null type", "version: v\nstages:\n  - name: a\n    rules:\n      - type: [~]\n        event: [A]\n", []string{"line 5: type: item 1 is null"}},
		{"null one_of value", "version: v\nstages:\n  - name: a\n    rules:\n      - where:\n          - field: coupon\n            one_of: [SPRING, null]\n", []string{"line 7: one_of: item 2 is null"}},
		{"null medium", "version: v\nchannels:\n  - channel: mail\n    medium: [~]\nstages:\n  - name: a\n    rules: [{event: [A]}]\n", []string{"line 4: medium: item 1 is null"}},
		{"empty file", "# nothing yet\n", []string{"the file is empty"}},
		{"two documents", "version: v\nstages:\n  - name: a\n    rules: [{event: [A]}]\n---\nversion: w\nstages:\n  - name: b\n    rules: [{event: [B]}]\n", []string{"line 5: a second YAML document"}},
		{"nth stated 0", "version: v\nstages:\n  - name: a\n    rules:\n      - event: [A]\n        nth: 0\n", []string{"line 5: nth: must be 1 or more, got 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(tt.yaml)
			if tt.yaml == "" {
				var err error
				if data, err = os.ReadFile("testdata/bad-map.yaml"); err != nil {
					t.Fatal(err)
				}
			}
			_, err := ParseMap(data)
			if err == nil {
				t.Fatal("ParseMap() accepted a bad map")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestShippedMapsAreValid(t *testing.T) {
	files, _ := filepath.Glob("../deploy/journey-map*.yaml")
	if len(files) < 2 {
		t.Fatalf("want the shop map and at least one more in deploy/, found %v", files)
	}
	for _, f := range files {
		m, err := LoadMap(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		// A page or screen is stored under its name as a track call under its event: a shipped
		// rule naming events says which calls it means, or a page named "Order Completed" is
		// an order.
		for _, st := range m.Stages {
			for _, r := range st.Rules {
				if len(r.Events) > 0 && !slices.Equal(r.Types, []string{"track"}) {
					t.Errorf("%s: stage %s: the rule naming %v has type %v, want [track]", f, st.Name, r.Events, r.Types)
				}
			}
		}
	}
	hotel, err := LoadMap("../deploy/journey-map-hotel.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e := ingest.Event{Type: "page", PagePath: "/rooms/deluxe", Referrer: "https://www.kayak.com/hotels"}
	if ch := hotel.Channel(&e); ch != "metasearch" {
		t.Errorf("channel from kayak = %s, want the map's own metasearch", ch)
	}
	research, _ := hotel.Stage("research")
	if !research.Rules[0].Matches(&e, "metasearch") {
		t.Error("a rooms page is not research")
	}
}

// TestNumericConditionsCompareDecimals: gt/gte/lt/lte compare only decimal numbers, exactly:
// "Infinity", "NaN", Go's 1_000 and hexadecimal forms, and numbers with spaces around them match
// no bound; a number beyond float64 compares by its value.
func TestNumericConditionsCompareDecimals(t *testing.T) {
	hundred := Number("100")
	gt := Condition{Field: "properties.revenue", GT: &hundred}
	for _, tt := range []struct {
		value string
		want  bool
	}{
		{"150", true}, {"1e3", true}, {"100.5", true}, {"100", false}, {"-5", false},
		{"Infinity", false}, {"+Inf", false}, {"NaN", false}, {"1_000", false}, {"0x1p10", false}, {"12 EUR", false},
		{" 150", false}, {"150 ", false}, {"\t150", false}, {"150\n", false}, {"", false}, {"150\u200b", false},
		{"+150", true}, {"150.", true}, {".5e3", true}, {"00150", true}, {"1e400", true}, {"-1e400", false},
		{"1e999999999999", true}, {"10e999999999998", true}, {"1e99999999999999999999", true},
		{"1e-99999999999999999999", false}, {"0e99999999999999999999", false},
		{"100.000000000000000001", true}, {"99.9999999999999999999", false}, {"100.000", false},
	} {
		e := ingest.Event{PropertyKeys: []string{"revenue"}, PropertyValues: []string{tt.value}}
		if got := gt.Matches(&e); got != tt.want {
			t.Errorf("revenue %q > 100: %v, want %v", tt.value, got, tt.want)
		}
	}
}

// TestBoundsAreExact: a bound (gt, gte, lt, lte), from a step's filter or a journey map's YAML,
// is the decimal written, never the float64 nearest it: above 2^53, and at 0.1.
func TestBoundsAreExact(t *testing.T) {
	for _, tt := range []struct {
		op, bound string
		want      Decimal
		matches   []string // of 9007199254740992, 9007199254740993, 12345678901234567890, 0.1
	}{
		{"gte", "9007199254740993", Decimal{1, "9007199254740993", 16}, []string{"9007199254740993", "12345678901234567890"}},
		{"lt", "9007199254740993", Decimal{1, "9007199254740993", 16}, []string{"9007199254740992", "0.1"}},
		{"lte", "12345678901234567890", Decimal{1, "1234567890123456789", 20}, []string{"9007199254740992", "9007199254740993", "12345678901234567890", "0.1"}},
		{"gt", "12345678901234567890", Decimal{1, "1234567890123456789", 20}, nil},
		{"gt", "12345678901234567889", Decimal{1, "12345678901234567889", 20}, []string{"12345678901234567890"}},
		{"gte", "0.1", Decimal{1, "1", 0}, []string{"9007199254740992", "9007199254740993", "12345678901234567890", "0.1"}},
		{"gt", "0.1", Decimal{1, "1", 0}, []string{"9007199254740992", "9007199254740993", "12345678901234567890"}},
		{"lte", "9.007199254740993e15", Decimal{1, "9007199254740993", 16}, []string{"9007199254740992", "9007199254740993", "0.1"}},
	} {
		yamlMap := fmt.Sprintf("version: v\nstages:\n  - name: a\n    rules:\n      - where:\n          - field: id\n            %s: %s\n", tt.op, tt.bound)
		m, err := ParseMap([]byte(yamlMap))
		if err != nil {
			t.Fatalf("%s %s: %v", tt.op, tt.bound, err)
		}
		fromFilter, err := NewCondition("id", tt.op, tt.bound)
		if err != nil {
			t.Fatal(err)
		}
		for name, c := range map[string]*Condition{"filter": &fromFilter, "map": &m.Stages[0].Rules[0].Where[0]} {
			if _, got := c.Bound(); got != tt.want {
				t.Errorf("%s %s %s: bound %+v, want %+v", name, tt.op, tt.bound, got, tt.want)
			}
			var got []string
			for _, v := range []string{"9007199254740992", "9007199254740993", "12345678901234567890", "0.1"} {
				if c.Matches(&ingest.Event{PropertyKeys: []string{"id"}, PropertyValues: []string{v}}) {
					got = append(got, v)
				}
			}
			if !slices.Equal(got, tt.matches) {
				t.Errorf("%s %s %s matches %v, want %v", name, tt.op, tt.bound, got, tt.matches)
			}
		}
		shown, err := m.YAML()
		if err != nil || !strings.Contains(string(shown), tt.op+": "+tt.bound+"\n") {
			t.Errorf("%s %s: the map is shown as %s (%v)", tt.op, tt.bound, shown, err)
		}
	}
	for _, bad := range []string{`"100"`, "0x10", "1_000", ".inf", ".nan", "1e400", "[1]"} {
		_, err := ParseMap([]byte("version: v\nstages:\n  - name: a\n    rules:\n      - where:\n          - field: id\n            gt: " + bad + "\n"))
		if err == nil || !strings.Contains(err.Error(), "line 7") {
			t.Errorf("gt: %s: error %v, want one naming line 7", bad, err)
		}
	}
}

// TestParseDecimal: one exact decimal per number, however it is written.
func TestParseDecimal(t *testing.T) {
	for _, tt := range []struct {
		text string
		want Decimal
		ok   bool
	}{
		{"100", Decimal{1, "1", 3}, true}, {"1e2", Decimal{1, "1", 3}, true}, {"+100.00", Decimal{1, "1", 3}, true},
		{"0.00123", Decimal{1, "123", -2}, true}, {".5", Decimal{1, "5", 0}, true}, {"5.", Decimal{1, "5", 1}, true},
		{"-0", Decimal{}, true}, {"0e99999999999999999999", Decimal{}, true}, {"-0.000e-5", Decimal{}, true},
		{"1e999999999999", Decimal{1, "1", 1_000_000_000_000}, true}, {"10e999999999998", Decimal{1, "1", 1_000_000_000_000}, true},
		{"-1e99999999999999999999", Decimal{-1, "1", 1_000_000_000_000_001}, true},
		{" 1", Decimal{}, false}, {"1 ", Decimal{}, false}, {"inf", Decimal{}, false}, {"nan", Decimal{}, false},
		{"0x10", Decimal{}, false}, {"1_0", Decimal{}, false}, {".", Decimal{}, false}, {"1e", Decimal{}, false},
		{"--1", Decimal{}, false}, {"１", Decimal{}, false},
	} {
		got, ok := ParseDecimal(tt.text)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseDecimal(%q) = %+v, %v; want %+v, %v", tt.text, got, ok, tt.want, tt.ok)
		}
	}
}

// TestParseNumber: a stored text is a number exactly when ParseDecimal reads it as one, whatever
// strconv.ParseFloat alone would take (Go's 1_0 and hexadecimal forms, Inf, NaN).
func TestParseNumber(t *testing.T) {
	for _, tt := range []struct {
		text string
		want float64
		ok   bool
	}{
		{"7", 7, true}, {"+7.50", 7.5, true}, {".5", 0.5, true}, {"5.", 5, true}, {"1e1", 10, true}, {"-0", 0, true},
		{"1e400", math.Inf(1), true}, {"-1e400", math.Inf(-1), true}, {"1e-400", 0, true},
		{"1_0", 0, false}, {"0x1p3", 0, false}, {"0x10", 0, false}, {"Inf", 0, false}, {"-infinity", 0, false},
		{"NaN", 0, false}, {" 8", 0, false}, {"8 ", 0, false}, {"", 0, false}, {"１", 0, false}, {"1e", 0, false},
	} {
		got, ok := ParseNumber(tt.text)
		_, decimal := ParseDecimal(tt.text)
		if got != tt.want || ok != tt.ok || ok != decimal {
			t.Errorf("ParseNumber(%q) = %v, %v (ParseDecimal: %v); want %v, %v", tt.text, got, ok, decimal, tt.want, tt.ok)
		}
	}
}

// TestEqualsComparesNumbersByValue: equals and one_of find a JSON number however the filter
// writes it (stored numbers are ingest.CanonicalNumber's text), an array so too
// (ingest.CanonicalArray) and a string by its exact text; not_equals and not_one_of the rest.
func TestEqualsComparesNumbersByValue(t *testing.T) {
	stored := func(raw string) ingest.Event {
		e, err := ingest.Decode([]byte(`{"type":"track","event":"A","userId":"u","properties":{"price":`+raw+`}}`), "s", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	for _, tt := range []struct {
		op, value string
		texts     []string
		matches   []string // of 100, 100.0, 1e2, "100", "100.0", "1e2", 150, "SKU-1", null, [ "a" , 100.0 ]
	}{
		// The list [ "a" , 100.0 ] has the item 100, which matches as a value does.
		{"equals", "100", []string{"100"}, []string{`100`, `100.0`, `1e2`, `"100"`, `[ "a" , 100.0 ]`}},
		{"equals", "100.0", []string{"100.0", "100"}, []string{`100`, `100.0`, `1e2`, `"100"`, `"100.0"`, `[ "a" , 100.0 ]`}},
		{"equals", "1e2", []string{"1e2", "100"}, []string{`100`, `100.0`, `1e2`, `"100"`, `"1e2"`, `[ "a" , 100.0 ]`}},
		{"one_of", "1.5e2|SKU-1", []string{"1.5e2", "150", "SKU-1"}, []string{`150`, `"SKU-1"`}},
		{"equals", "0100", []string{"0100"}, nil}, // not a JSON number: text only
		{"prefix", "1", nil, []string{`100`, `100.0`, `1e2`, `"100"`, `"100.0"`, `"1e2"`, `150`, `[ "a" , 100.0 ]`}},
		// not_equals and not_one_of pass what equals and one_of do not, and an event without the
		// property (null) too.
		{"not_equals", "100", []string{"100"}, []string{`"100.0"`, `"1e2"`, `150`, `"SKU-1"`, `null`}},
		{"not_one_of", "1.5e2|SKU-1", []string{"1.5e2", "150", "SKU-1"}, []string{`100`, `100.0`, `1e2`, `"100"`, `"100.0"`, `"1e2"`, `null`, `[ "a" , 100.0 ]`}},
		{"equals", `["a", 1e2]`, []string{`["a", 1e2]`, `["a",100]`}, []string{`[ "a" , 100.0 ]`}},
		{"not_equals", `["a", 1e2]`, []string{`["a", 1e2]`, `["a",100]`}, []string{`100`, `100.0`, `1e2`, `"100"`, `"100.0"`, `"1e2"`, `150`, `"SKU-1"`, `null`}},
	} {
		c, err := NewCondition("price", tt.op, strings.Split(tt.value, "|")...)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.EqualTexts(); !slices.Equal(got, tt.texts) {
			t.Errorf("%s %s: texts %q, want %q", tt.op, tt.value, got, tt.texts)
		}
		var got []string
		for _, raw := range []string{`100`, `100.0`, `1e2`, `"100"`, `"100.0"`, `"1e2"`, `150`, `"SKU-1"`, `null`, `[ "a" , 100.0 ]`} {
			e := stored(raw)
			if c.Matches(&e) {
				got = append(got, raw)
			}
		}
		if !slices.Equal(got, tt.matches) {
			t.Errorf("%s %s matches %v, want %v", tt.op, tt.value, got, tt.matches)
		}
	}
}

// TestMapChannelRulesMatchInAnyCase is the eleventh tester's F4: a map's channel rule written in
// capitals (medium: [CPC], source: [Facebook]) matched nothing, as touchpoints' campaigns are
// compared in lower case.
func TestMapChannelRulesMatchInAnyCase(t *testing.T) {
	m, err := ParseMap([]byte("version: v\nchannels:\n  - channel: paid_social\n    medium: [CPC, Paid_Social]\n    source: [' Facebook ']\nstages:\n  - name: a\n    rules: [{event: [A]}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]string{{"cpc", "facebook"}, {"CPC", "Facebook"}, {"paid_social", "FACEBOOK"}} {
		e := ingest.Event{CampaignMedium: c[0], CampaignSource: c[1]}
		if got := m.Channel(&e); got != ChannelPaidSocial {
			t.Errorf("medium %q, source %q: %s, want paid_social", c[0], c[1], got)
		}
	}
}

func TestNamedGroupWithoutP(t *testing.T) {
	tests := []struct {
		expr string
		want bool
	}{
		{`^(?<tier>gold|silver)$`, true},
		{`a(?<n>b)`, true},
		{`^(?P<tier>gold|silver)$`, false},
		{`\(?<x`, false},     // an optional "(" then "<"
		{`[(?<]+`, false},    // a class of three bytes
		{`[]](?<n>x)`, true}, // "]" first in a class is a literal
		{`[^]]\[(?<n>x)`, true},
		{`(?i)gold`, false},
		{`plain`, false},
	}
	for _, tt := range tests {
		if got := namedGroupWithoutP(tt.expr); got != tt.want {
			t.Errorf("namedGroupWithoutP(%q) = %v, want %v", tt.expr, got, tt.want)
		}
	}
}
