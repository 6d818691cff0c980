package ingest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParseTimestamp(t *testing.T) {
	ten := time.Date(2024, 5, 15, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time // zero: an error
	}{
		{"2024-05-15T10:00:00Z", ten},
		{"2024-05-15t10:00:00z", ten}, // RFC 3339 §5.6: t and z may be lower case
		{"2024-05-15T12:00:00+02:00", ten},
		{"2024-05-15T07:30:00-02:30", ten},
		{"2024-05-15T10:00:00.123456789Z", ten.Add(123456789)},
		{"2024-05-15T10:00:00.5+00:00", ten.Add(500 * time.Millisecond)},
		{"2024-05-15T10:00:00+0000", ten},                      // ISO 8601 basic offset
		{"2024-05-15T12:00:00+02", ten},                        // ISO 8601 hour offset
		{"2024-05-15T10:00:00", ten},                           // no zone: UTC
		{"2024-05-15 10:00:00.123456", ten.Add(123456 * 1000)}, // space separator
		{"2024-05-15 12:00:00+02:00", ten},
		{"", time.Time{}},
		{"yesterday", time.Time{}},
		{"1715767200000", time.Time{}},
		{"2024-05-15", time.Time{}},
		{"2024-05-15T10:00", time.Time{}},
		{"2024-05-15X10:00:00Z", time.Time{}},
		{"2024-05-15T10:00:00ZZ", time.Time{}},
		{"2024-05-15T25:00:00Z", time.Time{}},
		{"2024-02-30T10:00:00Z", time.Time{}},
		{"2024-05-15T10:00:00+25:00", time.Time{}},
		{"2024-05-15T10:00:00 Z", time.Time{}},
		{"2024-05-15T12:00:00+0260", time.Time{}},
		{"2024-05-15T12:00:00+02:60", time.Time{}},
		{"2024-05-15T12:59:00+02:59", ten},
		// RFC 3339 §5.6: an offset's hour is 00-23; Go's time.Parse reads 24 too.
		{"2024-05-16T09:59:00+23:59", ten},
		{"2024-05-14T10:01:00-23:59", ten},
		{"2024-05-16T09:59:00+2359", ten},
		{"2024-05-16T09:00:00+23", ten},
		{"2024-05-16T10:00:00+24:00", time.Time{}},
		{"2024-05-14T10:00:00-24:00", time.Time{}},
		{"2024-05-14T09:00:00-25:00", time.Time{}},
		{"2024-05-16T10:00:00+2400", time.Time{}},
		{"2024-05-16T10:00:00+24", time.Time{}},
		{"2024-05-16t10:00:00.5+24:00", time.Time{}},
		{"2024-05-16 10:00:00+24:30", time.Time{}},
		{"2024-05-16T10:00:00+99:00", time.Time{}},
		// Every field has RFC 3339's width; Go's time.Parse reads a one-digit hour.
		{"2024-05-15T1:00:00Z", time.Time{}},
		{"2024-05-15t1:00:00z", time.Time{}},
		{"2024-05-15 1:00:00", time.Time{}},
		{"2024-05-15T1:00:00+00:00", time.Time{}},
		{"2024-05-15T10:0:00Z", time.Time{}},
		{"2024-05-15T10:00:0Z", time.Time{}},
		{"2024-05-15T10:00:0.5Z", time.Time{}},
		{"2024-5-15T10:00:00Z", time.Time{}},
		{"2024-05-5T10:00:00Z", time.Time{}},
		{"24-05-15T10:00:00Z", time.Time{}},
		{"+2024-05-15T10:00:00Z", time.Time{}},
		{"2024-05-15T10:00:00+2:00", time.Time{}},
		{"2024-05-15T10:00:00+02:0", time.Time{}},
		{"2024-05-15T10:00:00+2", time.Time{}},
		{"２０２４-05-15T10:00:00Z", time.Time{}}, // digits other than ASCII
		// A leap second (RFC 3339 §5.7) is its minute's last microsecond, in any minute, whatever
		// its fraction; second 61 and above are refused (tester 51's F1: second 60 was refused).
		{"2016-12-31T23:59:60Z", time.Date(2016, 12, 31, 23, 59, 59, 999999000, time.UTC)},
		{"2016-12-31T23:59:60.250Z", time.Date(2016, 12, 31, 23, 59, 59, 999999000, time.UTC)},
		{"2016-12-31T23:59:60.999999999Z", time.Date(2016, 12, 31, 23, 59, 59, 999999000, time.UTC)},
		{"2016-12-31t23:59:60z", time.Date(2016, 12, 31, 23, 59, 59, 999999000, time.UTC)},
		{"1990-12-31T15:59:60-08:00", time.Date(1990, 12, 31, 23, 59, 59, 999999000, time.UTC)}, // RFC 3339's own
		{"2017-01-01T05:29:60+05:30", time.Date(2016, 12, 31, 23, 59, 59, 999999000, time.UTC)},
		{"2024-05-15T10:00:60Z", time.Date(2024, 5, 15, 10, 0, 59, 999999000, time.UTC)}, // no table of leap seconds
		{"2024-05-15 10:00:60", time.Date(2024, 5, 15, 10, 0, 59, 999999000, time.UTC)},
		{"2024-05-15T12:00:60+0200", time.Date(2024, 5, 15, 10, 0, 59, 999999000, time.UTC)},
		{"2016-12-31T23:59:61Z", time.Time{}},
		{"2016-12-31T23:59:99Z", time.Time{}},
		{"2016-12-31T23:59:60.Z", time.Time{}},
		{"2016-12-31T23:59:60+24:00", time.Time{}},
		{"2016-12-31T23:59:6Z", time.Time{}},
		{"2016-02-30T23:59:60Z", time.Time{}},
		{"2016-12-31T24:59:60Z", time.Time{}},
	}
	for _, tt := range tests {
		got, err := ParseTimestamp(tt.in)
		switch {
		case tt.want.IsZero() && err == nil:
			t.Errorf("ParseTimestamp(%q) = %s, want an error", tt.in, got)
		case !tt.want.IsZero() && err != nil:
			t.Errorf("ParseTimestamp(%q): %v, want %s", tt.in, err, tt.want)
		case !tt.want.IsZero() && (!got.Equal(tt.want) || got.Location() != time.UTC):
			t.Errorf("ParseTimestamp(%q) = %s, want %s in UTC", tt.in, got, tt.want)
		}
	}
}

func TestDecodeRejectsTimesLoudly(t *testing.T) {
	tests := []struct{ raw, field string }{
		{`{"type":"track","userId":"u","event":"V","timestamp":1715767200000}`, "timestamp"},
		{`{"type":"track","userId":"u","event":"V","sentAt":true}`, "sentAt"},
		{`{"type":"track","userId":"u","event":"V","originalTimestamp":"15/05/2024 10:00"}`, "originalTimestamp"},
		{`{"type":"track","userId":"u","event":"V","receivedAt":{}}`, "receivedAt"},
		// "" is sent, not absent: never replaced by another time.
		{`{"type":"track","userId":"u","event":"V","timestamp":""}`, "timestamp"},
		{`{"type":"track","userId":"u","event":"V","originalTimestamp":""}`, "originalTimestamp"},
		{`{"type":"track","userId":"u","event":"V","timestamp":"2024-05-15T10:00:00Z","sentAt":""}`, "sentAt"},
		{`{"type":"track","userId":"u","event":"V","receivedAt":""}`, "receivedAt"},
		{`{"type":"track","userId":"u","event":"V","timestamp":"2024-05-15T10:00:00Z","timestamp":""}`, "timestamp"},
		{`{"type":"track","userId":"u","event":"V","timestamp":"","originalTimestamp":"2024-05-15T10:00:00Z"}`, "timestamp"},
		// Offsets beyond 23:59.
		{`{"type":"track","userId":"u","event":"V","timestamp":"2024-05-16T10:00:00+24:00"}`, "timestamp"},
		{`{"type":"track","userId":"u","event":"V","originalTimestamp":"2024-05-14T10:00:00-24:00"}`, "originalTimestamp"},
		{`{"type":"track","userId":"u","event":"V","sentAt":"2024-05-16T10:00:00+2400"}`, "sentAt"},
		{`{"type":"track","userId":"u","event":"V","receivedAt":"2024-05-16T10:00:00-25:00"}`, "receivedAt"},
	}
	for _, tt := range tests {
		_, err := Decode([]byte(tt.raw), "s", time.Now())
		var inv *InvalidError
		if !errors.As(err, &inv) || inv.Reason != ReasonInvalidTimestamp || inv.Field != tt.field {
			t.Errorf("Decode(%s): %v, want %s naming %s", tt.raw, err, ReasonInvalidTimestamp, tt.field)
		}
	}
}

// TestDecodeAtRejectsTimesLoudly: a message produced straight to Kafka (DecodeClient), or
// restored from the store (DecodeAt), is held to the same rules for its own times; only its
// receivedAt, which Waymark sets, is not read, whatever its type.
func TestDecodeAtRejectsTimesLoudly(t *testing.T) {
	received := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		raw, field string // field "": decoded, received at received
	}{
		{`{"type":"track","userId":"u","event":"V","timestamp":""}`, "timestamp"},
		{`{"type":"track","userId":"u","event":"V","originalTimestamp":""}`, "originalTimestamp"},
		{`{"type":"track","userId":"u","event":"V","originalTimestamp":"2026-05-01T11:00:00Z","sentAt":""}`, "sentAt"},
		{`{"type":"track","userId":"u","event":"V","timestamp":"2026-05-01T11:00:00+24:00"}`, "timestamp"},
		{`{"type":"track","userId":"u","event":"V","sentAt":"2026-05-01T11:00:00-24:00"}`, "sentAt"},
		{`{"type":"track","userId":"u","event":"V","receivedAt":""}`, ""},
		{`{"type":"track","userId":"u","event":"V","receivedAt":"2026-05-01T11:00:00+24:00"}`, ""},
		{`{"type":"track","userId":"u","event":"V","timestamp":null}`, ""},
		{`{"type":"track","userId":"u","event":"V","receivedAt":12345}`, ""},
		{`{"type":"track","userId":"u","event":"V","receivedAt":["2026-05-01T11:00:00Z"]}`, ""},
		{`{"type":"track","userId":"u","event":"V","receivedAt":"garbage","receivedAt":true}`, ""},
	}
	decoders := map[string]func([]byte, string, time.Time) (Event, error){"DecodeAt": DecodeAt, "DecodeClient": DecodeClient}
	for name, decode := range decoders {
		for _, tt := range tests {
			e, err := decode([]byte(tt.raw), "kafka", received)
			var inv *InvalidError
			switch {
			case tt.field == "" && (err != nil || !e.Timestamp.Equal(received) || !e.ReceivedAt.Equal(received)):
				t.Errorf("%s(%s): %v at %s received %s, want an event at %s", name, tt.raw, err, e.Timestamp, e.ReceivedAt, received)
			case tt.field != "" && (!errors.As(err, &inv) || inv.Reason != ReasonInvalidTimestamp || inv.Field != tt.field):
				t.Errorf("%s(%s): %v, want %s naming %s", name, tt.raw, err, ReasonInvalidTimestamp, tt.field)
			}
		}
	}
}

func TestSkewCorrected(t *testing.T) {
	received := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name          string
		t, sent, want time.Time
	}{
		// Up to MinClockSkew no move (a request's time in transit), from FullClockSkew all of it
		// (Segment's and PostHog's rule), in between (skew − 2 s) × 1.2.
		{"clock right", received.Add(-time.Hour), received, received.Add(-time.Hour)},
		{"skew of MinClockSkew", received.Add(-time.Hour), received.Add(-MinClockSkew), received.Add(-time.Hour)},
		{"clock 5 s behind", received.Add(-time.Hour), received.Add(-5 * time.Second), received.Add(-time.Hour + 3600*time.Millisecond)},
		{"clock 5 s ahead", received.Add(-time.Hour), received.Add(5 * time.Second), received.Add(-time.Hour - 3600*time.Millisecond)},
		{"skew of FullClockSkew", received.Add(-time.Hour), received.Add(-FullClockSkew), received.Add(-time.Hour + FullClockSkew)},
		{"clock 35 s ahead", received.Add(-time.Hour), received.Add(35 * time.Second), received.Add(-time.Hour - 35*time.Second)},
		{"clock 2 h behind", received.Add(-3 * time.Hour), received.Add(-2 * time.Hour), received.Add(-time.Hour)},
		{"clock 2 h ahead", received.Add(time.Hour), received.Add(2 * time.Hour), received.Add(-time.Hour)},
		// sentAt decades before the event's own time: the correction would land in 2051.
		{"times that disagree", time.Date(2024, 5, 15, 10, 0, 0, 0, time.UTC), time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 5, 15, 10, 0, 0, 0, time.UTC)},
		{"sentAt year 1", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Time{}, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		// sentAt decades after the event's own time: the correction would land in 1927, before
		// any time Waymark accepts; the other way round it would land after received. Either
		// way the client's own time stands.
		{"sentAt decades ahead", time.Date(2000, 1, 1, 0, 0, 5, 0, time.UTC), time.Date(2099, 12, 31, 0, 0, 0, 0, time.UTC), time.Date(2000, 1, 1, 0, 0, 5, 0, time.UTC)},
		// ... but a time more than 23 hours after it was received is set to the receive time
		// (PostHog's rule), whether it was corrected or not, sent with a sentAt or without.
		{"sentAt decades behind", time.Date(2099, 12, 31, 0, 0, 0, 0, time.UTC), time.Date(2000, 1, 1, 0, 0, 5, 0, time.UTC), received},
		{"correction to the earliest time", time.Date(2000, 1, 1, 2, 0, 0, 0, time.UTC), received.Add(2 * time.Hour), time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"correction just before it", time.Date(2000, 1, 1, 1, 59, 59, 0, time.UTC), received.Add(2 * time.Hour), time.Date(2000, 1, 1, 1, 59, 59, 0, time.UTC)},
		{"30 days ahead, sent now", received.AddDate(0, 0, 30), received, received},
		{"30 days ahead, no sentAt", received.AddDate(0, 0, 30), time.Time{}, received},
		{"2099, no sentAt", time.Date(2099, 12, 31, 23, 59, 59, 0, time.UTC), time.Time{}, received},
		{"23 hours ahead, no sentAt", received.Add(23 * time.Hour), time.Time{}, received.Add(23 * time.Hour)},
		{"a moment past 23 hours", received.Add(23*time.Hour + time.Millisecond), time.Time{}, received},
		{"a clock 30 days ahead, consistently", received.AddDate(0, 0, 30).Add(-time.Minute), received.AddDate(0, 0, 30), received.Add(-time.Minute)},
		{"2100 is refused, not moved", time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), time.Time{}, time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		got, future := SkewCorrected(tt.t, tt.sent, received)
		if !got.Equal(tt.want) {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
		if wantFuture := tt.want.Equal(received) && !tt.t.Equal(received); future != wantFuture {
			t.Errorf("%s: future %v, want %v", tt.name, future, wantFuture)
		}
	}
	// A receive time outside the range is no receipt (a producer's unset clock as a Kafka
	// record's CreateTime): the client's own time stands, not moved nor corrected by it (tester
	// 18's F6); nor does a correction into 2100 or later count.
	late := time.Date(2099, 12, 31, 23, 59, 0, 0, time.UTC)
	for _, tt := range []struct {
		name              string
		t, sent, at, want time.Time
	}{
		{"received in 1970", received, time.Time{}, time.Unix(1, 0).UTC(), received},
		{"received in 1970, with a sentAt", received, received.Add(30 * time.Second), time.Unix(1, 0).UTC(), received},
		{"received in 1999", received, received.Add(30 * time.Second), time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC), received},
		{"received in 2200, with a sentAt", received, received.Add(30 * time.Second), time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC), received},
		// 110 s of skew would put 23:58:50 at 2100-01-01T00:00:40, within a minute of its receipt.
		{"correction past the latest time", late.Add(-10 * time.Second), late.Add(-time.Minute), late.Add(50 * time.Second), late.Add(-10 * time.Second)},
	} {
		got, future := SkewCorrected(tt.t, tt.sent, tt.at)
		if !got.Equal(tt.want) || future {
			t.Errorf("%s: %s (future %v), want %s", tt.name, got, future, tt.want)
		}
	}
}

// TestSkewCorrectionKeepsADevicesOrder: a device whose clock is off by about a minute keeps its
// events in the order it sent them from one request to the next (tester 30's F2: a clock 60.2 s
// fast; a view sent with 59.7 s of skew was not corrected, a cart add sent 0.5 s later with
// 60.15 s was, and landed a minute before the view, when only skews past 60 s were corrected).
func TestSkewCorrectionKeepsADevicesOrder(t *testing.T) {
	received := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, ahead := range []time.Duration{59700 * time.Millisecond, 60 * time.Second, 60200 * time.Millisecond, 10 * time.Second, time.Hour} {
		// A view stamped ahead of its receipt, and a cart add sent 0.5 s later on the device,
		// received a few ms after the view (its request quicker in transit by 0.4 s).
		view, _ := SkewCorrected(received.Add(ahead), received.Add(ahead), received)
		add, _ := SkewCorrected(received.Add(ahead+500*time.Millisecond), received.Add(ahead+500*time.Millisecond), received.Add(100*time.Millisecond))
		if !add.After(view) {
			t.Errorf("clock %s ahead: view stored at %s, the cart add sent 0.5 s after it at %s: want the device's order", ahead, view, add)
		}
	}
}

// TestSkewShiftIsContinuous: the shift grows with the skew, never faster than 1.2 times it, and
// never jumps; it is odd in the skew; and an import's time in transit moves nothing (tester 32's
// F1: analytics-node's batch sentAt moved an order at 23:59:59.999 by 275 ms into the next day).
func TestSkewShiftIsContinuous(t *testing.T) {
	var last time.Duration
	for skew := time.Duration(0); skew <= 2*FullClockSkew; skew += 10 * time.Millisecond {
		shift := skewShift(skew)
		if shift < last || shift-last > 12*time.Millisecond || skewShift(-skew) != -shift {
			t.Fatalf("skew %s: shift %s after %s for 10 ms less (and %s for −skew): want a shift growing at most 1.2 times as fast as the skew, odd in it", skew, shift, last, skewShift(-skew))
		}
		last = shift
	}
	received := time.Date(2024, 4, 1, 0, 0, 0, 274e6, time.UTC)
	order := time.Date(2024, 3, 31, 23, 59, 59, 999e6, time.UTC)
	if got, _ := SkewCorrected(order, received.Add(-275*time.Millisecond), received); !got.Equal(order) {
		t.Errorf("an import's order at %s, sent 275 ms before its receipt: stored at %s", order, got)
	}
}

// TestEventTimeRange: an event's time lies from 2000-01-01 (included) to 2100-01-01 (excluded),
// the times a query can name (store.ParseTime), whatever member it comes from and whatever
// offset it is written with; a time outside is refused naming the member the client sent it in
// (or receivedAt, when it sent none). originalTimestamp, sentAt and timestamp that disagree with
// each other keep the client's own time, whichever way they disagree.
func TestEventTimeRange(t *testing.T) {
	received := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name, times string
		want        string // the event time (RFC 3339), or the field named when refused
	}{
		{"the last millisecond", `"timestamp":"2099-12-31T23:59:59.999Z","receivedAt":"2099-12-31T23:59:59.999Z"`, "2099-12-31T23:59:59.999Z"},
		{"the last millisecond, received now", `"timestamp":"2099-12-31T23:59:59.999Z"`, "2026-05-01T12:00:00Z"},
		{"the first", `"timestamp":"2000-01-01T00:00:00Z"`, "2000-01-01T00:00:00Z"},
		{"2100", `"timestamp":"2100-12-31T23:59:59Z"`, "timestamp"},
		{"2100 by its offset", `"timestamp":"2099-12-31T23:59:59-01:00"`, "timestamp"},
		{"2100 at midnight", `"timestamp":"2100-01-01T00:00:00Z"`, "timestamp"},
		{"1999 by its offset", `"timestamp":"2000-01-01T00:59:59+01:00"`, "timestamp"},
		{"originalTimestamp in 2100", `"originalTimestamp":"2100-01-01T00:00:00Z"`, "originalTimestamp"},
		{"originalTimestamp in 1999", `"originalTimestamp":"1999-12-31T23:59:59Z"`, "originalTimestamp"},
		{"receivedAt in 2100", `"receivedAt":"2100-06-01T00:00:00Z"`, "receivedAt"},
		// A receipt after the message reached Waymark is none (tester's F7): the time it gave stands.
		{"receivedAt after it arrived", `"timestamp":"2026-04-30T08:00:00Z","receivedAt":"2099-12-31T23:59:59Z"`, "2026-04-30T08:00:00Z"},
		{"receivedAt after it arrived, its time with it", `"timestamp":"2099-12-31T23:59:59Z","receivedAt":"2099-12-31T23:59:59Z"`, "2026-05-01T12:00:00Z"},
		{"receivedAt after it arrived, no other time", `"receivedAt":"2099-12-31T23:59:59Z"`, "receivedAt"},
		{"receivedAt 23 hours after it arrived", `"receivedAt":"2026-05-02T11:00:00Z"`, "2026-05-02T11:00:00Z"},
		// Disagreements, as the tester sent them: the client's own time, both ways.
		{"sentAt decades ahead", `"originalTimestamp":"2000-01-01T00:00:05Z","sentAt":"2099-12-31T00:00:00Z"`, "2000-01-01T00:00:05Z"},
		{"sentAt decades behind", `"originalTimestamp":"2099-12-31T00:00:00Z","sentAt":"2000-01-01T00:00:05Z"`, "2026-05-01T12:00:00Z"}, // and in the future
		{"sentAt decades ahead of a time outside", `"originalTimestamp":"1999-12-31T00:00:00Z","sentAt":"2099-12-31T00:00:00Z"`, "originalTimestamp"},
		{"sentAt decades behind a time outside", `"originalTimestamp":"2100-06-01T00:00:00Z","sentAt":"2000-01-01T00:00:05Z"`, "originalTimestamp"},
		{"sentAt at year 9999", `"originalTimestamp":"2026-01-01T00:00:00Z","sentAt":"9999-12-31T23:59:59Z"`, "2026-01-01T00:00:00Z"},
		// A clock that is off, consistently: corrected into the range.
		{"a clock in 2100", `"originalTimestamp":"2100-06-01T09:00:00Z","sentAt":"2100-06-01T11:00:00Z","receivedAt":"2026-05-01T12:00:00Z"`, "2026-05-01T10:00:00Z"},
		// Without its receipt, a receiver's message's sentAt is history: no skew to correct
		// (an export's line replayed weeks later keeps its time: tester 31's F8).
		{"no receivedAt", `"originalTimestamp":"2026-04-20T09:00:00Z","sentAt":"2026-04-20T09:00:01Z"`, "2026-04-20T09:00:00Z"},
		{"timestamp wins", `"timestamp":"2100-06-01T09:00:00Z","originalTimestamp":"2026-05-01T09:00:00Z"`, "timestamp"},
	}
	for _, tt := range tests {
		raw := `{"type":"track","userId":"u","event":"V",` + tt.times + `}`
		at := received
		if tt.name == "the last millisecond" { // received then
			at = time.Date(2099, 12, 31, 23, 59, 59, 999e6, time.UTC)
		}
		e, err := Decode([]byte(raw), "s", at)
		var inv *InvalidError
		switch {
		case strings.Contains(tt.want, ":"):
			if want, _ := time.Parse(time.RFC3339Nano, tt.want); err != nil || !e.Timestamp.Equal(want) {
				t.Errorf("%s: Decode(%s) = %s, %v; want an event at %s", tt.name, raw, e.Timestamp, err, tt.want)
			}
		case !errors.As(err, &inv) || inv.Reason != ReasonInvalidTimestamp || inv.Field != tt.want:
			t.Errorf("%s: Decode(%s) = %s, %v; want %s naming %s", tt.name, raw, e.Timestamp, err, ReasonInvalidTimestamp, tt.want)
		}
	}
}

// TestFutureTimestampIsTheReceiveTime: a message's time more than 23 hours after it was received
// is set to the receive time, its own kept as originalTimestamp, and the event says so
// (FutureTimestamp), whichever decoder reads it: a client's message straight from Kafka, one
// stamped by a receiver without the rule; a time up to 23 hours ahead stands.
func TestFutureTimestampIsTheReceiveTime(t *testing.T) {
	received := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name, times string
		decode      func([]byte, string, time.Time) (Event, error)
		future      bool
	}{
		{"client, 30 days ahead, sent now", `"timestamp":"2026-05-31T12:00:00Z","sentAt":"2026-05-01T12:00:00Z"`, DecodeClient, true},
		{"client, 2099", `"timestamp":"2099-12-31T23:59:59Z"`, DecodeClient, true},
		{"client, originalTimestamp in 2099", `"originalTimestamp":"2099-12-31T23:59:59Z"`, DecodeClient, true},
		{"client, 22 hours ahead", `"timestamp":"2026-05-02T10:00:00Z"`, DecodeClient, false},
		{"stamped, 2099", `"timestamp":"2099-12-31T23:59:59Z","receivedAt":"2026-05-01T12:00:00Z"`, Decode, true},
		{"stamped, received then", `"timestamp":"2099-12-31T23:59:59Z","receivedAt":"2099-12-31T23:59:59Z"`, Decode, true}, // no receipt: after it arrived
		{"stamped, 22 hours ahead of its receipt", `"timestamp":"2026-05-01T10:00:00Z","receivedAt":"2026-04-30T12:00:00Z"`, Decode, false},
	}
	for _, tt := range tests {
		raw := `{"type":"track","userId":"u","event":"V",` + tt.times + `}`
		e, err := tt.decode([]byte(raw), "s", received)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if e.FutureTimestamp != tt.future || tt.future && (!e.Timestamp.Equal(e.ReceivedAt) || e.OriginalTimestamp.Year() != 2099 && e.OriginalTimestamp.Month() != 5) {
			t.Errorf("%s: time %s, originalTimestamp %s, received %s, FutureTimestamp %v; want moved to the receive time: %v",
				tt.name, e.Timestamp, e.OriginalTimestamp, e.ReceivedAt, e.FutureTimestamp, tt.future)
		}
	}
}

// TestTimestampErrorsAreOneWording is tester 33's F5: a time refused after its seconds showed Go's
// layout (parsing time … as "2006-01-02T15:04:05.999999999Z07:00"), and the errors had three
// wordings. Every one is now "not an ISO 8601 date-time (…)", with what is wrong when known.
func TestTimestampErrorsAreOneWording(t *testing.T) {
	const form = "not an ISO 8601 date-time (YYYY-MM-DDThh:mm:ss with an optional fraction and zone)"
	tests := []struct{ in, detail string }{
		{"2024-03-01T10:00:00 +00:00", `: " +00:00" after the seconds is neither a fraction (.123) nor a zone (Z, +hh:mm, +hhmm, +hh)`},
		{"2024-03-01T10:00:00UTC", `: "UTC" after the seconds is neither`},
		{"2024-03-01T10:00:00 GMT", `: " GMT" after the seconds is neither`},
		{"2024-03-01T10:00:00ZZ", `: "ZZ" after the seconds is neither`},
		{"2024-03-01T10:00:00.Z", `: ".Z" after the seconds is neither`},
		{"2024-03-01T10:00:00+2", `: "+2" after the seconds is neither`},
		{"2024-02-30T10:00:00Z", ": day out of range"},
		{"2024-13-01T10:00:00Z", ": month out of range"},
		{"2024-03-01T25:00:00Z", ": hour out of range"},
		{"2024-03-01T23:59:61Z", ": second out of range"}, // 60 is a leap second (TestParseTimestamp)
		{"2024-03-01T10:00:00+24:00", ": offset +24:00 is beyond ±23:59 (RFC 3339 §5.6)"},
		{"2024-03-01T10:00Z", ""},
		{"2024-03-01", ""},
		{"", ""},
		{"yesterday", ""},
	}
	for _, tt := range tests {
		_, err := ParseTimestamp(tt.in)
		var te *TimestampError
		switch {
		case !errors.As(err, &te):
			t.Errorf("ParseTimestamp(%q): %v, want a *TimestampError", tt.in, err)
		case !strings.HasPrefix(err.Error(), form+tt.detail) || tt.detail == "" && err.Error() != form:
			t.Errorf("ParseTimestamp(%q): %v\nwant %s%s", tt.in, err, form, tt.detail)
		case strings.Contains(err.Error(), "2006") || strings.Contains(err.Error(), "parsing time"):
			t.Errorf("ParseTimestamp(%q): %v, Go's layout shown", tt.in, err)
		}
	}
	// As the collector and the consumer report it: naming the field, in the same words.
	_, err := Decode([]byte(`{"type":"track","userId":"u","event":"V","timestamp":"2024-03-01T10:00:00 +00:00"}`), "s", time.Now())
	var inv *InvalidError
	if !errors.As(err, &inv) || inv.Field != "timestamp" || !strings.Contains(err.Error(), form) || strings.Contains(err.Error(), "2006") {
		t.Errorf("Decode: %v, want %s naming timestamp, in the one wording", err, ReasonInvalidTimestamp)
	}
}

// TestCollectorTakesALeapSecond is tester 51's F1: a leap second (second 60, RFC 3339 §5.7) in any
// time member was refused as "second out of range", by the collector and the consumer alike. It
// is its minute's last microsecond, after the minute's other events and before the next minute's,
// on the collector (the batch's answer) and as the consumer reads the message the collector
// produced (Decode); second 61 is refused, naming the member.
func TestCollectorTakesALeapSecond(t *testing.T) {
	leap := time.Date(2016, 12, 31, 23, 59, 59, 999999000, time.UTC)
	tests := []struct {
		name   string
		times  string    // the event's time members
		member string    // the Event time compared: timestamp, originalTimestamp or sentAt
		want   time.Time // zero: refused as an invalid_timestamp naming member
	}{
		{"Z", `"timestamp":"2016-12-31T23:59:60Z"`, "timestamp", leap},
		{"a fraction", `"timestamp":"2016-12-31T23:59:60.250Z"`, "timestamp", leap},
		{"an offset", `"timestamp":"2016-12-31T15:59:60-08:00"`, "timestamp", leap},
		{"lower-case t and z", `"timestamp":"2016-12-31t23:59:60z"`, "timestamp", leap},
		{"any minute", `"timestamp":"2024-05-15T10:00:60Z"`, "timestamp", time.Date(2024, 5, 15, 10, 0, 59, 999999000, time.UTC)},
		{"originalTimestamp", `"originalTimestamp":"2016-12-31T23:59:60Z"`, "originalTimestamp", leap},
		{"sentAt", `"timestamp":"2016-12-31T23:59:59Z","sentAt":"2016-12-31T23:59:60.5Z"`, "sentAt", leap},
		{"the minute's last event before it", `"timestamp":"2016-12-31T23:59:59.999998Z"`, "timestamp", leap.Add(-time.Microsecond)},
		{"the next minute's first event after it", `"timestamp":"2017-01-01T00:00:00Z"`, "timestamp", leap.Add(time.Microsecond)},
		{"second 61", `"timestamp":"2016-12-31T23:59:61Z"`, "timestamp", time.Time{}},
		{"sentAt's second 61", `"timestamp":"2016-12-31T23:59:59Z","sentAt":"2016-12-31T23:59:61Z"`, "sentAt", time.Time{}},
	}
	e := startCollector(t, nil)
	var batch []string
	for i, tt := range tests {
		batch = append(batch, fmt.Sprintf(`{"type":"track","userId":"u","event":"V","messageId":"m%d",%s}`, i, tt.times))
	}
	refused, stored := postBatch(t, e, batch)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, isRefused := refused[i]
			ev, isStored := stored[fmt.Sprintf("m%d", i)]
			if tt.want.IsZero() {
				if !isRefused || r["reason"] != ReasonInvalidTimestamp || r["field"] != fmt.Sprintf("batch[%d].%s", i, tt.member) ||
					!strings.Contains(fmt.Sprint(r["error"]), "second out of range") || isStored {
					t.Errorf("refused %v, stored %v: want refused as %s naming %s", r, isStored, ReasonInvalidTimestamp, tt.member)
				}
				return
			}
			if isRefused || !isStored {
				t.Fatalf("refused %v, stored %v: want it stored", r, isStored)
			}
			got := map[string]time.Time{"timestamp": ev.Timestamp, "originalTimestamp": ev.OriginalTimestamp, "sentAt": ev.SentAt}[tt.member]
			if !got.Equal(tt.want) {
				t.Errorf("%s stored as %s, want %s", tt.member, got.Format(time.RFC3339Nano), tt.want.Format(time.RFC3339Nano))
			}
		})
	}
}
