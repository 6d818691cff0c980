package ingest

import (
	"context"
	"fmt"

	"github.com/segmentio/kafka-go"
)

// GroupLag returns, per partition of topic, how many messages the consumer group has not yet
// committed: the log-end offset minus the committed offset (the whole partition when nothing is
// committed). kafka-go's Reader.Lag does not work in group mode, so this asks the broker directly.
func GroupLag(ctx context.Context, brokers []string, group, topic string) (map[int]int64, error) {
	client := &kafka.Client{Addr: kafka.TCP(brokers...)}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata for %s: %w", topic, err)
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		return nil, fmt.Errorf("metadata for %s: topic not found", topic)
	}
	var parts []int
	var ends []kafka.OffsetRequest
	for _, p := range meta.Topics[0].Partitions {
		parts = append(parts, p.ID)
		ends = append(ends, kafka.LastOffsetOf(p.ID))
	}
	listed, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: ends}})
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	committed, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		return nil, fmt.Errorf("fetch offsets of group %s: %w", group, err)
	}
	done := map[int]int64{}
	for _, p := range committed.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("fetch offset of group %s partition %d: %w", group, p.Partition, p.Error)
		}
		done[p.Partition] = max(p.CommittedOffset, 0)
	}
	lag := map[int]int64{}
	for _, p := range listed.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("list offset of %s partition %d: %w", topic, p.Partition, p.Error)
		}
		lag[p.Partition] = max(p.LastOffset-done[p.Partition], 0)
	}
	return lag, nil
}
