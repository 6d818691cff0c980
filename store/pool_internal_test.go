package store

import (
	"testing"
	"time"
)

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

// TestReadsWaitForTheQueryTimeout: a read waits for ClickHouse's next packet at least as long as
// a query may run (a pass sends nothing until its grouping ends), never less than the client's
// default 5 minutes.
func TestReadsWaitForTheQueryTimeout(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ query, read time.Duration }{
		{0, 5 * time.Minute}, // the default QueryTimeout, a minute
		{10 * time.Minute, 11 * time.Minute},
		{30 * time.Minute, 31 * time.Minute},
	} {
		cfg := Config{QueryTimeout: tt.query}
		cfg.setDefaults()
		if got := clickhouseOptions(cfg).ReadTimeout; got != tt.read {
			t.Errorf("query timeout %s: reads wait %s, want %s", cfg.QueryTimeout, got, tt.read)
		}
	}
}
