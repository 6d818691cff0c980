package store

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"time"
)

// SessionSummary describes the sessions that started in a time range, counted on persons.
type SessionSummary struct {
	Sessions              uint64            `json:"sessions"`
	Persons               uint64            `json:"persons"`
	Events                uint64            `json:"events"`
	MedianDurationSeconds float64           `json:"median_duration_seconds"`
	P90DurationSeconds    float64           `json:"p90_duration_seconds"`
	MeanEventsPerSession  float64           `json:"mean_events_per_session"`
	ByEndReason           map[string]uint64 `json:"by_end_reason"`
	ByEntryChannel        map[string]uint64 `json:"by_entry_channel"`
	From                  *time.Time        `json:"from,omitempty"`
	To                    *time.Time        `json:"to,omitempty"`
}

// SessionsQuery asks for a summary of the sessions that started in [From, To); zero times are
// unbounded.
type SessionsQuery struct {
	From, To time.Time
}

// ParseSessionsQuery reads from and to.
func ParseSessionsQuery(v url.Values) (SessionsQuery, error) {
	p := newParams(v, sessionsParams())
	var q SessionsQuery
	q.From, q.To = p.timeRange()
	return q, p.finish()
}

// Sessions summarizes the live sessions (latest version, not deleted) that started in the
// query's range, within the store's query limits as the other journey queries.
func (s *Store) Sessions(ctx context.Context, q SessionsQuery) (*SessionSummary, error) {
	return runQuery(ctx, s, "sessions", func(ctx context.Context) (*SessionSummary, error) { return s.sessions(ctx, q.From, q.To) })
}

func (s *Store) sessions(ctx context.Context, from, to time.Time) (*SessionSummary, error) {
	if err := checkRange(from, to); err != nil {
		return nil, err
	}
	lo, hi := uint64(0), uint64(1<<63)
	if !from.IsZero() {
		lo = uint64(from.UnixMilli())
	}
	if !to.IsZero() {
		hi = uint64(to.UnixMilli())
	}
	live := `SELECT ` + resolvedPerson + ` AS person, n, duration, reason, channel
	FROM (
		SELECT session_id, argMax(person_id, version) AS person_id, argMax(events, version) AS n,
			(argMax(end_ms, version) - argMax(start_ms, version)) / 1000 AS duration,
			argMax(end_reason, version) AS reason, argMax(entry_channel, version) AS channel,
			argMax(start_ms, version) AS start, argMax(deleted, version) AS gone
		FROM ` + s.table("sessions") + `
		GROUP BY session_id
		HAVING gone = 0 AND start >= ? AND start < ?
	) AS s ANY LEFT JOIN (` + s.personOverrides(math.MaxUint64) + `) AS p USING person_id`
	sum := &SessionSummary{ByEndReason: map[string]uint64{}, ByEntryChannel: map[string]uint64{}}
	if !from.IsZero() {
		sum.From = &from
	}
	if !to.IsZero() {
		sum.To = &to
	}
	row := s.conn.QueryRow(ctx, `SELECT count(), uniqExact(person), sum(n), quantileExact(0.5)(duration),
		quantileExact(0.9)(duration), avg(n) FROM (`+live+`)`, lo, hi)
	var events uint64
	if err := row.Scan(&sum.Sessions, &sum.Persons, &events, &sum.MedianDurationSeconds, &sum.P90DurationSeconds, &sum.MeanEventsPerSession); err != nil {
		return nil, fmt.Errorf("sessions summary: %w", err)
	}
	sum.Events = events
	if sum.Sessions == 0 {
		sum.MedianDurationSeconds, sum.P90DurationSeconds, sum.MeanEventsPerSession = 0, 0, 0
	}
	for _, by := range []struct {
		col string
		dst map[string]uint64
	}{{"reason", sum.ByEndReason}, {"channel", sum.ByEntryChannel}} {
		rows, err := s.conn.Query(ctx, "SELECT "+by.col+", count() FROM ("+live+") GROUP BY "+by.col, lo, hi)
		if err != nil {
			return nil, fmt.Errorf("sessions by %s: %w", by.col, err)
		}
		for rows.Next() {
			var k string
			var n uint64
			if err := rows.Scan(&k, &n); err != nil {
				rows.Close()
				return nil, fmt.Errorf("sessions by %s: %w", by.col, err)
			}
			by.dst[k] = n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("sessions by %s: %w", by.col, err)
		}
	}
	return sum, nil
}
