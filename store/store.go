package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures the connection to ClickHouse.
type Config struct {
	Addr        string        // native protocol host:port; default "127.0.0.1:9000"
	Database    string        // database holding Waymark's tables; default "waymark"
	User        string        // default "default"
	Password    string        // default empty
	DialTimeout time.Duration // default 5s
	// QueryTimeout limits each journey query as a whole: its ClickHouse queries (whose
	// max_execution_time it sets, in whole seconds, at least 1) and the matching in Go; over it the
	// query fails with ErrQueryLimit. Default 60s.
	QueryTimeout time.Duration
	// QueryConcurrency is how many journey queries may run at once (a batch, QueryBatch, counts
	// as one); one more fails at once with ErrBusy. Default 4.
	QueryConcurrency int
	// QueryMaxMemory limits the memory of each journey query in ClickHouse, in bytes (its
	// max_memory_usage); default 4 GiB.
	QueryMaxMemory uint64
	// QueryPassEvents is the most stored events a journey query groups by person in one
	// ClickHouse query: a larger events table is read in passes, each over a range of persons, so
	// no grouping spills to disk past half of QueryMaxMemory (docs/query-scale.md). Default
	// QueryMaxMemory / 400: 10.7M events for the default 4 GiB (see bytesPerPassEvent).
	QueryPassEvents uint64
	// Cluster, when set, names the ClickHouse cluster: migrations emit ON CLUSTER DDL with
	// Replicated* engines under Distributed tables sharded by customer key. Default: single node.
	Cluster string
	// FunnelMatching says where the per-person work of the journey queries runs: MatchAuto
	// (default) inside ClickHouse when the server has the waymark_funnel function (docs/udf.md),
	// a batch's queries in one read there, else here (a batch's in one shared read); MatchEngine
	// inside ClickHouse, failing the queries when the function is missing; MatchProcess here.
	FunnelMatching string
}

// Where the per-person work of the journey queries runs (Config.FunnelMatching).
const (
	MatchAuto    = "auto"
	MatchEngine  = "engine"
	MatchProcess = "process"
)

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:9000"
	}
	if c.Database == "" {
		c.Database = "waymark"
	}
	if c.User == "" {
		c.User = "default"
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.QueryTimeout <= 0 {
		c.QueryTimeout = time.Minute
	}
	if c.QueryMaxMemory == 0 {
		c.QueryMaxMemory = 4 << 30
	}
	if c.QueryPassEvents == 0 {
		c.QueryPassEvents = max(1, c.QueryMaxMemory/bytesPerPassEvent)
	}
	if c.QueryConcurrency == 0 {
		c.QueryConcurrency = 4
	}
	if c.FunnelMatching == "" {
		c.FunnelMatching = MatchAuto
	}
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// CheckIdentifier reports whether name can be Config.Database or Config.Cluster: a plain
// identifier (letters, digits, _), which DDL takes unquoted.
func CheckIdentifier(name string) error {
	if !identifier.MatchString(name) {
		return errors.New("not a plain identifier (letters, digits, _)")
	}
	return nil
}

// CheckFunnelMatching reports whether s can be Config.FunnelMatching: MatchAuto, MatchEngine or
// MatchProcess.
func CheckFunnelMatching(s string) error {
	if s != MatchAuto && s != MatchEngine && s != MatchProcess {
		return fmt.Errorf("not one of %s, %s, %s", MatchAuto, MatchEngine, MatchProcess)
	}
	return nil
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	if err := CheckIdentifier(c.Database); err != nil {
		return fmt.Errorf("clickhouse database %q: %w", c.Database, err)
	}
	if c.Cluster != "" {
		if err := CheckIdentifier(c.Cluster); err != nil {
			return fmt.Errorf("clickhouse cluster %q: %w", c.Cluster, err)
		}
	}
	if err := CheckFunnelMatching(c.FunnelMatching); err != nil {
		return fmt.Errorf("funnel matching %q: %w", c.FunnelMatching, err)
	}
	if c.QueryConcurrency < 0 {
		return fmt.Errorf("query concurrency: %d is negative", c.QueryConcurrency)
	}
	return nil
}

// Store is a connection pool to ClickHouse with Waymark's tables.
type Store struct {
	cfg     Config
	conn    driver.Conn
	log     *slog.Logger
	metrics *metrics
	slots   chan struct{} // one per journey query in flight

	storedKeys storedKeys // customer keys that may have stored events (see maybeStored)

	namesMu    sync.Mutex
	names      map[string]bool // event names known to be stored
	properties map[string]bool // property keys known to be stored (traits as traits.NAME)
	items      map[string]bool // keys of list items known to be stored (ingest.Event.ItemKeys)

	funnelUDF   atomic.Bool        // the server was last seen to have waymark_funnel (matchInEngine)
	poolRenewal *funnelPoolRenewal // the reload of waymark_funnel in flight (renewFunnelPool)
}

// Open checks cfg and connects. The database need not exist yet: Migrate creates it.
func Open(ctx context.Context, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("store config: %w", err)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	conn, err := clickhouse.Open(clickhouseOptions(cfg))
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %s: %w", cfg.Addr, err)
	}
	s := &Store{cfg: cfg, conn: conn, log: log, metrics: m, slots: make(chan struct{}, cfg.QueryConcurrency), poolRenewal: newFunnelPoolRenewal(), names: map[string]bool{}, properties: map[string]bool{}, items: map[string]bool{}}
	if err := s.Ping(ctx); err != nil {
		conn.Close()
		var ex *clickhouse.Exception
		// UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD (18.16), AUTHENTICATION_FAILED (current)
		auth := errors.As(err, &ex) && (ex.Code == 192 || ex.Code == 193 || ex.Code == 194 || ex.Code == 516)
		return nil, &ConnectError{Addr: cfg.Addr, Auth: auth, Err: err}
	}
	return s, nil
}

// ConnectError is Open's error when ClickHouse does not answer at Addr (Auth false: nothing
// listens, the dial timed out, the address does not resolve) or answers and refuses the
// user (Auth true), so that a command can name the setting to change.
type ConnectError struct {
	Addr string
	Auth bool
	Err  error
}

func (e *ConnectError) Error() string { return e.Err.Error() }
func (e *ConnectError) Unwrap() error { return e.Err }

// outsideSlotConns is how many ClickHouse connections Store keeps for the work outside the query
// slots: the writer's inserts (events and sessions at once), its restores and stored-key checks,
// the identity tables, readiness pings.
const outsideSlotConns = 10

// clickhouseOptions are the client's options for cfg (defaults set). The pool holds what the
// query slots can run at once, MaxBatchQueries ClickHouse queries per slot (a batch's queries run
// together: eight sessions summaries, or eight name checks), beside what the writer needs: with
// the client's default of 10 connections, four batches took every one, and queries and inserts
// waiting past DialTimeout failed ("acquire conn timeout": a 500, and the consumer retrying).
// Connections are dialled so that a query's context bounds their hello too (dialer). A read
// waits for ClickHouse's next packet up to the client's default 5 minutes, or a minute past
// QueryTimeout when that is longer: a query sends nothing until its grouping ends (a pass, an
// INSERT … SELECT), and a query allowed 10 minutes was cut at 5 with "i/o timeout" (so was the
// 100M benchmark's generation, QueryTimeout 30 minutes, on a loaded machine).
func clickhouseOptions(cfg Config) *clickhouse.Options {
	return &clickhouse.Options{
		Addr:         []string{cfg.Addr},
		Auth:         clickhouse.Auth{Username: cfg.User, Password: cfg.Password},
		DialTimeout:  cfg.DialTimeout,
		ReadTimeout:  max(5*time.Minute, cfg.QueryTimeout+time.Minute),
		DialContext:  (&dialer{net.Dialer{Timeout: cfg.DialTimeout}}).DialContext,
		Compression:  &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
		MaxOpenConns: cfg.QueryConcurrency*MaxBatchQueries + outsideSlotConns,
	}
}

// Ping checks that ClickHouse answers. A ping that ctx ended fails with ctx's error: the timeout
// the cut connection reports says nothing (a stopped command said "i/o timeout").
func (s *Store) Ping(ctx context.Context) error {
	if err := s.conn.Ping(ctx); err != nil {
		switch {
		case ctx.Err() != nil:
			err = ctx.Err()
		case timedOutAtDeadline(ctx, err): // the read's deadline came a moment before ctx's timer
			err = context.DeadlineExceeded
		}
		return fmt.Errorf("ping clickhouse %s: %w", s.cfg.Addr, err)
	}
	return nil
}

// LargestSeq returns the largest Seq of the stored events (their place in a Kafka partition,
// ingest.Event.Seq), 0 when none is stored. It reads the events' seq column whole.
func (s *Store) LargestSeq(ctx context.Context) (int64, error) {
	var n uint64
	if err := s.conn.QueryRow(ctx, "SELECT max(seq) FROM "+s.table("events")).Scan(&n); err != nil {
		return 0, fmt.Errorf("read the largest stored seq: %w", err)
	}
	return int64(n), nil
}

// DatabaseExists reports whether the database of Config.Database is on the server: Open does
// not ask (Migrate creates it), so a command that only reads can tell a misspelt or never-migrated
// database from the errors ClickHouse gives each of its queries.
func (s *Store) DatabaseExists(ctx context.Context) (bool, error) {
	var n uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = ?", s.cfg.Database).Scan(&n); err != nil {
		return false, fmt.Errorf("look up database %s on clickhouse %s: %w", s.cfg.Database, s.cfg.Addr, err)
	}
	return n > 0, nil
}

// ServerVersion returns the ClickHouse server's version as it reports it (e.g. "18.16.1",
// "26.7.2.1").
func (s *Store) ServerVersion(ctx context.Context) (string, error) {
	var v string
	if err := s.conn.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		return "", fmt.Errorf("read clickhouse version: %w", err)
	}
	return v, nil
}

// Close ends a reload of waymark_funnel in flight (renewFunnelPool) and closes the connections.
func (s *Store) Close() error {
	s.poolRenewal.close()
	return s.conn.Close()
}

// ErrQueryLimit is returned when a query runs over its time or memory limit.
var ErrQueryLimit = errors.New("the query ran over its limit")

// errOverMemory is ErrQueryLimit for ClickHouse's memory limit (QueryMaxMemory), in the same
// words, told apart for a batch (QueryBatch asks such queries again alone).
var errOverMemory = fmt.Errorf("%w", ErrQueryLimit)

// ErrQueryCancelled is returned when ClickHouse cancelled a query that Waymark had not stopped
// (KILL QUERY on the server), or a process of waymark_funnel's pool the query was matching in
// was killed (by the kernel's out-of-memory killer, say, whose limit is not the query's): it may
// be asked again.
var ErrQueryCancelled = errors.New("the query was cancelled on the ClickHouse server")

// ErrBusy is returned when Config.QueryConcurrency queries are already running.
var ErrBusy = errors.New("too many queries in flight")

// Unreachable reports whether err is ClickHouse out of reach rather than a query's fault: a
// connection refused, reset or closed by the server, or none to be had from the pool in time. A
// query that failed so may succeed when tried again once ClickHouse is back (the query API
// answers it 503 with Retry-After, as RFC 9110 §15.6.4 has it for a temporary condition).
func Unreachable(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, clickhouse.ErrAcquireConnTimeout)
}

// runQuery answers one journey query of kind within the store's limits: it takes one of the
// QueryConcurrency slots (ErrBusy when none is free; a batch's queries share the batch's), bounds all of the work, ClickHouse's and
// the matching here, by QueryTimeout (ErrQueryLimit past it), and records the duration and any
// failure. A cancelled ctx (the client went away, the CLI got SIGINT) stops it with ctx's error,
// and records nothing: it is no failure of the store's, nor the query's duration.
func runQuery[R any](ctx context.Context, s *Store, kind string, answer func(context.Context) (R, error)) (R, error) {
	start := time.Now()
	var res R
	var err error
	run := func() {
		qctx, cancel := s.queryContext(ctx)
		res, err = answer(qctx)
		err = s.queryError(kind, qctx, err)
		cancel()
	}
	if shareOf(ctx) != nil {
		run() // a query of a batch: the batch holds the slot
	} else if err = s.takeSlot(kind); err == nil {
		run()
		<-s.slots
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return res, err
	}
	s.observeQuery(kind, start, err)
	return res, err
}

// takeSlot takes one of the QueryConcurrency slots for a query of kind, or fails with ErrBusy;
// whoever takes one gives it back (<-s.slots).
func (s *Store) takeSlot(kind string) error {
	select {
	case s.slots <- struct{}{}:
		return nil
	default:
		return fmt.Errorf("%s: %w: %d are running, the most --query-concurrency allows", kind, ErrBusy, s.cfg.QueryConcurrency)
	}
}

// maxQueryBytes is the longest SQL of a journey query ClickHouse is asked to accept.
const maxQueryBytes = 16 << 20

// queryContext carries the query limits to ClickHouse, and bounds the time spent here too.
func (s *Store) queryContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.withQuerySettings(ctx), s.cfg.QueryTimeout)
}

// withQuerySettings returns ctx carrying the settings of a journey query's ClickHouse queries, in
// a map of its own: clickhouse-go writes into the settings of a query's context each time it
// reads a block (max_execution_time, from the deadline), so queries that run at once, like a
// scan's passes, must not share one.
func (s *Store) withQuerySettings(ctx context.Context) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithSettings(s.querySettings()))
}

// querySettings is a new map of the settings of a journey query's ClickHouse queries
// (withQuerySettings).
func (s *Store) querySettings() clickhouse.Settings {
	seconds := max(1, int(math.Ceil(s.cfg.QueryTimeout.Seconds()))) // 0 would be no limit
	return clickhouse.Settings{
		"max_execution_time": seconds,
		"max_memory_usage":   int(s.cfg.QueryMaxMemory),
		// Past half the limit, grouping spills to disk rather than failing.
		"max_bytes_before_external_group_by": int(s.cfg.QueryMaxMemory / 2),
		// Two-level grouping merges and finishes the groups on every core. ClickHouse picks it
		// past 100,000 keys; a scan's pass over a range of persons often has fewer, and took
		// three times as long without it (2.7 s against 0.9 s for 74,000 persons, 18.16).
		"group_by_two_level_threshold": 1000,
		// The largest steps the parameters allow (MaxFunnelSteps of MaxTextBytes with
		// MaxStepFilters filters, on stages of several rules) make a query of a few megabytes,
		// over ClickHouse's defaults of 256 KiB and 50,000 syntax tree elements.
		"max_query_size":            maxQueryBytes,
		"max_ast_elements":          maxQueryBytes / 4,
		"max_expanded_ast_elements": maxQueryBytes / 4,
	}
}

// queryError describes a failed query, as ErrQueryLimit when it ran over a limit (ClickHouse's,
// or ctx's deadline: the client's timeout errors then say little); parameter errors stay as they
// are.
//
// clickhouse-go sets its connection's read deadline from ctx's, so a read can time out (a
// net.Error whose Timeout is true) a moment before ctx's own timer marks ctx done: past ctx's
// deadline, such a timeout is the query's limit too, not ClickHouse out of reach.
func (s *Store) queryError(kind string, ctx context.Context, err error) error {
	var ex *clickhouse.Exception
	switch {
	case err == nil || IsParamError(err):
		return err
	case errors.As(err, &ex) && udfTimedOut(ex):
		return fmt.Errorf("%s: %w: no process of ClickHouse's %s pool came in time (the pool is busy, or lost its processes: Waymark reloads the function; try again; docs/udf.md): %s",
			kind, ErrQueryLimit, FunnelUDFName, exceptionLine(ex.Message))
	case errors.As(err, &ex) && (ex.Code == 241 || udfOverMemory(ex)): // MEMORY_LIMIT_EXCEEDED
		return fmt.Errorf("%s: %w (time %s, memory %d MiB): %s", kind, errOverMemory, s.cfg.QueryTimeout, s.cfg.QueryMaxMemory>>20, exceptionLine(ex.Message))
	case errors.As(err, &ex) && ex.Code == 159: // TIMEOUT_EXCEEDED
		return fmt.Errorf("%s: %w (time %s, memory %d MiB): %s", kind, ErrQueryLimit, s.cfg.QueryTimeout, s.cfg.QueryMaxMemory>>20, exceptionLine(ex.Message))
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || timedOutAtDeadline(ctx, err):
		return fmt.Errorf("%s: %w (time %s)", kind, ErrQueryLimit, s.cfg.QueryTimeout)
	case ctx.Err() != nil:
		return fmt.Errorf("%s: stopped: %w", kind, ctx.Err())
	case errors.As(err, &ex) && ex.Code == 394: // QUERY_WAS_CANCELLED, and not by ctx
		return fmt.Errorf("%s: %w (KILL QUERY): %s", kind, ErrQueryCancelled, exceptionLine(ex.Message))
	case errors.As(err, &ex) && udfProcessKilled(ex):
		return fmt.Errorf("%s: %w: a process of ClickHouse's %s pool was killed (the kernel's out-of-memory killer, or an operator; Waymark reloads the function; try again): %s",
			kind, ErrQueryCancelled, FunnelUDFName, exceptionLine(ex.Message))
	}
	return fmt.Errorf("%s: %w", kind, err)
}

// exceptionLine is the first line of a ClickHouse exception's message, without the stack trace
// a UDF's failure holds (from "Stack trace (when copying this message…" on, on 26.7 on the same
// line).
func exceptionLine(msg string) string {
	msg, _, _ = strings.Cut(firstLine(msg), "Stack trace (")
	return strings.TrimSpace(msg)
}

// udfOverMemory reports whether ex is waymark_funnel's failure (UDF_EXECUTION_FAILED, 754) for
// the query's memory limit, which ClickHouse 26.7 reports inside it (MEMORY_LIMIT_EXCEEDED): the
// query's limit, answered 503 as any other, where it was a 500 (tester 56's F2).
func udfOverMemory(ex *clickhouse.Exception) bool {
	return ex.Code == 754 && strings.Contains(ex.Message, "MEMORY_LIMIT_EXCEEDED")
}

// udfProcessKilled reports whether ex is waymark_funnel's failure (UDF_EXECUTION_FAILED, 754)
// for its process ended by a signal (CHILD_WAS_NOT_EXITED_NORMALLY, as 26.7 words it): answered
// 503, as ClickHouse's KILL QUERY, where it was a 500 (tester 60's F2).
func udfProcessKilled(ex *clickhouse.Exception) bool {
	return ex.Code == 754 && strings.Contains(ex.Message, "CHILD_WAS_NOT_EXITED_NORMALLY")
}

// timedOutAtDeadline reports whether err is a network timeout at or past ctx's deadline.
func timedOutAtDeadline(ctx context.Context, err error) bool {
	var ne net.Error
	deadline, ok := ctx.Deadline()
	return ok && errors.As(err, &ne) && ne.Timeout() && !time.Now().Before(deadline)
}

// observeQuery records a query's duration and failure: a query refused for a parameter (a
// typo, a name never stored: the client's error, answered 400) apart from one that failed (over
// a limit, busy, ClickHouse's error), so that an alert on failures is not raised by typos.
func (s *Store) observeQuery(kind string, start time.Time, err error) {
	s.metrics.querySeconds.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	switch {
	case IsParamError(err):
		s.metrics.queryRefused.WithLabelValues(kind).Inc()
	case err != nil:
		s.metrics.queryErrors.WithLabelValues(kind).Inc()
	}
}

// table returns the qualified name of one of Waymark's tables.
func (s *Store) table(name string) string { return "`" + s.cfg.Database + "`.`" + name + "`" }

// DropDatabase removes the store's database and everything in it (for benchmarks and tests).
func (s *Store) DropDatabase(ctx context.Context) error {
	if err := s.conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+s.cfg.Database+"`"+onCluster(s.cfg.Cluster)); err != nil {
		return fmt.Errorf("drop database %s: %w", s.cfg.Database, err)
	}
	return nil
}

type metrics struct {
	rows          *prometheus.CounterVec
	batches       *prometheus.CounterVec
	storedLag     prometheus.Histogram
	insertSeconds *prometheus.HistogramVec
	insertErrors  *prometheus.CounterVec
	querySeconds  *prometheus.HistogramVec
	queryErrors   *prometheus.CounterVec
	queryRefused  *prometheus.CounterVec
	scanPasses    prometheus.Counter
	scanVisits    prometheus.Counter
	poolRenewals  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waymark_store_rows_inserted_total", Help: "Rows inserted into ClickHouse, by table.",
		}, []string{"table"}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waymark_store_insert_batches_total", Help: "Batches inserted into ClickHouse, by table.",
		}, []string{"table"}),
		storedLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "waymark_pipeline_stored_lag_seconds",
			Help:    "Time from Waymark receiving an event (the collector's receipt; for replay and messages produced straight to Kafka, the Kafka message's time) to ClickHouse acknowledging it (0 when that time is ahead of the clock; not observed when it lies outside the years 2000 to 2100).",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		insertSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "waymark_store_insert_duration_seconds", Help: "Time to insert one batch, by table.",
			Buckets: prometheus.ExponentialBuckets(0.002, 3, 9),
		}, []string{"table"}),
		insertErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waymark_store_insert_errors_total", Help: "Failed batch inserts, by table.",
		}, []string{"table"}),
		querySeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "waymark_store_query_duration_seconds", Help: "Time to answer a query, by query type.",
			Buckets: prometheus.ExponentialBuckets(0.001, 3, 10),
		}, []string{"query"}),
		queryErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waymark_store_query_errors_total", Help: "Failed queries (over a limit, too many at once, ClickHouse's error), by query type; a bad parameter is counted in waymark_store_query_param_errors_total, a query its caller stopped in neither.",
		}, []string{"query"}),
		queryRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waymark_store_query_param_errors_total", Help: "Queries refused for a parameter (the client's error, HTTP 400: a typo, a name never stored), by query type.",
		}, []string{"query"}),
		scanPasses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "waymark_store_scan_passes_total",
			Help: "Passes the journey queries made over ranges of persons, one ClickHouse query each (a table of more than --query-pass-events events takes several).",
		}),
		scanVisits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "waymark_store_scan_visits_total",
			Help: "Stored visits (sessions) the passes of the queries that count sessions loaded, each pass those of its persons' customer keys.",
		}),
		poolRenewals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waymark_store_funnel_udf_reloads_total",
			Help: "Reloads of ClickHouse's waymark_funnel function (a new pool of its processes) after a journey query matching in ClickHouse failed over a limit or was given up, by result: reloaded, or failed (the Waymark user lacks SYSTEM RELOAD FUNCTION, ClickHouse out of reach; docs/udf.md).",
		}, []string{"result"}),
	}
	for _, result := range []string{"reloaded", "failed"} {
		m.poolRenewals.WithLabelValues(result) // listed at 0 before the first, so an alert can watch failed
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.rows, m.batches, m.storedLag, m.insertSeconds, m.insertErrors, m.querySeconds, m.queryErrors, m.queryRefused, m.scanPasses, m.scanVisits, m.poolRenewals} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register store metrics: %w", err)
			}
		}
	}
	return m, nil
}
