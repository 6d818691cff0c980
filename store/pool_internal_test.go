package store

import "testing"

// TestPoolHoldsTheQuerySlots: the connection pool holds every ClickHouse query the query slots
// may run at once (a batch runs up to MaxBatchQueries together) and, beside them, the writer's
// two inserts: neither a busy query API nor ingestion waits for a connection and fails with
// "acquire conn timeout". The client's default pool (10) made four batches of eight sessions
// queries fail a third of them with a 500, and the consumer's inserts retry.
func TestPoolHoldsTheQuerySlots(t *testing.T) {
	t.Parallel()
	for _, slots := range []int{1, 4, 20} {
		cfg := Config{QueryConcurrency: slots}
		cfg.setDefaults()
		opts := clickhouseOptions(cfg)
		if want := slots*MaxBatchQueries + 2; opts.MaxOpenConns < want {
			t.Errorf("%d query slots: a pool of %d connections, want at least %d", slots, opts.MaxOpenConns, want)
		}
	}
}
