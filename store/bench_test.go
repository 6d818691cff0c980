package store_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/store"
)

// BenchmarkJourneyQueries measures the journey queries over synthetic events generated inside
// ClickHouse: WAYMARK_BENCH_EVENTS of them (default 10,000,000) for 1,000,000 persons. It reports
// each query's median as p50-ms. WAYMARK_BENCH_CLICKHOUSE=host:port/database measures an existing
// database instead. Run with
//
//	go test -run '^$' -bench JourneyQueries -benchtime 5x -timeout 60m ./store
func BenchmarkJourneyQueries(b *testing.B) {
	n := 10_000_000
	if v, err := strconv.Atoi(os.Getenv("WAYMARK_BENCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	var s *store.Store
	if addr := os.Getenv("WAYMARK_BENCH_CLICKHOUSE"); addr != "" {
		// An existing server and database of generated events, to measure again without
		// generating them again: WAYMARK_BENCH_CLICKHOUSE=host:port/database.
		addr, db, _ := strings.Cut(addr, "/")
		var err error
		cfg := store.Config{Addr: addr, Database: db, QueryTimeout: 30 * time.Minute, QueryMaxMemory: 16 << 30}
		if s, err = store.Open(ctx, cfg, slog.New(slog.DiscardHandler), nil); err != nil {
			b.Fatal(err)
		}
		defer s.Close()
	} else {
		s = openStore(b)
		start := time.Now()
		if err := s.GenerateSynthetic(ctx, n, 1_000_000); err != nil {
			b.Fatal(err)
		}
		b.Logf("generated %d events in %s", n, time.Since(start).Round(time.Millisecond))
	}
	jm := defaultMap(b)
	steps3 := []string{"Product Viewed", "Product Added", "Order Completed"}
	steps5 := []string{"Product Viewed", "Product Added", "Checkout Started", "Order Completed", "Product Reviewed"}
	day := 24 * time.Hour
	queries := []struct {
		name string
		run  func() error
	}{
		{"funnel-3-steps", func() error {
			_, err := s.Funnel(ctx, jm, store.FunnelQuery{Steps: steps3, Window: day})
			return err
		}},
		{"funnel-5-steps-by-channel", func() error {
			_, err := s.Funnel(ctx, jm, store.FunnelQuery{Steps: steps5, Window: 7 * day, Breakdown: store.Breakdown{By: "channel"}})
			return err
		}},
		{"dropoff", func() error {
			_, err := s.Dropoff(ctx, jm, store.DropoffQuery{Funnel: store.FunnelQuery{Steps: steps3, Window: day}, Step: 2})
			return err
		}},
		{"next", func() error {
			_, err := s.Next(ctx, jm, store.NextQuery{Anchor: "Product Added", Direction: "next", Window: day, Limit: 10})
			return err
		}},
	}
	for _, q := range queries {
		b.Run(q.name, func(b *testing.B) {
			var took []time.Duration
			for b.Loop() {
				start := time.Now()
				if err := q.run(); err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(start))
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Milliseconds()), "p50-ms")
		})
	}
}

// BenchmarkHostileFunnel measures row 3 of the hostile-input table end to end on ClickHouse: one
// person's same-second events through a funnel repeating their event (12 and 12 took 221 s before
// the matching by groups).
func BenchmarkHostileFunnel(b *testing.B) {
	for _, c := range []struct{ events, steps int }{{10, 10}, {12, 12}, {1000, 32}} {
		b.Run(fmt.Sprintf("events=%d/steps=%d", c.events, c.steps), func(b *testing.B) {
			s := openStore(b)
			writeEvents(b, s, tiedEvents("bot", "V", c.events))
			q := store.FunnelQuery{Steps: strings.Split(repeat("V", c.steps), ","), Window: 24 * time.Hour}
			jm := defaultMap(b)
			for b.Loop() {
				res, err := s.Funnel(context.Background(), jm, q)
				if err != nil {
					b.Fatal(err)
				}
				if got := res.Steps[c.steps-1].Customers; got != 1 {
					b.Fatalf("%d customers reach the last step, want 1", got)
				}
			}
		})
	}
}
