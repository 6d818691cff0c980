package main

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestKafkaMirrorKeepsItsReceiptsTimes: a mirror of Segment's processed output (originalTimestamp,
// timestamp, sentAt and receivedAt, consistent) produced straight to Kafka without the
// waymark-source header keeps its times however long after Segment received it it is produced,
// up to Kafka's retention: its own receivedAt is its receipt (tester 35's F2: each was moved to
// the time it was consumed). The stored receive time is that receipt, and the session starts at
// its timestamp; `resessionize`, which decodes the stored bytes again, keeps them.
func TestKafkaMirrorKeepsItsReceiptsTimes(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	iso := func(t time.Time) string { return t.Format("2006-01-02T15:04:05.000Z") }
	lags := []time.Duration{5 * time.Second, 20 * time.Second, 5 * time.Minute, time.Hour}
	var lines []string
	for _, lag := range lags {
		r := now.Add(-lag)
		lines = append(lines, fmt.Sprintf(`{"type":"track","anonymousId":"lag-%d","event":"LAG Probe","messageId":"lag-%d",`+
			`"originalTimestamp":%q,"timestamp":%q,"sentAt":%q,"receivedAt":%q}`, int(lag.Seconds()), int(lag.Seconds()),
			iso(r.Add(-300*time.Millisecond)), iso(r.Add(-200*time.Millisecond)), iso(r.Add(-100*time.Millisecond)), iso(r)))
	}
	produceWithKcat(t, s.broker, lines)
	s.waitStored(t)
	check := func(when string) {
		for _, lag := range lags {
			id := fmt.Sprintf("lag-%d", int(lag.Seconds()))
			got := queryStrings(t, "SELECT concat(toString(ts_ms), ' ', toString(received_at_ms)) FROM "+s.database+".events WHERE message_id = ?", id)
			r := now.Add(-lag)
			want := fmt.Sprintf("%d %d", r.Add(-200*time.Millisecond).UnixMilli(), r.UnixMilli())
			if len(got) != 1 || got[0] != want {
				t.Errorf("%s: %s stored at %v (ts_ms received_at_ms), want %s", when, id, got, want)
			}
			start := queryStrings(t, "SELECT toString(start_ms) FROM "+s.database+".sessions FINAL WHERE deleted = 0 AND customer_key IN (SELECT customer_key FROM "+s.database+".events WHERE message_id = ?)", id)
			if want := fmt.Sprint(r.Add(-200 * time.Millisecond).UnixMilli()); !slices.Equal(start, []string{want}) {
				t.Errorf("%s: %s's session starts at %v, want %s", when, id, start, want)
			}
		}
	}
	check("live")
	s.waymark(t, "resessionize")
	check("after resessionize")
}
