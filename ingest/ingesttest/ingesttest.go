// Package ingesttest helps tests look at what reached Kafka: the events topic, the dead-letter
// topic. It is the Kafka counterpart of store/storetest.
package ingesttest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// ReadTopic returns every message on a topic of the broker at addr, partition by partition, up
// to the end each partition has when it is read.
func ReadTopic(ctx context.Context, addr, topic string) ([]kafka.Message, error) {
	transport := &kafka.Transport{} // closed when read: see Transport
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(addr), Transport: transport}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("read %s: metadata: %w", topic, err)
	}
	if len(meta.Topics) == 0 {
		return nil, fmt.Errorf("read %s: no such topic", topic)
	}
	var out []kafka.Message
	for _, p := range meta.Topics[0].Partitions {
		offsets, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(p.ID)}}})
		if err != nil {
			return out, fmt.Errorf("read %s: end of partition %d: %w", topic, p.ID, err)
		}
		end := offsets.Topics[topic][0].LastOffset
		if end <= 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: p.ID, MaxWait: 50 * time.Millisecond})
		for range end {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				return out, fmt.Errorf("read %s: partition %d: %w", topic, p.ID, err)
			}
			out = append(out, m)
		}
		r.Close()
	}
	return out, nil
}

// Transport returns a Kafka connection pool for a test's writer or client, closed when the test
// ends. kafka-go's default transport, which a writer or client naming none shares, keeps dialling
// a broker's address for the life of the process, after the test's broker is gone and another
// test's server listens there (see ingest's ownTransport).
func Transport(tb testing.TB) *kafka.Transport {
	t := &kafka.Transport{}
	tb.Cleanup(t.CloseIdleConnections)
	return t
}
