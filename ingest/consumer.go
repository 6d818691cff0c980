package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

	BatchSize int // events handed to the sink at most at once; default 20000
	// FlushInterval is the longest wait before a partial batch is written, at least
	// MinFlushInterval; default 500ms.
	FlushInterval time.Duration
	RetryMax      time.Duration // longest backoff between retries of a failing batch; default 10s
	StopTimeout   time.Duration // time allowed to write and commit the last batch on shutdown; default 15s
	// SeqBase is added to each message's offset to make its event's Seq. A topic whose offsets
	// start again at 0 (the dev broker's, at each start of its process) would give an event sent
	// after the restart a smaller Seq than the events of its device stored before, and reverse
	// the one tie rule's order between them; set it past the largest stored Seq there
	// (store.LargestSeq + 1). 0 for a Kafka whose offsets never go back.
	SeqBase     int64
	LagInterval time.Duration // how often consumer lag is measured for metrics; default 5s
	// MaxEventBytes limits every message, as the collector limits an event it is sent
	// (Segment's 32 KiB): one produced straight to Kafka to MaxEventBytes, one carrying the
	// waymark-source header (the collector's, stamped by it) to MaxEventBytes + MaxStampBytes; a
	// larger one is dead-lettered as too_large. Default DefaultMaxEventBytes.
	MaxEventBytes int
	// DLQTimeout is how long writes to the dead-letter topic are retried. After it, each dead
	// letter is logged in full at ERROR level and counted in waymark_consumer_dlq_write_failures_total,
	// and the consumer goes on: a broken DLQ neither stalls ingestion forever nor loses a message
	// silently. Default 1m.
	DLQTimeout time.Duration
	// StallAfter is how long messages may wait on a partition while the group's committed offset
	// there does not move before the consumer logs a warning (waymark_consumer_stalled_seconds
	// shows the wait all along), Healthy reports the stall, and the consumer, if its own writes
	// work, leaves the group and joins it again (see watch). Default 5m.
	StallAfter time.Duration
	// OnRebalance, when set, is called each time the consumer joins a group generation, before
	// it reads a message of it: partitions may have come from another consumer, and what a cache
	// knows of what is stored (store.Store.Rebalanced) must take in that consumer's writes. sole
	// says this consumer reads every partition of the topic in the generation: no other consumer
	// of the group stores events while it lasts.
	OnRebalance func(sole bool)
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
	if c.StallAfter == 0 {
		c.StallAfter = 5 * time.Minute
	}
}

// MinFlushInterval is the shortest ConsumerConfig.FlushInterval.
const MinFlushInterval = time.Millisecond

// Validate reports the first setting that cannot work.
func (c *ConsumerConfig) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("kafka brokers: at least one is required")
	case c.BatchSize < 1:
		return fmt.Errorf("batch size: must be positive, got %d", c.BatchSize)
	case c.FlushInterval < MinFlushInterval:
		return fmt.Errorf("flush interval: must be at least %s, got %s", MinFlushInterval, c.FlushInterval)
	}
	return checkTopics(c.Topic, c.DLQTopic)
}

// Consumer reads the events topic in a consumer group, decodes each message, sends the ones it
// cannot use to the dead-letter topic, hands the rest to a Sink and commits offsets after both.
type Consumer struct {
	cfg     ConsumerConfig
	group   kafka.ConsumerGroupConfig
	log     *slog.Logger
	sink    Sink
	dlq     *kafka.Writer
	forward *kafka.Writer // writes messages found off their device's partition to it (see Run)
	// transport is dlq's and forward's connection pool, closed with them (see ownTransport).
	transport *kafka.Transport
	metrics   *consumerMetrics
	health    *health
	stall     *health // set while a partition has stalled for StallAfter (see watch)

	groupMu sync.Mutex
	grp     *kafka.ConsumerGroup // this consumer's membership; replaced by rejoin

	// stopBy is when the stop must be over (unix ns), set by Drain: the last batch written on
	// stop gets what is left of Drain's StopTimeout, not a StopTimeout of its own (with
	// ClickHouse down, serve took twice --stop-timeout to exit). 0: not set.
	stopBy atomic.Int64
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
	group := kafka.ConsumerGroupConfig{
		ID:          cfg.Group,
		Brokers:     cfg.Brokers,
		Topics:      []string{cfg.Topic},
		StartOffset: kafka.FirstOffset,
		// A consumer that dies is noticed after SessionTimeout; its partitions then move.
		HeartbeatInterval: time.Second,
		SessionTimeout:    10 * time.Second,
		RebalanceTimeout:  20 * time.Second,
		JoinGroupBackoff:  time.Second,
		// Partitions added to the topic start a new generation, which reads the new count: the
		// partition of a device (Partition) changes with it, and forwarding follows.
		WatchPartitionChanges: true,
	}
	if err := group.Validate(); err != nil {
		return nil, fmt.Errorf("consumer group config: %w", err)
	}
	transport := ownTransport()
	dlq := &kafka.Writer{
		Addr:         kafka.TCP(cfg.Brokers...),
		Transport:    transport,
		Topic:        cfg.DLQTopic,
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
		MaxAttempts:  3,
	}
	forward := &kafka.Writer{
		Addr:         kafka.TCP(cfg.Brokers...),
		Transport:    transport,
		Topic:        cfg.Topic,
		Balancer:     partitionBalancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
		MaxAttempts:  3,
	}
	return &Consumer{cfg: cfg, group: group, log: log, sink: sink, dlq: dlq, forward: forward, transport: transport, metrics: m, health: &health{}, stall: &health{}}, nil
}

// Healthy reports nil while batches are written, or the error that keeps the consumer retrying,
// or that messages have waited on a partition for StallAfter without the group's committed offset
// there moving: events are not being stored, whichever member of the group owns the partition.
func (c *Consumer) Healthy() error {
	if err := c.health.get(); err != nil {
		return err
	}
	return c.stall.get()
}

// Run consumes until ctx is cancelled, then writes and commits what it has fetched and closes its
// Kafka connections. It returns nil on a clean stop.
//
// The stages overlap: a fetcher reads and decodes messages, the loop gathers them into batches,
// and each batch is prepared (sessionized, when the sink is a Preparer) while the one before it is
// stored and committed. Offsets are committed in order. At most two batches are in flight (one
// storing, one prepared or preparing) besides the one being gathered, BatchSize decoded messages
// and kafka-go's queue of each assigned partition (100 messages), which bounds memory when
// ClickHouse is slow or down.
//
// A panic while the sink prepares or stores a batch is recovered: the batch is written again in
// halves, down to single events, after the batches before it and before the next one is
// prepared, so that only the events that panic on their own go to the dead-letter topic (reason
// ReasonPanic, counted in waymark_dlq_messages_total{path="consumer"}), the rest is stored and the offsets
// move on. No input can make the consumer crash and read the same message again on every restart.
// A Preparer that keeps state must make a batch written again after its panic come out right.
//
// Each message is committed in the consumer group generation it was fetched in, or not at all: a
// rebalance ends the generation, and the offsets of batches fetched before it are not committed
// (see commit). The partitions' owners in the new generation, this consumer among them, read
// those messages again from the group's committed offsets; the store keeps one row per event.
//
// Sessions are cut per device in the consumer that owns the device's partition, so a device's
// events must all be there. The collector and `waymark replay` produce each event to its
// device's partition (Partition), but a shop producing straight to Kafka may use another
// partitioner (librdkafka's default consistent_random is CRC32 of the key), no key, or a userId
// on one event and the anonymousId on the next. A decoded event found on another partition than
// Partition(event.CustomerKey(), partitions of the topic now) is not stored here: a copy goes to
// its device's partition, with the original's headers and its receipt in HeaderForwarded (so
// its ids are the ones it would have had there), counted in waymark_consumer_forwarded_total,
// and the original is committed only after Kafka has acknowledged the copy. A stop between the
// two forwards it again on restart: the copies are the same event, received at the same time,
// which the sessionizer and the store keep once.
func (c *Consumer) Run(ctx context.Context) error {
	c.log.Info("consumer started", "topic", c.cfg.Topic, "group", c.cfg.Group, "brokers", c.cfg.Brokers)
	group, err := kafka.NewConsumerGroup(c.group)
	if err != nil {
		return fmt.Errorf("join consumer group %s: %w", c.cfg.Group, err)
	}
	c.groupMu.Lock()
	c.grp = group
	c.groupMu.Unlock()
	fetched := make(chan fetchedMessage, c.cfg.BatchSize)
	go c.fetch(ctx, fetched)
	go c.watch(ctx, time.Now)

	err = c.loop(ctx, fetched)
	// Leaving the group ends the generation: only now, after the last batch is committed.
	c.groupMu.Lock()
	defer c.groupMu.Unlock()
	if closeErr := c.grp.Close(); closeErr != nil {
		c.log.Warn("leave consumer group", "err", closeErr)
	}
	if closeErr := c.dlq.Close(); closeErr != nil {
		c.log.Warn("close dead-letter writer", "err", closeErr)
	}
	if closeErr := c.forward.Close(); closeErr != nil {
		c.log.Warn("close forwarding writer", "err", closeErr)
	}
	c.transport.CloseIdleConnections()
	return err
}

// Drain waits until the consumer group has committed every message of the topic (lag 0 on every
// partition), for at most StopTimeout, and returns how many messages were left uncommitted (0
// when it drained). Call it before cancelling Run when the topic dies with the process (the dev
// broker, DevBroker): what the collector acknowledged and the consumer has not stored would be
// lost. err is set when the lag could not be read at the end.
func (c *Consumer) Drain(ctx context.Context) (left int64, err error) {
	c.stopBy.Store(time.Now().Add(c.cfg.StopTimeout).UnixNano())
	wctx, cancel := context.WithTimeout(ctx, c.cfg.StopTimeout)
	defer cancel()
	if WaitCaughtUp(wctx, c.cfg.Brokers, c.cfg.Group, c.cfg.Topic) == nil {
		return 0, nil
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	lag, err := GroupLag(lctx, c.cfg.Brokers, c.cfg.Group, c.cfg.Topic)
	if err != nil {
		return 0, fmt.Errorf("read the lag of group %s: %w", c.cfg.Group, err)
	}
	for _, n := range lag {
		left += n
	}
	return left, nil
}

// watch measures consumer lag per partition (from committed and log-end offsets, since kafka-go's
// Reader.Lag does not work in group mode) and how long messages have waited on a partition whose
// committed offset does not move, until ctx is done. now is the clock.
//
// A partition stalled for StallAfter makes Healthy report it (readiness: events are not being
// stored). If this consumer's own writes work, it also leaves the group and joins it again (at
// most once per rejoinEvery): the coordinator then rebalances, and a member that does not join
// the new generation within the rebalance timeout loses its partitions. That frees partitions held
// by a member that died without the coordinator noticing: the dev broker (kfake) never arms the
// session timer of a member whose JoinGroup answer could not be sent because it died waiting.
func (c *Consumer) watch(ctx context.Context, now func() time.Time) {
	tick := time.NewTicker(c.cfg.LagInterval)
	defer tick.Stop()
	stalls := newStallWatch()
	var lastRejoin time.Time
	for {
		offsets, err := GroupOffsets(ctx, c.cfg.Brokers, c.cfg.Group, c.cfg.Topic)
		if err == nil {
			t := now()
			var stuck []int // partitions stalled for StallAfter
			waits := make(map[int]time.Duration, len(offsets))
			for p, o := range offsets {
				stalled, since := stalls.observe(t, p, o)
				waits[p] = stalled
				if stalled >= c.cfg.StallAfter {
					stuck = append(stuck, p)
				}
				switch {
				case stalled >= c.cfg.StallAfter && stalls.warn(p):
					c.log.Warn("consumption stalled: messages wait on a partition but the group's committed offset there has not moved",
						"group", c.cfg.Group, "topic", c.cfg.Topic, "partition", p, "committed", o.Committed, "end", o.End,
						"lag", o.Lag(), "since", since, "for", stalled.Round(time.Second))
				case stalled == 0 && stalls.recovered(p):
					c.log.Info("consumption resumed on a partition", "group", c.cfg.Group, "topic", c.cfg.Topic,
						"partition", p, "committed", o.Committed, "lag", o.Lag())
				}
			}
			if len(stuck) == 0 {
				c.stall.set(nil)
			} else {
				slices.Sort(stuck)
				c.stall.set(fmt.Errorf("consumption stalled: messages have waited on partitions %v of %s for over %s", stuck, c.cfg.Topic, c.cfg.StallAfter))
				if c.health.get() == nil && (lastRejoin.IsZero() || t.Sub(lastRejoin) >= rejoinEvery(c.cfg.StallAfter)) {
					lastRejoin = t
					c.rejoin(ctx, stuck)
				}
			}
			// The gauges last: when one reads 0, Healthy has seen it too.
			for p, o := range offsets {
				part := strconv.Itoa(p)
				c.metrics.lag.WithLabelValues(part).Set(float64(o.Lag()))
				c.metrics.stalled.WithLabelValues(part).Set(waits[p].Seconds())
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

// rejoinEvery is the shortest time between two rejoins of a stalled consumer: StallAfter, and at
// least the 30 s a rejoin may take to drop a member that does not join again (the group's
// rebalance timeout, 20 s, and then some).
func rejoinEvery(stallAfter time.Duration) time.Duration { return max(stallAfter, 30*time.Second) }

// rejoin leaves the consumer group and joins it again as a new member, because partitions have
// stalled (see watch). The generation ends: what was fetched in it and not committed is read
// again, as after any rebalance.
func (c *Consumer) rejoin(ctx context.Context, stuck []int) {
	c.log.Warn("consumption stalled while this consumer's writes work: leaving the consumer group and joining it again, so that a member that no longer consumes loses its partitions",
		"group", c.cfg.Group, "topic", c.cfg.Topic, "partitions", stuck, "stalled_for", c.cfg.StallAfter)
	c.groupMu.Lock()
	defer c.groupMu.Unlock()
	if ctx.Err() != nil {
		return // Run is leaving the group for good
	}
	if err := c.grp.Close(); err != nil {
		c.log.Warn("leave consumer group", "err", err)
	}
	group, err := kafka.NewConsumerGroup(c.group)
	if err != nil { // only a config error, which NewConsumer has ruled out
		c.log.Error("BUG: join the consumer group again", "err", err)
		return
	}
	c.grp = group
}

// currentGroup returns this consumer's membership of its group.
func (c *Consumer) currentGroup() *kafka.ConsumerGroup {
	c.groupMu.Lock()
	defer c.groupMu.Unlock()
	return c.grp
}

// stallWatch tells, per partition, since when the group's committed offset has not moved while
// messages wait there. It takes the time as a parameter and holds no lock: watch owns it.
type stallWatch struct {
	parts map[int]*partitionStall
}

type partitionStall struct {
	committed int64
	since     time.Time // the last look at which the offset moved or nothing waited
	warned    bool
}

func newStallWatch() *stallWatch { return &stallWatch{parts: map[int]*partitionStall{}} }

// observe records partition p's offsets, looked at now, and returns how long messages have waited
// there without the committed offset moving, and since when: since the last look at which the
// offset moved or nothing waited (at most that long, as watch looks every LagInterval). It is 0
// when nothing waits.
func (s *stallWatch) observe(now time.Time, p int, o PartitionOffsets) (time.Duration, time.Time) {
	ps, seen := s.parts[p]
	if !seen {
		ps = &partitionStall{}
		s.parts[p] = ps
	}
	if !seen || o.Committed != ps.committed || o.Lag() == 0 {
		ps.committed, ps.since = o.Committed, now
	}
	if o.Lag() == 0 {
		return 0, time.Time{}
	}
	return now.Sub(ps.since), ps.since
}

// warn reports whether partition p's stall is still to be logged, and marks it logged.
func (s *stallWatch) warn(p int) bool {
	ps := s.parts[p]
	first := !ps.warned
	ps.warned = true
	return first
}

// recovered reports whether partition p had a stall logged, and forgets it.
func (s *stallWatch) recovered(p int) bool {
	ps := s.parts[p]
	was := ps.warned
	ps.warned = false
	return was
}

// fetchedMessage is a message and what it decoded into: an event, or why it cannot be used.
type fetchedMessage struct {
	msg     kafka.Message
	event   Event
	err     error
	gen     *generation // the consumer group generation the message was fetched in
	forward bool        // the event belongs on another partition (see Run)
}

// generation is a consumer group generation: the partitions this consumer owns until the next
// rebalance. Offsets of messages fetched in it can be committed only in it.
type generation struct {
	*kafka.Generation
	ended      context.Context // done when the generation has ended
	partitions []int           // the topic's partitions when the generation started
}

// fetch joins the consumer group and, in each generation, reads and decodes the messages of the
// partitions assigned to this consumer from the group's committed offsets, until ctx is done. A
// failed step (the broker unreachable, a rebalance that cannot complete) is retried like any other:
// kafka-go heals by itself once the broker is back.
func (c *Consumer) fetch(ctx context.Context, out chan<- fetchedMessage) {
	const join = "join consumer group"
	for {
		var kgen *kafka.Generation
		err := c.retry(ctx, join, func() error {
			for {
				group := c.currentGroup()
				var err error
				kgen, err = group.Next(ctx)
				if errors.Is(err, kafka.ErrGroupClosed) && ctx.Err() == nil && c.currentGroup() != group {
					continue // rejoin replaced it
				}
				return err
			}
		})
		if err != nil {
			return // ctx is done
		}
		c.health.clearStep(join)
		var n int
		err = c.retry(ctx, "read partition count", func() error {
			var err error
			n, err = topicPartitions(ctx, c.cfg.Brokers, c.cfg.Topic)
			return err
		})
		if err != nil {
			return // ctx is done
		}
		c.health.clearStep("read partition count")
		c.metrics.rebalances.Inc()
		assigned := kgen.Assignments[c.cfg.Topic]
		if c.cfg.OnRebalance != nil {
			c.cfg.OnRebalance(len(assigned) == n)
		}
		ended, end := context.WithCancel(context.Background())
		gen := &generation{Generation: kgen, ended: ended, partitions: partitionList(n)}
		var parts []int
		for _, a := range assigned {
			parts = append(parts, a.ID)
		}
		c.log.Info("consumer group generation started", "group", c.cfg.Group, "generation", kgen.ID,
			"member", kgen.MemberID, "partitions", parts)
		kgen.Start(func(gctx context.Context) {
			<-gctx.Done()
			end()
		})
		for _, a := range assigned {
			kgen.Start(func(gctx context.Context) { c.readPartition(ctx, gctx, gen, a, out) })
		}
	}
}

// readPartition reads one assigned partition from its assigned offset, until ctx is done or the
// generation ends (gctx). It returns only when the generation has ended: a function that returns
// ends its generation, and what was fetched before a stop must still be committed in it.
func (c *Consumer) readPartition(ctx, gctx context.Context, gen *generation, a kafka.PartitionAssignment, out chan<- fetchedMessage) {
	defer func() { <-gctx.Done() }()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(gctx, cancel)()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   c.cfg.Brokers,
		Topic:     c.cfg.Topic,
		Partition: a.ID,
		MinBytes:  1,
		MaxBytes:  16 << 20,
		// The broker answers a fetch as soon as a message arrives (MinBytes 1), so MaxWait only
		// sets how often an idle partition is asked again: 500 ms cost a third of the idle CPU
		// of 100 ms (both sides, on the dev broker) with no later delivery.
		MaxWait: 500 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(a.Offset); err != nil {
		c.log.Error("BUG: set the offset of a new partition reader", "partition", a.ID, "offset", a.Offset, "err", err)
		return
	}
	for {
		var msg kafka.Message
		err := c.retry(rctx, "fetch", func() error {
			var err error
			msg, err = r.FetchMessage(rctx)
			return err
		})
		if err != nil {
			return // ctx is done or the generation ended
		}
		c.health.clearStep("fetch")
		e, err := c.decode(msg)
		e.Seq = c.cfg.SeqBase + msg.Offset
		forward := err == nil && partitionOf(e.CustomerKey(), gen.partitions) != msg.Partition
		select {
		case out <- fetchedMessage{msg, e, err, gen, forward}:
		case <-rctx.Done():
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
	// A byte order mark starting the message (a producer that writes text as .NET's
	// Encoding.UTF8 or PowerShell does) is no part of it, as the collector skips one starting a
	// body and replay one starting a file: the event is stored without it.
	value := TrimByteOrderMark(msg.Value)
	source := headerValue(msg.Headers, HeaderSource, "")
	limit := c.cfg.MaxEventBytes
	if source != "" {
		limit += MaxStampBytes // the collector's stamps (see MaxStampBytes)
	}
	if len(value) > limit {
		return Event{}, &InvalidError{Reason: ReasonTooLarge, Err: fmt.Errorf("message of %d bytes is larger than %d", len(value), limit)}
	}
	received, place := msg.Time, KafkaPlace(msg.Partition, msg.Offset)
	var untrusted *InvalidError // a HeaderForwarded that is not a forward's: ignored, and listed
	if fwd := headerValue(msg.Headers, HeaderForwarded, ""); fwd != "" {
		// A copy this consumer's group forwarded to its device's partition: received, and
		// placed, as the original was, if the receipt can be the original's.
		at, p, off, err := parseReceipt(fwd)
		if err == nil {
			err = checkForwarded(msg, at, p, off)
		}
		if err != nil {
			untrusted = &InvalidError{Reason: ReasonInvalidField, Field: "header " + HeaderForwarded, Err: err}
		} else {
			received, place = at, KafkaPlace(p, off)
		}
	}
	if source != "" {
		e, err = decode(value, source, received, asStamped, place) // the collector's or replay's: stamped by it (Decode)
		// The collector's receivedAt is its receipt; a replay's is its export's, and the
		// replay's arrival is its produce time (Event.Arrived).
		e.Arrived = e.ReceivedAt
		if Replayed(source) {
			e.Arrived = received
		}
	} else {
		// Produced straight to Kafka: a client's message, held to the collector's rules and
		// received when Kafka got it, unless it names a receipt that can be its own (a mirror
		// of Segment's processed output: claimedReceipt). It arrived when Kafka got it, either way.
		e, err = decode(value, "kafka", received, asClient, place) // DecodeClient's rules
		e.Arrived = received
	}
	if err == nil && untrusted != nil {
		e.Ignored = append(e.Ignored, untrusted)
	}
	return e, err
}

// forwarded returns the copy of m to write to its event's device's partition: keyed by the
// customer key (see partitionBalancer), with m's headers and, in HeaderForwarded, the receipt of
// the message first received (m's own unless m is itself a copy).
func forwarded(m fetchedMessage) kafka.Message {
	headers := make([]kafka.Header, 0, len(m.msg.Headers)+1)
	receipt := Receipt(m.msg.Time, KafkaPlace(m.msg.Partition, m.msg.Offset))
	for _, h := range m.msg.Headers {
		if h.Key == HeaderForwarded {
			receipt = string(h.Value) // decode read it
			continue
		}
		headers = append(headers, h)
	}
	headers = append(headers, kafka.Header{Key: HeaderForwarded, Value: []byte(receipt)})
	return kafka.Message{Key: []byte(m.event.CustomerKey()), Value: m.msg.Value, Headers: headers}
}

// inflight is a batch being written.
type inflight struct {
	batch    []fetchedMessage
	prepared chan struct{} // closed when the batch is prepared, or failed to be
	done     chan struct{} // closed when the batch is committed, or failed to be
	err      error         // why it failed; set before done is closed
}

func (c *Consumer) loop(ctx context.Context, fetched <-chan fetchedMessage) error {
	var batch []fetchedMessage // grown by gather up to BatchSize
	var writing []*inflight    // in order, at most two; the first may be done already
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
			batch = c.gather(batch, m)
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
		batch = nil
	}
}

// gather appends m to batch, which holds fewer than BatchSize messages, growing it by doubling
// up to BatchSize. A batch made for BatchSize messages at once (14.7 MB at the default 20,000)
// was cleared, and then scanned by the garbage collector, at every flush however few messages
// came: most of what a consumer whose messages trickle in cost (a serve flushing every 100 ms
// spent two thirds of its CPU on it and on the page faults of the fresh memory, 2026-12-06).
func (c *Consumer) gather(batch []fetchedMessage, m fetchedMessage) []fetchedMessage {
	if len(batch) == cap(batch) {
		grown := make([]fetchedMessage, len(batch), min(max(2*cap(batch), 64), c.cfg.BatchSize))
		copy(grown, batch)
		batch = grown
	}
	return append(batch, m)
}

// drain writes and commits what was fetched before the stop, within StopTimeout, or what is left
// of the one Drain began (stopBy).
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
	deadline := start.Add(c.cfg.StopTimeout)
	if by := c.stopBy.Load(); by != 0 && by < deadline.UnixNano() {
		deadline = time.Unix(0, by)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := c.process(ctx, batch, nil, nil); err != nil {
		return fmt.Errorf("write last batch of %d messages on stop: %w", len(batch), err)
	}
	c.log.Info("consumer flushed on stop", "messages", len(batch), "took", time.Since(start))
	return nil
}

// process drops the messages of generations that have ended, dead-letters what cannot be used,
// prepares the rest (closing prepared, when not nil, once that is done), waits for the batch before
// it (prev, when not nil) to be committed, then stores the batch and commits it. Failing steps are
// retried with backoff until they succeed or ctx is done. A panic while preparing or storing is
// recovered, and the batch written again in parts (see isolate).
func (c *Consumer) process(ctx context.Context, batch []fetchedMessage, prepared chan struct{}, prev *inflight) error {
	batch = c.dropStale(batch)
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
	if err := c.commit(ctx, batch); err != nil {
		return err
	}
	c.metrics.batches.Inc()
	c.health.set(nil)
	return nil
}

// commit commits the offsets after the batch's messages, each in the consumer group generation the
// message was fetched in. It does not commit a generation's offsets once the generation has
// ended (a rebalance): the partition may belong to another consumer by then, which may have read
// and committed past them, and committing them would move the group's offset back, leaving the
// messages after it uncommitted for good while the owner waits for new ones. Whoever owns the
// partition in the new generation read those messages again from the group's committed offset.
func (c *Consumer) commit(ctx context.Context, batch []fetchedMessage) error {
	for _, g := range offsetsByGeneration(batch) {
		cctx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(g.gen.ended, cancel)
		ended := false
		err := c.retry(cctx, "commit offsets", func() error {
			if g.gen.ended.Err() != nil {
				ended = true
				return nil
			}
			start := time.Now()
			err := g.gen.CommitOffsets(map[string]map[int]int64{c.cfg.Topic: g.next})
			c.metrics.commitSeconds.Observe(time.Since(start).Seconds())
			if generationEnded(err) || (err != nil && g.gen.ended.Err() != nil) {
				ended = true
				return nil
			}
			return err
		})
		stop()
		cancel()
		if err != nil && ctx.Err() == nil && g.gen.ended.Err() != nil {
			ended, err = true, nil
		}
		if err != nil {
			return err
		}
		if ended {
			c.metrics.staleCommits.Inc()
			c.log.Info("offsets not committed: a rebalance ended the generation they were fetched in; the partitions' owners read them again",
				"group", c.cfg.Group, "generation", g.gen.ID, "offsets", g.next)
		}
	}
	return nil
}

// generationEnded reports whether a commit failed because the group has moved on to another
// generation (or is about to), in which this consumer's offsets are no longer valid.
func generationEnded(err error) bool {
	return errors.Is(err, kafka.IllegalGeneration) || errors.Is(err, kafka.RebalanceInProgress) ||
		errors.Is(err, kafka.UnknownMemberId) || errors.Is(err, kafka.FencedInstanceID)
}

// generationOffsets are the offsets to commit in one generation: per partition, the offset after
// the last message.
type generationOffsets struct {
	gen  *generation
	next map[int]int64
}

// offsetsByGeneration returns the offsets to commit after a batch, per generation in the order
// the batch has them.
func offsetsByGeneration(batch []fetchedMessage) []generationOffsets {
	var out []generationOffsets
	for _, f := range batch {
		i := slices.IndexFunc(out, func(g generationOffsets) bool { return g.gen == f.gen })
		if i < 0 {
			i = len(out)
			out = append(out, generationOffsets{gen: f.gen, next: map[int]int64{}})
		}
		out[i].next[f.msg.Partition] = max(out[i].next[f.msg.Partition], f.msg.Offset+1)
	}
	return out
}

// dropStale returns the messages of the batch whose generation has not ended. The others would
// not be committed (see commit) and their partitions' owners read them again: processing them here
// too would only write the same events twice, and the sessions of customers this consumer may no
// longer own.
func (c *Consumer) dropStale(batch []fetchedMessage) []fetchedMessage {
	stale := func(f fetchedMessage) bool { return f.gen.ended.Err() != nil }
	if !slices.ContainsFunc(batch, stale) {
		return batch
	}
	live := slices.DeleteFunc(slices.Clone(batch), stale)
	if n := len(batch) - len(live); n > 0 {
		c.metrics.staleMessages.Add(float64(n))
		c.log.Info("dropped messages fetched before a rebalance; their partitions' owners read them again",
			"group", c.cfg.Group, "messages", n)
	}
	return live
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

// deadLetterInvalid writes the messages of a batch that did not decode to the dead-letter topic,
// forwards those whose events belong on another partition (see Run), and returns the events of
// the others with their messages. It returns after Kafka acknowledged the copies.
func (c *Consumer) deadLetterInvalid(ctx context.Context, batch []fetchedMessage) ([]Event, []kafka.Message, error) {
	events := make([]Event, 0, len(batch))
	msgs := make([]kafka.Message, 0, len(batch))
	var dead, forward []kafka.Message
	for _, m := range batch {
		if m.err != nil {
			reason := RejectReason(m.err)
			c.metrics.dead.WithLabelValues(reason).Inc()
			dead = append(dead, deadLetter(m.msg, reason, m.err))
			continue
		}
		if m.forward { // counted where the copy is stored
			forward = append(forward, forwarded(m))
			continue
		}
		for _, p := range m.event.Placeholders {
			c.metrics.placeholders.WithLabelValues(p.Field, p.Name).Inc()
		}
		for _, f := range m.event.Ignored {
			field := f.Field
			if f.Reason == ReasonKeyCollision || f.Reason == ReasonListItems { // by object, not by the client's key: a bounded label
				field = collisionObject(field)
			}
			c.metrics.ignored.WithLabelValues(field, f.Reason).Inc()
		}
		if m.event.FutureTimestamp {
			c.metrics.future.Inc()
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
	if len(forward) > 0 {
		// Retried until it succeeds or the stop: the originals are committed only after it.
		if err := c.retry(ctx, "forward", func() error { return c.forward.WriteMessages(ctx, forward...) }); err != nil {
			return nil, nil, err
		}
		c.metrics.forwarded.Add(float64(len(forward)))
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
		c.health.setStep(what, fmt.Errorf("%s: %w", what, err))
		c.log.Warn("consumer step failed, retrying", "step", what, "err", err, "backoff", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, err)
		}
		backoff = min(2*backoff, c.cfg.RetryMax)
	}
}

// newDeadLetterMetric returns waymark_dlq_messages_total{path, reason}, the one count of the
// events sent to the dead-letter topic, for one path: "collector" (events refused in a tracking
// call) or "consumer" (Kafka messages that could not be used, or whose writing panicked). The
// collector and the consumer each register it with their own path, in one process or apart, so
// that one sum over the name counts every dead letter whichever way its event came in.
func newDeadLetterMetric(path string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "waymark_dlq_messages_total",
		Help:        "Events sent to the dead-letter topic, by path (collector: refused in a tracking call; consumer: a Kafka message that could not be used or whose writing panicked) and reason.",
		ConstLabels: prometheus.Labels{"path": path},
	}, []string{"reason"})
}

// collisionObject is the object ("properties", "traits", "context.traits") of a key_collision's
// field (propField), the label waymark_consumer_ignored_fields_total counts it under.
func collisionObject(field string) string {
	for _, object := range []string{"context.traits", "traits", "properties"} {
		if strings.HasPrefix(field, object+".") {
			return object
		}
	}
	return field
}

// newFutureTimestampMetric is the counter waymark_future_timestamps_total{path} of one path: the
// accepted events whose time lay more than MaxFutureTimestamp after they were received and was
// set to their receive time (SkewCorrected), counted where that was decided: "collector" (a
// tracking call), "consumer" (a message produced straight to Kafka, or stamped by a receiver
// without the rule: `waymark replay` sends its lines as they are and leaves it to the consumer).
// A line `waymark replay --collector` sends is moved by replay, which has no metrics and
// reports it in its summary.
func newFutureTimestampMetric(path string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{
		Name:        "waymark_future_timestamps_total",
		Help:        "Accepted events whose time was more than 23 hours after they were received and was set to the receive time (PostHog's event_timestamp_in_future), by path (collector: a tracking call; consumer: a Kafka message).",
		ConstLabels: prometheus.Labels{"path": path},
	})
}

// deadLetter is the consumer's dead letter of msg: msg as it came, with where it was read
// (HeaderDLQTopic, HeaderDLQPartition, HeaderDLQOffset) after newDeadLetter's headers.
func deadLetter(msg kafka.Message, reason string, err error) kafka.Message {
	d := newDeadLetter(msg.Key, msg.Value, append([]kafka.Header(nil), msg.Headers...), reason, err)
	d.Headers = append(d.Headers,
		kafka.Header{Key: HeaderDLQTopic, Value: []byte(msg.Topic)},
		kafka.Header{Key: HeaderDLQPartition, Value: []byte(strconv.Itoa(msg.Partition))},
		kafka.Header{Key: HeaderDLQOffset, Value: []byte(strconv.FormatInt(msg.Offset, 10))},
	)
	return d
}

// newDeadLetter is a dead letter as every path writes one (the collector, the consumer and
// `waymark replay`): the message's key and bytes as they came, its headers (its source's,
// HeaderSource, first), then the reason (HeaderDLQReason, a Reason… code, the metric's label) and
// the error (HeaderDLQError, which names the field: InvalidError).
func newDeadLetter(key, value []byte, headers []kafka.Header, reason string, err error) kafka.Message {
	headers = append(headers,
		kafka.Header{Key: HeaderDLQReason, Value: []byte(reason)},
		kafka.Header{Key: HeaderDLQError, Value: []byte(err.Error())},
	)
	return kafka.Message{Key: key, Value: value, Headers: headers}
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
	staleCommits  prometheus.Counter
	staleMessages prometheus.Counter
	stalled       *prometheus.GaugeVec
	placeholders  *prometheus.CounterVec
	ignored       *prometheus.CounterVec
	future        prometheus.Counter
	forwarded     prometheus.Counter
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
		dead: newDeadLetterMetric("consumer"),
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
		staleCommits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "waymark_consumer_stale_commits_total", Help: "Offsets not committed because a rebalance ended the consumer group generation their messages were fetched in; the partitions' owners read those messages again.",
		}),
		staleMessages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "waymark_consumer_stale_messages_total", Help: "Messages dropped unprocessed because a rebalance ended the consumer group generation they were fetched in; the partitions' owners read them again.",
		}),
		stalled: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "waymark_consumer_stalled_seconds", Help: "How long messages have waited on a partition while the consumer group's committed offset there has not moved (0 when none wait or it moves), by partition.",
		}, []string{"partition"}),
		placeholders: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waymark_consumer_placeholder_ids_total", Help: "Ids of stored events that were placeholders a client sent for an id it did not have (\"undefined\", \"null\", 0, blank, …) and were read as no id, by field (userId, anonymousId, previousId) and placeholder. An event left with no id is dead-lettered as missing_identity instead.",
		}, []string{"field", "placeholder"}),
		ignored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waymark_consumer_ignored_fields_total", Help: "Members of stored events whose value had the wrong type and that the event does without (context.userAgent, context.device, context.device.type, context.traits, traits, and the event or name that does not name the call; the Kafka header waymark-forwarded when it cannot be a forward's receipt, and the receivedAt of a message produced straight to Kafka when it cannot be its receipt): read as absent, the event kept, by field and reason. The same fault in a member an event needs dead-letters it instead.",
		}, []string{"field", "reason"}),
		future: newFutureTimestampMetric("consumer"),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "waymark_consumer_forwarded_total", Help: "Messages produced to another partition than their device's (a producer with another partitioner, or no key, or a key other than the customer key) that were copied to their device's partition, where they are stored; the originals are committed after the copies.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.messages, m.decoded, m.lag, m.rebalances, m.batches, m.dead, m.retries, m.dlqFailures, m.panics, m.commitSeconds, m.staleCommits, m.staleMessages, m.stalled, m.placeholders, m.ignored, m.future, m.forwarded} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register consumer metrics: %w", err)
			}
		}
	}
	return m, nil
}
