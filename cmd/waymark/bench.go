package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"reflect"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
	"github.com/waymark-dev/waymark/store"
)

// runBench runs the whole pipeline on loopback (collector → embedded broker → consumer →
// sessionizer → ClickHouse) with a synthetic stream, then moves the same bytes from the topic into
// ClickHouse with kcat | clickhouse-client as a baseline, and prints both.
func runBench(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	if len(args) > 0 {
		switch args[0] {
		case "ingest":
			return runBenchIngest(ctx, args[1:], stdout, log)
		case "broker":
			return runBenchBroker(ctx, args[1:], stdout)
		}
	}
	fs := newFlagSet("bench", "bench [--events N] [--clickhouse-addr HOST:PORT]\n       waymark bench ingest -h   (a month of a shop's events imported at scale)")
	cf := addStoreFlags(fs)
	addClusterFlag(fs, cf)
	addQueryLimitFlags(fs, cf, "over it the benchmark fails")
	addFunnelMatchingFlag(fs, cf)
	var n, clients int
	checkedVar(fs, &n, "events", 1_000_000, "events to send", wholeNumber(1000, math.MaxInt), nil)
	checkedVar(fs, &clients, "clients", 8, "concurrent collector clients, each sending batches of 100", wholeNumber(1, math.MaxInt), nil)
	var ccfg ingest.ConsumerConfig
	addBatchFlags(fs, &ccfg)
	keep := fs.Bool("keep", false, "keep the benchmark's databases afterwards")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the pipeline run (not the baseline) to this file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := cf.cfg
	cfg.Database = fmt.Sprintf("waymark_bench_%d", time.Now().Unix())

	broker, err := ingest.StartDevBroker("127.0.0.1:0", 6, "waymark.events", "waymark.dlq")
	if err != nil {
		return err
	}
	defer broker.Close()
	brokers := []string{broker.Addr()}
	jm, err := sessionize.LoadMap("")
	if err != nil {
		return err
	}
	st, consumer, closeStore, err := benchConsumer(ctx, fs, brokers, cfg, jm, "waymark", ccfg, *keep, quiet)
	if err != nil {
		return err
	}
	defer closeStore()
	collector, err := ingest.NewCollector(ingest.CollectorConfig{Brokers: brokers, WriteKeys: map[string]string{"bench": "bench"}}, quiet, nil)
	if err != nil {
		return err
	}
	defer collector.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: collector.Handler(http.NotFoundHandler())}
	go srv.Serve(ln)
	defer srv.Close()
	cctx, stopConsumer := context.WithCancel(ctx)
	defer stopConsumer()
	consumed := make(chan error, 1)
	go func() { consumed <- consumer.Run(cctx) }()

	// The request bodies are built before the clock starts: the clients share the machine with
	// Waymark, and formatting JSON is their work, not Waymark's.
	bodies := syntheticBatches(n)
	log.Info("bench: sending", "events", n, "clients", clients)
	stopProfile, err := startCPUProfile(fs, *cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	start := time.Now()
	latencies, err := sendSynthetic(ctx, "http://"+ln.Addr().String(), bodies, clients)
	if err != nil {
		return err
	}
	sent := time.Since(start)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if err := ingest.WaitCaughtUp(wctx, brokers, "waymark", "waymark.events"); err != nil {
		return err
	}
	total := time.Since(start)
	pprof.StopCPUProfile()
	stopConsumer()
	if err := <-consumed; err != nil {
		return err
	}
	lag, err := st.StoredLag(ctx)
	if err != nil {
		return err
	}
	funnelP50, funnel, err := funnelMedian(ctx, st, jm)
	if err != nil {
		return err
	}

	// The same topic again, into a fresh database by a fresh consumer group: Waymark's part of
	// the path the baseline takes (Kafka → ClickHouse), on the same bytes.
	log.Info("bench: consuming the topic again with a new consumer group")
	cfg2 := cfg
	cfg2.Database += "_consume"
	st2, consumer2, closeStore2, err := benchConsumer(ctx, fs, brokers, cfg2, jm, "waymark-bench-consume", ccfg, *keep, quiet)
	if err != nil {
		return err
	}
	defer closeStore2()
	consumeTook, err := timeConsumer(ctx, consumer2, brokers, "waymark-bench-consume")
	if err != nil {
		return err
	}
	if _, again, err := funnelMedian(ctx, st2, jm); err != nil {
		return err
	} else if !reflect.DeepEqual(again, funnel) {
		return fmt.Errorf("the funnel from the second consumer differs from the first:\n%+v\n%+v", again, funnel)
	}

	log.Info("bench: baseline kcat | clickhouse-client")
	baseline, err := baselineCopy(ctx, broker.Addr(), cfg, n)
	if err != nil {
		return err
	}
	slices.Sort(latencies)
	pct := func(p float64) time.Duration { return latencies[int(p*float64(len(latencies)-1))] }
	rate, consumeRate, baseRate := float64(n)/total.Seconds(), float64(n)/consumeTook.Seconds(), float64(n)/baseline.Seconds()
	tw := leftTable(stdout)
	fmt.Fprintf(tw, "events\t%d (synthetic, %d clients, batches of 100, loopback)\n", n, clients)
	fmt.Fprintf(tw, "collector\t%s to accept all (%.0f events/s), p50 %s, p99 %s per batch\n", sent.Round(time.Millisecond), float64(n)/sent.Seconds(), pct(0.5).Round(time.Microsecond), pct(0.99).Round(time.Microsecond))
	fmt.Fprintf(tw, "end to end\t%s until all stored: %.0f events/s\n", total.Round(time.Millisecond), rate)
	fmt.Fprintf(tw, "lag receivedAt → stored\tp50 %s, p95 %s, p99 %s\n", lag[0].Round(time.Millisecond), lag[1].Round(time.Millisecond), lag[2].Round(time.Millisecond))
	fmt.Fprintf(tw, "funnel query\tp50 %s (3 steps, %d events)\n", funnelP50.Round(time.Microsecond), n)
	fmt.Fprintf(tw, "Kafka → ClickHouse\t%s: %.0f events/s (the topic again: decode, sessionize, stitch, store; same funnel)\n", consumeTook.Round(time.Millisecond), consumeRate)
	fmt.Fprintf(tw, "baseline\t%s: %.0f events/s (kcat consuming the topic | clickhouse-client JSONEachRow)\n", baseline.Round(time.Millisecond), baseRate)
	fmt.Fprintf(tw, "ratio\tWaymark / baseline = %.2f on the same path (Kafka → ClickHouse); %.2f end to end (with the collector)\n", consumeRate/baseRate, rate/baseRate)
	return tw.Flush()
}

// benchConsumer opens a fresh database and builds a consumer in group that sessionizes the events
// topic into it, with ccfg's batch size and flush interval. closeStore closes the store and,
// unless keep, drops the database.
func benchConsumer(ctx context.Context, fs *flagSet, brokers []string, cfg store.Config, jm *sessionize.Map, group string, ccfg ingest.ConsumerConfig, keep bool, log *slog.Logger) (st *store.Store, consumer *ingest.Consumer, closeStore func(), err error) {
	if st, err = openStore(ctx, fs, cfg, log, nil); err != nil {
		return nil, nil, nil, err
	}
	closeStore = func() {
		if !keep {
			st.DropDatabase(context.Background())
		}
		st.Close()
	}
	defer func() {
		if err != nil {
			closeStore()
		}
	}()
	if err = st.Migrate(ctx); err != nil {
		return nil, nil, nil, err
	}
	core, err := sessionize.New(sessionize.Config{}, jm)
	if err != nil {
		return nil, nil, nil, err
	}
	runner, err := sessionize.NewRunner(core, st, st, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	ccfg.Brokers, ccfg.Group, ccfg.OnRebalance = brokers, group, st.Rebalanced
	if consumer, err = ingest.NewConsumer(ccfg, runner, log, nil); err != nil {
		return nil, nil, nil, err
	}
	return st, consumer, closeStore, nil
}

// timeConsumer runs consumer until its group has caught up with the events topic and returns how
// long that took.
func timeConsumer(ctx context.Context, consumer *ingest.Consumer, brokers []string, group string) (time.Duration, error) {
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- consumer.Run(cctx) }()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	err := ingest.WaitCaughtUp(wctx, brokers, group, "waymark.events")
	took := time.Since(start)
	stop()
	return took, errors.Join(err, <-done)
}

// syntheticBatches builds n events (customers viewing, adding and ordering products) as bodies of
// /v1/batch calls of 100 events each.
func syntheticBatches(n int) [][]byte {
	events := []string{"Product Viewed", "Product Viewed", "Product Viewed", "Product Added", "Order Completed"}
	base := time.Now().Add(-time.Hour).UTC()
	var bodies [][]byte
	for b := 0; b < n/100; b++ {
		var body bytes.Buffer
		body.WriteString(`{"batch":[`)
		for i := range 100 {
			k := b*100 + i
			if i > 0 {
				body.WriteByte(',')
			}
			fmt.Fprintf(&body, `{"type":"track","event":%q,"userId":"c%d","messageId":"bench-%d","timestamp":%q,"properties":{"product_id":"p%d","price":19.5}}`,
				events[k%len(events)], k/20, k, base.Add(time.Duration(k)*time.Millisecond).Format(time.RFC3339Nano), k%500)
		}
		body.WriteString(`]}`)
		bodies = append(bodies, body.Bytes())
	}
	return bodies
}

// sendSynthetic posts the bodies to the collector from concurrent clients and returns each
// call's latency.
func sendSynthetic(ctx context.Context, url string, bodies [][]byte, clients int) ([]time.Duration, error) {
	next := make(chan []byte)
	var mu sync.Mutex
	var latencies []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}, Timeout: time.Minute}
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range next {
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/batch", bytes.NewReader(body))
				if err != nil {
					continue
				}
				req.SetBasicAuth("bench", "")
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body) // read to the end, so the connection is kept
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("collector answered %d", resp.StatusCode)
					}
				}
				mu.Lock()
				latencies = append(latencies, time.Since(t0))
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	for _, body := range bodies {
		next <- body
	}
	close(next)
	wg.Wait()
	return latencies, firstErr
}

// funnelMedian runs a 3-step funnel 11 times and returns the median time and the answer.
func funnelMedian(ctx context.Context, st *store.Store, jm *sessionize.Map) (time.Duration, *store.FunnelResult, error) {
	q := store.FunnelQuery{Steps: []string{"Product Viewed", "Product Added", "Order Completed"}, Window: 24 * time.Hour}
	var times []time.Duration
	var res *store.FunnelResult
	for range 11 {
		start := time.Now()
		var err error
		if res, err = st.Funnel(ctx, jm, q); err != nil {
			return 0, nil, err
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	return times[len(times)/2], res, nil
}

// baselineCopy moves the topic's bytes into a ClickHouse table with kcat piped into
// clickhouse-client (JSONEachRow), and returns how long it took.
func baselineCopy(ctx context.Context, broker string, cfg store.Config, want int) (time.Duration, error) {
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return 0, fmt.Errorf("--clickhouse-addr: %w", err)
	}
	client := func(query string) *exec.Cmd {
		args := []string{"--host", host, "--port", port, "--user", cfg.User, "--input_format_skip_unknown_fields=1", "--query", query}
		if cfg.Password != "" {
			args = append(args, "--password", cfg.Password)
		}
		return exec.CommandContext(ctx, "clickhouse-client", args...)
	}
	table := "`" + cfg.Database + "`.baseline"
	if out, err := client("CREATE TABLE " + table + " (type String, event String, userId String, messageId String, timestamp String, receivedAt String) ENGINE = MergeTree() ORDER BY tuple()").CombinedOutput(); err != nil {
		return 0, fmt.Errorf("create baseline table: %v: %s", err, out)
	}
	start := time.Now()
	kcat := exec.CommandContext(ctx, "kcat", "-C", "-b", broker, "-t", "waymark.events", "-e", "-q", "-f", "%s\n")
	insert := client("INSERT INTO " + table + " FORMAT JSONEachRow")
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	kcat.Stdout, insert.Stdin = w, r
	var kerr, ierr bytes.Buffer
	kcat.Stderr, insert.Stderr = &kerr, &ierr
	if err := insert.Start(); err != nil {
		return 0, fmt.Errorf("clickhouse-client: %w", err)
	}
	if err := kcat.Start(); err != nil {
		return 0, fmt.Errorf("kcat: %w", err)
	}
	r.Close() // the children hold the pipe now; an early exit of either ends the other
	w.Close()
	kcatErr, insertErr := kcat.Wait(), insert.Wait()
	if insertErr != nil {
		return 0, fmt.Errorf("clickhouse-client: %v: %s", insertErr, ierr.String())
	}
	if kcatErr != nil {
		return 0, fmt.Errorf("kcat: %v: %s", kcatErr, kerr.String())
	}
	took := time.Since(start)
	out, err := client("SELECT count() FROM " + table).Output()
	if err != nil {
		return 0, fmt.Errorf("count baseline rows: %w", err)
	}
	if got := string(bytes.TrimSpace(out)); got != strconv.Itoa(want) {
		return 0, fmt.Errorf("baseline stored %s rows, want %d", got, want)
	}
	return took, nil
}

// startCPUProfile writes a CPU profile to path, the --cpuprofile of fs, until stop is called;
// with path "" it does nothing.
func startCPUProfile(fs *flagSet, path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fs.errorf("cpuprofile", "%w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fs.errorf("cpuprofile", "%w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
