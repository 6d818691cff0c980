package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"

	"github.com/waymark-dev/waymark/store"
	"github.com/waymark-dev/waymark/store/storetest"
)

// startValuesServe starts serve and sends it store/testdata/property-values.jsonl through the
// collector, as one batch, and waits until it is stored.
func startValuesServe(t *testing.T) *server {
	t.Helper()
	return startServeWithLines(t, "../../store/testdata/property-values.jsonl")
}

// startServeWithLines starts serve and sends it the Segment messages of a JSON-lines file through
// the collector, as one batch, and waits until they are stored.
func startServeWithLines(t *testing.T, file string) *server {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	s := startServe(t)
	if status, answer := s.track(t, "/v1/batch", `{"batch":[`+strings.Join(lines, ",")+`]}`); status != 200 || !strings.Contains(answer, fmt.Sprintf(`"accepted":%d`, len(lines))) {
		t.Fatalf("POST /v1/batch: %d %s", status, answer)
	}
	s.waitStored(t)
	return s
}

// TestPropertyValuesThroughThePipeline sends store/testdata/property-values.jsonl (the store's
// values tests read it too) through the collector, Kafka and serve, and asks the query API and
// the CLI: the answers' markers never merge with event names or values that read like them
// ("(exit)", "(none)", …), a trait set to JSON null later is no value, setting a trait replaces
// all of it, a property named traits.plan is no trait, a JSON number is one value however it is
// written, and a bound above 2^53 is not rounded.
func TestPropertyValuesThroughThePipeline(t *testing.T) {
	t.Parallel()
	s := startValuesServe(t)

	// label renders an answer's value, a marker as <marker>.
	type labelled struct {
		Value, Marker string
		Count         int64
		Steps         []struct{ Customers int64 }
	}
	label := func(v labelled) string {
		if v.Marker != "" {
			return "<" + v.Marker + ">"
		}
		return v.Value
	}
	get := func(query string, into any) {
		t.Helper()
		code, body := httpGet(t, "http://"+s.http+"/api/v1/"+query)
		if err := json.Unmarshal([]byte(body), into); code != 200 || err != nil {
			t.Fatalf("%s: %d %s", query, code, body)
		}
	}
	groups := func(params string) string {
		t.Helper()
		var res struct {
			Groups []labelled `json:"breakdown_groups"`
		}
		get("funnel?window=1h&"+params, &res)
		var out []string
		for _, g := range res.Groups {
			out = append(out, fmt.Sprintf("%s=%d", label(g), g.Steps[0].Customers))
		}
		return strings.Join(out, " ")
	}
	for _, tt := range []struct{ params, want string }{
		{"steps=Collide+Viewed&breakdown=property:coupon", "<none>=3 SPRING=2 (none)=1 (other)=1"},
		{"steps=Collide+Viewed&breakdown=property:coupon&breakdown_limit=2", "<none>=3 SPRING=2 (none)=1 <other>=1"},
		{"steps=Tier+Viewed&breakdown=trait:tier", "gold=2 <none>=2 silver=1"},
		// setting a trait replaces all of it; a property or a group's traits are not the user's
		{"steps=Address+Viewed&breakdown=trait:address.city", "<none>=3 Lyon=2 Nice=1 Paris=1"},
		{"steps=Address+Viewed&breakdown=trait:address.zip", "<none>=6 75008=1"},
		{"steps=Plan+Viewed&breakdown=trait:plan", "free=3 pro=1 <none>=1"},
		{"steps=Filter+Used&breakdown=property:traits.plan", "enterprise=2 <none>=2"},
		{"steps=Priced+Viewed&breakdown=property:price", "100=4 0=1 100.0=1 100.5=1 12345678901234567890=1 150=1 1e2=1 99.99=1"},
	} {
		if got := groups(tt.params); got != tt.want {
			t.Errorf("funnel?%s: %s\nwant %s", tt.params, got, tt.want)
		}
	}
	for _, tt := range []struct {
		filter string
		want   int64
	}{
		{"price=100", 4}, {"price=1e2", 5}, {"price=100.0", 5}, {"price=100|150", 5}, {"price=100.50", 1},
		{"price=-0", 1}, {"price>=100", 9}, {"price<=100", 8}, {"price>100", 3}, {"price<100", 2},
		{"price<=12345678901234567890", 11}, {"price>=12345678901234567891", 0}, // bounds are not rounded
		{"Filter Used[traits.plan=enterprise]", 2}, // a property named traits.plan is a property
		// padded text is no number; exponents of any size are one number; a number beyond float64 orders
		{"Amount Seen[amt<=0]", 1}, {"Amount Seen[amt>=0]", 6}, {"Amount Seen[amt>99]", 5}, {"Amount Seen[amt=0]", 1},
		{"Amount Seen[amt=1e999999999999]", 3},
	} {
		step := "Priced Viewed[" + tt.filter + "]"
		if strings.Contains(tt.filter, "[") {
			step = tt.filter
		}
		var res struct{ Steps []struct{ Customers int64 } }
		get("funnel?window=1h&steps="+url.QueryEscape(step), &res)
		if res.Steps[0].Customers != tt.want {
			t.Errorf("%s: %d customers, want %d", step, res.Steps[0].Customers, tt.want)
		}
	}
	var amounts struct {
		Groups []labelled `json:"breakdown_groups"`
	}
	get("funnel?window=1h&steps=Amount+Seen&breakdown=property:amt", &amounts)
	var gotAmounts []string
	for _, g := range amounts.Groups {
		gotAmounts = append(gotAmounts, fmt.Sprintf("%q=%d", label(g), g.Steps[0].Customers))
	}
	if got, want := strings.Join(gotAmounts, " "), `"1e+999999999999"=3 "\t100"=1 " 100"=1 "\"(none)\""=1 "(no value)\u200b"=1 "0"=1 "100 "=1 "1e+400"=1 "1e400"=1`; got != want {
		t.Errorf("breakdown property:amt: %s\nwant %s", got, want)
	}
	for _, tt := range []struct{ direction, want string }{{"next", "<exit>=6 (exit)=1"}, {"previous", "<start>=6 (start)=1"}} {
		var res struct{ Touchpoints []labelled }
		get("next?window=1h&anchor=Collide+Viewed&direction="+tt.direction, &res)
		var got []string
		for _, tp := range res.Touchpoints {
			got = append(got, fmt.Sprintf("%s=%d", label(tp), tp.Count))
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("next %s: %s, want %s", tt.direction, strings.Join(got, " "), tt.want)
		}
	}
	var paths struct {
		Paths []struct {
			Touchpoints []string
			Marker      string
			Persons     int64
		}
	}
	get("paths?window=1h&depth=3&anchor=Collide+Viewed", &paths)
	var got []string
	for _, p := range paths.Paths {
		got = append(got, fmt.Sprintf("%s <%s> %d", strings.Join(p.Touchpoints, " > "), p.Marker, p.Persons))
	}
	if want := "Collide Viewed <exit> 6; Collide Viewed > (exit) > Order Completed <> 1"; strings.Join(got, "; ") != want {
		t.Errorf("paths: %s, want %s", strings.Join(got, "; "), want)
	}

	// The CLI's tables show markers as words and quote a real value that reads like one.
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"next", "--anchor", "Collide Viewed", "--window", "1h"}, []string{"(exit) ", `"(exit)" `}},
		{[]string{"paths", "--anchor", "Collide Viewed", "--depth", "3", "--window", "1h"}, []string{"Collide Viewed → (exit)\n", `Collide Viewed → "(exit)" → Order Completed`}},
		{[]string{"funnel", "--steps", "Collide Viewed", "--window", "1h", "--breakdown", "property:coupon"},
			[]string{"property:coupon = (no value)\n", `property:coupon = "(none)"`, `property:coupon = "(other)"`}},
		{[]string{"funnel", "--steps", "Amount Seen", "--window", "1h", "--breakdown", "property:amt"},
			[]string{"property:amt = 1e+999999999999\n", `property:amt = " 100"` + "\n", `property:amt = "100 "` + "\n",
				`property:amt = "\t100"`, `property:amt = "(no value)\u200b"`, `property:amt = "\"(none)\""`, "property:amt = 0\n"}},
	} {
		table := s.waymark(t, tt.args...)
		for _, w := range tt.want {
			if !strings.Contains(table, w) {
				t.Errorf("%v: table lacks %q:\n%s", tt.args, w, table)
			}
		}
	}
}

// TestJourneyMapPageShowsMarkersApart opens the journey map page (headless Chromium) on the
// values fixture: the fork, the flow and the funnel's breakdown show the markers in words, as
// markers that cannot be opened, and the event "(exit)" and the coupons "(none)" and "(other)"
// as the real values they are.
func TestJourneyMapPageShowsMarkersApart(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Fatal("/usr/bin/chromium not found: run deploy/test.sh, which installs Debian's chromium")
	}
	s := startValuesServe(t)
	dir := npmInstall(t, "playwright-core")
	view := url.Values{"fork": {"Collide Viewed"}, "dir": {"next"}, "anchor": {"Collide Viewed"}, "depth": {"3"},
		"steps": {"Collide Viewed"}, "breakdown": {"property:coupon"}, "window": {"1h"}}
	cmd := exec.Command("node", filepath.Join(mustAbs(t, "testdata"), "drive-markers.js"), "http://"+s.http+"/?"+view.Encode(),
		testOutput(t, "markers"), testReadKey)
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"))
	cmd.Stderr = os.Stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, raw)
	}
	type entry struct {
		Text       string
		Marker     bool
		Disabled   bool
		Touchpoint string
	}
	var got struct {
		Errors                []string
		Fork, Flow, Breakdown []entry
		Paths                 []string
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	if len(got.Errors) > 0 {
		t.Errorf("page errors: %v", got.Errors)
	}
	shown := func(entries []entry) string {
		var out []string
		for _, e := range entries {
			text := strings.TrimSpace(e.Text)
			if e.Marker {
				text = "<" + text + ">"
			}
			if e.Disabled || e.Touchpoint != "" {
				text += fmt.Sprintf(" disabled=%v touchpoint=%q", e.Disabled, e.Touchpoint)
			}
			out = append(out, text)
		}
		return strings.Join(out, "; ")
	}
	for _, tt := range []struct{ what, got, want string }{
		{"fork", shown(got.Fork), `<left (nothing more)> disabled=true touchpoint=""; (exit)`},
		{"breakdown", shown(got.Breakdown), "<no value>; SPRING; (none); (other)"},
		{"flow", shown(got.Flow), `Collide Viewed (7) disabled=false touchpoint="Collide Viewed"; <left (nothing more) (6)>; ` +
			`(exit) (1) disabled=false touchpoint="(exit)"; Order Completed (1) disabled=false touchpoint="Order Completed"`},
		{"paths", strings.Join(got.Paths, "; "), "Collide Viewed → (left (nothing more)); Collide Viewed → (exit) → Order Completed"},
	} {
		if tt.got != tt.want {
			t.Errorf("%s shows %s\nwant %s", tt.what, tt.got, tt.want)
		}
	}
}

// TestLabelTellsValuesApart: the CLI's tables print every real value apart from every other and
// from the markers, however alike they read: values in parentheses or quotes, with spaces at an
// end, with invisible characters, or holding the tables' separators.
func TestLabelTellsValuesApart(t *testing.T) {
	t.Parallel()
	values := []string{
		"", " ", "  ", "100", " 100", "100 ", "\t100", "100\n", "\u00a0100", "100\u200b", "\u200b100", "１００",
		"(none)", `"(none)"`, `"(none)`, "(none)\u200b", "(no value)", "(no value)\u200b", "(no value) ", "(other values)",
		"(exit)", "(start)", `"`, `""`, `"100"`, `\"100\"`, "(", ")", "()", "(exit", "exit)", "none",
		"A → B", "A", "B", "A, B 50%", `A\, B`, `A\\, B`, "A\ufe0f", "A\u034f", "A\u3164", "A\u202eB", "A\u2028B", "caf\u00e9", "cafe\u0301",
		"\xff", "\xfe", "\\xff", "😀", "😀\U000e0001", "SPRING", "a\x00b", "a b",
		// Forms of one text that differ only in Unicode normalization print alike as they are
		// (tester 23's F7): composed and decomposed, marks in either order, a character NFC
		// replaces, Hangul syllables and their jamo; quoted for another reason too (an end space).
		"Caf\u00e9 Visited", "Cafe\u0301 Visited", "caf\u00e9 ", "cafe\u0301 ", "\u1ec7", "e\u0323\u0302", "e\u0302\u0323", "\u00ea\u0323", "\u1eb9\u0302",
		"\u00c5", "\u212b", "A\u030a", "\uac00", "\u1100\u1161", "\u0301", "\u0301x", " \u0301x", "\u00e9x",
	}
	markers := map[string]string{}
	for _, m := range []string{store.MarkerNone, store.MarkerOther, store.MarkerExit, store.MarkerStart} {
		markers[label("", m)] = "marker " + m
	}
	// Two prints look alike when they are alike in NFC form: a terminal shows canonically
	// equivalent texts the same.
	seen := map[string]string{}
	for k, v := range markers {
		seen[norm.NFC.String(k)] = v
	}
	for _, v := range values {
		got := label(v, "")
		if other, ok := seen[norm.NFC.String(got)]; ok {
			t.Errorf("%+q prints as %s, as %s does", v, got, other)
		}
		seen[norm.NFC.String(got)] = fmt.Sprintf("%+q", v)
		if strings.ContainsFunc(got, invisible) || strings.HasPrefix(got, " ") || strings.HasSuffix(got, " ") {
			t.Errorf("%q prints as %q, with a character one cannot see", v, got)
		}
		if back, err := strconv.Unquote(got); err == nil && back != v {
			t.Errorf("%q prints as %s, which reads back as %q", v, got, back)
		}
	}
	for v, want := range map[string]string{"SPRING": "SPRING", "A → B": `"A → B"`, " 100": `" 100"`, `"(none)"`: `"\"(none)\""`,
		"(none)": `"(none)"`, "(no value)\u200b": `"(no value)\u200b"`, "A\ufe0f": `"A\ufe0f"`, "café": "café",
		"Caf\u00e9 Visited": "Café Visited", "Cafe\u0301 Visited": `"Cafe\u0301 Visited"`, "caf\u00e9 ": `"café "`,
		"\u212b": `"\u212b"`, "\u1100\u1161": "\"\u1100\\u1161\"", "\u0301x": `"\u0301x"`, "q\u0307": "q\u0307"} {
		if got := label(v, ""); got != want {
			t.Errorf("%q prints as %s, want %s", v, got, want)
		}
	}
}

// TestSurveyScoresAreNumbersAsFiltersReadThem: the stages' NPS reads a score's stored text
// by the one number rule of docs/values.md (sessionize.ParseNumber), the rule [score>=0] follows:
// "1_0", "0x1p3", " 8", "Inf" and "NaN" are no scores (Go's ParseFloat alone read the first two
// as 10 and 8), while 7, "9" and "1e1" are. Each person gives one score, so the persons the
// filter finds are the responses the stages count.
func TestSurveyScoresAreNumbersAsFiltersReadThem(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	scores := []string{`"1_0"`, `"0x1p3"`, `" 8"`, `"Inf"`, `"NaN"`, `7`, `"9"`, `"1e1"`}
	var lines []string
	for i, score := range scores {
		lines = append(lines,
			fmt.Sprintf(`{"type":"page","anonymousId":"sc%d","name":"Home","messageId":"sc%d-1","timestamp":"2025-05-05T10:00:00Z"}`, i, i),
			fmt.Sprintf(`{"type":"track","anonymousId":"sc%d","event":"NPS Submitted","properties":{"score":%s},"messageId":"sc%d-2","timestamp":"2025-05-05T10:01:00Z"}`, i, score, i))
	}
	s.sendBatch(t, lines...)
	s.waitStored(t)
	code, body := httpGet(t, "http://"+s.http+"/api/v1/stages?from=2025-05-01&to=2025-06-01")
	var st store.StagesResult
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("stages: %d %s", code, body)
	}
	var responses int64
	var sum float64
	for _, h := range st.Stages {
		if h.NPS != nil {
			responses += h.NPS.Responses
			sum += h.NPS.MeanAnswer * float64(h.NPS.Responses)
		}
	}
	if mean := sum / float64(responses); responses != 3 || math.Abs(mean-26.0/3) > 1e-4 { // mean_answer has 4 decimals
		t.Errorf("stages: %d NPS responses, mean answer %v; want 3 (7, \"9\", \"1e1\"), mean 26/3:\n%s", responses, mean, body)
	}
	f := s.funnel(t, "NPS Submitted[score>=0]", "24h")
	if len(f.Steps) != 1 || f.Steps[0].Customers != responses {
		t.Errorf("NPS Submitted[score>=0] finds %+v persons, the stages count %d responses", f.Steps, responses)
	}
}

// TestDropoffPersonsSplitBackIntoTheirIds: the drop-off's Persons line, read as values (a quoted
// one up to its closing quote, another up to the next ", ") gives back every id, whatever it holds.
func TestDropoffPersonsSplitBackIntoTheirIds(t *testing.T) {
	t.Parallel()
	tests := [][]string{
		{"u1", "u2"},
		{"a, b", "c"},
		{"a,b", `"quoted"`, " padded ", ""},
		{"zero\u200bwidth", "line\nbreak", "\xff", "(none)"},
	}
	for _, ids := range tests {
		var out bytes.Buffer
		printDropoff(&out, &store.DropoffResult{Persons: ids})
		_, line, ok := strings.Cut(out.String(), "\nPersons: ")
		if !ok {
			t.Fatalf("no Persons line in\n%s", out.String())
		}
		var got []string
		for rest := strings.TrimSuffix(line, "\n"); rest != ""; {
			field, after, _ := strings.Cut(rest, ", ")
			if q, err := strconv.QuotedPrefix(rest); err == nil {
				field, _ = strconv.Unquote(q)
				after = strings.TrimPrefix(rest[len(q):], ", ")
			}
			got, rest = append(got, field), after
		}
		if !slices.Equal(got, ids) {
			t.Errorf("ids %q print as %q, which splits back into %q", ids, line, got)
		}
	}
}

// TestStepNamesPrintAsLabels: a step's name in the funnel's STEP column and in the headers of
// the drop-off, paths, next and retention is printed as the tables print every other value
// (label): one holding a tab or another control character is quoted, where it was printed raw
// and shifted the funnel's columns.
func TestStepNamesPrintAsLabels(t *testing.T) {
	t.Parallel()
	const name = "Checkout\tStarted\x1b[2J"
	want := quote(name)
	for _, tt := range []struct {
		query string
		print func(io.Writer, any)
		res   any
	}{
		{"funnel", printFunnel, &store.FunnelResult{Steps: []store.FunnelStep{{Name: "Product Viewed"}, {Name: name}}}},
		{"dropoff step", printDropoff, &store.DropoffResult{Step: 1, StepName: name, NextStep: "Order Completed"}},
		{"dropoff next step", printDropoff, &store.DropoffResult{Step: 1, StepName: "Cart Viewed", NextStep: name}},
		{"paths anchor", printPaths, &store.PathsResult{Anchor: name, Direction: "start", Convert: "Order Completed"}},
		{"paths convert", printPaths, &store.PathsResult{Anchor: "Cart Viewed", Direction: "start", Convert: name}},
		{"next anchor", printNext, &store.NextResult{Anchor: name, Direction: "next"}},
		{"retention conversion", printRetention, &store.RetentionResult{Period: "week", Conversion: name, Return: "Order Completed"}},
		{"retention return", printRetention, &store.RetentionResult{Period: "week", Conversion: "Order Completed", Return: name}},
	} {
		var out bytes.Buffer
		tt.print(&out, tt.res)
		if !strings.Contains(out.String(), want) || strings.Contains(out.String(), "\x1b") {
			t.Errorf("%s: the name %q is not printed as %s:\n%s", tt.query, name, want, out.String())
		}
	}
}
