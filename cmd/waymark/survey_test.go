package main

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/waymark-dev/waymark/sessionize"
)

// TestSurveyScoresOutsideTheirScale: a tester's survey answers (the write key is public). One
// Survey Answered with score 1000000 moved the conversion stage's mean score to 333320, and two
// NPS scores of 1.7e308 made waymark stages print a 300-digit number. A score outside its
// survey's scale (sessionize.SurveyScale), no number or not finite is left out of the stage's
// mean and counted by reason, in the stages answer, in the CLI's table and in the live metric;
// the events are stored all the same.
func TestSurveyScoresOutsideTheirScale(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	answers := []struct {
		event, score string // score as JSON, "" for none
		ignored      string // the reason it is left out, "" when it counts (or there is none)
	}{
		{"NPS Submitted", `10`, ""},
		{"NPS Submitted", `0`, ""},
		{"Survey Answered", `4`, ""},
		{"Survey Answered", `"3.5"`, ""},
		{"Survey Answered", `1000000`, sessionize.ScoreOutOfScale},
		{"NPS Submitted", `-50`, sessionize.ScoreOutOfScale},
		{"NPS Submitted", `10.5`, sessionize.ScoreOutOfScale},
		{"NPS Submitted", `1.7e308`, sessionize.ScoreOutOfScale},
		{"NPS Submitted", `1.7e308`, sessionize.ScoreOutOfScale},
		{"NPS Submitted", `1e400`, sessionize.ScoreNotFinite},
		{"Survey Answered", `"Infinity"`, sessionize.ScoreNotFinite},
		{"Survey Answered", `"great"`, sessionize.ScoreNotANumber},
		{"Survey Answered", ``, ""},
	}
	var events []string
	var sum float64
	var counted int64
	wantIgnored := map[string]int64{}
	for i, a := range answers {
		props := "{}"
		if a.score != "" {
			props = `{"score":` + a.score + `}`
		}
		events = append(events,
			fmt.Sprintf(`{"type":"track","userId":"sv%d","event":"Order Completed","messageId":"sv%d-1","timestamp":"2025-10-01T10:00:00Z"}`, i, i),
			fmt.Sprintf(`{"type":"track","userId":"sv%d","event":%q,"messageId":"sv%d-2","timestamp":"2025-10-01T10:05:00Z","properties":%s}`, i, a.event, i, props))
		switch {
		case a.ignored != "":
			wantIgnored[a.ignored]++
		case a.score != "":
			var v float64
			if err := json.Unmarshal([]byte(strings.Trim(a.score, `"`)), &v); err != nil {
				t.Fatal(err)
			}
			sum += v
			counted++
		}
	}
	postTrack(t, s, `{"batch":[`+strings.Join(events, ",")+`]}`)
	s.waitStored(t)
	if n := liveEvents(t, s.database); n != uint64(len(events)) {
		t.Errorf("stored %d events, want all %d", n, len(events))
	}
	wantMean := math.Round(sum/float64(counted)*1e4) / 1e4

	code, body := httpGet(t, "http://"+s.http+"/api/v1/stages?from=2025-10-01&to=2025-10-02")
	var res struct {
		Stages []struct {
			Stage           string
			SurveyResponses int64            `json:"survey_responses"`
			MeanScore       *float64         `json:"mean_score"`
			IgnoredScores   map[string]int64 `json:"ignored_scores"`
		}
	}
	if err := json.Unmarshal([]byte(body), &res); code != 200 || err != nil {
		t.Fatalf("stages: %d %s", code, body)
	}
	for _, st := range res.Stages {
		if st.Stage != "conversion" {
			if st.SurveyResponses != 0 || len(st.IgnoredScores) != 0 {
				t.Errorf("stage %s has scores: %s", st.Stage, body)
			}
			continue
		}
		if st.SurveyResponses != counted || st.MeanScore == nil || *st.MeanScore != wantMean {
			t.Errorf("conversion: %d responses, mean %v; want %d, mean %v (%s)", st.SurveyResponses, st.MeanScore, counted, wantMean, body)
		}
		if fmt.Sprint(st.IgnoredScores) != fmt.Sprint(wantIgnored) {
			t.Errorf("conversion ignores scores %v, want %v", st.IgnoredScores, wantIgnored)
		}
	}

	// The live metric counts the same scores by the same rule.
	metrics := scrape(t, s.http)
	for reason, n := range wantIgnored {
		if line := fmt.Sprintf(`waymark_journey_scores_ignored_total{reason=%q} %d`, reason, n); !strings.Contains(metrics, line+"\n") {
			t.Errorf("metrics lack %s", line)
		}
	}

	// The CLI prints the mean with two decimals and says what it left out.
	out := s.waymark(t, "stages", "--from", "2025-10-01", "--to", "2025-10-02")
	if want := fmt.Sprintf("%.2f", wantMean); !strings.Contains(out, want) {
		t.Errorf("waymark stages lacks the mean %s:\n%s", want, out)
	}
	for reason, n := range wantIgnored {
		if want := fmt.Sprintf("conversion %d %s", n, reason); !strings.Contains(out, want) {
			t.Errorf("waymark stages lacks %q:\n%s", want, out)
		}
	}
}

// TestScoreTextIsBounded: a mean score from a server that did not bound scores prints in a few
// characters, never as the hundreds of digits of %.2f.
func TestScoreTextIsBounded(t *testing.T) {
	for _, tt := range []struct {
		v    float64
		want string
	}{
		{7.33333, "7.33"},
		{-2, "-2.00"},
		{333320, "333320.00"},
		{1.7e308, "1.7e+308"},
		{-1e15, "-1e+15"},
	} {
		if got := scoreText(tt.v); got != tt.want {
			t.Errorf("scoreText(%g) = %q, want %q", tt.v, got, tt.want)
		}
	}
}
