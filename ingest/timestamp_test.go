package ingest

import (
	"errors"
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

// TestDecodeAtRejectsTimesLoudly: a message produced straight to Kafka is held to the same
// rules for its own times; only its receivedAt, which Waymark sets, is not read.
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
	}
	for _, tt := range tests {
		e, err := DecodeAt([]byte(tt.raw), "kafka", received)
		var inv *InvalidError
		switch {
		case tt.field == "" && (err != nil || !e.Timestamp.Equal(received) || !e.ReceivedAt.Equal(received)):
			t.Errorf("DecodeAt(%s): %v at %s received %s, want an event at %s", tt.raw, err, e.Timestamp, e.ReceivedAt, received)
		case tt.field != "" && (!errors.As(err, &inv) || inv.Reason != ReasonInvalidTimestamp || inv.Field != tt.field):
			t.Errorf("DecodeAt(%s): %v, want %s naming %s", tt.raw, err, ReasonInvalidTimestamp, tt.field)
		}
	}
}

func TestSkewCorrected(t *testing.T) {
	received := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name          string
		t, sent, want time.Time
	}{
		{"clock right", received.Add(-time.Hour), received.Add(-30 * time.Second), received.Add(-time.Hour)},
		{"clock 2 h behind", received.Add(-3 * time.Hour), received.Add(-2 * time.Hour), received.Add(-time.Hour)},
		{"clock 2 h ahead", received.Add(time.Hour), received.Add(2 * time.Hour), received.Add(-time.Hour)},
		// sentAt decades before the event's own time: the correction would land in 2051.
		{"times that disagree", time.Date(2024, 5, 15, 10, 0, 0, 0, time.UTC), time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 5, 15, 10, 0, 0, 0, time.UTC)},
		{"sentAt year 1", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Time{}, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		if got := SkewCorrected(tt.t, tt.sent, received); !got.Equal(tt.want) {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}
