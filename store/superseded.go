package store

import (
	"context"

	"github.com/waymark-dev/waymark/sessionize"
)

// notSuperseded is the condition that a row of the events table is not a superseded copy: a copy
// of an event that a copy earlier in time replaced (sessionize.Output.LaterCopies). Such a row
// stays stored until ClickHouse merges its partition, and for good when the earlier copy is in
// another month (events are partitioned by month, and rows replace each other within a
// partition only) or came by another path (another source, another sort key); every read of
// events that counts, orders or restores them applies it. The table is small (copies re-stamped
// and delivered out of order), so the set is cheap.
//
// A copy is named by its customer key, messageId and time (to the µs, eventTime): a message is its messageId whatever
// path brought it (sessionize.Copy), so every row of the message under the key at that time is
// the superseded copy, whichever source it was stored with. The table's source column, part of
// its sort key, is what builds before this rule wrote (the superseding copy's source, then the
// stored copy's too); it is written empty now and read by nothing. Rows written by those builds
// stay right: under the new rule each names a copy later than another of the same message, so
// every copy at its time is superseded too. So no migration is needed.
func (s *Store) notSuperseded() string {
	return "(customer_key, message_id, ts_ms, ts_sub_us) NOT IN (SELECT customer_key, message_id, ts_ms, ts_sub_us FROM " +
		s.table("superseded_events") + ")"
}

// writeSuperseded stores the copies an earlier copy replaced. Write calls it before it inserts
// the batch's events, so a row the earlier copy replaces is never counted beside it.
func (s *Store) writeSuperseded(ctx context.Context, copies []sessionize.Copy) error {
	n := len(copies)
	keys, ids, ts, sub := make([]string, n), make([]string, n), make([]uint64, n), make([]uint16, n)
	for i, c := range copies {
		keys[i], ids[i] = c.CustomerKey, c.MessageID
		ts[i], sub[i] = splitMicros(c.Time)
	}
	return s.insert(ctx, "superseded_events", []column{{"customer_key", keys}, {"message_id", ids}, {"ts_ms", ts}, {"ts_sub_us", sub}})
}
