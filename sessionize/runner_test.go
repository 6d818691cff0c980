package sessionize

import (
	"cmp"
	"context"
	"maps"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/waymark-dev/waymark/ingest"
)

// TestRunnerMetricsTakeRefundsAndOddAmounts: a refund once panicked in the revenue counter
// ("counter cannot decrease in value"), and "NaN" or 1e308 twice made it NaN or +Inf. Preparing
// them now counts refunds apart, leaves odd amounts out by reason, and every metric stays finite.
// Amounts are summed per currency (properties.currency, ISO 4217, any case): 10,000 JPY and 100
// USD were one revenue of 10,100 (tester 19's T4); a currency that is no code is left out. An
// amount whose event names no currency (absent or blank) is in Config.DefaultCurrency: USD by
// default, as Segment's spec assumes, not a series of its own (tester 37's F4), unless it is
// none.
func TestRunnerMetricsTakeRefundsAndOddAmounts(t *testing.T) {
	for _, tt := range []struct {
		defaultCurrency string
		want            map[string]float64 // besides the metrics every currency gives
	}{
		{"", map[string]float64{"waymark_journey_revenue_total{direct}{USD}": 145, "waymark_journey_refunds_total{direct}{USD}": 6,
			"waymark_journey_refunds_total{direct}{EUR}": 3}},
		{"none", map[string]float64{"waymark_journey_revenue_total{direct}{none}": 45, "waymark_journey_revenue_total{direct}{USD}": 100,
			"waymark_journey_refunds_total{direct}{none}": 6, "waymark_journey_refunds_total{direct}{EUR}": 3}},
		{"EUR", map[string]float64{"waymark_journey_revenue_total{direct}{EUR}": 45, "waymark_journey_revenue_total{direct}{USD}": 100,
			"waymark_journey_refunds_total{direct}{EUR}": 9}},
	} {
		t.Run(cmp.Or(tt.defaultCurrency, "default"), func(t *testing.T) { checkRunnerAmounts(t, Config{DefaultCurrency: tt.defaultCurrency}, tt.want) })
	}
}

// checkRunnerAmounts prepares orders of odd amounts and currencies on a runner of a sessionizer
// configured by cfg, and checks the metrics: want's and those every default currency gives.
func checkRunnerAmounts(t *testing.T, cfg Config, want map[string]float64) {
	jm, err := LoadMap("")
	if err != nil {
		t.Fatal(err)
	}
	sz, err := New(cfg, jm)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	r, err := NewRunner(sz, nil, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	var events []ingest.Event
	for i, props := range []string{`{"revenue":40}`, `{"revenue":-5}`, `{"total":-1}`, `{"revenue":"NaN"}`, `{"revenue":"Infinity"}`,
		`{"revenue":1e308}`, `{"revenue":1e308}`, `{"revenue":"-Infinity"}`, `{"revenue":10000,"currency":"JPY"}`,
		`{"revenue":100,"currency":"usd"}`, `{"revenue":7,"currency":"US$"}`, `{"revenue":-3,"currency":"EUR"}`, `{"revenue":5,"currency":" "}`} {
		raw := `{"type":"track","event":"Order Completed","userId":"u","messageId":"o` + string(rune('a'+i)) + `","properties":` + props + `}`
		e, err := ingest.Decode([]byte(raw), "t", base)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
	if _, err := r.Prepare(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			name := f.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetValue() + "}"
			}
			for _, v := range []float64{m.GetCounter().GetValue(), m.GetGauge().GetValue(), m.GetHistogram().GetSampleSum()} {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Errorf("%s = %v", name, v)
				}
			}
			got[name] = m.GetCounter().GetValue()
		}
	}
	every := map[string]float64{
		"waymark_journey_revenue_total{direct}{JPY}":              10000,
		"waymark_journey_orders_total{direct}":                    13,
		"waymark_journey_amounts_ignored_total{not_finite}":       3,
		"waymark_journey_amounts_ignored_total{out_of_range}":     2,
		"waymark_journey_amounts_ignored_total{unknown_currency}": 1,
	}
	maps.Copy(every, want)
	for name, want := range every {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
	for name, v := range got {
		if _, ok := every[name]; !ok && v != 0 && strings.HasPrefix(name, "waymark_journey_re") {
			t.Errorf("%s = %v, want none", name, v)
		}
	}
}
