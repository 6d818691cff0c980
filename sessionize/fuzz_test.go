package sessionize

import (
	"context"
	"math"
	"math/big"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/waymark-dev/waymark/ingest"
)

// FuzzParseMap: any YAML either parses into a valid map whose rules can be evaluated, or fails
// with a journey-map error; nothing panics. (Errors of the map's content name their line, see
// TestParseMapErrorsNameLineAndField; some YAML syntax errors carry none.)
func FuzzParseMap(f *testing.F) {
	f.Add(string(DefaultMapYAML()))
	f.Add("version: v\nstages:\n  - name: a\n    rules:\n      - where:\n          - field: x\n            gt: 1\n")
	f.Add("version: v\nstages: [{name: a, rules: [{event: [A], nth: 2, channel: [email]}]}]\n")
	f.Add("version: v\nchannels: [{channel: x, medium: [y]}]\nstages: [{name: a, rules: [{type: [page]}]}]\n")
	f.Add(":\n- [")
	f.Fuzz(func(t *testing.T, data string) {
		m, err := ParseMap([]byte(data))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "journey map") {
				t.Fatalf("error does not say it is about the journey map: %v", err)
			}
			return
		}
		e := ingest.Event{Type: "track", Event: "A", PropertyKeys: []string{"x"}, PropertyValues: []string{"2"}}
		for _, st := range m.Stages {
			for _, r := range st.Rules {
				r.Matches(&e, m.Channel(&e))
			}
		}
	})
}

// FuzzRunnerMetrics: any message the decoder accepts, however odd its values (amounts, times,
// ids, names), goes through the sessionizer and the live metrics without a panic, and leaves
// every metric finite. Each input is pushed twice and next to ordinary events of the same
// customer, so identity links, duplicates, stage entries and amounts all meet it.
func FuzzRunnerMetrics(f *testing.F) {
	for _, seed := range []string{
		`{"type":"track","event":"Order Completed","userId":"u","properties":{"revenue":-5}}`,
		`{"type":"track","event":"Order Completed","userId":"u","properties":{"total":"NaN"}}`,
		`{"type":"track","event":"Order Completed","userId":"u","properties":{"revenue":"Infinity"}}`,
		`{"type":"track","event":"Order Completed","userId":"u","properties":{"revenue":1e308}}`,
		`{"type":"track","event":"Order Refunded","userId":"u","properties":{"total":"-1e999"}}`,
		`{"type":"identify","userId":"u","anonymousId":"a","traits":{"x":[1,{"y":null}]}}`,
		`{"type":"alias","userId":"u","previousId":"u"}`,
		`{"type":"page","anonymousId":"a","timestamp":"2099-12-31T23:59:59.999999999Z","context":{"page":{"url":"http://x/?gclid=%zz","referrer":"::"}}}`,
		`{"type":"track","event":"Order Completed","userId":"u","originalTimestamp":"2026-01-01T00:00:00Z","sentAt":"2025-01-01T00:00:00Z"}`,
		`{"type":"screen","userId":"","anonymousId":-1.0e0,"name":"\u0000","context":{"sessionId":1e999}}`,
	} {
		f.Add([]byte(seed))
	}
	m, err := LoadMap("")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := ingest.Decode(raw, "fuzz", base)
		if err != nil {
			return
		}
		s, err := New(Config{}, m)
		if err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		r, err := NewRunner(s, nil, nil, reg)
		if err != nil {
			t.Fatal(err)
		}
		other := at(e.CustomerKey(), "Order Completed", 0)
		other.PropertyKeys, other.PropertyValues = []string{"revenue"}, []string{"10"}
		for range 2 {
			if _, err := r.Prepare(context.Background(), []ingest.Event{other, e}); err != nil {
				t.Fatal(err)
			}
		}
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, fam := range families {
			for _, mt := range fam.GetMetric() {
				for _, v := range []float64{mt.GetCounter().GetValue(), mt.GetGauge().GetValue(), mt.GetHistogram().GetSampleSum()} {
					if math.IsNaN(v) || math.IsInf(v, 0) {
						t.Fatalf("%s %v = %v after %s", fam.GetName(), mt.GetLabel(), v, raw)
					}
				}
			}
		}
	})
}

// FuzzDecimalCompare: Decimal.Compare orders two decimal numbers as exact rationals do
// (math/big), for exponents small enough for big.Rat; a text ParseDecimal refuses is no
// number big.Rat reads in that form.
func FuzzDecimalCompare(f *testing.F) {
	for _, pair := range [][2]string{{"100", "1e2"}, {"+5", "5."}, {".5", "0.50"}, {"-0", "0e5"}, {"100.000000000000000001", "100"},
		{"1e400", "-1e400"}, {"00100", "99.99"}, {" 100", "100"}, {"0x10", "16"}} {
		f.Add(pair[0], pair[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		da, okA := ParseDecimal(a)
		db, okB := ParseDecimal(b)
		if !okA || !okB {
			return
		}
		small := func(s string) bool {
			_, exp, _ := strings.Cut(strings.ToLower(s), "e")
			return len(strings.TrimLeft(strings.TrimLeft(exp, "+-"), "0")) <= 3
		}
		if !small(a) || !small(b) {
			return
		}
		ra, okRA := new(big.Rat).SetString(strings.TrimSuffix(strings.Replace(a, ".e", "e", 1), "."))
		rb, okRB := new(big.Rat).SetString(strings.TrimSuffix(strings.Replace(b, ".e", "e", 1), "."))
		if !okRA || !okRB {
			t.Fatalf("big.Rat reads %q: %v, %q: %v", a, okRA, b, okRB)
		}
		if got, want := da.Compare(db), ra.Cmp(rb); got != want {
			t.Fatalf("%q vs %q: Compare %d, big.Rat %d (%+v, %+v)", a, b, got, want, da, db)
		}
	})
}
