package sessionize

import "math"

// ScoreProperty is the property of a survey event that holds its answer's score.
const ScoreProperty = "score"

// NPSEvent is the survey event that answers the Net Promoter question ("How likely is it that you
// would recommend us to a friend or colleague?", 0–10): its answers make a Net Promoter Score
// (NetPromoterScore), never a mean mixed with other surveys' scores.
const NPSEvent = "NPS Submitted"

// SurveyAnsweredEvent carries the answer of any survey (CSAT 1–5, CES 1–7, …): its scores make a
// mean, apart from NPSEvent's.
const SurveyAnsweredEvent = "Survey Answered"

// The categories of an answer to the Net Promoter question (NPSCategory).
const (
	NPSPromoter  = "promoter"  // 9–10
	NPSPassive   = "passive"   // 7–8
	NPSDetractor = "detractor" // 0–6
)

// NPSCategories lists the categories NPSCategory gives.
func NPSCategories() []string { return []string{NPSPromoter, NPSPassive, NPSDetractor} }

// NPSCategory returns the category of a score of NPSEvent within its scale (SurveyScore):
// promoters answer 9 or 10, passives 7 or 8, detractors 0 to 6, as Bain & Company and Satmetrix
// define the Net Promoter Score (Reichheld, "The One Number You Need to Grow", Harvard Business
// Review, 2003; Qualtrics, Delighted and Hotjar report it so). A fraction, which the 0–10
// question does not give, falls by the same bounds: above 6 and below 9 is passive. The bounds
// are compared with the score as written (Score.Exact), as a step filter [score>=9] compares it:
// 8.99999999999999999999 is a passive, though the float64 nearest it is 9.
func NPSCategory(score Score) string {
	switch {
	case score.Exact.Compare(decimalOf(9)) >= 0:
		return NPSPromoter
	case score.Exact.Compare(decimalOf(6)) <= 0:
		return NPSDetractor
	}
	return NPSPassive
}

// NetPromoterScore returns the Net Promoter Score of responses answers to NPSEvent of which
// promoters and detractors (NPSCategory): the percentage of promoters minus the percentage of
// detractors, from −100 (all detractors) to 100 (all promoters), rounded to 2 decimals; 0 when
// there is no answer.
func NetPromoterScore(promoters, detractors, responses int64) float64 {
	if responses == 0 {
		return 0
	}
	return math.Round(float64(promoters-detractors)*1e4/float64(responses)) / 100
}

// SurveyScale returns the scale [lo, hi] of the score a survey event carries (ScoreProperty),
// and false when event is no survey event. NPS Submitted answers the Net Promoter question,
// 0–10 (Reichheld, "The One Number You Need to Grow", 2003). Survey Answered carries any survey
// (CSAT 1–5, CES 1–7, NPS 0–10) and states none, so it takes the widest of those, 0–10, the range
// the journey map page draws its emotional curve on. The one place that knows the scales: the
// stages query and the live metrics read them here.
func SurveyScale(event string) (lo, hi float64, ok bool) {
	switch event {
	case NPSEvent, SurveyAnsweredEvent:
		return 0, 10, true
	}
	return 0, 0, false
}

// Why a survey score is left out of a stage's mean score or Net Promoter Score.
const (
	ScoreNotANumber = "not_a_number" // not a JSON number or numeric string, e.g. "great", true, [5] ({} and null are no value: no score)
	ScoreNotFinite  = "not_finite"   // NaN or ±Infinity (as strings), or beyond float64 (1e999)
	ScoreOutOfScale = "out_of_scale" // outside the survey's scale (SurveyScale), e.g. 11 or -50
	// ScoreNoStage is a score that counts (SurveyScore) given before its person entered any
	// journey stage: a mean is per stage, and there is none to put it in (a survey e-mailed to
	// a customer whose orders another system records). A score that cannot count keeps its own
	// reason.
	ScoreNoStage = "no_stage"
)

// ScoreReasons lists the reasons a score is left out of the stages' mean scores: those
// SurveyScore gives, and ScoreNoStage.
func ScoreReasons() []string {
	return []string{ScoreNotANumber, ScoreNotFinite, ScoreOutOfScale, ScoreNoStage}
}

// Score is a survey answer's score read by the number rule every stored number is read by
// (ReadScore): Value, the float64 nearest it, is what means add up; Exact, the number as written,
// is what its scale (SurveyScore) and its NPS category (NPSCategory) are decided on, exactly, as
// a step filter decides (docs/values.md: "compared exactly as written, never rounded through
// float64"); Text is the stored text, a decimal number (NumberPattern).
type Score struct {
	Text  string
	Value float64
	Exact Decimal
}

// ReadScore reads a stored text as a Score, and false when it is no number (ParseNumber). A
// number beyond float64's range has a Value of ±Inf.
func ReadScore(text string) (Score, bool) {
	f, ok := ParseNumber(text)
	if !ok {
		return Score{}, false
	}
	d, _ := ParseDecimal(text)
	return Score{Text: text, Value: f, Exact: d}, true
}

// SurveyScore reads the score text (the stored value of ScoreProperty) of a survey event named
// event (SurveyScale) by the number rule every stored number is read by (ReadScore). It returns
// the score and ok when it counts towards a mean; "" and !ok when there is none (no survey
// event, or the text is empty: the property unset); and a reason (ScoreNotANumber,
// ScoreNotFinite, ScoreOutOfScale) and !ok when a score was given that cannot count: one answer
// outside the scale would move a mean anywhere (one 1e6 among NPS answers, or two of 1.7e308),
// and the write key is public. The scale's bounds are compared with the score as written:
// 10.0000000000000000001 is out of scale, as [score>10] finds it. The event is stored all the
// same.
func SurveyScore(event, text string) (score Score, ignored string, ok bool) {
	lo, hi, survey := SurveyScale(event)
	if !survey || text == "" {
		return Score{}, "", false
	}
	score, number := ReadScore(text)
	switch {
	case math.IsInf(score.Value, 0) || !number && notFinite(text):
		return Score{}, ScoreNotFinite, false
	case !number:
		return Score{}, ScoreNotANumber, false
	case score.Exact.Compare(decimalOf(lo)) < 0 || score.Exact.Compare(decimalOf(hi)) > 0:
		return Score{}, ScoreOutOfScale, false
	}
	return score, "", true
}
