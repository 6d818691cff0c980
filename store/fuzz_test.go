package store

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzParseFunnelQuery: any query parameters give a valid query or an error that starts with the
// parameter at fault; nothing panics. A valid query stays within what ClickHouse can run: times in
// 1970-01-01 … 2100-01-01, steps and exclusions of at most MaxTextBytes.
// (TestValidatedParametersNeverFailOnClickHouse runs such queries on a real ClickHouse.)
func FuzzParseFunnelQuery(f *testing.F) {
	f.Add("Product Viewed,Order Completed", "24h", "2017-11-25", "2017-12-01T00:00:00Z", "ordered", "", "persons", "channel")
	f.Add("a", "7d", "", "", "strict", "Coupon Removed:1-2", "sessions", "trait:customer_type")
	f.Add("x' OR 1=1 --", "1h); DROP TABLE events; --", "2017-13-40", "yesterday", "any", "x:0-9", "people", "property:")
	f.Add(",,,", "0d", "", "", "", ":1-", "", "device:x")
	f.Add("V,V,V,V,V,V,V,V,V,V,V,V", "213504d", "0001-01-01", "9999-12-31", "any", "V:1-99999999999999999999", "persons", "property:a")
	f.Add("V[a>NaN;b~=(?P<x>a);c=1|2]", "366d", "1970-01-01", "2100-01-01T00:00:00.001Z", "strict", "V[a>1]:1-2", "sessions", "channel")
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
			if x.After < 1 || x.Before > len(q.Steps) || x.After >= x.Before || len(x.Step) > MaxTextBytes {
				t.Fatalf("accepted an invalid exclusion: %+v", x)
			}
		}
		if len(q.Exclusions) > MaxExclusions {
			t.Fatalf("accepted %d exclusions", len(q.Exclusions))
		}
		for _, tm := range []time.Time{q.From, q.To} {
			if !tm.IsZero() && (tm.UnixMilli() < 0 || tm.After(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC))) {
				t.Fatalf("accepted a time ClickHouse cannot hold: %s", tm)
			}
		}
		if !q.From.IsZero() && !q.To.IsZero() && (!q.From.Before(q.To) || q.To.Sub(q.From) > MaxWindow) {
			t.Fatalf("accepted the range %s to %s", q.From, q.To)
		}
		for _, step := range q.Steps {
			if len(step) > MaxTextBytes {
				t.Fatalf("accepted a step of %d bytes", len(step))
			}
		}
	})
}
