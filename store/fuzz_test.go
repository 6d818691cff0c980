package store

import (
	"strings"
	"testing"
)

// FuzzParseFunnelQuery: any query parameters give a valid query or an error that starts with the
// parameter at fault; nothing panics.
func FuzzParseFunnelQuery(f *testing.F) {
	f.Add("Product Viewed,Order Completed", "24h", "2017-11-25", "2017-12-01T00:00:00Z")
	f.Add("a", "7d", "", "")
	f.Add("x' OR 1=1 --", "1h); DROP TABLE events; --", "2017-13-40", "yesterday")
	f.Add(",,,", "0d", "", "")
	f.Fuzz(func(t *testing.T, steps, window, from, to string) {
		q, err := ParseFunnelQuery(steps, window, from, to)
		if err != nil {
			param, _, _ := strings.Cut(err.Error(), ":")
			switch param {
			case "steps", "window", "from", "to":
			default:
				t.Fatalf("error does not start with a parameter: %v", err)
			}
			return
		}
		if len(q.Steps) == 0 || len(q.Steps) > MaxFunnelSteps || q.Window <= 0 {
			t.Fatalf("accepted an invalid query: %+v", q)
		}
	})
}
