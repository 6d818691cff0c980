package sessionize

import "testing"

// TestNetPromoterScore: an NPS answer is a promoter from 9, a detractor up to 6, a passive
// between (Bain & Company / Satmetrix), and the score is % promoters − % detractors, −100…100,
// to 2 decimals; not a mean.
func TestNetPromoterScore(t *testing.T) {
	for _, tt := range []struct {
		score float64
		want  string
	}{
		{10, NPSPromoter}, {9, NPSPromoter}, {8.99, NPSPassive}, {8, NPSPassive}, {7, NPSPassive},
		{6.5, NPSPassive}, {6, NPSDetractor}, {0, NPSDetractor},
	} {
		if got := NPSCategory(tt.score); got != tt.want {
			t.Errorf("NPSCategory(%v) = %s, want %s", tt.score, got, tt.want)
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
