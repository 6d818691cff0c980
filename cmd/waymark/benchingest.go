package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
	"github.com/waymark-dev/waymark/store"
)

// runBenchIngest imports a generated month of a shop's Segment events (persons of whom 40% browse
// anonymously on a device, then log in) from Kafka into ClickHouse with the real consumer,
// sessionizer and writer, as a backfill: the topic holds the events before the consumer starts.
// Then it restarts the consumer with an empty sessionizer and sends the last events at a live
// rate. It prints the import rate, the peak memory of this process and of the broker (a dev
// broker in a child process, so that the topic it holds is not counted as Waymark's), the
// sessionizer's evictions and restores, the lag after the restart, and checks the answers (a
// 3-step funnel and the session count) against the generator's ground truth.
func runBenchIngest(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	fs := newFlagSet("bench ingest", "bench ingest [--persons N] [--events N] [--order time|random] [--max-customers N] [--clickhouse-addr HOST:PORT]")
	cf := addStoreFlags(fs)
	addClusterFlag(fs, cf)
	addQueryLimitFlags(fs, cf, "over it the benchmark fails")
	addFunnelMatchingFlag(fs, cf)
	sessCfg := addSessionizerFlags(fs)
	var persons, events, partitions, restartRate int
	var seed uint64
	var restartShare float64
	checkedVar(fs, &persons, "persons", 50_000, "persons in the generated month", wholeNumber(1, math.MaxInt), nil)
	checkedVar(fs, &events, "events", 1_000_000, "events to generate (identify calls included), at least --persons", wholeNumber(1, math.MaxInt), nil)
	order := fs.String("order", "time", "order the events are sent in: time (event time) or random (an export sorted by something else)")
	checkedVar(fs, &seed, "seed", 1, "seed of the generator", wholeNumber[uint64](0, math.MaxUint64), nil)
	brokersFlag := new(string)
	checkedVar(fs, brokersFlag, "kafka-brokers", "", "comma-separated brokers; empty starts a dev broker in a child process (its memory is reported apart)", text, checkBrokers)
	checkedVar(fs, &partitions, "partitions", 6, "partitions of the events topic (dev broker)", wholeNumber(1, maxDevPartitions), nil)
	ccfg := ingest.ConsumerConfig{Group: "waymark-bench-ingest"}
	addBatchFlags(fs, &ccfg)
	checkedVar(fs, &restartShare, "restart-share", 0.05, "share of the events (the last ones sent) held back and sent after a restart of the consumer, at --restart-rate", number(0, 1), nil)
	checkedVar(fs, &restartRate, "restart-rate", 5000, "events per second sent after the restart (a shop's live traffic)", wholeNumber(1, math.MaxInt), nil)
	keep := fs.Bool("keep", false, "keep the benchmark's database afterwards")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the import (not the generation) to this file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case events < persons:
		return fs.errorf("events", "must be at least %s (%d), got %d", fs.ref("persons"), persons, events)
	case *order != "time" && *order != "random":
		return fs.errorf("order", "%q is not time or random", *order)
	}
	if err := checkSessionizerFlags(fs, sessCfg); err != nil {
		return err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := cf.cfg
	cfg.Database = fmt.Sprintf("waymark_bench_ingest_%d", time.Now().UnixNano())

	var brokers []string
	for _, b := range strings.Split(*brokersFlag, ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	var broker *childBroker
	if len(brokers) == 0 {
		var err error
		if broker, err = startChildBroker(ctx, partitions); err != nil {
			return err
		}
		defer broker.stop()
		brokers = []string{broker.addr}
	}
	tmp, err := os.MkdirTemp("", "waymark-bench-ingest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	// Generate, send the head of the stream to Kafka and write its tail to a file, then let the
	// generator go before measuring memory: its 16 bytes per event are the benchmark's, not Waymark's.
	log.Info("bench ingest: generating", "persons", persons, "events", events, "order", *order)
	shop := generateShop(persons, events, seed)
	want := shop.reference()
	sendOrder := shop.order(*order == "random", seed)
	head := len(sendOrder) - int(float64(len(sendOrder))*restartShare)
	tailFile := filepath.Join(tmp, "tail.jsonl")
	genStart := time.Now()
	if err := shop.produce(ctx, brokers, sendOrder[:head]); err != nil {
		if broker == nil && dialFailed(err) {
			return noAnswer(fs, "kafka-brokers", "Kafka broker", *brokersFlag, err)
		}
		return err
	}
	if err := shop.writeFile(tailFile, sendOrder[head:]); err != nil {
		return err
	}
	total, base := len(sendOrder), shop.base
	log.Info("bench ingest: sent", "events", head, "took", time.Since(genStart).Round(time.Millisecond), "held back", total-head)
	shop, sendOrder = nil, nil
	runtime.GC()
	debug.FreeOSMemory()
	if err := resetPeakRSS(); err != nil {
		log.Warn("bench ingest: cannot reset the peak RSS; it includes the generator", "err", err)
	}

	jm, err := sessionize.LoadMap("")
	if err != nil {
		return err
	}
	st, err := openStore(ctx, fs, cfg, quiet, nil)
	if err != nil {
		return err
	}
	defer func() {
		if !*keep {
			st.DropDatabase(context.Background())
		}
		st.Close()
	}()
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	ccfg.Brokers = brokers

	// The import: the consumer meets the whole head of the topic at once.
	stopProfile, err := startCPUProfile(fs, *cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	log.Info("bench ingest: importing", "events", head)
	imp, err := runIngestPhase(ctx, ccfg, st, *sessCfg, jm, nil, log)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	pprof.StopCPUProfile()

	// The restart: a new sessionizer (as a new process has) meets the held-back events at a live rate.
	restartAt := time.Now()
	var rs ingestPhase
	if total > head {
		log.Info("bench ingest: restarting the consumer and sending live", "events", total-head, "rate", restartRate)
		send := func(ctx context.Context) error {
			_, err := ingest.Replay(ctx, ingest.ReplayConfig{Brokers: brokers, Format: "segment", File: tailFile, Pace: restartRate})
			return err
		}
		if rs, err = runIngestPhase(ctx, ccfg, st, *sessCfg, jm, send, log); err != nil {
			return fmt.Errorf("restart: %w", err)
		}
	}
	lagQ, lastLagged, err := st.StoredLagSince(ctx, restartAt, 5*time.Second)
	if err != nil {
		return err
	}
	peak, err := peakRSS(os.Getpid())
	if err != nil {
		return err
	}
	got, err := storedAnswers(ctx, st, jm)
	if err != nil {
		return err
	}
	checkErr := want.compare(got)

	tw := leftTable(stdout)
	fmt.Fprintf(tw, "generated\t%d events, %d persons (40%% anonymous until a login), 30 days from %s, sent in %s order\n", total, persons, base.Format("2006-01-02"), *order)
	fmt.Fprintf(tw, "import\t%d events in %s: %.0f events/s\n", head, imp.took.Round(time.Millisecond), float64(head)/imp.took.Seconds())
	fmt.Fprintf(tw, "sessionizer\tmax customers %d; evictions %d, restores %d in %d batches taking %s (longest batch ≤ %s); beyond lateness %d\n",
		sessCfg.MaxCustomers, imp.evictions, imp.restores, imp.restoreBatches, imp.restoreTime.Round(time.Millisecond), imp.restoreMax, imp.beyondLateness)
	if imp.customers >= 10_000 { // below, the consumer's own buffers swamp the figure
		fmt.Fprintf(tw, "memory\t%d customers held after the import, %.0f bytes of live heap each (the import's growth of the heap, identity graph and consumer included)\n",
			imp.customers, imp.heapPerCust)
	}
	if total > head {
		fmt.Fprintf(tw, "restart\t%d events at %d/s with an empty sessionizer: restores %d in %d batches taking %s; caught up %s after the last was sent\n",
			total-head, restartRate, rs.restores, rs.restoreBatches, rs.restoreTime.Round(time.Millisecond), rs.catchUp.Round(time.Millisecond))
		recovered := "never over 5s"
		if !lastLagged.IsZero() {
			recovered = fmt.Sprintf("last event over 5s received %s after the restart", lastLagged.Sub(restartAt).Round(time.Millisecond))
		}
		fmt.Fprintf(tw, "lag after restart\treceivedAt → stored p50 %s, p95 %s, p99 %s; %s\n", lagQ[0].Round(time.Millisecond), lagQ[1].Round(time.Millisecond), lagQ[2].Round(time.Millisecond), recovered)
	}
	fmt.Fprintf(tw, "peak RSS\twaymark %s (VmHWM of this process, generator excluded)", mib(peak))
	if broker != nil {
		if bpeak, err := peakRSS(broker.cmd.Process.Pid); err == nil {
			fmt.Fprintf(tw, "; dev broker %s (child process, holds the topic)", mib(bpeak))
		}
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "answers\tfunnel %v (want %v), sessions %d (want %d), persons %d (want %d): %s\n",
		got.Funnel, want.Funnel, got.Sessions, want.Sessions, got.Persons, want.Persons, verdict(checkErr))
	if err := tw.Flush(); err != nil {
		return err
	}
	return checkErr
}

func verdict(err error) string {
	if err != nil {
		return "DIFFERENT"
	}
	return "equal to the reference"
}

func mib(b uint64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// ingestPhase is what one run of the consumer did.
type ingestPhase struct {
	took           time.Duration // from start until the group had committed everything
	catchUp        time.Duration // from the end of send until the group had committed everything
	evictions      int
	restores       int
	restoreBatches int
	restoreTime    time.Duration
	restoreMax     string // upper bound of the histogram bucket of the slowest restore
	beyondLateness int
	customers      int     // customers the sessionizer held at the end
	heapPerCust    float64 // live heap the phase added, per customer held at the end (bytes)
}

// runIngestPhase runs a consumer with a new sessionizer (as a new serve process would) until its
// group has committed everything on the topic, after send (if not nil) has returned.
func runIngestPhase(ctx context.Context, ccfg ingest.ConsumerConfig, st *store.Store, scfg sessionize.Config, jm *sessionize.Map, send func(context.Context) error, log *slog.Logger) (ingestPhase, error) {
	var ph ingestPhase
	reg := prometheus.NewRegistry()
	core, err := sessionize.New(scfg, jm)
	if err != nil {
		return ph, err
	}
	runner, err := sessionize.NewRunner(core, st, st, reg)
	if err != nil {
		return ph, err
	}
	ccfg.OnRebalance = st.Rebalanced // as serve: a new process loads the stored keys again
	consumer, err := ingest.NewConsumer(ccfg, runner, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		return ph, err
	}
	heapBefore := liveHeap()
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- consumer.Run(cctx) }()
	sent := start
	if send != nil {
		if err := send(ctx); err != nil {
			stop()
			return ph, errors.Join(err, <-done)
		}
		sent = time.Now()
	}
	progress := time.NewTicker(10 * time.Second)
	defer progress.Stop()
	for {
		lag, err := ingest.GroupLag(ctx, ccfg.Brokers, ccfg.Group, "waymark.events")
		behind := int64(0)
		for _, l := range lag {
			behind += l
		}
		if err == nil && behind == 0 {
			break
		}
		select {
		case <-ctx.Done():
			stop()
			return ph, errors.Join(ctx.Err(), <-done)
		case err := <-done:
			return ph, fmt.Errorf("consumer stopped: %w", err)
		case <-progress.C:
			rss, _ := currentRSS(os.Getpid())
			log.Info("bench ingest: consuming", "behind", behind, "rss", mib(rss), "customers", gaugeValue(reg, "waymark_sessionizer_customers"),
				"evictions", gaugeValue(reg, "waymark_sessionizer_evictions_total"), "restores", gaugeValue(reg, "waymark_sessionizer_customers_restored_total"))
		case <-time.After(200 * time.Millisecond):
		}
	}
	now := time.Now()
	ph.took, ph.catchUp = now.Sub(start), now.Sub(sent)
	if ph.customers = core.Customers(); ph.customers > 0 {
		ph.heapPerCust = (float64(liveHeap()) - float64(heapBefore)) / float64(ph.customers)
	}
	stop()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		return ph, err
	}
	ph.evictions = int(gaugeValue(reg, "waymark_sessionizer_evictions_total"))
	ph.restores = int(gaugeValue(reg, "waymark_sessionizer_customers_restored_total"))
	ph.beyondLateness = int(gaugeValue(reg, "waymark_sessionizer_events_beyond_lateness_total"))
	if h := histogram(reg, "waymark_sessionizer_restore_duration_seconds"); h != nil {
		ph.restoreBatches = int(h.GetSampleCount())
		ph.restoreTime = time.Duration(h.GetSampleSum() * float64(time.Second))
		ph.restoreMax = "0s"
		for _, b := range h.GetBucket() {
			if b.GetCumulativeCount() == h.GetSampleCount() {
				ph.restoreMax = time.Duration(b.GetUpperBound() * float64(time.Second)).Round(time.Millisecond).String()
				break
			}
			ph.restoreMax = "more than " + time.Duration(b.GetUpperBound()*float64(time.Second)).Round(time.Millisecond).String()
		}
	}
	return ph, nil
}

// liveHeap returns the bytes of heap in use after a full collection.
func liveHeap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// gaugeValue returns the value of the counter or gauge name in reg (0 when absent).
func gaugeValue(reg *prometheus.Registry, name string) float64 {
	for _, m := range gather(reg, name) {
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// histogram returns the histogram name in reg, or nil.
func histogram(reg *prometheus.Registry, name string) *dto.Histogram {
	for _, m := range gather(reg, name) {
		if m.GetHistogram() != nil {
			return m.GetHistogram()
		}
	}
	return nil
}

func gather(reg *prometheus.Registry, name string) []*dto.Metric {
	families, err := reg.Gather()
	if err != nil {
		return nil
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()
		}
	}
	return nil
}

// benchAnswers are what the benchmark checks after an import.
type benchAnswers struct {
	Funnel   [3]int64 // persons reaching Product Viewed → Product Added → Order Completed within 24h
	Sessions uint64
	Persons  uint64 // persons with a session
}

// benchFunnel is the funnel the benchmark checks.
var benchFunnelSteps = [3]string{"Product Viewed", "Product Added", "Order Completed"}

const benchFunnelWindow = 24 * time.Hour

// storedAnswers asks the store what benchAnswers holds.
func storedAnswers(ctx context.Context, st *store.Store, jm *sessionize.Map) (benchAnswers, error) {
	var a benchAnswers
	res, err := st.Funnel(ctx, jm, store.FunnelQuery{Steps: benchFunnelSteps[:], Window: benchFunnelWindow})
	if err != nil {
		return a, fmt.Errorf("funnel: %w", err)
	}
	for i := range min(len(res.Steps), len(a.Funnel)) {
		a.Funnel[i] = res.Steps[i].Customers
	}
	sum, err := st.Sessions(ctx, jm, store.SessionsQuery{})
	if err != nil {
		return a, fmt.Errorf("sessions: %w", err)
	}
	a.Sessions, a.Persons = sum.Sessions, sum.Persons
	return a, nil
}

// compare returns an error naming every answer of got that differs from want (the reference).
func (want benchAnswers) compare(got benchAnswers) error {
	var errs []error
	if got.Funnel != want.Funnel {
		errs = append(errs, fmt.Errorf("funnel %v, want %v", got.Funnel, want.Funnel))
	}
	if got.Sessions != want.Sessions {
		errs = append(errs, fmt.Errorf("sessions %d, want %d", got.Sessions, want.Sessions))
	}
	if got.Persons != want.Persons {
		errs = append(errs, fmt.Errorf("persons with sessions %d, want %d", got.Persons, want.Persons))
	}
	if len(errs) > 0 {
		return fmt.Errorf("answers differ from the reference: %w", errors.Join(errs...))
	}
	return nil
}

// What a generated event is.
const (
	kindPage uint8 = iota
	kindView
	kindAdd
	kindCheckout
	kindOrder
	kindIdentify
)

// shopEvent is one generated event: 16 bytes.
type shopEvent struct {
	ms     int64 // event time, unix ms
	person int32
	kind   uint8
	anon   bool // sent with the device's anonymousId only (before the login)
	device bool // the person browses on a device (anonymousId) and logs in at some visit
	visit  bool // the first event of a visit
}

// shop is a generated month of a shop's events, grouped by person, each person's in time order.
type shop struct {
	base   time.Time
	events []shopEvent
}

// generateShop generates about events events over 30 days for persons persons. Every person
// has at least one event; 40% browse on a device, anonymously, until they log in (an identify
// call) at one of their later visits, and send their userId with the device's anonymousId from
// then on; the others send their userId only. A person's visits are runs of 1 to 8 events less
// than 5 minutes apart, at least 31 minutes after the previous visit's end: each visit is
// exactly one session, which makes the generator its own reference.
func generateShop(persons, events int, seed uint64) *shop {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	counts := make([]int32, persons)
	for i := range counts {
		counts[i] = 1
	}
	for range events - persons {
		counts[rng.IntN(persons)]++
	}
	s := &shop{base: time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -31), events: make([]shopEvent, 0, events)}
	month := int64(30 * 24 * time.Hour / time.Millisecond)
	minute := int64(time.Minute / time.Millisecond)
	var visits []int64
	for p := range persons {
		n := int(counts[p])
		var sizes []int
		for left := n; left > 0; {
			k := min(1+rng.IntN(8), left)
			sizes = append(sizes, k)
			left -= k
		}
		visits = visits[:0]
		for range sizes {
			visits = append(visits, rng.Int64N(month))
		}
		slices.Sort(visits)
		device := rng.IntN(10) < 4
		login := -1 // the visit at which the person logs in
		if device && len(sizes) > 1 {
			login = 1 + rng.IntN(len(sizes)-1)
		}
		ms := s.base.UnixMilli()
		last := int64(0)
		for v, k := range sizes {
			t := max(ms+visits[v], last+31*minute+rng.Int64N(10*minute))
			for j := range k {
				if j > 0 {
					t += 1000 + rng.Int64N(5*minute-1000)
				}
				e := shopEvent{ms: t, person: int32(p), kind: touchKind(rng), device: device, anon: device && (login < 0 || v < login), visit: j == 0}
				if v == login && j == 0 {
					e.kind = kindIdentify
				}
				s.events = append(s.events, e)
			}
			last = t
		}
	}
	return s
}

// touchKind draws a touchpoint: product views most, then pages, cart adds, checkouts, orders.
func touchKind(rng *rand.Rand) uint8 {
	switch r := rng.IntN(100); {
	case r < 55:
		return kindView
	case r < 70:
		return kindPage
	case r < 85:
		return kindAdd
	case r < 93:
		return kindCheckout
	default:
		return kindOrder
	}
}

// reference computes the answers from the generator's ground truth: each visit with a touchpoint
// is a session, and a person reaches funnel step k when some view is followed, at the same time
// or later, by a cart add and then an order within 24 hours of the view (the design's ordered
// funnel: for a given first step, taking the earliest possible next step is never worse).
func (s *shop) reference() benchAnswers {
	var a benchAnswers
	window := benchFunnelWindow.Milliseconds()
	steps := [3]uint8{kindView, kindAdd, kindOrder}
	for lo := 0; lo < len(s.events); {
		hi := lo
		for hi < len(s.events) && s.events[hi].person == s.events[lo].person {
			hi++
		}
		evs := s.events[lo:hi]
		touched := false // the visit has a touchpoint
		for _, e := range evs {
			if e.visit {
				touched = false
			}
			if e.kind != kindIdentify && !touched {
				touched = true
				a.Sessions++
			}
		}
		if slices.ContainsFunc(evs, func(e shopEvent) bool { return e.kind != kindIdentify }) {
			a.Persons++
		}
		reached := 0
		for i, e := range evs {
			if e.kind != steps[0] {
				continue
			}
			k, j := 1, i+1
			for ; j < len(evs) && k < len(steps) && evs[j].ms-e.ms <= window; j++ {
				if evs[j].kind == steps[k] {
					k++
				}
			}
			reached = max(reached, k)
		}
		for k := range reached {
			a.Funnel[k]++
		}
		lo = hi
	}
	return a
}

// order returns the indexes of the events in the order they are sent: by event time (ties by
// person, then in the person's order), or shuffled.
func (s *shop) order(random bool, seed uint64) []int32 {
	idx := make([]int32, len(s.events))
	for i := range idx {
		idx[i] = int32(i)
	}
	if random {
		rng := rand.New(rand.NewPCG(seed, 0x0de7))
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		return idx
	}
	slices.SortFunc(idx, func(a, b int32) int {
		return cmp.Or(cmp.Compare(s.events[a].ms, s.events[b].ms), cmp.Compare(a, b))
	})
	return idx
}

// appendJSON appends event i as a Segment message (one line of JSON).
func (s *shop) appendJSON(b []byte, i int32) []byte {
	e := s.events[i]
	p := strconv.Itoa(int(e.person))
	ts := time.UnixMilli(e.ms).UTC().Format("2006-01-02T15:04:05.000Z")
	ids := `"userId":"u` + p + `"`
	switch {
	case e.anon:
		ids = `"anonymousId":"d` + p + `"`
	case e.device:
		ids += `,"anonymousId":"d` + p + `"`
	}
	b = append(b, `{"messageId":"m`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `",`...)
	b = append(b, ids...)
	b = append(b, `,"timestamp":"`...)
	b = append(b, ts...)
	b = append(b, `",`...)
	product := strconv.Itoa(int(uint32(i)*2654435761%500)) + `"`
	switch e.kind {
	case kindPage:
		b = append(b, `"type":"page","name":"Home","properties":{"path":"/"}}`...)
	case kindView:
		b = append(b, `"type":"track","event":"Product Viewed","properties":{"product_id":"p`+product+`}}`...)
	case kindAdd:
		b = append(b, `"type":"track","event":"Product Added","properties":{"product_id":"p`+product+`,"price":19.5}}`...)
	case kindCheckout:
		b = append(b, `"type":"track","event":"Checkout Started","properties":{"revenue":39}}`...)
	case kindOrder:
		b = append(b, `"type":"track","event":"Order Completed","properties":{"order_id":"o`+strconv.Itoa(int(i))+`","revenue":39}}`...)
	case kindIdentify:
		b = append(b, `"type":"identify","traits":{"plan":"shop"}}`...)
	}
	return append(b, '\n')
}

// produce sends the events of order to Kafka, as `waymark replay --format segment` does.
func (s *shop) produce(ctx context.Context, brokers []string, order []int32) error {
	r, w := io.Pipe()
	go func() { w.CloseWithError(s.write(w, order)) }()
	sum, err := ingest.Replay(ctx, ingest.ReplayConfig{Brokers: brokers, Format: "segment", Reader: r})
	r.CloseWithError(errors.New("replay stopped"))
	if err != nil {
		return err
	}
	if sum.Sent != len(order) {
		return fmt.Errorf("produced %d events of %d (skipped: %v)", sum.Sent, len(order), sum.Skipped)
	}
	return nil
}

// writeFile writes the events of order to a JSON Lines file.
func (s *shop) writeFile(path string, order []int32) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := s.write(f, order); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

func (s *shop) write(w io.Writer, order []int32) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	var line []byte
	for _, i := range order {
		line = s.appendJSON(line[:0], i)
		if _, err := bw.Write(line); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// childBroker is a dev broker in a child process (`waymark bench broker`), so that the topic it
// holds in memory is not counted in the benchmark's own memory.
type childBroker struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string
}

func startChildBroker(ctx context.Context, partitions int) (*childBroker, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start dev broker: %w", err)
	}
	cmd := exec.CommandContext(ctx, self, "bench", "broker", "--partitions", strconv.Itoa(partitions))
	cmd.Stderr = os.Stderr
	// The broker holds the whole topic, several GB at scale: a GOMEMLIMIT meant for Waymark's
	// process (to measure it under a bound) made the broker collect without end, and the import
	// never started.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GOMEMLIMIT=") })
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start dev broker: %w", err)
	}
	b := &childBroker{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.stop()
		return nil, fmt.Errorf("start dev broker: read its address: %w", err)
	}
	b.addr = strings.TrimSpace(line)
	return b, nil
}

// stop closes the child's stdin, which stops it, and waits for it.
func (b *childBroker) stop() {
	b.stdin.Close()
	b.cmd.Wait()
}

// runBenchBroker runs a dev broker for `waymark bench ingest`: it prints its address, then runs
// until its standard input is closed.
func runBenchBroker(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("bench broker", "bench broker [--partitions N]")
	var partitions int
	checkedVar(fs, &partitions, "partitions", 6, "partitions of the events topic", wholeNumber(1, maxDevPartitions), nil)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	broker, err := ingest.StartDevBroker("127.0.0.1:0", partitions, "waymark.events", "waymark.dlq")
	if err != nil {
		return err
	}
	defer broker.Close()
	fmt.Fprintln(stdout, broker.Addr())
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(closed)
	}()
	select {
	case <-ctx.Done():
	case <-closed:
	}
	return nil
}

// peakRSS returns the peak resident set size (VmHWM) of process pid.
func peakRSS(pid int) (uint64, error) { return procStatus(pid, "VmHWM:") }

// currentRSS returns the resident set size (VmRSS) of process pid.
func currentRSS(pid int) (uint64, error) { return procStatus(pid, "VmRSS:") }

func procStatus(pid int, field string) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read memory of process %d: %w", pid, err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("read memory of process %d: %s %w", pid, field, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("read memory of process %d: no %s", pid, field)
}

// resetPeakRSS resets this process's VmHWM to its current RSS (Linux 4.0 and later).
func resetPeakRSS() error {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}
