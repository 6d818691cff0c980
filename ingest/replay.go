package ingest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/segmentio/kafka-go"
)

// ReplayConfig configures Replay.
type ReplayConfig struct {
	Brokers []string // Kafka bootstrap brokers; required
	Topic   string   // topic to produce to; default "waymark.events"
	Format  string   // one of Formats; required
	File    string   // dataset path; required
	Repeat  int      // passes over the file, each after the first with fresh ids; default 1
	// Progress, when set, is called after each produced chunk with the messages sent so far.
	Progress func(sent int)
}

// ReplaySummary says what a replay did.
type ReplaySummary struct {
	Read    int    // messages built from the file
	Sent    int    // messages acknowledged by Kafka
	Skipped []Skip // lines that could not be used
}

// Replay turns a dataset into Segment track messages and produces them to Kafka, keyed by customer,
// waiting for acknowledgement from all in-sync replicas. Each row gets a deterministic messageId,
// so replaying a file twice stores each event once.
func Replay(ctx context.Context, cfg ReplayConfig) (ReplaySummary, error) {
	var sum ReplaySummary
	if cfg.Topic == "" {
		cfg.Topic = "waymark.events"
	}
	if cfg.Repeat == 0 {
		cfg.Repeat = 1
	}
	if len(cfg.Brokers) == 0 {
		return sum, errors.New("replay: no kafka brokers")
	}
	read, err := datasetReaderFor(cfg.Format)
	if err != nil {
		return sum, fmt.Errorf("replay: %w", err)
	}
	w := &kafka.Writer{
		Addr:         kafka.TCP(cfg.Brokers...),
		Topic:        cfg.Topic,
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    2000,
		BatchBytes:   1_000_000, // Kafka's default message.max.bytes is 1 MiB

		BatchTimeout:           5 * time.Millisecond,
		AllowAutoTopicCreation: true,
	}
	defer w.Close()
	source := []kafka.Header{{Key: HeaderSource, Value: []byte("replay-" + cfg.Format)}}
	const chunk = 20000
	pending := make([]kafka.Message, 0, chunk)
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		if err := w.WriteMessages(ctx, pending...); err != nil {
			return fmt.Errorf("produce to %s: %w", cfg.Topic, summarizeWriteErrors(err))
		}
		sum.Sent += len(pending)
		pending = pending[:0]
		if cfg.Progress != nil {
			cfg.Progress(sum.Sent)
		}
		return nil
	}
	emit := func(m Message) error {
		sum.Read++
		pending = append(pending, kafka.Message{Key: []byte(m.Key), Value: m.Value, Headers: source})
		if len(pending) == chunk {
			return flush()
		}
		return nil
	}
	for pass := 0; pass < cfg.Repeat; pass++ {
		skip := func(s Skip) {
			if pass == 0 {
				sum.Skipped = append(sum.Skipped, s)
			}
		}
		if err := replayFile(cfg.File, pass, read, emit, skip); err != nil {
			return sum, err
		}
	}
	return sum, flush()
}

func replayFile(path string, pass int, read datasetReader, emit func(Message) error, skip func(Skip)) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	defer f.Close()
	if err := read(f, pass, emit, skip); err != nil {
		return fmt.Errorf("replay %s: %w", path, err)
	}
	return nil
}

// WaitCaughtUp polls until the consumer group has committed everything on topic (which, as the
// consumer commits only after ClickHouse acknowledged, means it is stored) or ctx is done.
func WaitCaughtUp(ctx context.Context, brokers []string, group, topic string) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		lag, err := GroupLag(ctx, brokers, group, topic)
		total := int64(0)
		for _, l := range lag {
			total += l
		}
		if err == nil && total == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("wait for group %s: %w", group, err)
			}
			return fmt.Errorf("wait for group %s: %d messages not yet stored: %w", group, total, ctx.Err())
		case <-tick.C:
		}
	}
}

// summarizeWriteErrors shortens kafka-go's WriteErrors, which lists one error per message, to a
// count and the distinct errors.
func summarizeWriteErrors(err error) error {
	var werrs kafka.WriteErrors
	if !errors.As(err, &werrs) {
		return err
	}
	distinct := map[string]bool{}
	var first []error
	for _, e := range werrs {
		if e != nil && !distinct[e.Error()] {
			distinct[e.Error()] = true
			first = append(first, e)
		}
	}
	return fmt.Errorf("%d of %d messages failed: %w", werrs.Count(), len(werrs), errors.Join(first...))
}
