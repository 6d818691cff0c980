package store

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzParseFunnelQuery: any query parameters give a valid query or an error that starts with the
// parameter at fault; nothing panics.
func FuzzParseFunnelQuery(f *testing.F) {
	f.Add("Product Viewed,Order Completed", "24h", "2017-11-25", "2017-12-01T00:00:00Z", "ordered", "", "persons", "channel")
	f.Add("a", "7d", "", "", "strict", "Coupon Removed:1-2", "sessions", "trait:customer_type")
	f.Add("x' OR 1=1 --", "1h); DROP TABLE events; --", "2017-13-40", "yesterday", "any", "x:0-9", "people", "property:")
	f.Add(",,,", "0d", "", "", "", ":1-", "", "device:x")
	f.Fuzz(func(t *testing.T, steps, window, from, to, mode, exclude, countBy, breakdown string) {
		v := url.Values{"steps": {steps}, "window": {window}, "from": {from}, "to": {to}, "mode": {mode},
			"exclude": {exclude}, "count_by": {countBy}, "breakdown": {breakdown}}
		q, err := ParseFunnelQuery(v)
		if err != nil {
			param, _, _ := strings.Cut(err.Error(), ":")
			if _, ok := v[param]; !ok {
				t.Fatalf("error does not start with a parameter: %v", err)
			}
			return
		}
		if len(q.Steps) == 0 || len(q.Steps) > MaxFunnelSteps || q.Window <= 0 || q.Window > MaxWindow {
			t.Fatalf("accepted an invalid query: %+v", q)
		}
		for _, x := range q.Exclusions {
			if x.After < 1 || x.Before > len(q.Steps) || x.After >= x.Before {
				t.Fatalf("accepted an invalid exclusion: %+v", x)
			}
		}
	})
}
