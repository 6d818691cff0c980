package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
)

// Write inserts a batch of events and the sessions they changed. It returns when ClickHouse has
// acknowledged both, so the caller may commit the Kafka offsets behind them. A batch written twice
// changes no answer: rows with the same key collapse on merge and queries count distinct events.
// The events and the rest go in two inserts side by side (ClickHouse takes each on its own thread);
// the copies the batch's events supersede go in before the events (see writeSuperseded).
func (s *Store) Write(ctx context.Context, b sessionize.Batch) error {
	g, gctx := errgroup.WithContext(ctx)
	if len(b.Events) > 0 || len(b.Superseded) > 0 {
		g.Go(func() error {
			if len(b.Superseded) > 0 {
				if err := s.writeSuperseded(gctx, b.Superseded); err != nil {
					return err
				}
			}
			if len(b.Events) == 0 {
				return nil
			}
			if err := s.insert(gctx, "events", eventColumns(b.Events, b.Channels, b.PersonIDs)); err != nil {
				return err
			}
			keys := make([]string, len(b.Events))
			for i := range b.Events {
				keys[i] = b.Events[i].CustomerKey()
			}
			s.noteStored(keys)
			now := time.Now()
			for i := range b.Events {
				// From when Waymark received the event (Arrived: the collector's receipt, or
				// the time Kafka gave a replayed or straight-to-Kafka message), not receivedAt,
				// which a replayed export keeps from its first delivery. A Kafka time is its
				// producer's clock: one of year 1 must not swamp the histogram's sum, nor one in
				// the future make it shrink; an event not received (zero) is not observed.
				if at := b.Events[i].Arrived; ingest.InTimeRange(at) {
					s.metrics.storedLag.Observe(max(0, now.Sub(at).Seconds()))
				}
			}
			return nil
		})
	}
	g.Go(func() error { return s.writeJourneys(gctx, b) })
	return g.Wait()
}

// writeJourneys inserts a batch's sessions, identity links and person ids.
func (s *Store) writeJourneys(ctx context.Context, b sessionize.Batch) error {
	if len(b.Sessions) > 0 {
		if err := s.insert(ctx, "sessions", sessionColumns(b.Sessions)); err != nil {
			return err
		}
	}
	if len(b.Links) > 0 {
		a, c, v := make([]string, len(b.Links)), make([]string, len(b.Links)), make([]uint64, len(b.Links))
		for i, l := range b.Links {
			a[i], c[i], v[i] = l[0], l[1], b.Version
		}
		if err := s.insert(ctx, "identity_links", []column{{"a", a}, {"b", c}, {"version", v}}); err != nil {
			return err
		}
	}
	if len(b.SignIns) > 0 {
		n := len(b.SignIns)
		device, from, sub, seq, users, v := make([]string, n), make([][]uint64, n), make([][]uint16, n), make([][]uint64, n), make([][]string, n), make([]uint64, n)
		for i, d := range b.SignIns {
			device[i], users[i], v[i] = d.Device, d.Users, b.Version
			from[i], sub[i], seq[i] = make([]uint64, len(d.From)), make([]uint16, len(d.From)), make([]uint64, len(d.From))
			for j, us := range d.From {
				from[i][j], sub[i][j] = splitMicros(time.UnixMicro(us))
				if j < len(d.Seqs) {
					seq[i][j] = uint64(max(d.Seqs[j], 0))
				}
			}
		}
		if err := s.insert(ctx, "device_sign_ins", []column{{"device", device}, {"from_ms", from}, {"from_sub_us", sub}, {"from_seq", seq}, {"users", users}, {"version", v}}); err != nil {
			return err
		}
	}
	if len(b.Persons) > 0 {
		k, p, v := make([]string, len(b.Persons)), make([]string, len(b.Persons)), make([]uint64, len(b.Persons))
		for i, l := range b.Persons {
			k[i], p[i], v[i] = l.CustomerKey, l.PersonID, b.Version
		}
		if err := s.insert(ctx, "persons", []column{{"customer_key", k}, {"person_id", p}, {"version", v}}); err != nil {
			return err
		}
	}
	return nil
}

// column is one column of a batch insert: its name and a slice of values.
type column struct {
	name   string
	values any
}

func (s *Store) insert(ctx context.Context, table string, cols []column) error {
	start := time.Now()
	err := s.insertColumns(ctx, table, cols)
	s.metrics.insertSeconds.WithLabelValues(table).Observe(time.Since(start).Seconds())
	if err != nil {
		s.metrics.insertErrors.WithLabelValues(table).Inc()
		return err
	}
	return nil
}

func (s *Store) insertColumns(ctx context.Context, table string, cols []column) error {
	names := ""
	for i, c := range cols {
		if i > 0 {
			names += ", "
		}
		names += c.name
	}
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.table(table)+" ("+names+")")
	if err != nil {
		return fmt.Errorf("prepare insert into %s: %w", table, err)
	}
	defer batch.Abort()
	for i, c := range cols {
		if err := batch.Column(i).Append(c.values); err != nil {
			return fmt.Errorf("insert into %s: column %s: %w", table, c.name, err)
		}
	}
	rows := batch.Rows()
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d rows into %s: %w", rows, table, err)
	}
	s.metrics.rows.WithLabelValues(table).Add(float64(rows))
	s.metrics.batches.WithLabelValues(table).Inc()
	return nil
}

// splitMicros is t as the events table stores an event time (eventTime): its unix milliseconds
// (0 before 1970) and the microseconds past them, 0–999; what is finer than a µs is cut.
func splitMicros(t time.Time) (ms uint64, sub uint16) {
	if t.IsZero() || t.Before(time.Unix(0, 0)) {
		return 0, 0
	}
	us := t.UnixMicro()
	return uint64(us / 1000), uint16(us % 1000)
}

func millis(t time.Time) uint64 {
	if t.IsZero() || t.Before(time.Unix(0, 0)) {
		return 0
	}
	return uint64(t.UnixMilli())
}

// eventColumns lays out events for insert, each with its channel and the person it is stored
// with (personIDs[i]; the customer key when personIDs does not cover the events: only tests write
// events without a sessionizer, with overrides by customer key. Waymark's own writes always carry
// the sessionizer's person ids, a device's typed, see ingest.DevicePerson).
func eventColumns(events []ingest.Event, channels, personIDs []string) []column {
	n := len(events)
	person := personIDs
	if len(person) != n {
		person = make([]string, n)
		for i := range events {
			person[i] = events[i].CustomerKey()
		}
	}
	var (
		source, messageID, typ, event, userID, anonID, customer = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		ts, origTS, sentAt, receivedAt                          = make([]uint64, n), make([]uint64, n), make([]uint64, n), make([]uint64, n)
		tsSub                                                   = make([]uint16, n)
		date                                                    = make([]time.Time, n)
		storedAt, seq                                           = make([]uint64, n), make([]uint64, n)
		propKeys, propValues, nullKeys                          = make([][]string, n), make([][]string, n), make([][]string, n)
		itemKeys, itemValues                                    = make([][]string, n), make([][]string, n)
		numberKeys, numberMins, numberMaxes                     = make([][]string, n), make([][]string, n), make([][]string, n)
		path, referrer, campSource, campMedium, campName, raw   = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	)
	now := millis(time.Now())
	for i := range events {
		e := &events[i]
		source[i], messageID[i], typ[i], event[i] = e.Source, e.MessageID, e.Type, e.Event
		userID[i], anonID[i], customer[i] = e.UserID, e.AnonymousID, e.CustomerKey()
		ts[i], tsSub[i] = splitMicros(e.Timestamp)
		origTS[i], sentAt[i], receivedAt[i] = millis(e.OriginalTimestamp), millis(e.SentAt), millis(e.ReceivedAt)
		date[i], storedAt[i] = e.Timestamp.UTC(), now // when the batch was handed to ClickHouse
		seq[i] = uint64(max(e.Seq, 0))
		propKeys[i], propValues[i], nullKeys[i] = orEmpty(e.PropertyKeys), orEmpty(e.PropertyValues), orEmpty(e.NullKeys)
		itemKeys[i], itemValues[i] = orEmpty(e.ItemKeys), orEmpty(e.ItemValues)
		numberKeys[i], numberMins[i], numberMaxes[i] = itemNumbers(e.ItemKeys, e.ItemValues)
		path[i], referrer[i] = e.PagePath, e.Referrer
		campSource[i], campMedium[i], campName[i] = e.CampaignSource, e.CampaignMedium, e.CampaignName
		raw[i] = string(e.Raw)
	}
	return []column{
		{"source", source}, {"message_id", messageID}, {"type", typ}, {"event", event},
		{"user_id", userID}, {"anonymous_id", anonID}, {"customer_key", customer}, {"person_id", person},
		{"ts_ms", ts}, {"ts_sub_us", tsSub}, {"date", date}, {"original_ts_ms", origTS}, {"sent_at_ms", sentAt},
		{"received_at_ms", receivedAt}, {"stored_at_ms", storedAt}, {"seq", seq},
		{"prop_keys", propKeys}, {"prop_values", propValues}, {"null_keys", nullKeys},
		{"item_keys", itemKeys}, {"item_values", itemValues},
		{"item_number_keys", numberKeys}, {"item_number_mins", numberMins}, {"item_number_maxes", numberMaxes},
		{"page_path", path}, {"referrer", referrer},
		{"campaign_source", campSource}, {"campaign_medium", campMedium}, {"campaign_name", campName},
		{"channel", channelColumn(channels, n)}, {"raw", raw},
	}
}

func sessionColumns(sessions []sessionize.Session) []column {
	n := len(sessions)
	var (
		id, customer, person, entry, exit, reason = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		mapVersion                                = make([]string, n)
		channel, campaign                         = make([]string, n), make([]string, n)
		start, end, version                       = make([]uint64, n), make([]uint64, n), make([]uint64, n)
		startSeq                                  = make([]uint64, n)
		startSub, endSub                          = make([]uint16, n), make([]uint16, n)
		date                                      = make([]time.Time, n)
		events                                    = make([]uint32, n)
		stages                                    = make([][]string, n)
		deleted                                   = make([]uint8, n)
	)
	for i := range sessions {
		s := &sessions[i]
		id[i], customer[i], entry[i], exit[i], reason[i], mapVersion[i] = s.ID, s.CustomerKey, s.EntryEvent, s.ExitEvent, s.EndReason, s.MapVersion
		if person[i] = s.PersonID; person[i] == "" {
			person[i] = s.CustomerKey
		}
		channel[i], campaign[i] = s.EntryChannel, s.EntryCampaign
		start[i], startSub[i] = splitMicros(s.Start)
		startSeq[i] = uint64(max(s.StartSeq, 0))
		end[i], endSub[i] = splitMicros(s.End)
		version[i] = s.Version
		date[i], events[i], stages[i] = s.Start.UTC(), uint32(s.Events), orEmpty(s.Stages)
		if s.Deleted {
			deleted[i] = 1
		}
	}
	return []column{
		{"session_id", id}, {"customer_key", customer}, {"person_id", person}, {"start_ms", start}, {"end_ms", end},
		{"start_sub_us", startSub}, {"end_sub_us", endSub}, {"start_seq", startSeq}, {"date", date}, {"events", events}, {"entry_event", entry}, {"exit_event", exit},
		{"entry_channel", channel}, {"entry_campaign", campaign},
		{"stages", stages}, {"end_reason", reason}, {"map_version", mapVersion},
		{"version", version}, {"deleted", deleted},
	}
}

// itemNumbers returns, for each key of an event's list items (ingest.Event.ItemKeys) under which
// some items are decimal numbers (sessionize.ParseDecimal), the key and the smallest and largest
// of those numbers as their sessionize.Decimal.OrderKey, whose byte order is theirs: what a bound
// on the items compares (itemSQL). Keys are in the order of their first number.
func itemNumbers(keys, values []string) (numberKeys, mins, maxes []string) {
	numberKeys, mins, maxes = []string{}, []string{}, []string{}
	for i, v := range values {
		d, ok := sessionize.ParseDecimal(v)
		if !ok {
			continue
		}
		key := d.OrderKey()
		j := slices.Index(numberKeys, keys[i])
		if j < 0 {
			numberKeys, mins, maxes = append(numberKeys, keys[i]), append(mins, key), append(maxes, key)
			continue
		}
		mins[j], maxes[j] = min(mins[j], key), max(maxes[j], key)
	}
	return numberKeys, mins, maxes
}

// channelColumn is the events' channels, or empty strings when the batch has none.
func channelColumn(channels []string, n int) []string {
	if len(channels) == n {
		return channels
	}
	return make([]string, n)
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
