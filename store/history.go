package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
)

// History returns the stored events and the live sessions of the given customers, so a
// sessionizer that starts (or meets a customer it no longer holds) continues exactly where the
// stored state left off. Events come back decoded from the bytes that were stored; one that no
// longer decodes (stored by a version with a more lenient decoder) is left out, with a warning.
// Superseded copies (see notSuperseded) are left out. Each event comes back once per time and
// source it is stored with (copies at one time by one path come back once: the same bytes, as the
// sessionizer stores no other copy at the time of one it holds); should copies at two times or by
// two paths be stored and not superseded (stored by an older version, or by two consumers), the
// sessionizer keeps the earliest (see sessionize.Output.LaterCopies).
//
// Most customers a consumer meets for the first time are new, and a filter of the keys with
// stored events rules them out without a query (see storedKeys). The others take one query to
// find which have stored events, then one for their events and one for their sessions, however
// many keys: the keys go as an external table. A batch's keys are spread over
// the whole table, so each query reads about one granule per key and part; in chunks of 1,000
// literals (the query size limit), 15,000 keys made 15 passes over most of the table.
func (s *Store) History(ctx context.Context, keys []string) ([]ingest.Event, []sessionize.Session, error) {
	keys, err := s.customersStored(ctx, keys)
	if err != nil || len(keys) == 0 {
		return nil, nil, err
	}
	return s.historyOf(ctx, keys)
}

// historyOf reads the events and live sessions of customers known to have stored events.
func (s *Store) historyOf(ctx context.Context, keys []string) ([]ingest.Event, []sessionize.Session, error) {
	events, err := s.historyEvents(ctx, keys)
	if err != nil {
		return nil, nil, err
	}
	sessions, err := s.historySessions(ctx, keys)
	if err != nil {
		return nil, nil, err
	}
	return events, sessions, nil
}

// withKeys returns ctx carrying keys as the external table restore_keys (one String column,
// key), for a query's "customer_key IN restore_keys".
func withKeys(ctx context.Context, keys []string) (context.Context, error) {
	t, err := ext.NewTable("restore_keys", ext.Column("key", "String"))
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if err := t.Append(k); err != nil {
			return nil, err
		}
	}
	return clickhouse.Context(ctx, clickhouse.WithExternalTable(t)), nil
}

// customersStored returns the keys that have stored events: those the filter of stored keys
// does not rule out (see storedKeys), looked up.
func (s *Store) customersStored(ctx context.Context, keys []string) ([]string, error) {
	keys, err := s.maybeStored(ctx, keys)
	if err != nil || len(keys) == 0 {
		return nil, err
	}
	return s.lookUpStored(ctx, keys)
}

// lookUpStored returns the keys that have stored events, asking ClickHouse about every one.
func (s *Store) lookUpStored(ctx context.Context, keys []string) ([]string, error) {
	kctx, err := withKeys(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("find stored customers: %w", err)
	}
	rows, err := s.conn.Query(kctx, "SELECT DISTINCT customer_key FROM "+s.table("events")+" WHERE customer_key IN restore_keys")
	if err != nil {
		return nil, fmt.Errorf("find stored customers: %w", err)
	}
	defer rows.Close()
	var found []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("find stored customers: %w", err)
		}
		found = append(found, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find stored customers: %w", err)
	}
	return found, nil
}

// ForeignHistory is History for customers another process may have stored since this one
// loaded its filter of stored keys (see storedKeys), which would rule them out: the keys of other
// consumers' partitions a consumer restores with its own (the other keys of a batch's persons,
// the users whose server aliases from a device's id sign them in on it: see
// sessionize.Sessionizer.toRestore and sessionize.Runner.learn). They are looked up without it:
// one query to find which are stored, then one for their events and one for their sessions.
// While this process's consumer reads every partition (Rebalanced), no other process stores
// events, and it is History: a single consumer, the usual deployment, asks ClickHouse nothing
// for keys never stored (the restores of a million-event import took 0.4–1.6 s with the filter,
// 1.7–7.3 s without it).
func (s *Store) ForeignHistory(ctx context.Context, keys []string) ([]ingest.Event, []sessionize.Session, error) {
	if len(keys) == 0 {
		return nil, nil, nil
	}
	if s.soleWriter() {
		return s.History(ctx, keys)
	}
	keys, err := s.lookUpStored(ctx, keys)
	if err != nil || len(keys) == 0 {
		return nil, nil, err
	}
	return s.historyOf(ctx, keys)
}

func (s *Store) historyEvents(ctx context.Context, keys []string) ([]ingest.Event, error) {
	kctx, err := withKeys(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("load event history: %w", err)
	}
	rows, err := s.conn.Query(kctx, "SELECT source, message_id, any(raw), any(received_at_ms), min(seq), "+eventTime+" AS t FROM "+s.table("events")+
		" WHERE customer_key IN restore_keys AND "+s.notSuperseded()+" GROUP BY customer_key, source, message_id, t")
	if err != nil {
		return nil, fmt.Errorf("load event history: %w", err)
	}
	defer rows.Close()
	var out []ingest.Event
	for rows.Next() {
		var source, id, raw string
		var received, seq, ts uint64
		if err := rows.Scan(&source, &id, &raw, &received, &seq, &ts); err != nil {
			return nil, fmt.Errorf("load event history: %w", err)
		}
		e, err := ingest.DecodeAt([]byte(raw), source, time.UnixMilli(int64(received)))
		if err != nil {
			// Stored by a version whose decoder was more lenient (it took a sent time of
			// 0001-01-01T00:00:00Z or "" for an absent one, an offset of +24:00 for a day): it
			// stays stored, and out of the restored history, as it would be dead-lettered today.
			// Failing the restore instead would stall every batch with one of this customer's
			// events, forever.
			s.log.Warn("a stored event no longer decodes; restoring its customer without it",
				"source", source, "message_id", id, "err", err)
			continue
		}
		// The stored time is the event's. A message produced straight to Kafka was corrected
		// for its client's clock by the consumer (ingest.DecodeClient, against its receipt: the
		// time Kafka got it, or the receivedAt it names when that can be one; stored as its
		// receive time, which names it again), and its bytes still carry the client's times: decoded
		// so again, it comes back as it was sessionized, to the microsecond (eventTime).
		if e.Timestamp.UnixMicro() != int64(ts) {
			if c, err := ingest.DecodeClient([]byte(raw), source, time.UnixMilli(int64(received))); err == nil && c.Timestamp.UnixMicro() == int64(ts) {
				e = c
			} else {
				e.Timestamp = time.UnixMicro(int64(ts)).UTC()
			}
		}
		// The stored id is the message's: one derived for a message without one named its
		// receipt too (ingest.DerivedMessageID), which the stored bytes may not tell again.
		e.MessageID = id
		e.Seq = int64(seq)
		out = append(out, e)
	}
	return out, rows.Err()
}

func (s *Store) historySessions(ctx context.Context, keys []string) ([]sessionize.Session, error) {
	kctx, err := withKeys(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("load session history: %w", err)
	}
	rows, err := s.conn.Query(kctx, `SELECT session_id, argMax(customer_key, version), argMax(person_id, version),
		argMax(start_ms * 1000 + start_sub_us, version), argMax(start_seq, version), argMax(end_ms * 1000 + end_sub_us, version), argMax(events, version), argMax(entry_event, version), argMax(exit_event, version),
		argMax(entry_channel, version), argMax(entry_campaign, version), argMax(stages, version), argMax(end_reason, version), argMax(map_version, version), max(version), argMax(deleted, version) AS gone
	FROM `+s.table("sessions")+` WHERE customer_key IN restore_keys GROUP BY session_id HAVING gone = 0`)
	if err != nil {
		return nil, fmt.Errorf("load session history: %w", err)
	}
	defer rows.Close()
	var out []sessionize.Session
	for rows.Next() {
		var ss sessionize.Session
		var start, startSeq, end uint64
		var events uint32
		var gone uint8
		if err := rows.Scan(&ss.ID, &ss.CustomerKey, &ss.PersonID, &start, &startSeq, &end, &events, &ss.EntryEvent, &ss.ExitEvent,
			&ss.EntryChannel, &ss.EntryCampaign, &ss.Stages, &ss.EndReason, &ss.MapVersion, &ss.Version, &gone); err != nil {
			return nil, fmt.Errorf("load session history: %w", err)
		}
		ss.Start, ss.End, ss.Events = time.UnixMicro(int64(start)).UTC(), time.UnixMicro(int64(end)).UTC(), int(events)
		ss.StartSeq = int64(startSeq)
		if len(ss.Stages) == 0 {
			ss.Stages = nil
		}
		out = append(out, ss)
	}
	return out, rows.Err()
}

// IdentityLinks returns every stored identity link, each once, to rebuild the identity graph
// (sessionize.Sessionizer.RestoreLinks), in the order they were stored (by the version of the
// batch that first stored each; within one batch by its ids), so every rebuild replays them alike.
func (s *Store) IdentityLinks(ctx context.Context) ([][2]string, error) {
	return s.identityLinks(ctx, "SELECT a, b FROM "+s.table("identity_links")+" GROUP BY a, b ORDER BY min(version), a, b")
}

// SharedDevices returns the sign-ins of every device stored in device_sign_ins (devices several
// userIds signed in on), the newest version of each, with their Device and Users only: a
// restarted sessionizer learns from them which shared devices each user signed in on
// (sessionize.Sessionizer.RestoreSharedDevices). The table holds shared devices alone, a row a
// version.
func (s *Store) SharedDevices(ctx context.Context) ([]sessionize.DeviceSignIns, error) {
	rows, err := s.conn.Query(ctx, "SELECT device, argMax(users, version) FROM "+s.table("device_sign_ins")+" GROUP BY device ORDER BY device")
	if err != nil {
		return nil, fmt.Errorf("load shared devices: %w", err)
	}
	defer rows.Close()
	var out []sessionize.DeviceSignIns
	for rows.Next() {
		var d sessionize.DeviceSignIns
		if err := rows.Scan(&d.Device, &d.Users); err != nil {
			return nil, fmt.Errorf("load shared devices: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// IdentityLinksOf returns the identity links stored at a version of since or later (a batch's,
// unix ns) with an end among ids ("u:"/"a:" prefixed), each once, in IdentityLinks' order: a
// consumer reads them for the persons whose links it stored, to learn those other consumers
// stored since it read them all (see sessionize.Runner). The version is read first (PREWHERE):
// the table is ordered by its first id, so finding the second reads the table whole, and the
// ids of the links stored since then only. The ids go as an external table, as History's keys
// do.
func (s *Store) IdentityLinksOf(ctx context.Context, ids []string, since uint64) ([][2]string, error) {
	return s.identityLinksAmong(ctx, ids, since, "a IN restore_keys OR b IN restore_keys")
}

// IdentityLinksFrom returns the identity links stored at a version of since or later whose first
// id is among ids, each once, in IdentityLinks' order: a consumer reads them for the devices
// ("a:" ids) whose events it is about to take in and does not hold, to learn the aliases from
// their ids other consumers stored (sessionize.Runner.learnDeviceKeys). Only the first id is
// looked for: the table is ordered by it, so this is a lookup by the primary key, where a second
// id would read the links stored since whole (see IdentityLinksOf); and the links of a device
// that others store name it first (an alias from its id, a device signed in on by its own
// events, see sessionize.Output.Links).
func (s *Store) IdentityLinksFrom(ctx context.Context, ids []string, since uint64) ([][2]string, error) {
	return s.identityLinksAmong(ctx, ids, since, "a IN restore_keys")
}

// identityLinksAmong returns the identity links stored at a version of since or later that where
// (a condition on a and b, the ids being the external table restore_keys) keeps, each once, in
// IdentityLinks' order: IdentityLinksOf's and IdentityLinksFrom's read.
func (s *Store) identityLinksAmong(ctx context.Context, ids []string, since uint64, where string) ([][2]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	kctx, err := withKeys(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("load identity links of %d ids: %w", len(ids), err)
	}
	return s.identityLinks(kctx, "SELECT a, b FROM "+s.table("identity_links")+fmt.Sprintf(" PREWHERE version >= %d", since)+
		" WHERE "+where+" GROUP BY a, b ORDER BY min(version), a, b")
}

// DeviceLinks returns IdentityLinksOf(devices, since) ("a:" ids) and, in the same query, the
// devices among them that are the anonymousId of a stored event (seen): a consumer asks before it
// reads a batch's aliases from a device's id, which are the user signing in on the device when
// previousId names one (sessionize.Runner.learnDevices). An event's customer key is its
// anonymousId when it has one, so that is a lookup by the events' primary key, a granule per
// device and part. The devices go as a second external table, without their "a:".
func (s *Store) DeviceLinks(ctx context.Context, devices []string, since uint64) ([][2]string, []string, error) {
	if len(devices) == 0 {
		return nil, nil, nil
	}
	ids, err := ext.NewTable("restore_keys", ext.Column("key", "String"))
	if err != nil {
		return nil, nil, fmt.Errorf("load identity links and events of %d devices: %w", len(devices), err)
	}
	keys, err := ext.NewTable("device_keys", ext.Column("key", "String"))
	if err != nil {
		return nil, nil, fmt.Errorf("load identity links and events of %d devices: %w", len(devices), err)
	}
	for _, d := range devices {
		if err := ids.Append(d); err != nil {
			return nil, nil, fmt.Errorf("load identity links and events of %d devices: %w", len(devices), err)
		}
		if err := keys.Append(strings.TrimPrefix(d, "a:")); err != nil {
			return nil, nil, fmt.Errorf("load identity links and events of %d devices: %w", len(devices), err)
		}
	}
	kctx := clickhouse.Context(ctx, clickhouse.WithExternalTable(ids, keys))
	// kind 0: a link; kind 1: a device seen, its id in a and b empty.
	rows, err := s.conn.Query(kctx, "SELECT kind, a, b FROM ("+
		"SELECT toUInt8(0) AS kind, a, b, min(version) AS v FROM "+s.table("identity_links")+fmt.Sprintf(" PREWHERE version >= %d", since)+
		" WHERE a IN restore_keys OR b IN restore_keys GROUP BY a, b"+
		" UNION ALL SELECT toUInt8(1) AS kind, concat('a:', customer_key) AS a, '' AS b, toUInt64(0) AS v FROM "+s.table("events")+
		" WHERE customer_key IN device_keys AND anonymous_id != '' GROUP BY customer_key"+
		") ORDER BY kind, v, a, b")
	if err != nil {
		return nil, nil, fmt.Errorf("load identity links and events of %d devices: %w", len(devices), err)
	}
	defer rows.Close()
	var links [][2]string
	var seen []string
	for rows.Next() {
		var kind uint8
		var l [2]string
		if err := rows.Scan(&kind, &l[0], &l[1]); err != nil {
			return nil, nil, fmt.Errorf("load identity links and events of %d devices: %w", len(devices), err)
		}
		if kind == 1 {
			seen = append(seen, l[0])
		} else {
			links = append(links, l)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("load identity links and events of %d devices: %w", len(devices), err)
	}
	return links, seen, nil
}

// identityLinks runs query, which selects pairs of ids, and returns them.
func (s *Store) identityLinks(ctx context.Context, query string) ([][2]string, error) {
	rows, err := s.conn.Query(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("load identity links: %w", err)
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var l [2]string
		if err := rows.Scan(&l[0], &l[1]); err != nil {
			return nil, fmt.Errorf("load identity links: %w", err)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// CustomersWithEvents returns the customer keys with events in [from, to); zero times are
// unbounded.
func (s *Store) CustomersWithEvents(ctx context.Context, from, to time.Time) ([]string, error) {
	lo, hi := uint64(0), uint64(1<<63)
	if !from.IsZero() {
		lo = uint64(from.UnixMicro())
	}
	if !to.IsZero() {
		hi = uint64(to.UnixMicro())
	}
	rows, err := s.conn.Query(ctx, "SELECT DISTINCT customer_key FROM "+s.table("events")+" WHERE "+eventTime+" >= ? AND "+eventTime+" < ? ORDER BY customer_key", lo, hi)
	if err != nil {
		return nil, fmt.Errorf("list customers: %w", err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("list customers: %w", err)
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}
