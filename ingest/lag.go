package ingest

import (
	"context"
	"fmt"

	"github.com/segmentio/kafka-go"
)

// PartitionOffsets are a consumer group's committed offset on one partition and the partition's
// log-end offset. Committed is 0 when the group has committed nothing there.
type PartitionOffsets struct {
	Committed, End int64
}

// Lag is how many messages of the partition the group has not yet committed.
func (o PartitionOffsets) Lag() int64 { return max(o.End-o.Committed, 0) }

// GroupLag returns, per partition of topic, how many messages the consumer group has not yet
// committed: the log-end offset minus the committed offset (the whole partition when nothing is
// committed). kafka-go's Reader.Lag does not work in group mode, so this asks the broker directly.
func GroupLag(ctx context.Context, brokers []string, group, topic string) (map[int]int64, error) {
	offsets, err := GroupOffsets(ctx, brokers, group, topic)
	if err != nil {
		return nil, err
	}
	lag := map[int]int64{}
	for p, o := range offsets {
		lag[p] = o.Lag()
	}
	return lag, nil
}

// GroupOffsets returns, per partition of topic, the consumer group's committed offset and the
// log-end offset, as the broker has them.
func GroupOffsets(ctx context.Context, brokers []string, group, topic string) (map[int]PartitionOffsets, error) {
	client, closeClient := newClient(brokers)
	defer closeClient()
	parts, err := partitionsOf(ctx, client, topic)
	if err != nil {
		return nil, err
	}
	// The committed offsets are read before the log-end offsets: the consumer forwards a message
	// produced to another partition than its device's and commits the original only once the copy
	// is written, so log ends read first could miss a copy whose original was committed by the
	// time the commits were read, and show a lag of 0 with the copy not yet stored.
	committed, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		return nil, fmt.Errorf("fetch offsets of group %s: %w", group, err)
	}
	ends, err := logEnds(ctx, client, topic, parts)
	if err != nil {
		return nil, err
	}
	done := map[int]int64{}
	for _, p := range committed.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("fetch offset of group %s partition %d: %w", group, p.Partition, p.Error)
		}
		done[p.Partition] = max(p.CommittedOffset, 0)
	}
	offsets := map[int]PartitionOffsets{}
	for p, end := range ends {
		offsets[p] = PartitionOffsets{Committed: done[p], End: end}
	}
	return offsets, nil
}

// LogEnd returns how many messages topic has ever held: the sum of its partitions' log-end
// offsets. For a group that committed nothing (or whose offsets cannot be read) it bounds the
// messages the group has not stored.
func LogEnd(ctx context.Context, brokers []string, topic string) (int64, error) {
	client, closeClient := newClient(brokers)
	defer closeClient()
	parts, err := partitionsOf(ctx, client, topic)
	if err != nil {
		return 0, err
	}
	ends, err := logEnds(ctx, client, topic, parts)
	if err != nil {
		return 0, err
	}
	total := int64(0)
	for _, end := range ends {
		total += end
	}
	return total, nil
}

// ownTransport returns a Kafka connection pool for one client or writer, to close
// (CloseIdleConnections) when it is done. kafka-go's default transport, shared by every client
// and writer that names none, keeps a pool per broker address for the life of the process and
// refreshes its metadata every few seconds: a broker that is gone (a test's, or one moved to
// another address) is dialled again and again, and whatever listens at its address since is read
// as Kafka, which once held 4.5 GB of a test process in arrays decoded from another server's
// bytes.
func ownTransport() *kafka.Transport { return &kafka.Transport{} }

// newClient returns a Kafka client of brokers with a pool of its own (ownTransport), and the
// function that closes the pool.
func newClient(brokers []string) (*kafka.Client, func()) {
	t := ownTransport()
	return &kafka.Client{Addr: kafka.TCP(brokers...), Transport: t}, t.CloseIdleConnections
}

// partitionsOf lists the partitions of topic.
func partitionsOf(ctx context.Context, client *kafka.Client, topic string) ([]int, error) {
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata for %s: %w", topic, err)
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		return nil, fmt.Errorf("metadata for %s: topic not found", topic)
	}
	var parts []int
	for _, p := range meta.Topics[0].Partitions {
		parts = append(parts, p.ID)
	}
	return parts, nil
}

// logEnds is the log-end offset of each of parts, partitions of topic.
func logEnds(ctx context.Context, client *kafka.Client, topic string, parts []int) (map[int]int64, error) {
	var reqs []kafka.OffsetRequest
	for _, p := range parts {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	listed, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	ends := map[int]int64{}
	for _, p := range listed.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("list offset of %s partition %d: %w", topic, p.Partition, p.Error)
		}
		ends[p.Partition] = p.LastOffset
	}
	return ends, nil
}
