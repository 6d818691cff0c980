package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/waymark-dev/waymark/cmd/waymark/web"
	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
	"github.com/waymark-dev/waymark/store"
	"github.com/waymark-dev/waymark/store/queryapi"
)

// maxDevPartitions bounds the partitions of a dev broker's topic: the in-process broker keeps
// each one's buffers in memory, and 100,000,000 of them ran it out of memory instead of failing.
const maxDevPartitions = 1024

// readinessTimeout bounds the checks behind /readyz and the waymark_ready gauge: what cannot
// answer within it (a ClickHouse or broker that accepts connections and then hangs) is not ready.
const readinessTimeout = 2 * time.Second

func runServe(ctx context.Context, args []string, log *slog.Logger) error {
	fs := newFlagSet("serve", "serve [flags]")
	kf := addKafkaFlags(fs)
	cf := addStoreFlags(fs)
	addClusterFlag(fs, cf)
	addQueryLimitFlags(fs, cf, "over it the API answers 503 with Retry-After")
	addFunnelMatchingFlag(fs, cf)
	httpAddr := addHTTPAddrFlag(fs)
	var metricsAddr string
	checkedVar(fs, &metricsAddr, "metrics-addr", "", "HTTP address serving /metrics alone, apart from --http-addr (where /metrics then is not): the metrics hold revenue, orders and NPS, which a collector's public address should not show; empty: /metrics on --http-addr", text, func(s string) error {
		if s == "" {
			return nil
		}
		return checkListenAddr(s)
	})
	var rolesFlag string
	checkedVar(fs, &rolesFlag, "roles", "collector,ingest,query", "comma-separated roles to run, each once (spaces around one are ignored): collector (Segment HTTP API to Kafka), ingest (Kafka to ClickHouse), query (/api/v1/)", text, func(s string) error {
		_, err := parseRoles(s)
		return err
	})
	writeKeysPath := fs.String("write-keys", "", "file of write keys for the collector, one \"KEY SOURCE\" per line")
	writeKeysInline := fs.String("write-keys-inline", "", "write keys for the collector as KEY=SOURCE,KEY=SOURCE")
	readKeysPath := fs.String("read-keys", "", "file of read keys for the query API (/api/v1/) and the journey map page, one \"KEY NAME\" per line")
	readKeysInline := fs.String("read-keys-inline", "", "read keys for the query API as KEY=NAME,KEY=NAME")
	insecureOpen := fs.Bool("insecure-open-query-api", false, "query role without read keys: serve /api/v1/ on a non-loopback --http-addr anyway, open to anyone who reaches it")
	var rateLimit float64
	checkedVar(fs, &rateLimit, "rate-limit", 0, "collector: events per second allowed per write key, in bursts of up to max(rate, 500) (0: no limit)", number(0, math.Inf(1)), nil)
	var publicURL string
	checkedVar(fs, &publicURL, "public-url", "", "collector: its address as browsers reach it (https://collect.shop.example), which the settings analytics.js loads from /v1/projects/KEY/settings name; empty: the request's Host, answered uncacheable", text, func(s string) error {
		if s == "" {
			return nil
		}
		_, _, err := ingest.ParsePublicURL(s)
		return err
	})
	mapPath := fs.String("journey-map", "", "journey map YAML file; empty: the built-in shop map")
	checkedVar(fs, &cf.cfg.QueryConcurrency, "query-concurrency", 4, "journey queries (/api/v1/) answered at once; beyond them the API answers 503 with Retry-After", wholeNumber(1, math.MaxInt), nil)
	var partitions int
	checkedVar(fs, &partitions, "dev-broker-partitions", 6, "partitions of the dev broker's topics", wholeNumber(1, maxDevPartitions), nil)
	var ccfg ingest.ConsumerConfig
	addBatchFlags(fs, &ccfg)
	checkedVar(fs, &ccfg.StopTimeout, "stop-timeout", 15*time.Second, "time the consumer has on SIGTERM to store and commit what it holds; with the dev broker, to store every event the collector acknowledged, which is lost after it", parseDuration, positive)
	var drainDelay time.Duration
	checkedVar(fs, &drainDelay, "drain-delay", 0, "time between SIGTERM and closing the HTTP listener, while /readyz answers 503 and new tracking calls get 503 with Retry-After (requests in flight and queries are answered), so a load balancer that polls /readyz stops sending here before connections are refused (Kubernetes: a few seconds more than the readiness probe's period); 0: close at once", parseDuration, atLeast(time.Duration(0)))
	checkedVar(fs, &ccfg.StallAfter, "stall-after", 5*time.Minute, "how long messages may wait on a partition while the group's committed offset there does not move before the consumer warns, /readyz fails and the consumer rejoins its group (waymark_consumer_stalled_seconds shows the wait all along)", parseDuration, positive)
	checkedVar(fs, &ccfg.DLQTimeout, "dlq-timeout", time.Minute, "how long writes to the dead-letter topic are retried before the dead letter is logged in full instead", parseDuration, positive)
	// 0 would turn net/http's timeout off, which lets slow clients hold connections open forever
	// (hostile_test.go): the timeouts are refused unless positive.
	var readHeaderTimeout, readTimeout time.Duration
	checkedVar(fs, &readHeaderTimeout, "http-read-header-timeout", 5*time.Second, "time allowed to read a request's headers", parseDuration, positive)
	checkedVar(fs, &readTimeout, "http-read-timeout", 30*time.Second, "time allowed to read a whole request, body included", parseDuration, positive)
	sessCfg := addSessionizerFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	roles, _ := parseRoles(rolesFlag) // checked when parsed
	if err := checkSessionizerFlags(fs, sessCfg); err != nil {
		return err
	}
	if err := kf.check(fs); err != nil {
		return err
	}
	writeKeys, err := loadWriteKeys(fs.ref, *writeKeysPath, *writeKeysInline)
	if err != nil {
		return err
	}
	var queryKeys readKeys
	if roles["query"] {
		if queryKeys, err = loadReadKeys(fs.ref, *readKeysPath, *readKeysInline, writeKeys); err != nil {
			return err
		}
		if len(queryKeys.hashes) == 0 {
			if err := checkOpenQueryAPI(ctx, fs, *httpAddr, *insecureOpen, log); err != nil {
				return err
			}
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	jm, err := sessionize.LoadMap(*mapPath)
	if err != nil {
		return fs.errorf("journey-map", "%w", err)
	}
	// The port first: one in use fails now, naming the flag, not after the dev broker has started
	// and ClickHouse's schema has been migrated. Connections wait in its backlog until Serve.
	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return fs.errorf("http-addr", "%w", err)
	}
	defer ln.Close() // Serve closes it too; this is for a return before Serve
	var metricsLn net.Listener
	if metricsAddr != "" && metricsAddr == *httpAddr {
		return fs.errorf("metrics-addr", "%s is --http-addr's address too: give /metrics an address of its own, or leave --metrics-addr empty to serve it on --http-addr", metricsAddr)
	}
	if metricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", metricsAddr); err != nil {
			return fs.errorf("metrics-addr", "%w", err)
		}
		defer metricsLn.Close()
	} else if roles["collector"] && !isLoopback(ctx, *httpAddr) {
		log.Warn("/metrics is served on the collector's address, which browsers reach: anyone who reaches it reads the live revenue, orders and NPS; set --metrics-addr to serve it apart", "http_addr", *httpAddr)
	}
	// Only the collector (which produces) and ingest (which consumes) talk to Kafka: a query-only
	// process starts no dev broker, so several of them run side by side on one host, and logs
	// nothing about Kafka. Only ingest (which writes) and query (which reads) talk to ClickHouse.
	usesKafka, usesClickHouse := roles["collector"] || roles["ingest"], roles["ingest"] || roles["query"]
	devBroker := kf.brokers == "" && usesKafka
	if devBroker {
		broker, err := ingest.StartDevBroker(kf.devBrokerAddr, partitions, kf.topic, kf.dlqTopic)
		if err != nil {
			return fs.errorf("dev-broker-addr", "%w", err)
		}
		defer broker.Close()
		kf.devBrokerAddr = broker.Addr()
		log.Warn("DEV BROKER: --kafka-brokers is empty, so Waymark runs its embedded Kafka-protocol broker; "+
			"it keeps events IN MEMORY ONLY and loses them when this process stops. Use a real Kafka in production.",
			"addr", broker.Addr())
	}
	mux := http.NewServeMux()
	var ready []func(context.Context) error
	var collector *ingest.Collector
	if roles["collector"] {
		collector, err = ingest.NewCollector(ingest.CollectorConfig{
			Brokers: kf.brokerList(), Topic: kf.topic, DLQTopic: kf.dlqTopic, WriteKeys: writeKeys, RateLimit: rateLimit, PublicURL: publicURL,
		}, log, reg)
		if err != nil {
			return err
		}
		defer collector.Close()
		ready = append(ready, func(context.Context) error { return collector.Ready() })
	}
	var st *store.Store
	if usesClickHouse {
		if st, err = openStore(ctx, fs, cf.cfg, log, reg); err != nil {
			return err
		}
		defer st.Close()
		if err := st.Migrate(ctx); err != nil {
			return err
		}
		if err := st.CheckJourneyMap(ctx, jm); err != nil {
			return fs.errorf("journey-map", "%w", err)
		}
		ready = append(ready, st.Ping)
	}
	var queries *queryapi.API
	if roles["query"] {
		// The page's own files hold no data and are served to anyone, so that it can ask for the
		// key; everything it shows comes from /api/v1/, which needs a read key when any is set.
		api, err := queryapi.New(st, jm, log, reg)
		if err != nil {
			return err
		}
		apiMux := http.NewServeMux()
		api.Register(apiMux)
		var h http.Handler = apiMux
		if len(queryKeys.hashes) > 0 {
			h = requireReadKey(queryKeys, apiMux)
		}
		mux.Handle("/api/v1/", h)
		web.Register(mux)
		queries = api
	}
	var consumer *ingest.Consumer
	if roles["ingest"] {
		sz, err := sessionize.New(*sessCfg, jm)
		if err != nil {
			return err
		}
		runner, err := sessionize.NewRunner(sz, st, st, reg)
		if err != nil {
			return err
		}
		ccfg.Brokers, ccfg.Topic, ccfg.DLQTopic, ccfg.Group = kf.brokerList(), kf.topic, kf.dlqTopic, kf.group
		ccfg.OnRebalance = st.Rebalanced // partitions another process wrote may come to this one
		if devBroker {
			// The dev broker's offsets start at 0 again with each start: the events sent now
			// follow those stored before in the tie rule's order only with Seqs past theirs.
			largest, err := st.LargestSeq(ctx)
			if err != nil {
				return err
			}
			ccfg.SeqBase = largest + 1
		}
		if consumer, err = ingest.NewConsumer(ccfg, runner, log, reg); err != nil {
			return err
		}
		ready = append(ready, func(context.Context) error { return consumer.Healthy() })
	}

	var draining atomic.Bool // set on SIGTERM: every role of a process stopping is not ready
	ready = append(ready, func(context.Context) error {
		if draining.Load() {
			return errors.New("shutting down")
		}
		return nil
	})
	readiness := func(ctx context.Context) error {
		for _, check := range ready {
			if err := check(ctx); err != nil {
				return err
			}
		}
		return nil
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "waymark_ready", Help: "1 when /readyz answers 200: every role of this process can do its work.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(ctx, readinessTimeout)
		defer cancel()
		if readiness(ctx) != nil {
			return 0
		}
		return 1
	}))
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	var metricsSrv *http.Server
	if metricsLn == nil {
		mux.Handle("GET /metrics", metrics)
	} else {
		metricsMux := http.NewServeMux()
		metricsMux.Handle("GET /metrics", metrics)
		metricsMux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no such path: %.200q; served here: /metrics", r.URL.Path)})
		})
		metricsSrv = newHTTPServer(metricsMux, httpTimeouts{readHeader: readHeaderTimeout, read: readTimeout, write: writeTimeout(readTimeout, 0)})
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		// Bounded as the gauge is: a ClickHouse or broker that takes connections and never
		// answers is not ready, and a probe must hear so rather than wait with it.
		ctx, cancel := context.WithTimeout(r.Context(), readinessTimeout)
		defer cancel()
		if err := readiness(ctx); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	// Any other path answers 404 in JSON, as the API's errors do, naming what is served here.
	served := []string{"/healthz", "/readyz"}
	if metricsLn == nil {
		served = append(served, "/metrics")
	}
	if roles["collector"] {
		served = append(served, "/v1/… (tracking calls)")
	}
	if roles["query"] {
		served = append(served, "/api/v1/… (queries)", "/ (the journey page)")
	}
	notFound := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no such path: %.200q; served here: %s", r.URL.Path, strings.Join(served, ", "))})
	})
	mux.Handle("/", notFound)
	srv := newHTTPServer(countedByAPI(collector, queries, mux, notFound), httpTimeouts{
		readHeader: readHeaderTimeout,
		read:       readTimeout,
		write:      writeTimeout(readTimeout, cf.cfg.QueryTimeout),
	})
	attrs := []any{"roles", rolesFlag, "http", ln.Addr().String()}
	if metricsLn != nil {
		attrs = append(attrs, "metrics", metricsLn.Addr().String())
	}
	if usesClickHouse {
		attrs = append(attrs, "clickhouse", cf.cfg.Addr, "database", cf.cfg.Database, "journey_map", jm.Version)
	}
	if usesKafka {
		attrs = append(attrs, "brokers", kf.brokerList())
	}
	log.Info("serving", attrs...)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	httpStopped := make(chan struct{})
	if metricsSrv != nil {
		g.Go(func() error {
			if err := metricsSrv.Serve(metricsLn); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("metrics http server: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			// Stopped with the HTTP server, once its requests are answered.
			<-httpStopped
			sctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
			defer cancel()
			return metricsSrv.Shutdown(sctx)
		})
	}
	if consumer != nil {
		consumerCtx := gctx
		if devBroker {
			// The dev broker dies with this process, and with it every event the collector
			// acknowledged that the consumer has not stored: the consumer stops only after HTTP
			// has, once it has committed everything (or its stop timeout is over).
			cctx, stop := context.WithCancel(context.WithoutCancel(gctx))
			consumerCtx = cctx
			g.Go(func() error {
				defer stop()
				<-httpStopped
				start := time.Now()
				log.Info("shutting down: dev broker: the consumer stores the events acknowledged before it stops")
				left, err := consumer.Drain(context.Background())
				switch {
				case err != nil || left > 0:
					// left counts the messages not committed: of them, the batch being written
					// when the time ran out may yet be stored, in part (tester 20 saw 677 of
					// 34,413 stored after this line).
					log.Error("shutting down: acknowledged events LOST: the consumer did not store them within its stop timeout, and the dev broker keeps them in memory only (events: those not committed; the last batch, being written, may yet be stored in part)",
						"events", left, "err", err, "took", time.Since(start))
				default:
					log.Info("consumer drained the dev broker", "took", time.Since(start))
				}
				return nil
			})
		}
		g.Go(func() error { return consumer.Run(consumerCtx) })
	}
	if devBroker && consumer == nil {
		// A collector without the ingest role on the dev broker: another process consumes this
		// broker, and the events it has not stored when this one stops are lost with it. Wait
		// for its group to catch up, as the ingest role's own drain does, and say what is lost.
		log.Warn("DEV BROKER without the ingest role: the events acknowledged here are stored only once a process with the ingest role consumes them from this broker, before this process stops",
			"addr", kf.devBrokerAddr, "group", kf.group)
		g.Go(func() error {
			<-httpStopped
			start := time.Now()
			wctx, cancel := context.WithTimeout(context.Background(), ccfg.StopTimeout)
			defer cancel()
			log.Info("shutting down: dev broker: waiting for the consumer group to store the events acknowledged here", "group", kf.group)
			brokers := []string{kf.devBrokerAddr}
			if err := ingest.WaitCaughtUp(wctx, brokers, kf.group, kf.topic); err != nil {
				// The group's offsets may not be readable (no consumer ever joined): then every
				// message the broker holds may be lost.
				attrs := []any{"err", err, "took", time.Since(start)}
				ectx, cancel := context.WithTimeout(context.Background(), readinessTimeout)
				defer cancel()
				if lag, lerr := ingest.GroupLag(ectx, brokers, kf.group, kf.topic); lerr == nil {
					total := int64(0)
					for _, l := range lag {
						total += l
					}
					attrs = append(attrs, "events", total)
				} else if n, nerr := ingest.LogEnd(ectx, brokers, kf.topic); nerr == nil {
					attrs = append(attrs, "events_at_most", n)
				}
				log.Error("shutting down: acknowledged events LOST: no consumer stored them within --stop-timeout, and the dev broker keeps them in memory only", attrs...)
				return nil
			}
			log.Info("the consumer group stored every event of the dev broker", "took", time.Since(start))
			return nil
		})
	}
	if collector != nil {
		g.Go(func() error { return collector.Run(gctx) })
	}
	g.Go(func() error {
		defer close(httpStopped)
		<-gctx.Done()
		start := time.Now()
		draining.Store(true)
		if collector != nil {
			log.Info("shutting down: collector draining, /readyz fails")
			collector.Drain()
		}
		if drainDelay > 0 {
			// A second SIGTERM or SIGINT ends the process at once (stopOnSignals).
			log.Info("shutting down: /readyz fails for the drain delay before the listener closes", "drain_delay", drainDelay)
			time.Sleep(drainDelay)
		}
		log.Info("shutting down: stop accepting HTTP, finish requests in flight")
		sctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
		defer cancel()
		if queries != nil {
			// Queries still running near the end are answered 503 (try again: another replica
			// answers), not cut off with no answer at all.
			stopQueries := time.AfterFunc(httpShutdownTimeout-queriesStopBefore, queries.Stop)
			defer stopQueries.Stop()
		}
		err := srv.Shutdown(sctx)
		log.Info("http stopped", "took", time.Since(start))
		return err
	})
	err = g.Wait()
	done, clients := []string{"requests answered"}, []string{}
	if consumer != nil {
		done = append(done, "consumer flushed and committed")
	}
	if usesKafka {
		clients = append(clients, "Kafka")
	}
	if usesClickHouse {
		clients = append(clients, "ClickHouse")
	}
	if err != nil { // what did not stop cleanly says so (returned, and logged by main)
		log.Error("stopped with an error; closing "+strings.Join(clients, " and ")+" clients", "err", err)
		return err
	}
	log.Info("stopped: " + strings.Join(done, ", ") + "; closing " + strings.Join(clients, " and ") + " clients")
	return nil
}

// httpTimeouts are the time limits of serve's HTTP server: --http-read-header-timeout,
// --http-read-timeout, and writeTimeout's.
type httpTimeouts struct{ readHeader, read, write time.Duration }

// newHTTPServer returns serve's HTTP server for handler (countedByAPI's): within earlyAnswers,
// with the time limits, and serverMaxHeaderBytes of a request's head.
func newHTTPServer(handler http.Handler, t httpTimeouts) *http.Server {
	return &http.Server{
		Handler:           earlyAnswers(handler),
		ReadHeaderTimeout: t.readHeader,
		ReadTimeout:       t.read,
		WriteTimeout:      t.write,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    serverMaxHeaderBytes,
	}
}

// httpShutdownTimeout bounds how long serve waits for the requests in flight once it stops
// accepting HTTP; queriesStopBefore before its end, the journey queries still running are stopped
// and answered 503 (queryapi.API.Stop), so that they end with an answer before the server does
// (a query waiting on a ClickHouse that hangs got an empty reply, and serve exited 1: tester 28's
// F4).
const (
	httpShutdownTimeout = 10 * time.Second
	queriesStopBefore   = 2 * time.Second
)

// countedByAPI returns the server's handler: the requests the collector answers (nil when this
// process has no collector role) go to it, the others to mux, paths as sent (pathsAsSent), all
// within limitHead's limits. Each request to the tracking API or the query API (nil without the
// query role) is counted by that API's counter whatever answers it: limitHead's 414 and 431, the
// 404 of a path not served as sent, or the API itself. /healthz, /readyz, /metrics and the page
// are not counted.
func countedByAPI(collector *ingest.Collector, queries *queryapi.API, mux *http.ServeMux, notFound http.Handler) http.Handler {
	site := pathsAsSent(mux, notFound)
	var tracking http.Handler = http.NotFoundHandler() // never asked: Answers needs a collector
	if collector != nil {
		tracking = collector.Counted(limitHead(http.HandlerFunc(collector.Serve)))
	}
	limited := limitHead(site)
	var queried http.Handler = limited
	if queries != nil {
		queried = queries.Counted(limited)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case collector != nil && collector.Answers(r):
			tracking.ServeHTTP(w, r)
		case queryapi.Answers(r):
			queried.ServeHTTP(w, r)
		default:
			limited.ServeHTTP(w, r)
		}
	})
}

// pathsAsSent passes to mux the requests whose path it would serve as sent, and answers the others
// with notFound: an http.ServeMux answers a path with doubled slashes or dot segments
// (/api/v1//funnel, /api/v1/./sessions) or a subtree's name without its slash (/api/v1) with a
// redirect whose body is HTML, which a JSON client that follows no redirects cannot read (tester
// 19's T7); the collector takes /v1 paths as sent likewise (ingest.Collector.Handler).
func pathsAsSent(mux *http.ServeMux, notFound http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		clean := path.Clean(p)
		if strings.HasSuffix(p, "/") && clean != "/" {
			clean += "/"
		}
		_, pattern := mux.Handler(r)
		if _, after, ok := strings.Cut(pattern, " "); ok {
			pattern = after // "GET /api/v1/funnel": the method's pattern
		}
		if p != clean || pattern == p+"/" { // the mux would redirect to pattern
			notFound.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// checkOpenQueryAPI decides whether the query API may serve without read keys on addr (the
// --http-addr of fs): only on a loopback address, where no one but this machine reaches it,
// unless insecure (--insecure-open-query-api) says otherwise, which is logged as a warning. A host
// name counts as loopback when every address it resolves to is.
func checkOpenQueryAPI(ctx context.Context, fs *flagSet, addr string, insecure bool, log *slog.Logger) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fs.errorf("http-addr", "%w", err)
	}
	switch {
	case isLoopback(ctx, addr):
		log.Info("query API without read keys, on a loopback address only", "http_addr", addr)
		return nil
	case !insecure:
		return fs.errorf("http-addr", "%s is not a loopback address and the query role has no read keys: anyone who reaches it "+
			"would read every journey and person id; set --read-keys or --read-keys-inline (or serve on 127.0.0.1, "+
			"or pass --insecure-open-query-api to open it anyway)", addr)
	}
	log.Warn("QUERY API OPEN TO ANYONE: --insecure-open-query-api is set and there are no read keys, so every journey "+
		"and person id on "+addr+" can be read without credentials; set --read-keys or --read-keys-inline", "http_addr", addr)
	return nil
}

// isLoopback reports whether addr (HOST:PORT) listens on a loopback address only, where no one but
// this machine reaches it: a host name counts when every address it resolves to is loopback; no
// host (every interface) does not.
func isLoopback(ctx context.Context, addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	if host == "" {
		return false
	}
	ips, err := net.DefaultResolver.LookupIP(ctx, "ip", host)
	loopback := err == nil && len(ips) > 0
	for _, ip := range ips {
		loopback = loopback && ip.IsLoopback()
	}
	return loopback
}

// parseRoles reads the value of --roles: roles separated by commas, each once, with the spaces
// around one ignored. An empty entry ("collector,,query") or a role given twice is refused: each
// was silently taken for a list without it.
func parseRoles(s string) (map[string]bool, error) {
	roles := map[string]bool{}
	for _, r := range strings.Split(s, ",") {
		switch r = strings.TrimSpace(r); r {
		case "collector", "ingest", "query":
			if roles[r] {
				return nil, fmt.Errorf("%s given twice", r)
			}
			roles[r] = true
		case "":
			return nil, errors.New("an empty entry; give roles separated by commas (collector, ingest, query)")
		default:
			return nil, fmt.Errorf("unknown role %s (want collector, ingest, query)", quoteValue(r))
		}
	}
	return roles, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeTimeout is the time allowed to answer a request, counted as net/http counts it: from the
// end of its headers. A query answers within queryTimeout (a batch too: its queries run at once),
// a 503 at the latest, and the connection must outlive it to carry the answer; a batch's body,
// read first, may take up to readTimeout, so that time counts too (without it, a body that took
// 29 s and queries of 6 s lost their answer to a 30 s limit: the client got no response).
func writeTimeout(readTimeout, queryTimeout time.Duration) time.Duration {
	return max(30*time.Second, readTimeout+queryTimeout+15*time.Second)
}
