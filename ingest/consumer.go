package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// HeaderSource names the Kafka header that carries an event's source. Messages without it get the
// source "kafka".
const HeaderSource = "waymark-source"

// Dead-letter headers: why the message was rejected and where it came from.
const (
	HeaderDLQReason    = "waymark-dlq-reason"
	HeaderDLQError     = "waymark-dlq-error"
	HeaderDLQTopic     = "waymark-dlq-topic"
	HeaderDLQPartition = "waymark-dlq-partition"
	HeaderDLQOffset    = "waymark-dlq-offset"
)

// ReasonPanic is the dead-letter reason of an event whose writing panicked: a bug in Waymark that
// this event sets off. The consumer recovers, writes the rest of the batch and moves on (see Run).
const ReasonPanic = "panic"

// Sink receives decoded events. Write returns only when the events are durable (or with an error,
// in which case the consumer retries the same batch); the consumer commits offsets after it.
type Sink interface {
	Write(ctx context.Context, events []Event) error
}

// Preparer is a Sink that can split a write in two: Prepare takes the batches one at a time and
// in order, and returns the rest of the write (making the batch durable), which runs while the
// next batch is prepared, one at a time and in the same order. The consumer prepares a failed
// batch again before it stores it again.
type Preparer interface {
	Prepare(ctx context.Context, events []Event) (store func(context.Context) error, err error)
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(ctx context.Context, events []Event) error

// Write calls f(ctx, events).
func (f SinkFunc) Write(ctx context.Context, events []Event) error { return f(ctx, events) }

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	Brokers  []string // Kafka bootstrap brokers; required
	Topic    string   // topic to consume; default "waymark.events"
	DLQTopic string   // dead-letter topic; default "waymark.dlq"
	Group    string   // consumer group id; default "waymark"

	BatchSize     int           // events handed to the sink at most at once; default 20000
	FlushInterval time.Duration // longest wait before a partial batch is written; default 500ms
	RetryMax      time.Duration // longest backoff between retries of a failing batch; default 10s
	StopTimeout   time.Duration // time allowed to write and commit the last batch on shutdown; default 15s
	LagInterval   time.Duration // how often consumer lag is measured for metrics; default 5s
	// MaxEventBytes limits a message produced straight to Kafka, as the collector limits an
	// event it is sent (Segment's 32 KiB); a larger one is dead-lettered as too_large. Messages
	// the collector produced (they carry the waymark-source header) were checked by it, before
	// it added its stamped members. Default DefaultMaxEventBytes.
	MaxEventBytes int
	// DLQTimeout is how long writes to the dead-letter topic are retried. After it, each dead
	// letter is logged in full at ERROR level and counted in waymark_consumer_dlq_write_failures_total,
	// and the consumer goes on: a broken DLQ neither stalls ingestion forever nor loses a message
	// silently. Default 1m.
	DLQTimeout time.Duration
}

func (c *ConsumerConfig) setDefaults() {
	if c.Topic == "" {
		c.Topic = "waymark.events"
	}
	if c.DLQTopic == "" {
		c.DLQTopic = "waymark.dlq"
	}
	if c.Group == "" {
		c.Group = "waymark"
	}
	if c.BatchSize == 0 {
		c.BatchSize = 20000
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = 500 * time.Millisecond
	}
	if c.RetryMax == 0 {
		c.RetryMax = 10 * time.Second
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = 15 * time.Second
	}
	if c.LagInterval == 0 {
		c.LagInterval = 5 * time.Second
	}
	if c.DLQTimeout == 0 {
		c.DLQTimeout = time.Minute
	}
	if c.MaxEventBytes == 0 {
		c.MaxEventBytes = DefaultMaxEventBytes
	}
}

// Validate reports the first setting that cannot work.
func (c *ConsumerConfig) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("kafka brokers: at least one is required")
	case c.Topic == c.DLQTopic:
		return fmt.Errorf("dlq topic: must differ from the topic %q", c.Topic)
	case c.BatchSize < 1:
		return fmt.Errorf("batch size: must be positive, got %d", c.BatchSize)
	case c.FlushInterval < time.Millisecond:
		return fmt.Errorf("flush interval: must be at least 1ms, got %s", c.FlushInterval)
	}
	return nil
}

// Consumer reads the events topic in a consumer group, decodes each message, sends the ones it
// cannot use to the dead-letter topic, hands the rest to a Sink and commits offsets after both.
type Consumer struct {
	cfg     ConsumerConfig
	log     *slog.Logger
	sink    Sink
	reader  *kafka.Reader
	dlq     *kafka.Writer
	metrics *consumerMetrics
	health  *health
}

// NewConsumer checks cfg and builds a Consumer. Nothing connects until Run.
func NewConsumer(cfg ConsumerConfig, sink Sink, log *slog.Logger, reg prometheus.Registerer) (*Consumer, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("consumer config: %w", err)
	}
	m, err := newConsumerMetrics(reg)
	if err != nil {
		return nil, err
	}
	reader := kafka.NewReader(kafka.ReaderConfig{
		Brokers:        cfg.Brokers,
		GroupID:        cfg.Group,
		Topic:          cfg.Topic,
		MinBytes:       1,
		MaxBytes:       16 << 20,
		MaxWait:        100 * time.Millisecond,
		QueueCapacity:  cfg.BatchSize,
		CommitInterval: 0, // commit synchronously, after the sink has the batch
		StartOffset:    kafka.FirstOffset,
		// A consumer that dies is noticed after SessionTimeout; its partitions then move.
		HeartbeatInterval: time.Second,
		SessionTimeout:    10 * time.Second,
		RebalanceTimeout:  20 * time.Second,
		JoinGroupBackoff:  time.Second,
	})
	dlq := &kafka.Writer{
		Addr:         kafka.TCP(cfg.Brokers...),
		Topic:        cfg.DLQTopic,
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
		MaxAttempts:  3,
	}
	return &Consumer{cfg: cfg, log: log, sink: sink, reader: reader, dlq: dlq, metrics: m, health: &health{}}, nil
}

// Healthy reports nil while batches are written, or the error that keeps the consumer retrying.
func (c *Consumer) Healthy() error { return c.health.get() }

// Run consumes until ctx is cancelled, then writes and commits what it has fetched and closes its
// Kafka connections. It returns nil on a clean stop.
//
// The stages overlap: a fetcher reads and decodes messages, the loop gathers them into batches,
// and each batch is prepared (sessionized, when the sink is a Preparer) while the one before it is
// stored and committed. Offsets are committed in order. At most two batches are in flight (one
// storing, one prepared or preparing) besides the one being gathered and BatchSize decoded
// messages, which bounds memory when ClickHouse is slow or down.
//
// A panic while the sink prepares or stores a batch is recovered: the batch is written again in
// halves, down to single events, after the batches before it and before the next one is
// prepared, so that only the events that panic on their own go to the dead-letter topic (reason
// ReasonPanic, counted in waymark_consumer_dlq_messages_total), the rest is stored and the offsets
// move on. No input can make the consumer crash and read the same message again on every restart.
// A Preparer that keeps state must make a batch written again after its panic come out right.
func (c *Consumer) Run(ctx context.Context) error {
	c.log.Info("consumer started", "topic", c.cfg.Topic, "group", c.cfg.Group, "brokers", c.cfg.Brokers)
	fetched := make(chan fetchedMessage, c.cfg.BatchSize)
	go c.fetch(ctx, fetched)
	go c.watch(ctx)

	err := c.loop(ctx, fetched)
	if closeErr := c.reader.Close(); closeErr != nil {
		c.log.Warn("close kafka reader", "err", closeErr)
	}
	if closeErr := c.dlq.Close(); closeErr != nil {
		c.log.Warn("close dead-letter writer", "err", closeErr)
	}
	return err
}

// watch measures consumer lag per partition (from committed and log-end offsets, since kafka-go's
// Reader.Lag does not work in group mode) and counts rebalances, until ctx is done.
func (c *Consumer) watch(ctx context.Context) {
	tick := time.NewTicker(c.cfg.LagInterval)
	defer tick.Stop()
	for {
		if n := c.reader.Stats().Rebalances; n > 0 { // Stats counts since its last call
			c.metrics.rebalances.Add(float64(n))
			c.log.Info("consumer group rebalanced", "group", c.cfg.Group, "rebalances", n)
		}
		lag, err := GroupLag(ctx, c.cfg.Brokers, c.cfg.Group, c.cfg.Topic)
		if err == nil {
			for p, n := range lag {
				c.metrics.lag.WithLabelValues(strconv.Itoa(p)).Set(float64(n))
			}
		} else if ctx.Err() == nil {
			c.log.Debug("measure consumer lag", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// fetchedMessage is a message and what it decoded into: an event, or why it cannot be used.
type fetchedMessage struct {
	msg   kafka.Message
	event Event
	err   error
}

// fetch reads and decodes messages until ctx is done. A failed fetch (the broker unreachable, a
// rebalance that cannot complete) is retried like any other step: kafka-go's reader heals by
// itself once the broker is back.
func (c *Consumer) fetch(ctx context.Context, out chan<- fetchedMessage) {
	for {
		var msg kafka.Message
		err := c.retry(ctx, "fetch", func() error {
			var err error
			msg, err = c.reader.FetchMessage(ctx)
			return err
		})
		if err != nil {
			return // ctx is done
		}
		e, err := c.decode(msg)
		select {
		case out <- fetchedMessage{msg, e, err}:
		case <-ctx.Done():
			return
		}
	}
}

// decode decodes a message. A panic in the decoder (a bug some input sets off) is recovered into
// an error with ReasonPanic and the stack, counted and logged, so the message is dead-lettered
// like any unusable one.
func (c *Consumer) decode(msg kafka.Message) (e Event, err error) {
	defer func() {
		if v := recover(); v != nil {
			stack := debug.Stack()
			c.metrics.panics.Inc()
			c.log.Error("decoding a message panicked: sending it to the dead-letter topic", "topic", msg.Topic,
				"partition", msg.Partition, "offset", msg.Offset, "panic", v, "stack", string(stack))
			e, err = Event{}, &InvalidError{Reason: ReasonPanic, Err: fmt.Errorf("decoding panicked: %v\n%s", v, stack)}
		}
	}()
	if source := headerValue(msg.Headers, HeaderSource, ""); source != "" {
		return Decode(msg.Value, source, msg.Time) // the collector's: checked and stamped by it
	}
	// Produced straight to Kafka: held to the collector's limits, and received when Kafka got it,
	// whatever receivedAt it claims.
	if len(msg.Value) > c.cfg.MaxEventBytes {
		return Event{}, &InvalidError{Reason: ReasonTooLarge, Err: fmt.Errorf("message of %d bytes is larger than %d", len(msg.Value), c.cfg.MaxEventBytes)}
	}
	return DecodeAt(msg.Value, "kafka", msg.Time)
}

// inflight is a batch being written.
type inflight struct {
	batch    []fetchedMessage
	prepared chan struct{} // closed when the batch is prepared, or failed to be
	done     chan struct{} // closed when the batch is committed, or failed to be
	err      error         // why it failed; set before done is closed
}

func (c *Consumer) loop(ctx context.Context, fetched <-chan fetchedMessage) error {
	batch := make([]fetchedMessage, 0, c.cfg.BatchSize)
	var writing []*inflight // in order, at most two; the first may be done already
	// stop waits for the batches in flight and writes again, ahead of what came after them,
	// those that failed because of the stop (a batch fails only then: every step is retried
	// until ctx is done).
	stop := func() error {
		var failed []fetchedMessage
		for _, w := range writing {
			if <-w.done; w.err != nil {
				failed = append(failed, w.batch...)
			}
		}
		return c.drain(append(failed, batch...), fetched)
	}
	timer := time.NewTimer(c.cfg.FlushInterval)
	defer timer.Stop()
	for {
		select {
		case m := <-fetched:
			if len(batch) == 0 {
				timer.Reset(c.cfg.FlushInterval)
			}
			batch = append(batch, m)
			if len(batch) < c.cfg.BatchSize {
				continue
			}
		case <-timer.C:
			if len(batch) == 0 {
				continue
			}
		case <-ctx.Done():
			return stop()
		}
		// One batch prepares at a time, and at most two are in flight.
		var prev *inflight
		if n := len(writing); n > 0 {
			prev = writing[n-1]
			<-prev.prepared
			if n == 2 {
				<-writing[0].done
			}
		}
		if ctx.Err() != nil {
			return stop()
		}
		w := &inflight{batch: batch, prepared: make(chan struct{}), done: make(chan struct{})}
		go func() {
			defer close(w.done)
			w.err = c.process(ctx, w.batch, w.prepared, prev)
		}()
		writing = []*inflight{w}
		if prev != nil {
			writing = []*inflight{prev, w}
		}
		batch = make([]fetchedMessage, 0, c.cfg.BatchSize)
	}
}

// drain writes and commits what was fetched before the stop, with its own deadline.
func (c *Consumer) drain(batch []fetchedMessage, fetched <-chan fetchedMessage) error {
	for more := true; more; {
		select {
		case m := <-fetched:
			batch = append(batch, m)
		default:
			more = false
		}
	}
	if len(batch) == 0 {
		return nil
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.StopTimeout)
	defer cancel()
	if err := c.process(ctx, batch, nil, nil); err != nil {
		return fmt.Errorf("write last batch of %d messages on stop: %w", len(batch), err)
	}
	c.log.Info("consumer flushed on stop", "messages", len(batch), "took", time.Since(start))
	return nil
}

// process dead-letters what cannot be used, prepares the rest (closing prepared, when not nil,
// once that is done), waits for the batch before it (prev, when not nil) to be committed, then
// stores the batch and commits it. Failing steps are retried with backoff until they succeed or
// ctx is done. A panic while preparing or storing is recovered, and the batch written again in
// parts (see isolate).
func (c *Consumer) process(ctx context.Context, batch []fetchedMessage, prepared chan struct{}, prev *inflight) error {
	events, msgs, err := c.deadLetterInvalid(ctx, batch)
	var store func(context.Context) error
	if err == nil {
		store, err = c.prepare(ctx, events)
	}
	if p := asPanic(err); p != nil {
		// Isolated after the batches before it and before the next batch is prepared: a sink
		// that keeps state sees the batch's events again in order.
		if err = waitCommitted(prev); err == nil {
			err = c.isolate(ctx, events, msgs, p)
		}
		store, prev = nil, nil
	}
	if prepared != nil {
		close(prepared)
	}
	if err != nil {
		return err
	}
	if err := waitCommitted(prev); err != nil {
		return err
	}
	if store != nil {
		err := c.store(ctx, store)
		if p := asPanic(err); p != nil {
			err = c.isolate(ctx, events, msgs, p)
		}
		if err != nil {
			return err
		}
	}
	last := lastPerPartition(batch)
	err = c.retry(ctx, "commit offsets", func() error {
		start := time.Now()
		err := c.reader.CommitMessages(ctx, last...)
		c.metrics.commitSeconds.Observe(time.Since(start).Seconds())
		return err
	})
	if err == nil {
		c.metrics.batches.Inc()
		c.health.set(nil)
	}
	return err
}

// waitCommitted waits until the batch prev (when not nil) is committed, or failed to be.
func waitCommitted(prev *inflight) error {
	if prev == nil {
		return nil
	}
	if <-prev.done; prev.err != nil {
		return fmt.Errorf("an earlier batch was not written: %w", prev.err)
	}
	return nil
}

// deadLetterInvalid writes the messages of a batch that did not decode to the dead-letter topic
// and returns the events of the others with their messages.
func (c *Consumer) deadLetterInvalid(ctx context.Context, batch []fetchedMessage) ([]Event, []kafka.Message, error) {
	events := make([]Event, 0, len(batch))
	msgs := make([]kafka.Message, 0, len(batch))
	var dead []kafka.Message
	for _, m := range batch {
		if m.err != nil {
			reason := RejectReason(m.err)
			c.metrics.dead.WithLabelValues(reason).Inc()
			dead = append(dead, deadLetter(m.msg, reason, m.err))
			continue
		}
		events = append(events, m.event)
		msgs = append(msgs, m.msg)
	}
	c.metrics.messages.Add(float64(len(batch)))
	c.metrics.decoded.Add(float64(len(events)))
	if len(dead) > 0 {
		if err := c.writeDeadLetters(ctx, dead); err != nil {
			return nil, nil, err
		}
	}
	return events, msgs, nil
}

// prepare prepares events, returning what stores them (nil when there are none). A panic in the
// sink comes back as a *panicError.
func (c *Consumer) prepare(ctx context.Context, events []Event) (func(context.Context) error, error) {
	if len(events) == 0 {
		return nil, nil
	}
	p, ok := c.sink.(Preparer)
	if !ok {
		return func(ctx context.Context) error { return c.sink.Write(ctx, events) }, nil
	}
	var store func(context.Context) error
	err := c.retry(ctx, "prepare batch", func() error {
		return recovered(func() error {
			var err error
			store, err = p.Prepare(ctx, events)
			return err
		})
	})
	return store, err
}

// store runs a prepared store until it succeeds. A panic comes back as a *panicError.
func (c *Consumer) store(ctx context.Context, store func(context.Context) error) error {
	return c.retry(ctx, "write batch", func() error {
		return recovered(func() error { return store(ctx) })
	})
}

// isolate handles a batch whose writing panicked (p): it writes the batch again in halves, each
// prepared and stored before the next, and splits again a half that panics, down to single
// events; an event that panics on its own goes to the dead-letter topic with ReasonPanic. A batch
// with k such events takes about 2k·log2(n) extra writes; batches without a panic pay only the
// deferred recover.
func (c *Consumer) isolate(ctx context.Context, events []Event, msgs []kafka.Message, p *panicError) error {
	c.metrics.panics.Inc()
	if len(events) == 1 {
		c.metrics.dead.WithLabelValues(ReasonPanic).Inc()
		c.log.Error("writing an event panicked: sending it to the dead-letter topic", "source", events[0].Source,
			"message_id", events[0].MessageID, "topic", msgs[0].Topic, "partition", msgs[0].Partition, "offset", msgs[0].Offset,
			"panic", p.value, "stack", string(p.stack))
		return c.writeDeadLetters(ctx, []kafka.Message{deadLetter(msgs[0], ReasonPanic, p)})
	}
	c.log.Warn("writing a batch panicked: writing it again in halves to find the events that cause it",
		"events", len(events), "panic", p.value)
	half := len(events) / 2
	for _, part := range [][2]int{{0, half}, {half, len(events)}} {
		ev, ms := events[part[0]:part[1]], msgs[part[0]:part[1]]
		store, err := c.prepare(ctx, ev)
		if err == nil {
			err = c.store(ctx, store)
		}
		if p := asPanic(err); p != nil {
			err = c.isolate(ctx, ev, ms, p)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// panicError is a panic recovered from the sink, with the stack where it happened.
type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v", e.value) }

// recovered runs op and turns a panic in it into a *panicError.
func recovered(op func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &panicError{value: v, stack: debug.Stack()}
		}
	}()
	return op()
}

// asPanic returns the *panicError in err's chain, or nil.
func asPanic(err error) *panicError {
	var p *panicError
	if errors.As(err, &p) {
		return p
	}
	return nil
}

// writeDeadLetters retries writing to the dead-letter topic for up to DLQTimeout; then it logs
// every dead letter in full and counts it, so nothing is skipped silently, and lets the batch go on.
func (c *Consumer) writeDeadLetters(ctx context.Context, dead []kafka.Message) error {
	dctx, cancel := context.WithTimeout(ctx, c.cfg.DLQTimeout)
	defer cancel()
	err := c.retry(dctx, "write dead letters", func() error { return c.dlq.WriteMessages(dctx, dead...) })
	if err == nil || ctx.Err() != nil {
		return err
	}
	for _, m := range dead {
		c.metrics.dlqFailures.Inc()
		c.log.Error("dead-letter topic unavailable: logging the dead letter instead",
			"dlq_topic", c.cfg.DLQTopic, "reason", headerValue(m.Headers, HeaderDLQReason, ""),
			"topic", headerValue(m.Headers, HeaderDLQTopic, ""), "partition", headerValue(m.Headers, HeaderDLQPartition, ""),
			"offset", headerValue(m.Headers, HeaderDLQOffset, ""), "message", string(m.Value), "err", err)
	}
	return nil
}

// retry runs op until it succeeds or ctx is done, with exponential backoff up to RetryMax.
func (c *Consumer) retry(ctx context.Context, what string, op func() error) error {
	backoff := 100 * time.Millisecond
	for {
		err := op()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || asPanic(err) != nil { // a panic is not retried: see isolate
			return fmt.Errorf("%s: %w", what, err)
		}
		c.metrics.retries.WithLabelValues(what).Inc()
		c.health.set(fmt.Errorf("%s: %w", what, err))
		c.log.Warn("consumer step failed, retrying", "step", what, "err", err, "backoff", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, err)
		}
		backoff = min(2*backoff, c.cfg.RetryMax)
	}
}

func deadLetter(msg kafka.Message, reason string, err error) kafka.Message {
	headers := append([]kafka.Header(nil), msg.Headers...)
	headers = append(headers,
		kafka.Header{Key: HeaderDLQReason, Value: []byte(reason)},
		kafka.Header{Key: HeaderDLQError, Value: []byte(err.Error())},
		kafka.Header{Key: HeaderDLQTopic, Value: []byte(msg.Topic)},
		kafka.Header{Key: HeaderDLQPartition, Value: []byte(strconv.Itoa(msg.Partition))},
		kafka.Header{Key: HeaderDLQOffset, Value: []byte(strconv.FormatInt(msg.Offset, 10))},
	)
	return kafka.Message{Key: msg.Key, Value: msg.Value, Headers: headers}
}

func lastPerPartition(batch []fetchedMessage) []kafka.Message {
	idx := map[int]int{}
	var last []kafka.Message
	for _, f := range batch {
		m := f.msg
		if i, ok := idx[m.Partition]; ok {
			if m.Offset > last[i].Offset {
				last[i] = m
			}
			continue
		}
		idx[m.Partition] = len(last)
		last = append(last, m)
	}
	return last
}

func headerValue(headers []kafka.Header, key, def string) string {
	for _, h := range headers {
		if h.Key == key && len(h.Value) > 0 {
			return string(h.Value)
		}
	}
	return def
}

type consumerMetrics struct {
	messages      prometheus.Counter
	decoded       prometheus.Counter
	lag           *prometheus.GaugeVec
	rebalances    prometheus.Counter
	batches       prometheus.Counter
	dead          *prometheus.CounterVec
	retries       *prometheus.CounterVec
	dlqFailures   prometheus.Counter
	panics        prometheus.Counter
	commitSeconds prometheus.Histogram
}

func newConsumerMetrics(reg prometheus.Registerer) (*consumerMetrics, error) {
	m := &consumerMetrics{
		messages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "waymark_consumer_messages_total", Help: "Kafka messages fetched and decoded or dead-lettered.",
		}),
		decoded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "waymark_consumer_decoded_total", Help: "Kafka messages decoded into valid events.",
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "waymark_consumer_lag_messages", Help: "Messages on the topic not yet committed by the consumer group, by partition.",
		}, []string{"partition"}),
		rebalances: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "waymark_consumer_rebalances_total", Help: "Consumer group rebalances this consumer took part in.",
		}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "waymark_consumer_batches_total", Help: "Batches written to the sink and committed.",
		}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waymark_consumer_dlq_messages_total", Help: "Messages sent to the dead-letter topic, by reason.",
		}, []string{"reason"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waymark_consumer_retries_total", Help: "Retried consumer steps after an error, by step.",
		}, []string{"step"}),
		dlqFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "waymark_consumer_dlq_write_failures_total", Help: "Dead letters that could not be written to the dead-letter topic and were logged instead.",
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "waymark_consumer_panics_total", Help: "Panics recovered while decoding a message or writing a batch or a part of one; the messages that panic on their own are dead-lettered with reason panic.",
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "waymark_consumer_commit_duration_seconds", Help: "Time to commit offsets to Kafka.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.messages, m.decoded, m.lag, m.rebalances, m.batches, m.dead, m.retries, m.dlqFailures, m.panics, m.commitSeconds} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register consumer metrics: %w", err)
			}
		}
	}
	return m, nil
}
