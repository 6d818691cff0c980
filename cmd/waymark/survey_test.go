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
// mean (and NPS) and counted by reason, in the stages answer, in the CLI's table and in the live
// metric; the events are stored all the same. The mean is of the Survey Answered scores alone:
// the NPS answers (10 and 0) make the stage's Net Promoter Score (TestNPSIsPromotersMinusDetractors).
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
		// The scale's and the NPS categories' bounds are compared with a score as written, as
		// [score>10] and [score<9] compare it, not with the float64 nearest it (10, 9 and 6
		// here): these are out of scale, or passives (tester 58's F1).
		{"NPS Submitted", `10.0000000000000000001`, sessionize.ScoreOutOfScale},
		{"Survey Answered", `"10.0000000000000000001"`, sessionize.ScoreOutOfScale},
		{"NPS Submitted", `8.99999999999999999999`, ""},
		{"NPS Submitted", `"6.00000000000000000001"`, ""},
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
		case a.score != "" && a.event == sessionize.SurveyAnsweredEvent:
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
			SurveyResponses int64    `json:"survey_responses"`
			MeanScore       *float64 `json:"mean_score"`
			NPS             *struct{ Responses, Promoters, Passives, Detractors int64 }
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
			t.Errorf("conversion: %d responses, mean %s; want %d, mean %v (%s)", st.SurveyResponses, meanText(st.MeanScore), counted, wantMean, body)
		}
		if st.NPS == nil || st.NPS.Responses != 4 || st.NPS.Promoters != 1 || st.NPS.Passives != 2 || st.NPS.Detractors != 1 {
			t.Errorf("conversion: NPS %+v, want the 4 answers in scale: 10, two passives just below 9 and above 6, and 0 (%s)", st.NPS, body)
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

	for i, category := range sessionize.NPSCategories() {
		series := fmt.Sprintf(`waymark_journey_nps_responses_total{category=%q,stage="conversion"}`, category)
		if got := scrapedValue(metrics, series); got != float64([]int{1, 2, 1}[i]) {
			t.Errorf("%s = %v, want %d", series, got, []int{1, 2, 1}[i])
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

// meanText prints a stage's mean score, "none" when it has none.
func meanText(mean *float64) string {
	if mean == nil {
		return "none"
	}
	return fmt.Sprint(*mean)
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

// TestNPSIsPromotersMinusDetractors: a marketer reading NPS expects the Net Promoter Score, %
// promoters (9–10) − % detractors (0–6), −100…100 (Bain & Company / Satmetrix), not a mean of
// answers. Per stage, the stages answer gives the NPS Submitted answers, promoters, passives,
// detractors and the score (and the mean answer, on its own 0–10 scale); the mean score is of
// Survey Answered alone (CSAT answers here), never mixed with NPS answers. The CLI prints both;
// the live metric counts the answers by stage and category, so that Prometheus gives the same
// score. Before, the stage's mean_score mixed NPS 0–10 answers with CSAT 1–5 ones, and no NPS
// was given anywhere.
func TestNPSIsPromotersMinusDetractors(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	type answer struct {
		stageEvent, survey string // the event that puts the person in a stage, the survey event
		score              int
	}
	// conversion: NPS 10, 9 (promoters), 8, 7 (passives), 6, 3, 0 (detractors): (2 − 3) / 7.
	// awareness: NPS 10, 10, 5 (two promoters, one detractor): (2 − 1) / 3. CSAT 5 and 4 in conversion.
	var answers []answer
	for _, v := range []int{10, 9, 8, 7, 6, 3, 0} {
		answers = append(answers, answer{"Order Completed", "NPS Submitted", v})
	}
	for _, v := range []int{10, 10, 5} {
		answers = append(answers, answer{"Product Viewed", "NPS Submitted", v})
	}
	answers = append(answers, answer{"Order Completed", "Survey Answered", 5}, answer{"Order Completed", "Survey Answered", 4})
	var events []string
	for i, a := range answers {
		events = append(events,
			fmt.Sprintf(`{"type":"track","userId":"nps%d","event":%q,"messageId":"nps%d-1","timestamp":"2025-10-01T10:00:00Z"}`, i, a.stageEvent, i),
			fmt.Sprintf(`{"type":"track","userId":"nps%d","event":%q,"messageId":"nps%d-2","timestamp":"2025-10-01T10:05:00Z","properties":{"score":%d}}`, i, a.survey, i, a.score))
	}
	s.sendBatch(t, events...)
	s.waitStored(t)

	code, body := httpGet(t, "http://"+s.http+"/api/v1/stages?from=2025-10-01&to=2025-10-02")
	var res struct {
		Stages []struct {
			Stage           string
			SurveyResponses int64    `json:"survey_responses"`
			MeanScore       *float64 `json:"mean_score"`
			NPS             *struct {
				Responses, Promoters, Passives, Detractors int64
				Score                                      float64
				MeanAnswer                                 float64 `json:"mean_answer"`
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &res); code != 200 || err != nil {
		t.Fatalf("stages: %d %s", code, body)
	}
	got := map[string]string{}
	for _, st := range res.Stages {
		line := fmt.Sprintf("surveys %d", st.SurveyResponses)
		if st.MeanScore != nil {
			line += fmt.Sprintf(" mean %v", *st.MeanScore)
		}
		if st.NPS != nil {
			line += fmt.Sprintf(" nps %d: %d/%d/%d score %v mean answer %v", st.NPS.Responses, st.NPS.Promoters, st.NPS.Passives, st.NPS.Detractors, st.NPS.Score, st.NPS.MeanAnswer)
		}
		got[st.Stage] = line
	}
	want := map[string]string{
		"awareness":     "surveys 0 nps 3: 2/0/1 score 33.33 mean answer 8.3333",
		"consideration": "surveys 0",
		"conversion":    "surveys 2 mean 4.5 nps 7: 2/2/3 score -14.29 mean answer 6.1429",
		"loyalty":       "surveys 0",
		"advocacy":      "surveys 0",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stages\n%v\nwant\n%v\n(%s)", got, want, body)
	}

	// The CLI prints each stage's NPS and its split beside the survey mean.
	out := s.waymark(t, "stages", "--from", "2025-10-01", "--to", "2025-10-02")
	for _, want := range []string{"NPS", "PROMOTERS/PASSIVES/DETRACTORS", "33.33", "2/0/1", "-14.29", "2/2/3", "4.50"} {
		if !strings.Contains(out, want) {
			t.Errorf("waymark stages lacks %q:\n%s", want, out)
		}
	}

	// The live metric counts the answers by stage and category: the same scores.
	metrics := scrape(t, s.http)
	for stage, counts := range map[string][3]int{"awareness": {2, 0, 1}, "conversion": {2, 2, 3}} {
		for i, category := range sessionize.NPSCategories() {
			series := fmt.Sprintf(`waymark_journey_nps_responses_total{category=%q,stage=%q}`, category, stage)
			if got := scrapedValue(metrics, series); got != float64(counts[i]) {
				t.Errorf("%s = %v, want %d", series, got, counts[i])
			}
		}
	}
}
