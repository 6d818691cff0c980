package sessionize

import "testing"

// TestNetPromoterScore: an NPS answer is a promoter from 9, a detractor up to 6, a passive
// between (Bain & Company / Satmetrix), and the score is % promoters − % detractors, −100…100,
// to 2 decimals; not a mean.
func TestNetPromoterScore(t *testing.T) {
	for _, tt := range []struct {
		score string
		want  string
	}{
		{"10", NPSPromoter}, {"9", NPSPromoter}, {"8.99", NPSPassive}, {"8", NPSPassive}, {"7", NPSPassive},
		{"6.5", NPSPassive}, {"6", NPSDetractor}, {"0", NPSDetractor}, {"9e0", NPSPromoter}, {"0.9e1", NPSPromoter},
		// The bounds are compared with the score as written, as a step filter [score>=9]
		// compares it (docs/values.md), not with the float64 nearest it: 9 and 6 here
		// (tester 58's F1).
		{"8.99999999999999999999", NPSPassive}, {"6.00000000000000000001", NPSPassive},
		{"9.00000000000000000000", NPSPromoter}, {"5.99999999999999999999", NPSDetractor},
	} {
		score, ok := ReadScore(tt.score)
		if !ok {
			t.Fatalf("ReadScore(%q) reads no number", tt.score)
		}
		if got := NPSCategory(score); got != tt.want {
			t.Errorf("NPSCategory(%s) = %s, want %s", tt.score, got, tt.want)
		}
	}
	for _, tt := range []struct {
		promoters, detractors, responses int64
		want                             float64
	}{
		{2, 3, 7, -14.29}, // 10, 9, 8, 7, 6, 3, 0
		{2, 1, 3, 33.33},
		{5, 0, 5, 100},
		{0, 4, 4, -100},
		{1, 1, 10, 0},
		{0, 0, 0, 0}, // no answer
		{1, 0, 8, 12.5},
	} {
		if got := NetPromoterScore(tt.promoters, tt.detractors, tt.responses); got != tt.want {
			t.Errorf("NetPromoterScore(%d, %d, %d) = %v, want %v", tt.promoters, tt.detractors, tt.responses, got, tt.want)
		}
	}
}

// TestSurveyScoreScale: a score counts when it is a number within its survey's scale (0–10),
// compared with the bounds as written, as a step filter [score>10] compares it: a score the
// filter finds above 10 is out of scale, though the float64 nearest it is 10 (tester 58's F1).
func TestSurveyScoreScale(t *testing.T) {
	for _, tt := range []struct {
		event, text string
		value       float64
		ignored     string
	}{
		{NPSEvent, "10", 10, ""},
		{NPSEvent, "0", 0, ""},
		{NPSEvent, "-0", 0, ""},
		{NPSEvent, "1e1", 10, ""},
		{NPSEvent, "10.00000000000000000000", 10, ""},
		{NPSEvent, "10.0000000000000000001", 0, ScoreOutOfScale},
		{NPSEvent, "1.00000000000000000001e1", 0, ScoreOutOfScale},
		{SurveyAnsweredEvent, "-0.0000000000000000000001", 0, ScoreOutOfScale},
		{SurveyAnsweredEvent, "10.5", 0, ScoreOutOfScale},
		{SurveyAnsweredEvent, "1e400", 0, ScoreNotFinite},
		{SurveyAnsweredEvent, "Infinity", 0, ScoreNotFinite},
		{SurveyAnsweredEvent, "great", 0, ScoreNotANumber},
	} {
		score, ignored, ok := SurveyScore(tt.event, tt.text)
		if ignored != tt.ignored || ok != (tt.ignored == "") || ok && score.Value != tt.value {
			t.Errorf("SurveyScore(%s, %q) = %v, %q, %v; want %v, %q", tt.event, tt.text, score.Value, ignored, ok, tt.value, tt.ignored)
		}
	}
}
