package sessionize

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/waymark-dev/waymark/ingest"
)

// Batch is what the sessionizer hands on: the events as they came and the sessions they changed.
type Batch struct {
	Events   []ingest.Event
	Sessions []Session
}

// Sink stores batches. Write returns when the batch is durable.
type Sink interface {
	Write(ctx context.Context, b Batch) error
}

// Runner puts a Sessionizer between the Kafka consumer (it is an ingest.Sink) and a store.
// Sessions whose write failed are written again with the next batch, so a retried batch of
// events, which the sessionizer has already absorbed, loses no session.
type Runner struct {
	mu      sync.Mutex
	core    *Sessionizer
	sink    Sink
	now     func() time.Time
	pending []Session
	metrics *runnerMetrics
}

// NewRunner wires a Sessionizer to a Sink.
func NewRunner(core *Sessionizer, sink Sink, reg prometheus.Registerer) (*Runner, error) {
	m, err := newRunnerMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Runner{core: core, sink: sink, now: time.Now, metrics: m}, nil
}

// Write sessionizes events and writes them with the changed sessions.
func (r *Runner) Write(ctx context.Context, events []ingest.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := r.core.Push(r.now(), events)
	sessions := append(r.pending, changed...)
	r.pending = nil
	if err := r.sink.Write(ctx, Batch{Events: events, Sessions: sessions}); err != nil {
		r.pending = sessions
		return fmt.Errorf("store %d events and %d sessions: %w", len(events), len(sessions), err)
	}
	r.metrics.customers.Set(float64(r.core.Customers()))
	for _, s := range changed {
		if !s.Deleted {
			r.metrics.sessions.WithLabelValues(s.EndReason).Inc()
		}
	}
	return nil
}

type runnerMetrics struct {
	customers prometheus.Gauge
	sessions  *prometheus.CounterVec
}

func newRunnerMetrics(reg prometheus.Registerer) (*runnerMetrics, error) {
	m := &runnerMetrics{
		customers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "waymark_sessionizer_customers", Help: "Customers the sessionizer holds state for.",
		}),
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waymark_sessionizer_session_updates_total", Help: "Sessions emitted (new or changed), by end reason.",
		}, []string{"end_reason"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.customers, m.sessions} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register sessionizer metrics: %w", err)
			}
		}
	}
	return m, nil
}
