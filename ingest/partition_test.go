package ingest

import (
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestPartitionIsTheJavaClientsRule: Partition, by which the consumer decides what to forward,
// picks in range the partition the balancer of every writer of the events topic picks.
func TestPartitionIsTheJavaClientsRule(t *testing.T) {
	for _, n := range []int{1, 2, 6, 7, 64} {
		parts := partitionList(n)
		for i := range 200 {
			key := fmt.Sprintf("device-%d", i)
			got := Partition(key, n)
			if b := (partitionBalancer{}).Balance(kafka.Message{Key: []byte(key)}, parts...); b != got {
				t.Errorf("Partition(%q, %d) = %d, the writers' balancer %d", key, n, got, b)
			}
			if got < 0 || got >= n {
				t.Errorf("Partition(%q, %d) = %d, out of range", key, n, got)
			}
		}
	}
}

func TestParseReceipt(t *testing.T) {
	at := time.UnixMicro(1796280459998123).UTC()
	received, p, off, err := parseReceipt(Receipt(at, KafkaPlace(3, 17)))
	if err != nil || !received.Equal(at) || p != 3 || off != 17 {
		t.Errorf("parseReceipt of a receipt: %v %d %d %v, want %v 3 17", received, p, off, err, at)
	}
	for _, bad := range []string{"", "x", "17/p3@", "17/3@4", "a/p3@4", "17/p-1@4", "17/p3@x", "17"} {
		if _, _, _, err := parseReceipt(bad); err == nil {
			t.Errorf("parseReceipt(%q): no error", bad)
		}
	}
}
