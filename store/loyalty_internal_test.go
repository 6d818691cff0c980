package store

import (
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/waymark-dev/waymark/sessionize"
)

// TestStageScoresAddExactly: a stage's mean score is the same whatever order its scores come in
// (persons come in ClickHouse's grouping order, which changes from run to run), exact where a
// float64 sum is not, and finite and encodable for the largest scores.
func TestStageScoresAddExactly(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		scores []float64
		want   float64
	}{
		{"cancelling giants", append([]float64{1e17, -1e17}, ones(9998)...), 0.9998},
		{"tenths", []float64{0.1, 0.2, 0.3, 0.4, 0.1, 0.2, 0.3, 0.4, 1e-300, -1e-300}, 0.2},
		{"largest scores", []float64{1.7e308, 1.7e308, 1e305}, 1.1336666666666666e308}, // a float64 sum overflows
		{"huge and small", []float64{1e305, 1}, 5e304},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tt := range tests {
		for round := range 5 {
			a := stageAggs{stages: make([]stageAgg, 1)}
			rng.Shuffle(len(tt.scores), func(i, j int) { tt.scores[i], tt.scores[j] = tt.scores[j], tt.scores[i] })
			for _, s := range tt.scores {
				score, ok := sessionize.ReadScore(strconv.FormatFloat(s, 'g', -1, 64))
				if !ok {
					t.Fatalf("%v reads as no score", s)
				}
				a.respond(0, false, score)
			}
			got := meanScore(a.stages[0].scoreSum, a.stages[0].responses)
			if got != tt.want {
				t.Errorf("%s, order %d: mean %v, want %v", tt.name, round, got, tt.want)
			}
			if _, err := json.Marshal(got); err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
		}
	}
}

func ones(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = 1
	}
	return out
}
