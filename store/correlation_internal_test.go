package store

import (
	"fmt"
	"strings"
	"testing"
)

// TestCorrelationResultRules: PostHog's rules over given counts, no ClickHouse: a touchpoint
// done by fewer than min(25, 2% of the units) is left out, either side empty lists nothing, a
// side over ten times the other is skewed, and each side is sorted by its odds ratio (ties by
// label) and cut at the limit.
func TestCorrelationResultRules(t *testing.T) {
	for _, tt := range []struct {
		name    string
		success map[string]int64
		failure map[string]int64
		S, F    int64
		limit   int
		want    string
		skewed  bool
		leftOut int
	}{
		{"2% of 100 units is 2: one unit's touchpoint is left out", map[string]int64{"A": 1, "B": 2}, map[string]int64{"C": 1}, 50, 50, 10,
			"success B 2/0 3.1224", false, 2}, // (2+1)(50-0+1)/((50-2+1)(0+1)) = 153/49,
		{"min(25, 2% of 2000): a touchpoint of 25 units is listed, of 24 not", map[string]int64{"A": 25, "B": 24}, nil, 1000, 1000, 10,
			"success A 25/0 26.666", false, 1}, // 26·1001/(976·1),
		{"no failures: nothing listed, skewed", map[string]int64{"A": 3}, nil, 3, 0, 10, "", true, 0},
		{"eleven times: skewed", map[string]int64{"A": 11}, map[string]int64{"A": 1}, 11, 1, 10, "success A 11/1 6", true, 0}, // 12·1/(1·2),
		{"ties by label, the limit per side", map[string]int64{"B": 2, "A": 2, "C": 1}, map[string]int64{"D": 2, "E": 1}, 4, 4, 1,
			"success A 2/0 5; failure D 0/2 0.2", false, 0},
	} {
		c := correlationCounts{success: tt.success, failure: tt.failure, successTotal: tt.S, failureTotal: tt.F}
		if c.failure == nil {
			c.failure = map[string]int64{}
		}
		res := c.result(tt.limit, nil)
		var got []string
		for _, e := range res.Events {
			got = append(got, fmt.Sprintf("%s %s %d/%d %v", e.CorrelationType, e.Value, e.SuccessCount, e.FailureCount, e.OddsRatio))
		}
		if g := strings.Join(got, "; "); g != tt.want || res.Skewed != tt.skewed || res.LeftOut != tt.leftOut {
			t.Errorf("%s: %q, skewed %t, left out %d; want %q, %t, %d", tt.name, g, res.Skewed, res.LeftOut, tt.want, tt.skewed, tt.leftOut)
		}
	}
}
