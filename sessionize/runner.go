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
	// openCountedAt is when open sessions were last counted (an O(customers) walk).
	openCountedAt time.Time
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
	changed, stats := r.core.Push(r.now(), events)
	r.metrics.observe(stats)
	sessions := append(r.pending, changed...)
	r.pending = nil
	if err := r.sink.Write(ctx, Batch{Events: events, Sessions: sessions}); err != nil {
		r.pending = sessions
		return fmt.Errorf("store %d events and %d sessions: %w", len(events), len(sessions), err)
	}
	r.metrics.customers.Set(float64(r.core.Customers()))
	if now := r.now(); now.Sub(r.openCountedAt) > 5*time.Second {
		r.metrics.open.Set(float64(r.core.OpenSessions()))
		r.openCountedAt = now
	}
	for _, s := range changed {
		if !s.Deleted {
			r.metrics.sessions.WithLabelValues(s.EndReason).Inc()
		}
	}
	return nil
}

type runnerMetrics struct {
	customers      prometheus.Gauge
	open           prometheus.Gauge
	sessions       *prometheus.CounterVec
	duplicates     prometheus.Counter
	late           prometheus.Counter
	beyondLateness prometheus.Counter
	links          prometheus.Counter
	merges         prometheus.Counter
	runaway        prometheus.Counter
	stageEntries   *prometheus.CounterVec
	orders         *prometheus.CounterVec
	revenue        *prometheus.CounterVec
}

func newRunnerMetrics(reg prometheus.Registerer) (*runnerMetrics, error) {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m := &runnerMetrics{
		customers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "waymark_sessionizer_customers", Help: "Customers the sessionizer holds state for.",
		}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "waymark_sessionizer_open_sessions", Help: "Sessions whose last event is within the session gap of the newest event.",
		}),
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waymark_sessionizer_session_updates_total", Help: "Sessions emitted (new or changed), by end reason.",
		}, []string{"end_reason"}),
		duplicates:     counter("waymark_sessionizer_duplicates_total", "Events dropped because the same source and messageId was seen before."),
		late:           counter("waymark_sessionizer_late_events_total", "Events older than their customer's newest event by more than the session gap."),
		beyondLateness: counter("waymark_sessionizer_events_beyond_lateness_total", "Events older than the newest event by more than the allowed lateness (stored, counted)."),
		links:          counter("waymark_sessionizer_identity_links_total", "Identity links seen (identify, alias, events carrying both ids)."),
		merges:         counter("waymark_sessionizer_identity_merges_total", "Identity links that joined two persons."),
		runaway:        counter("waymark_sessionizer_runaway_merges_total", "Identity links refused because the person would exceed the id cap."),
		stageEntries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waymark_journey_stage_entries_total", Help: "Customers reaching a journey stage for the first time, by stage and first-touch channel.",
		}, []string{"stage", "channel"}),
		orders: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waymark_journey_orders_total", Help: "Order Completed events, by first-touch channel.",
		}, []string{"channel"}),
		revenue: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waymark_journey_revenue_total", Help: "Revenue of Order Completed events (properties.revenue, else total), by first-touch channel.",
		}, []string{"channel"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.customers, m.open, m.sessions, m.duplicates, m.late, m.beyondLateness,
			m.links, m.merges, m.runaway, m.stageEntries, m.orders, m.revenue} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register sessionizer metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *runnerMetrics) observe(s Stats) {
	m.duplicates.Add(float64(s.Duplicates))
	m.late.Add(float64(s.Late))
	m.beyondLateness.Add(float64(s.BeyondLateness))
	m.links.Add(float64(s.IdentityLinks))
	m.merges.Add(float64(s.IdentityMerges))
	m.runaway.Add(float64(s.RunawayMerges))
	for k, n := range s.StageEntries {
		m.stageEntries.WithLabelValues(k.Stage, k.Channel).Add(float64(n))
	}
	for ch, n := range s.Orders {
		m.orders.WithLabelValues(ch).Add(float64(n))
	}
	for ch, v := range s.Revenue {
		m.revenue.WithLabelValues(ch).Add(v)
	}
}
