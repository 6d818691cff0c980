package ingest

import (
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kfake"
)

// DevBroker is an in-process Kafka-protocol broker (franz-go's kfake) for development and tests.
// It keeps everything in memory: what it holds is gone when the process stops.
type DevBroker struct {
	cluster *kfake.Cluster
}

// StartDevBroker listens on addr (host:port, port 0 picks one) and creates topics with the given
// number of partitions. Other topics are created on first use.
func StartDevBroker(addr string, partitions int, topics ...string) (*DevBroker, error) {
	listen := func(network, _ string) (net.Listener, error) { return net.Listen(network, addr) }
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.ListenFn(listen),
		kfake.SeedTopics(int32(partitions), topics...),
		kfake.DefaultNumPartitions(partitions),
		kfake.AllowAutoTopicCreation(),
	)
	if err != nil {
		return nil, fmt.Errorf("start dev broker on %s: %w", addr, err)
	}
	return &DevBroker{cluster: c}, nil
}

// Addr is the address clients connect to.
func (b *DevBroker) Addr() string { return b.cluster.ListenAddrs()[0] }

// Close stops the broker and drops its data.
func (b *DevBroker) Close() { b.cluster.Close() }
