package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/waymark-dev/waymark/store/storetest"
)

// stagesAnswer is the part of a stages answer the stage tests read.
type stagesAnswer struct {
	Stages []struct {
		Stage           string
		Entered         int64    `json:"entered"`
		EnteredMovedOn  int64    `json:"entered_moved_on"`
		MovedOn         int64    `json:"moved_on"`
		ExitRate        float64  `json:"exit_rate"`
		Dwell           *float64 `json:"median_dwell_seconds"`
		SurveyResponses int64    `json:"survey_responses"`
		MeanScore       *float64 `json:"mean_score"`
		NPS             *struct {
			Responses int64   `json:"responses"`
			Score     float64 `json:"score"`
		} `json:"nps"`
		IgnoredScores map[string]int64 `json:"ignored_scores"`
	}
	IgnoredScores map[string]int64 `json:"ignored_scores"`
}

// text is one line per stage: entered, of them moved on, all moved on, exit rate, dwell (s),
// responses, mean score, the NPS answers and score, and ignored scores; then the scores given in
// no stage.
func (a stagesAnswer) text() string {
	var lines []string
	for _, st := range a.Stages {
		dwell, mean := "-", "-"
		if st.Dwell != nil {
			dwell = strconv.FormatFloat(*st.Dwell, 'f', -1, 64)
		}
		if st.MeanScore != nil {
			mean = fmt.Sprint(*st.MeanScore)
		}
		nps := "nps -"
		if st.NPS != nil {
			nps = fmt.Sprintf("nps %d %v", st.NPS.Responses, st.NPS.Score)
		}
		lines = append(lines, fmt.Sprintf("%s %d %d %d %v %s %d %s %s %v", st.Stage, st.Entered, st.EnteredMovedOn, st.MovedOn, st.ExitRate, dwell, st.SurveyResponses, mean, nps, st.IgnoredScores))
	}
	return strings.Join(append(lines, fmt.Sprintf("no stage %v", a.IgnoredScores)), "\n")
}

// TestStagesFollowTheFurthestStage: a tester's three faults of the stages answer, through serve,
// its API, the CLI (matching in Waymark) and the live metrics. A converted customer who later
// adds to a cart was counted as entering consideration and never moving on (an exit: 22 of the
// 96 consideration entries of the shipped sample); a stage reached after a further one is
// skipped. In a range, a repeat order in March entered conversion again with a dwell of 0 s,
// though the person converted in January: a person enters a stage once in their life, and a
// range counts the moves made in it, with the dwell from the first entering. And a survey
// answered before the person's first stage was in no mean and counted nowhere; it is counted as
// no_stage, in the answer and in the live metric.
func TestStagesFollowTheFurthestStage(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	track := func(user, id, event, ts, props string) string {
		return fmt.Sprintf(`{"type":"track","userId":%q,"event":%q,"messageId":%q,"timestamp":%q,"properties":%s}`, user, event, id, ts, props)
	}
	events := []string{
		// st1 views, orders, views again and adds to the cart: consideration is skipped.
		track("st1", "ST1a", "Product Viewed", "2025-11-01T10:00:00Z", "{}"),
		track("st1", "ST1b", "Order Completed", "2025-11-01T10:10:00Z", "{}"),
		track("st1", "ST1c", "Product Viewed", "2025-11-01T10:20:00Z", "{}"),
		track("st1", "ST1d", "Product Added", "2025-11-01T10:21:00Z", "{}"),
		// lo1 orders in January and again in March (59 days later: loyalty).
		track("lo1", "LO1", "Order Completed", "2025-01-10T10:00:00Z", "{}"),
		track("lo1", "LO2", "Order Completed", "2025-03-10T10:00:00Z", "{}"),
		// sv1 answers and nothing else; sv2 orders and answers at once (in conversion); sv3
		// answers a second before ordering.
		track("sv1", "SV1", "NPS Submitted", "2025-08-15T10:00:00Z", `{"score":9}`),
		track("sv2", "SV2a", "Order Completed", "2025-08-15T10:00:00Z", "{}"),
		track("sv2", "SV2b", "NPS Submitted", "2025-08-15T10:00:00Z", `{"score":3}`),
		track("sv3", "SV3b", "NPS Submitted", "2025-08-15T09:59:59Z", `{"score":5}`),
		track("sv3", "SV3a", "Order Completed", "2025-08-15T10:00:00Z", "{}"),
	}
	for _, e := range events { // one by one, in this order: the live metrics count in arrival order
		postTrack(t, s, `{"batch":[`+e+`]}`)
	}
	s.waitStored(t)
	const day = 24 * 60 * 60
	tests := []struct{ from, to, want string }{
		{"2025-11-01", "2025-11-02", `awareness 1 1 1 0 600 0 - nps - map[]
consideration 0 0 0 0 - 0 - nps - map[]
conversion 1 0 0 1 - 0 - nps - map[]
loyalty 0 0 0 0 - 0 - nps - map[]
advocacy 0 0 0 0 - 0 - nps - map[]
no stage map[]`},
		{"2025-01-10", "2025-01-11", `awareness 0 0 0 0 - 0 - nps - map[]
consideration 0 0 0 0 - 0 - nps - map[]
conversion 1 0 0 1 - 0 - nps - map[]
loyalty 0 0 0 0 - 0 - nps - map[]
advocacy 0 0 0 0 - 0 - nps - map[]
no stage map[]`},
		// In March lo1 enters loyalty only, going on from January's conversion after 59 days.
		{"2025-03-10", "2025-03-11", fmt.Sprintf(`awareness 0 0 0 0 - 0 - nps - map[]
consideration 0 0 0 0 - 0 - nps - map[]
conversion 0 0 1 0 %d 0 - nps - map[]
loyalty 1 0 0 1 - 0 - nps - map[]
advocacy 0 0 0 0 - 0 - nps - map[]
no stage map[]`, 59*day)},
		{"2025-01-10", "2025-03-11", fmt.Sprintf(`awareness 0 0 0 0 - 0 - nps - map[]
consideration 0 0 0 0 - 0 - nps - map[]
conversion 1 1 1 0 %d 0 - nps - map[]
loyalty 1 0 0 1 - 0 - nps - map[]
advocacy 0 0 0 0 - 0 - nps - map[]
no stage map[]`, 59*day)},
		{"2025-08-15", "2025-08-16", `awareness 0 0 0 0 - 0 - nps - map[]
consideration 0 0 0 0 - 0 - nps - map[]
conversion 2 0 0 1 - 0 - nps 1 -100 map[]
loyalty 0 0 0 0 - 0 - nps - map[]
advocacy 0 0 0 0 - 0 - nps - map[]
no stage map[no_stage:2]`},
	}
	for _, tt := range tests {
		code, body := httpGet(t, "http://"+s.http+"/api/v1/stages?from="+tt.from+"&to="+tt.to)
		var got stagesAnswer
		if err := json.Unmarshal([]byte(body), &got); code != 200 || err != nil {
			t.Fatalf("stages %s–%s: %d %s", tt.from, tt.to, code, body)
		}
		if got.text() != tt.want {
			t.Errorf("stages %s–%s:\n%s\nwant:\n%s", tt.from, tt.to, got.text(), tt.want)
		}
		// The CLI matching in Waymark answers the API's bytes (the API matches in ClickHouse
		// where the engine has the UDF).
		cli := s.waymark(t, "stages", "--from", tt.from, "--to", tt.to, "--json", "--funnel-matching", "process")
		if compactJSON(t, cli) != compactJSON(t, body) {
			t.Errorf("stages %s–%s: the CLI matching in Waymark answers\n%s\nthe API\n%s", tt.from, tt.to, cli, body)
		}
	}
	out := s.waymark(t, "stages", "--from", "2025-08-15", "--to", "2025-08-16")
	if !strings.Contains(out, "no stage 2 no_stage") {
		t.Errorf("waymark stages does not say what it left out:\n%s", out)
	}

	// Live: st1 entered no consideration, and the two answers before any stage are no_stage.
	metrics := scrape(t, s.http)
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "waymark_journey_stage_entries_total{") && strings.Contains(line, `stage="consideration"`) {
			t.Errorf("a live entry of a skipped stage: %s", line)
		}
	}
	if line := `waymark_journey_scores_ignored_total{reason="no_stage"} 2`; !strings.Contains(metrics, line+"\n") {
		t.Errorf("metrics lack %s", line)
	}
}

// startRangeServe starts serve with the persons of the range tests, around November 2026: p1 and
// p2 view a product in October and order on Nov 10 (going on from awareness, which they entered
// before the month); p3 views on Nov 20 and adds to the cart on Nov 25; p4 views on Nov 30, the
// month's last day, p5 on Dec 1 at midnight, the first moment after it.
func startRangeServe(t *testing.T) *server {
	t.Helper()
	s := startServe(t)
	track := func(user, event, ts string) string {
		return fmt.Sprintf(`{"type":"track","userId":%q,"event":%q,"messageId":%q,"timestamp":%q}`, user, event, user+"-"+ts, ts)
	}
	events := []string{
		track("p1", "Product Viewed", "2026-10-05T10:00:00Z"), track("p1", "Order Completed", "2026-11-10T10:00:00Z"),
		track("p2", "Product Viewed", "2026-10-05T10:00:00Z"), track("p2", "Order Completed", "2026-11-10T10:00:00Z"),
		track("p3", "Product Viewed", "2026-11-20T10:00:00Z"), track("p3", "Product Added", "2026-11-25T10:00:00Z"),
		track("p4", "Product Viewed", "2026-11-30T15:00:00Z"),
		track("p5", "Product Viewed", "2026-12-01T00:00:00Z"),
	}
	postTrack(t, s, `{"batch":[`+strings.Join(events, ",")+`]}`)
	s.waitStored(t)
	return s
}

// novemberStages is the stages answer for November 2026 (from 2026-11-01, to 2026-12-01) of
// startRangeServe's persons (stagesAnswer.text): of awareness's two entering (p3, p4), p3 went
// on (50% leave), while three went on from it (p1 and p2 too, who entered in October).
const novemberStages = `awareness 2 1 3 0.5 3110400 0 - nps - map[]
consideration 1 0 0 1 - 0 - nps - map[]
conversion 2 0 0 1 - 0 - nps - map[]
loyalty 0 0 0 0 - 0 - nps - map[]
advocacy 0 0 0 0 - 0 - nps - map[]
no stage map[]`

// TestStagesSharesAreOfThoseEntering: a tester's fault of the stages answer. The exit rate was
// 1 - moved_on / entered, but moved_on counts whoever went on in the range, whenever they entered
// the stage, and entered only those who entered in it: after a month in which many entered, more
// went on than entered, the exit rate was 0 and the page showed "Move on 3 (150%)". The share is
// now of those entering (entered_moved_on, at most entered), as Amplitude's and Mixpanel's
// conversions are; moved_on stays, as the flow out of the stage. The CLI matching in Waymark
// answers the API's bytes (which match in ClickHouse where the engine has the UDF).
func TestStagesSharesAreOfThoseEntering(t *testing.T) {
	t.Parallel()
	s := startRangeServe(t)
	code, body := httpGet(t, "http://"+s.http+"/api/v1/stages?from=2026-11-01&to=2026-12-01")
	var got stagesAnswer
	if err := json.Unmarshal([]byte(body), &got); code != 200 || err != nil {
		t.Fatalf("stages: %d %s", code, body)
	}
	if got.text() != novemberStages {
		t.Errorf("stages in November:\n%s\nwant:\n%s", got.text(), novemberStages)
	}
	for _, st := range got.Stages {
		if st.EnteredMovedOn > st.Entered || st.ExitRate < 0 || st.ExitRate > 1 {
			t.Errorf("%s: %d of %d entering moved on, exit rate %v", st.Stage, st.EnteredMovedOn, st.Entered, st.ExitRate)
		}
	}
	cli := s.waymark(t, "stages", "--from", "2026-11-01", "--to", "2026-12-01", "--json", "--funnel-matching", "process")
	if compactJSON(t, cli) != compactJSON(t, body) {
		t.Errorf("the CLI matching in Waymark answers\n%s\nthe API\n%s", cli, body)
	}
}

// TestJourneyMapPageRangeAndShares picks November 2026 in the journey map page's date filter
// (headless Chromium), as a person would, From 2026-11-01 To 2026-11-30. Two faults a tester
// found: the page sent To as the API's to, an end it excludes, so the events of Nov 30 were left
// out (a date picker's To is a day it includes, as PostHog's and Amplitude's are); and a stage
// card showed "Move on" as moved_on / entered, over 100% after a month in which many entered, and
// "Leave" as entered - moved_on, cut to 0. The page now asks up to Dec 1, keeps To 2026-11-30 in
// its address, and shows the share of those entering (entered_moved_on) with the flow apart.
func TestJourneyMapPageRangeAndShares(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Fatal("/usr/bin/chromium not found: run deploy/test.sh, which installs Debian's chromium")
	}
	s := startRangeServe(t)
	dir := npmInstall(t, "playwright-core")
	cmd := exec.Command("node", filepath.Join(mustAbs(t, "testdata"), "drive-range.js"), "http://"+s.http,
		testOutput(t, "journey-map"), testReadKey, "2026-11-01", "2026-11-30", "Etc/UTC")
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"))
	cmd.Stderr = os.Stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, raw)
	}
	type card struct {
		Stage          string
		Entered        int64
		EnteredMovedOn int64 `json:"entered_moved_on"`
		MovedOn        int64 `json:"moved_on"`
		Conversion     string
		MoveOn         string `json:"move_on"`
		Leave, Flow    string
	}
	var got struct {
		Errors      []string
		StagesAsked []map[string]string
		Cards       []card
		Link        string
		Reloaded    struct {
			To, Timezone string
			Cards        []card
		}
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	if len(got.Errors) > 0 {
		t.Errorf("page errors: %v", got.Errors)
	}

	// The page asked the API up to the day after To, once when picked and once from the link;
	// the link keeps To as picked.
	// The time zone typed (UTC's other name here, so the numbers stay UTC's) goes with the
	// range, and the link keeps it (tester 38's F2: the page's days were UTC only).
	want := map[string]string{"from": "2026-11-01", "to": "2026-12-01", "timezone": "Etc/UTC"}
	if len(got.StagesAsked) != 2 || !maps.Equal(got.StagesAsked[0], want) || !maps.Equal(got.StagesAsked[1], want) {
		t.Errorf("the page asked the stages for %v, want twice from 2026-11-01 to 2026-12-01 (the API's end, which it excludes) in Etc/UTC", got.StagesAsked)
	}
	if link, err := url.Parse(got.Link); err != nil || link.Query().Get("to") != "2026-11-30" || got.Reloaded.To != "2026-11-30" ||
		link.Query().Get("timezone") != "Etc/UTC" || got.Reloaded.Timezone != "Etc/UTC" {
		t.Errorf("the link %s, reloaded, shows To %q in %q; want to=2026-11-30 and timezone=Etc/UTC in both", got.Link, got.Reloaded.To, got.Reloaded.Timezone)
	}

	// The cards show the API's numbers for [Nov 1, Dec 1): p4's view of Nov 30 is in, p5's of
	// Dec 1 not; each share is of those entering.
	shown := func(cards []card) string {
		var lines []string
		for _, c := range cards {
			lines = append(lines, fmt.Sprintf("%s %d %d %d · move on %s · leave %s · all moving on %s · arrow %q",
				c.Stage, c.Entered, c.EnteredMovedOn, c.MovedOn, c.MoveOn, c.Leave, c.Flow, c.Conversion))
		}
		return strings.Join(lines, "\n")
	}
	wantCards := `awareness 2 1 3 · move on 1 (50.0%) · leave 1 (50.0%) · all moving on 3 · arrow "50.0%"
consideration 1 0 0 · move on 0 (0.0%) · leave 1 (100.0%) · all moving on 0 · arrow "0.0%"
conversion 2 0 0 · move on 0 (0.0%) · leave 2 (100.0%) · all moving on 0 · arrow "0.0%"
loyalty 0 0 0 · move on 0 (0.0%) · leave 0 (0.0%) · all moving on 0 · arrow "0.0%"
advocacy 0 0 0 · move on 0 (0.0%) · leave 0 (0.0%) · all moving on 0 · arrow ""`
	if shown(got.Cards) != wantCards {
		t.Errorf("the page shows for November:\n%s\nwant:\n%s", shown(got.Cards), wantCards)
	}
	if shown(got.Reloaded.Cards) != shown(got.Cards) {
		t.Errorf("the link, reloaded, shows:\n%s\nwant what the page showed:\n%s", shown(got.Reloaded.Cards), shown(got.Cards))
	}
	var api stagesAnswer
	_, body := httpGet(t, "http://"+s.http+"/api/v1/stages?from=2026-11-01&to=2026-12-01")
	if err := json.Unmarshal([]byte(body), &api); err != nil {
		t.Fatal(err)
	}
	if len(api.Stages) != len(got.Cards) {
		t.Fatalf("the API answers %d stages, the page shows %d", len(api.Stages), len(got.Cards))
	}
	for i, st := range api.Stages {
		if c := got.Cards[i]; c.Stage != st.Stage || c.Entered != st.Entered || c.EnteredMovedOn != st.EnteredMovedOn || c.MovedOn != st.MovedOn {
			t.Errorf("stage %d: the API answers %+v, the page shows %+v", i, st, c)
		}
	}
}

// TestPagesNamedLikeTrackEventsReachNoStage: a page or screen is stored under its name, as a
// track call under its event, so a rule naming an event without type matches both. A page named
// "Order Completed" beside one real order made its person loyal (a second order) in the stages
// answer, in the retention answer (a repeat) and in the live entries, while the orders metric
// counted one order; a page named "NPS Submitted" with a score was an NPS answer in the stages
// answer, though not in the live metrics. The default map's rules say type: [track]; the
// stages answer reads a score of track calls only.
func TestPagesNamedLikeTrackEventsReachNoStage(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	call := func(typ, user, id, name, ts, props string) string {
		field := "name"
		if typ == "track" {
			field = "event"
		}
		return fmt.Sprintf(`{"type":%q,"userId":%q,%q:%q,"messageId":%q,"timestamp":%q,"properties":%s}`, typ, user, field, name, id, ts, props)
	}
	postTrack(t, s, `{"batch":[`+strings.Join([]string{
		// pn1 orders once; a week later views a page and a screen named like a second order, and a
		// page named like an NPS answer.
		call("track", "pn1", "PN1a", "Order Completed", "2025-06-02T10:00:00Z", `{"revenue":10}`),
		call("page", "pn1", "PN1b", "Order Completed", "2025-06-10T10:00:00Z", "{}"),
		call("screen", "pn1", "PN1c", "Order Completed", "2025-06-11T10:00:00Z", "{}"),
		call("page", "pn1", "PN1d", "NPS Submitted", "2025-06-11T11:00:00Z", `{"score":0}`),
		// pn2 only views a page named like an order: awareness, no conversion.
		call("page", "pn2", "PN2a", "Order Completed", "2025-06-03T10:00:00Z", "{}"),
	}, ",")+`]}`)
	s.waitStored(t)

	want := `awareness 1 0 0 1 - 0 - nps - map[]
consideration 0 0 0 0 - 0 - nps - map[]
conversion 1 0 0 1 - 0 - nps - map[]
loyalty 0 0 0 0 - 0 - nps - map[]
advocacy 0 0 0 0 - 0 - nps - map[]
no stage map[]`
	code, body := httpGet(t, "http://"+s.http+"/api/v1/stages")
	var stages stagesAnswer
	if err := json.Unmarshal([]byte(body), &stages); code != 200 || err != nil {
		t.Fatalf("stages: %d %s", code, body)
	}
	if stages.text() != want {
		t.Errorf("stages:\n%s\nwant:\n%s", stages.text(), want)
	}
	cli := s.waymark(t, "stages", "--json", "--funnel-matching", "process")
	if compactJSON(t, cli) != compactJSON(t, body) {
		t.Errorf("stages: the CLI matching in Waymark answers\n%s\nthe API\n%s", cli, body)
	}

	// Retention by default counts the stage conversion, and its return is the conversion again.
	code, body = httpGet(t, "http://"+s.http+"/api/v1/retention")
	var retention struct {
		Persons   int64 `json:"persons"`
		Repeaters int64 `json:"repeaters"`
	}
	if err := json.Unmarshal([]byte(body), &retention); code != 200 || err != nil {
		t.Fatalf("retention: %d %s", code, body)
	}
	if retention.Persons != 1 || retention.Repeaters != 0 {
		t.Errorf("retention: %d persons, %d repeaters, want 1 and 0 (one order, no repeat): %s", retention.Persons, retention.Repeaters, body)
	}

	// Live: entries by stage, over their channels.
	entries := liveStageEntries(t, scrape(t, s.http))
	if want := map[string]int64{"awareness": 1, "conversion": 1}; !maps.Equal(entries, want) {
		t.Errorf("live stage entries %v, want %v", entries, want)
	}
}
