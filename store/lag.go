package store

import (
	"context"
	"fmt"
	"time"
)

// StoredLag returns the 50th, 95th and 99th percentiles of the time from an event's receivedAt to
// the moment its batch was handed to ClickHouse, over every stored event.
func (s *Store) StoredLag(ctx context.Context) ([3]time.Duration, error) {
	var out [3]time.Duration
	var q []float64
	err := s.conn.QueryRow(ctx, "SELECT quantilesExact(0.5, 0.95, 0.99)(toFloat64(stored_at_ms) - toFloat64(received_at_ms)) FROM "+s.table("events")).Scan(&q)
	if err != nil {
		return out, fmt.Errorf("stored lag: %w", err)
	}
	for i := range out {
		if i < len(q) {
			out[i] = time.Duration(q[i] * float64(time.Millisecond))
		}
	}
	return out, nil
}
