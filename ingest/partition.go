package ingest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// Partition returns the partition, of a topic's partitions 0 … partitions-1, that holds the
// events of the device whose customer key (Event.CustomerKey) is key: the murmur2 hash of the key's
// bytes, modulo partitions. That is the Java client's default partitioner and librdkafka's
// "murmur2" (kafka-go's Murmur2Balancer, whose code it runs). The collector, `waymark replay` and
// the consumer's forwarding all use this one rule (see partitionBalancer), so that a device's
// events are in one partition and the sessionizer that owns it sees all of them.
func Partition(key string, partitions int) int {
	return partitionOf(key, partitionList(partitions))
}

// partitionList returns the partitions 0 … n-1.
func partitionList(n int) []int {
	parts := make([]int, n)
	for i := range parts {
		parts[i] = i
	}
	return parts
}

// partitionOf is Partition over a list of partitions made once.
func partitionOf(key string, partitions []int) int {
	return kafka.Murmur2Balancer{Consistent: true}.Balance(kafka.Message{Key: []byte(key)}, partitions...)
}

// partitionBalancer is the kafka-go Balancer of every writer of events to the events topic: a
// message keyed by its event's customer key goes to Partition(key, number of partitions).
type partitionBalancer struct{}

// Balance implements kafka.Balancer.
func (partitionBalancer) Balance(msg kafka.Message, partitions ...int) int {
	return partitionOf(string(msg.Key), partitions)
}

// HeaderForwarded names the Kafka header of a message the consumer forwarded to its device's
// partition (see Consumer.Run): the receipt (Receipt) of the message it copies, as received on
// the partition it was produced to: "<received µs>/p<partition>@<offset>". The copy is decoded
// with that receipt, so every id Waymark derives from it is the same as the original's, but
// only when the receipt is consistent with the copy (checkForwarded): anyone who can produce to
// the topic can set the header.
const HeaderForwarded = "waymark-forwarded"

// MaxReceiptDelay is how long before a message's Kafka time it may have been received by the
// receiver it names: Kafka's default retention (log.retention.hours, 168). A forwarded copy is
// produced when its original is read, which is while the original is still in the topic; a
// receiver's message (a mirror of Segment's processed output) lagging longer would be gone from
// a topic kept so long before it was read.
const MaxReceiptDelay = 7 * 24 * time.Hour

// MaxReceiptSkew is how far after a message's Kafka time the receipt it names may be: both are
// producers' clocks (with the default CreateTime), the receipt's the first receiver's (the shop's
// producer, Segment's servers), the message's its producer's (the consumer's host for a forwarded
// copy), which may disagree by this much.
const MaxReceiptSkew = time.Minute

// checkReceipt reports why received cannot be the time a message Kafka got at kafkaTime was
// received by the receiver before it, or nil: it is the one rule for a receipt a message
// produced straight to Kafka names, in HeaderForwarded (checkForwarded) or as its own receivedAt
// (DecodeClient). A receipt after the message reached Kafka (beyond MaxReceiptSkew) or before
// the topic could hold it (MaxReceiptDelay) is no receipt of it. Within them, a producer naming
// one moves an event no further than it can already: CreateTime is its own clock, and a
// timestamp stated without sentAt is taken as it is.
func checkReceipt(received, kafkaTime time.Time) error {
	switch {
	case received.After(kafkaTime.Add(MaxReceiptSkew)):
		return fmt.Errorf("received at %s, after this message's Kafka time %s", received.UTC().Format(time.RFC3339Nano), kafkaTime.UTC().Format(time.RFC3339Nano))
	case received.Before(kafkaTime.Add(-MaxReceiptDelay)):
		return fmt.Errorf("received at %s, over %s before this message's Kafka time %s", received.UTC().Format(time.RFC3339Nano), MaxReceiptDelay, kafkaTime.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// checkForwarded reports why the receipt in msg's HeaderForwarded, received at received on
// partition p at offset off, cannot be that of a message msg is a forwarded copy of, or nil. A
// copy is written after its original was received, on the device's partition, which differs from
// the original's unless the topic grew partitions since (then the original came before it on the
// same partition); and its time is a receipt of msg (checkReceipt). A producer setting the header
// can then move an event no further in time than msg's own Kafka time does, bar the delay.
func checkForwarded(msg kafka.Message, received time.Time, p int, off int64) error {
	if p == msg.Partition && off >= msg.Offset {
		return fmt.Errorf("receipt at %s is not before this message, %s", KafkaPlace(p, off), KafkaPlace(msg.Partition, msg.Offset))
	}
	if err := checkReceipt(received, msg.Time); err != nil {
		return fmt.Errorf("receipt %w", err)
	}
	return nil
}

// parseReceipt reads a Receipt of a Kafka message (KafkaPlace): when it was received and its
// partition and offset.
func parseReceipt(s string) (received time.Time, partition int, offset int64, err error) {
	us, place, ok := strings.Cut(s, "/")
	p, off, ok2 := strings.Cut(strings.TrimPrefix(place, "p"), "@")
	if !ok || !ok2 || !strings.HasPrefix(place, "p") {
		return time.Time{}, 0, 0, fmt.Errorf("receipt %q: want <received µs>/p<partition>@<offset>", s)
	}
	t, err := strconv.ParseInt(us, 10, 64)
	if err != nil {
		return time.Time{}, 0, 0, fmt.Errorf("receipt %q: received time: %w", s, err)
	}
	pn, err1 := strconv.Atoi(p)
	on, err2 := strconv.ParseInt(off, 10, 64)
	if err := errors.Join(err1, err2); err != nil || pn < 0 || on < 0 {
		return time.Time{}, 0, 0, fmt.Errorf("receipt %q: place: want p<partition>@<offset>", s)
	}
	return time.UnixMicro(t).UTC(), pn, on, nil
}

// topicPartitions returns how many partitions topic has now.
func topicPartitions(ctx context.Context, brokers []string, topic string) (int, error) {
	client, closeClient := newClient(brokers)
	defer closeClient()
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return 0, fmt.Errorf("metadata for %s: %w", topic, err)
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil || len(meta.Topics[0].Partitions) == 0 {
		return 0, fmt.Errorf("metadata for %s: topic not found", topic)
	}
	return len(meta.Topics[0].Partitions), nil
}
