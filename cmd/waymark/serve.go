package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
	"github.com/waymark-dev/waymark/store"
)

func runServe(ctx context.Context, args []string, log *slog.Logger) error {
	fs := newFlagSet("serve", "serve [flags]")
	kf := addKafkaFlags(fs)
	cf := addClickHouseFlags(fs)
	httpAddr := fs.String("http-addr", "127.0.0.1:8080", "HTTP address for /metrics, /healthz and /readyz")
	mapPath := fs.String("journey-map", "", "journey map YAML file; empty: the built-in shop map")
	partitions := fs.Int("dev-broker-partitions", 6, "partitions of the dev broker's topics")
	batchSize := fs.Int("batch-size", 20000, "events written to ClickHouse at most in one insert")
	flushInterval := fs.Duration("flush-interval", 500*time.Millisecond, "longest wait before a partial batch is written")
	var sessCfg sessionize.Config
	fs.DurationVar(&sessCfg.Gap, "session-gap", 30*time.Minute, "inactivity that ends a session")
	fs.DurationVar(&sessCfg.MaxDuration, "session-max-duration", 24*time.Hour, "longest session")
	if err := parseFlags(fs, args); err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	jm, err := sessionize.LoadMap(*mapPath)
	if err != nil {
		return fmt.Errorf("--journey-map: %w", err)
	}
	if kf.brokers == "" {
		broker, err := ingest.StartDevBroker(kf.devBrokerAddr, *partitions, kf.topic, kf.dlqTopic)
		if err != nil {
			return fmt.Errorf("--dev-broker-addr: %w", err)
		}
		defer broker.Close()
		kf.devBrokerAddr = broker.Addr()
		log.Warn("DEV BROKER: --kafka-brokers is empty, so Waymark runs its embedded Kafka-protocol broker; "+
			"it keeps events IN MEMORY ONLY and loses them when this process stops. Use a real Kafka in production.",
			"addr", broker.Addr())
	}
	st, err := store.Open(ctx, cf.cfg, log, reg)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	sz, err := sessionize.New(sessCfg, jm)
	if err != nil {
		return err
	}
	runner, err := sessionize.NewRunner(sz, st, reg)
	if err != nil {
		return err
	}
	ccfg := kf.consumerConfig()
	ccfg.BatchSize, ccfg.FlushInterval = *batchSize, *flushInterval
	consumer, err := ingest.NewConsumer(ccfg, runner, log, reg)
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		err := st.Ping(r.Context())
		if err == nil {
			err = consumer.Healthy()
		}
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return fmt.Errorf("--http-addr: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Info("serving", "http", ln.Addr().String(), "clickhouse", cf.cfg.Addr, "database", cf.cfg.Database,
		"brokers", ccfg.Brokers, "journey_map", jm.Version)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	g.Go(func() error { return consumer.Run(gctx) })
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down: stop accepting HTTP")
		start := time.Now()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := srv.Shutdown(sctx)
		log.Info("http stopped", "took", time.Since(start))
		return err
	})
	err = g.Wait()
	log.Info("stopped: consumer flushed and committed, closing ClickHouse and Kafka clients")
	return err
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
