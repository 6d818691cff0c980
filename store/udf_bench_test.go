package store

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// BenchmarkServeFunnelUDF measures the UDF's own work per person (a chunk of 4,096 rows, each a
// person of 12 events over 2 customer keys and 4 visits), without ClickHouse: the plain funnel,
// and the two kinds that read visits. Run with
//
//	go test -run '^$' -bench ServeFunnelUDF -benchmem ./store
func BenchmarkServeFunnelUDF(b *testing.B) {
	const persons, events = 4096, 12
	for _, kind := range []string{"plain", "by-sessions", "by-entry"} {
		b.Run(kind, func(b *testing.B) {
			var spec string
			switch kind {
			case "plain":
				spec = specOf(b, twoStepPlan())
			case "by-sessions":
				spec = visitsSpec(b, true)
			default:
				spec = visitsSpec(b, false)
			}
			rows := make([]udfRow, persons)
			for p := range rows {
				r := udfRow{spec: spec}
				keys := []string{fmt.Sprintf("anon-%08d", p), fmt.Sprintf("user-%08d", p)}
				for i := range events {
					t := uint64(1_000_000 + i*5)
					r.t, r.seq, r.mask, r.id = append(r.t, t), append(r.seq, 0), append(r.mask, uint64(1+i%2)), append(r.id, uint64(p*events+i))
				}
				switch kind {
				case "by-sessions":
					for i := range events {
						r.attrs = append(r.attrs, keys[i*2/events])
					}
				case "by-entry":
					// Every event is a touchpoint (the entry condition, bit 4): its own
					// channel, then its key.
					for i := range events {
						r.mask[i] |= 4
						r.attrs = append(r.attrs, []string{"paid_search", "direct", "direct"}[i%3])
					}
					for i := range events {
						r.attrs = append(r.attrs, keys[i*2/events])
					}
				}
				if kind != "plain" {
					r.keys, r.visits = keys, []uint64{2, 2}
					for v := range 4 {
						start := uint64(1_000_000 + v*15)
						r.start, r.end, r.vseq = append(r.start, start), append(r.end, start+14), append(r.vseq, 0)
					} // no end reasons: a funnel reads none (spec version 21)
				}
				rows[p] = r
			}
			input := udfChunks(rows)
			b.SetBytes(int64(len(input)))
			b.ResetTimer()
			for b.Loop() {
				if err := ServeFunnelUDF(bytes.NewReader(input), io.Discard); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*persons), "ns/person")
		})
	}
}
