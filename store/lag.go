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

// StoredLagSince returns the 50th, 95th and 99th percentiles of the stored lag (see StoredLag) of
// the events received at or after since, and when the last of them whose lag was at least over
// was received (zero when none was).
func (s *Store) StoredLagSince(ctx context.Context, since time.Time, over time.Duration) ([3]time.Duration, time.Time, error) {
	var out [3]time.Duration
	var q []float64
	var last uint64
	err := s.conn.QueryRow(ctx, "SELECT quantilesExact(0.5, 0.95, 0.99)(toFloat64(stored_at_ms) - toFloat64(received_at_ms)), "+
		"maxIf(received_at_ms, stored_at_ms >= received_at_ms + ?) FROM "+s.table("events")+" WHERE received_at_ms >= ?",
		uint64(over.Milliseconds()), uint64(since.UnixMilli())).Scan(&q, &last)
	if err != nil {
		return out, time.Time{}, fmt.Errorf("stored lag since %s: %w", since.Format(time.RFC3339), err)
	}
	for i := range out {
		if i < len(q) {
			out[i] = time.Duration(q[i] * float64(time.Millisecond))
		}
	}
	var lastOver time.Time
	if last > 0 {
		lastOver = time.UnixMilli(int64(last))
	}
	return out, lastOver, nil
}
