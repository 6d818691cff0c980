// Package ingesttest helps tests look at what reached Kafka: the events topic, the dead-letter
// topic. It is the Kafka counterpart of store/storetest.
package ingesttest

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// ReadTopic returns every message on a topic of the broker at addr, partition by partition, up
// to the end each partition has when it is read.
func ReadTopic(ctx context.Context, addr, topic string) ([]kafka.Message, error) {
	client := &kafka.Client{Addr: kafka.TCP(addr)}
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
