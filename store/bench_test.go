package store_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
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
		if err := s.GenerateSynthetic(ctx, n, 1_000_000, store.SyntheticOptions{}); err != nil {
			b.Fatal(err)
		}
		b.Logf("generated %d events in %s", n, time.Since(start).Round(time.Millisecond))
	}
	for _, q := range journeyQueries(b, s) {
		b.Run(q.name, func(b *testing.B) {
			b.ReportMetric(float64(measureQuery(b, q.run).Milliseconds()), "p50-ms")
		})
	}
}

// BenchmarkMergedPersons measures the journey queries over merged persons (issue 15, point 4): the
// events of BenchmarkJourneyQueries (WAYMARK_BENCH_EVENTS, default 10,000,000, for 1,000,000
// persons) with 40% of the customers browsing anonymously on a device before they log in. Each
// query runs on them twice, one run after the other so that both see the same load: with the
// persons table emptied, each id its own person (persons=unmerged), then with the persons rows
// that join each such device to its user (persons=merged). Each run reports the query's median as
// p50-ms and this process's peak resident memory during the run as peak-rss-MiB (the query
// process: ClickHouse runs in another); the merged run also reports the ratio of the two medians
// as merged/unmerged. The aims at 10M events: peak-rss-MiB ≤ 256 and merged/unmerged ≤ 1.2.
// Run with
//
//	go test -run '^$' -bench MergedPersons -benchtime 3x -timeout 60m ./store
func BenchmarkMergedPersons(b *testing.B) {
	n := 10_000_000
	if v, err := strconv.Atoi(os.Getenv("WAYMARK_BENCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	var db string
	s := openStoreWith(b, func(c *store.Config) {
		db = c.Database
		c.QueryTimeout = 30 * time.Minute // a measure, not a limit: the machine may be busy
	})
	start := time.Now()
	if err := s.GenerateSynthetic(ctx, n, 1_000_000, store.SyntheticOptions{MergedShare: 0.4}); err != nil {
		b.Fatal(err)
	}
	b.Logf("generated %d events in %s", n, time.Since(start).Round(time.Millisecond))
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{server.Addr}})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	exec := func(tb testing.TB, sql string) {
		tb.Helper()
		if err := conn.Exec(ctx, strings.ReplaceAll(sql, "DB.", "`"+db+"`.")); err != nil {
			tb.Fatalf("%s: %v", sql, err)
		}
	}
	var anonymous, persons, overrides uint64
	if err := conn.QueryRow(ctx, "SELECT countIf(user_id = ''), uniqExact(person_id) FROM `"+db+"`.events").Scan(&anonymous, &persons); err != nil {
		b.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT count() FROM `"+db+"`.persons").Scan(&overrides); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d events stored anonymously, %d persons at ingest, %d persons rows", anonymous, persons, overrides)
	// The persons rows are kept aside, to empty the table and fill it again around each query.
	exec(b, "CREATE TABLE DB.persons_merged AS DB.persons")
	exec(b, "INSERT INTO DB.persons_merged SELECT * FROM DB.persons")
	for _, q := range journeyQueries(b, s) {
		b.Run(q.name, func(b *testing.B) {
			var unmerged time.Duration
			for _, run := range []string{"unmerged", "merged"} {
				exec(b, "TRUNCATE TABLE DB.persons")
				if run == "merged" {
					exec(b, "INSERT INTO DB.persons SELECT * FROM DB.persons_merged")
				}
				b.Run("persons="+run, func(b *testing.B) {
					b.ReportAllocs()
					reset := resetPeakRSS()
					p50 := measureQuery(b, q.run)
					b.ReportMetric(float64(p50.Milliseconds()), "p50-ms")
					if peak, err := peakRSS(); reset && err == nil {
						b.ReportMetric(float64(peak)/(1<<20), "peak-rss-MiB")
					} else if err != nil {
						b.Log(err)
					}
					if run == "unmerged" {
						unmerged = p50
					} else if unmerged > 0 {
						b.ReportMetric(float64(p50)/float64(unmerged), "merged/unmerged")
					}
				})
			}
		})
	}
}

// journeyQuery is one query the journey benchmarks measure.
type journeyQuery struct {
	name string
	run  func() error
}

// journeyQueries are the queries the journey benchmarks measure on s, over the synthetic events.
func journeyQueries(tb testing.TB, s *store.Store) []journeyQuery {
	ctx := context.Background()
	jm := defaultMap(tb)
	steps3 := []string{"Product Viewed", "Product Added", "Order Completed"}
	steps5 := []string{"Product Viewed", "Product Added", "Checkout Started", "Order Completed", "Product Reviewed"}
	day := 24 * time.Hour
	return []journeyQuery{
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
}

// measureQuery runs query b.N times and returns its median time.
func measureQuery(b *testing.B, query func() error) time.Duration {
	b.Helper()
	var took []time.Duration
	for b.Loop() {
		start := time.Now()
		if err := query(); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	return took[len(took)/2]
}

// resetPeakRSS returns this process's free memory to the OS, so what earlier benchmarks left does
// not count, and resets the kernel's record of its peak resident memory to what it holds now
// (Linux's clear_refs); false where that cannot be done.
func resetPeakRSS() bool {
	debug.FreeOSMemory()
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// peakRSS reads this process's peak resident memory in bytes (VmHWM in /proc/self/status).
func peakRSS() (int64, error) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("read peak resident memory: %w", err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok { // "VmHWM:	   13468 kB"
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("read peak resident memory: %q: %w", line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("read peak resident memory: no VmHWM in /proc/self/status")
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

// BenchmarkFunnelMatching compares where a funnel's per-person matching runs (issue 16): in this
// process, or inside ClickHouse in the waymark_funnel UDF (the chdb engine only), over the
// synthetic events of BenchmarkJourneyQueries (WAYMARK_BENCH_EVENTS, default 10,000,000, for
// 1,000,000 persons). Per query it checks that both places give the same answer, then reports
// each one's median as p50-ms and, for the engine, the ratio engine/process. Run with
//
//	WAYMARK_TEST_CLICKHOUSE=chdb go test -run '^$' -bench FunnelMatching -benchtime 5x -timeout 60m ./store
func BenchmarkFunnelMatching(b *testing.B) {
	if !server.FunnelUDF {
		b.Skip("the engine has no waymark_funnel UDF (run with WAYMARK_TEST_CLICKHOUSE=chdb)")
	}
	n := 10_000_000
	if v, err := strconv.Atoi(os.Getenv("WAYMARK_BENCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	var db string
	stores := map[string]*store.Store{}
	stores[store.MatchProcess] = openStoreWith(b, func(c *store.Config) {
		db, c.FunnelMatching, c.QueryTimeout = c.Database, store.MatchProcess, 30*time.Minute
	})
	stores[store.MatchEngine] = openStoreWith(b, func(c *store.Config) {
		c.Database, c.FunnelMatching, c.QueryTimeout = db, store.MatchEngine, 30*time.Minute
	})
	start := time.Now()
	if err := stores[store.MatchProcess].GenerateSynthetic(ctx, n, 1_000_000, store.SyntheticOptions{}); err != nil {
		b.Fatal(err)
	}
	b.Logf("generated %d events in %s", n, time.Since(start).Round(time.Millisecond))
	jm := defaultMap(b)
	day := 24 * time.Hour
	for _, q := range []struct {
		name string
		q    store.FunnelQuery
	}{
		{"funnel-3-steps", store.FunnelQuery{Steps: []string{"Product Viewed", "Product Added", "Order Completed"}, Window: day}},
		{"funnel-5-steps-by-channel", store.FunnelQuery{Steps: []string{"Product Viewed", "Product Added", "Checkout Started", "Order Completed", "Product Reviewed"},
			Window: 7 * day, Breakdown: store.Breakdown{By: "channel"}}},
	} {
		b.Run(q.name, func(b *testing.B) {
			var answers [2]string
			for i, place := range []string{store.MatchProcess, store.MatchEngine} {
				res, err := stores[place].Funnel(ctx, jm, q.q)
				if err != nil {
					b.Fatal(err)
				}
				answers[i] = funnelText(res)
			}
			if answers[0] != answers[1] {
				b.Fatalf("in process:\n%s\nin the engine:\n%s", answers[0], answers[1])
			}
			var process time.Duration
			for _, place := range []string{store.MatchProcess, store.MatchEngine} {
				b.Run("matching="+place, func(b *testing.B) {
					p50 := measureQuery(b, func() error {
						_, err := stores[place].Funnel(ctx, jm, q.q)
						return err
					})
					b.ReportMetric(float64(p50.Milliseconds()), "p50-ms")
					if place == store.MatchProcess {
						process = p50
					} else if process > 0 {
						b.ReportMetric(float64(p50)/float64(process), "engine/process")
					}
				})
			}
		})
	}
}
