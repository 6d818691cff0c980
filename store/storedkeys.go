package store

import (
	"context"
	"fmt"
	"sync"

	"github.com/bits-and-blooms/bloom/v3"
)

// storedKeys knows which customer keys may have stored events, so that restoring the customers a
// consumer meets for the first time costs no query when they are new, as most are. Before, every
// batch asked ClickHouse, and since a batch's keys are spread over the whole events table, that
// query read about a granule per key and part: a third of the time of a time-ordered import of a
// million customers.
//
// It is a Bloom filter (bits-and-blooms/bloom: a false positive costs only a query that finds
// nothing; a key it has not seen is certainly not stored) of the keys stored when it was loaded
// and of those Store.Write stored since. It holds no key stored by another process after the
// load, so the consumer calls Store.RefreshStoredKeys when a rebalance may have given it
// partitions another consumer wrote: the next restore loads the filter again. A write of the
// old owner that lands after that load belongs to a batch it could not commit, which this
// consumer is given again whole, so nothing of such a key is missed.
type storedKeys struct {
	mu       sync.Mutex
	filter   *bloom.BloomFilter // nil until loaded, and after RefreshStoredKeys
	loading  bool               // a load is running: writes keep their keys in pending too
	pending  []string           // keys written while loading
	sizedFor uint               // keys the filter was sized for; past them it is loaded again, larger
	refresh  uint64             // counts RefreshStoredKeys calls: a load one overtook is not kept
	// sole says this process's consumer reads every partition (Rebalanced): no other process
	// stores events, so the filter also knows the keys of other partitions (ForeignHistory).
	sole bool
}

const (
	// storedKeysFalsePositives is the filter's false-positive rate: 14.4 bits a key, 1.8 MB for
	// a million keys.
	storedKeysFalsePositives = 0.001
	// minStoredKeys and maxStoredKeys bound the keys a filter is sized for (twice the keys
	// stored when it is loaded): beyond the largest, 115 MB, more keys raise the false-positive
	// rate rather than the memory.
	minStoredKeys = 1 << 20
	maxStoredKeys = 1 << 26
)

// RefreshStoredKeys makes the next restore load again the keys with stored events: call it when
// this process may have been given customers another process stored (a consumer group's
// rebalance).
func (s *Store) RefreshStoredKeys() {
	s.storedKeys.mu.Lock()
	s.storedKeys.filter = nil
	s.storedKeys.refresh++
	s.storedKeys.mu.Unlock()
}

// Rebalanced is the consumer's OnRebalance: the next restore loads the keys with stored events
// again (RefreshStoredKeys), and sole says whether this process's consumer reads every partition
// of the topic, so that no other process stores events until the next rebalance: ForeignHistory
// then asks the filter too, as History does.
func (s *Store) Rebalanced(sole bool) {
	s.RefreshStoredKeys()
	s.storedKeys.mu.Lock()
	s.storedKeys.sole = sole
	s.storedKeys.mu.Unlock()
}

// soleWriter reports what the last Rebalanced said (false before any).
func (s *Store) soleWriter() bool {
	s.storedKeys.mu.Lock()
	defer s.storedKeys.mu.Unlock()
	return s.storedKeys.sole
}

// noteStored adds the keys of events just stored.
func (s *Store) noteStored(keys []string) {
	k := &s.storedKeys
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.loading {
		k.pending = append(k.pending, keys...)
	}
	if k.filter != nil {
		for _, key := range keys {
			k.filter.AddString(key)
		}
		if k.filter.ApproximatedSize() > uint32(k.sizedFor) {
			k.filter = nil // loaded again, for twice the keys stored then
		}
	}
}

// maybeStored returns the keys that may have stored events, loading the filter first if needed.
// Restores call it one at a time (a Runner restores under its lock); writes and refreshes may
// come from other goroutines at any time.
func (s *Store) maybeStored(ctx context.Context, keys []string) ([]string, error) {
	k := &s.storedKeys
	k.mu.Lock()
	filter, refresh := k.filter, k.refresh
	if filter == nil {
		k.loading, k.pending = true, nil
	}
	k.mu.Unlock()
	if filter == nil {
		var err error
		var sizedFor uint
		if filter, sizedFor, err = s.loadStoredKeys(ctx); err != nil {
			k.mu.Lock()
			k.loading, k.pending = false, nil
			k.mu.Unlock()
			return nil, err
		}
		k.mu.Lock()
		for _, key := range k.pending {
			filter.AddString(key)
		}
		if k.refresh == refresh { // else a rebalance came during the load: it serves this batch only
			k.filter, k.sizedFor = filter, sizedFor
		}
		k.loading, k.pending = false, nil
		k.mu.Unlock()
	}
	var maybe []string
	k.mu.Lock()
	for _, key := range keys {
		if filter.TestString(key) {
			maybe = append(maybe, key)
		}
	}
	k.mu.Unlock()
	return maybe, nil
}

// loadStoredKeys builds a filter of every customer key with stored events, and returns the keys
// it is sized for.
func (s *Store) loadStoredKeys(ctx context.Context) (*bloom.BloomFilter, uint, error) {
	var n uint64
	if err := s.conn.QueryRow(ctx, "SELECT uniq(customer_key) FROM "+s.table("events")).Scan(&n); err != nil {
		return nil, 0, fmt.Errorf("count stored customers: %w", err)
	}
	sizedFor := uint(min(max(2*n, minStoredKeys), maxStoredKeys))
	filter := bloom.NewWithEstimates(sizedFor, storedKeysFalsePositives)
	rows, err := s.conn.Query(ctx, "SELECT DISTINCT customer_key FROM "+s.table("events"))
	if err != nil {
		return nil, 0, fmt.Errorf("load stored customers: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		if err := rows.Scan(&key); err != nil {
			return nil, 0, fmt.Errorf("load stored customers: %w", err)
		}
		filter.AddString(key)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("load stored customers: %w", err)
	}
	s.log.Info("loaded the customer keys with stored events", "customers", n)
	return filter, sizedFor, nil
}
