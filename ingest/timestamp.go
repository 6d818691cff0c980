package ingest

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// timestampLayouts are the ISO 8601 forms ParseTimestamp reads, after it has made the date-time
// separator 'T' and a zone 'z' upper case; Go's ".999999999" makes the fraction optional.
var timestampLayouts = [...]string{
	"2006-01-02T15:04:05.999999999Z07:00", // RFC 3339
	"2006-01-02T15:04:05.999999999Z0700",  // ISO 8601 basic offset: +0000
	"2006-01-02T15:04:05.999999999Z07",    // ISO 8601 hour offset: +02
	"2006-01-02T15:04:05.999999999",       // no zone: UTC
}

// dateTimeShape is how every time ParseTimestamp reads begins, once its separator is 'T': a '0'
// stands for any digit. Its fields are RFC 3339's, each of fixed width.
const dateTimeShape = "0000-00-00T00:00:00"

// leapSecond is where a time's seconds begin in dateTimeShape: a leap second is 60 there
// (ParseTimestamp).
const leapSecond = len("0000-00-00T00:00:")

// ParseTimestamp reads a Segment message's time (timestamp, originalTimestamp, sentAt,
// receivedAt) and returns it in UTC. It accepts every RFC 3339 date-time (RFC 3339 §5.6 allows
// 't' and 'z' in lower case) and the ISO 8601 forms SDKs send besides: a space for the 'T', an
// offset written +0000 or +02, and no zone at all, read as UTC as PostHog and Segment's own
// libraries do. Every field has RFC 3339's width (§5.6: date-fullyear 4 digits, the others 2):
// Go's time.Parse reads an hour of one digit, 2024-05-01T1:00:00Z, which is refused here. An
// offset is at most 23:59 either way (RFC 3339 §5.6: time-hour 00-23, time-minute 00-59).
// A leap second (second 60, RFC 3339 §5.7: 2016-12-31T23:59:60Z, 1990-12-31T15:59:60-08:00),
// which Go's time.Parse refuses and a time.Time cannot hold, is read as the last microsecond of
// its minute (hh:mm:59.999999 in the zone it was written in: the instant just before the next
// minute), whatever its fraction, so that it stays after that minute's other events and before
// the next minute's (leapSecond). It is accepted in any minute, as RFC 3339's grammar is (no table
// of leap seconds is kept), with the fraction and zone of any other time; second 61 and above
// are refused. Anything else, "" included, is an error; a time is never guessed. It is
// Waymark's one reader of a client's times: the collector, the consumer and the query API's
// from and to (store.ParseTime) all read times with it.
func ParseTimestamp(s string) (time.Time, error) {
	const dateTime = len(dateTimeShape)
	if len(s) < dateTime {
		return time.Time{}, &TimestampError{}
	}
	b := []byte(s)
	if c := b[10]; c == 't' || c == ' ' {
		b[10] = 'T'
	}
	for i := range dateTime {
		if want := dateTimeShape[i]; want == '0' && (b[i] < '0' || b[i] > '9') || want != '0' && b[i] != want {
			return time.Time{}, &TimestampError{}
		}
	}
	if last := len(b) - 1; b[last] == 'z' {
		b[last] = 'Z'
	}
	leap := string(b[leapSecond:dateTime]) == "60"
	if leap {
		b[leapSecond] = '5' // parsed as second 59, then moved to the minute's last microsecond
		b[leapSecond+1] = '9'
	}
	norm := string(b)
	if err := checkOffset(norm[dateTime:]); err != nil {
		return time.Time{}, err
	}
	for _, layout := range timestampLayouts {
		t, err := time.Parse(layout, norm)
		if err == nil {
			if leap {
				// Offsets are whole minutes, so a second's bounds are the same in every zone.
				t = t.Truncate(time.Second).Add(time.Second - time.Microsecond)
			}
			return t.UTC(), nil
		}
		// A field out of its range (a day 30 in February, an hour 25) is so in every layout:
		// time.Parse's Message says which (": day out of range").
		var pe *time.ParseError
		if errors.As(err, &pe) && strings.HasSuffix(pe.Message, " out of range") {
			return time.Time{}, &TimestampError{Detail: strings.TrimPrefix(pe.Message, ": ")}
		}
	}
	// The date and the time are sound (dateTimeShape), so what follows the seconds is at fault.
	return time.Time{}, &TimestampError{Detail: fmt.Sprintf("%q after the seconds is neither a fraction (.123) nor a zone (Z, +hh:mm, +hhmm, +hh)", s[dateTime:])}
}

// TimestampForm says what a time ParseTimestamp reads looks like, in errors.
const TimestampForm = "an ISO 8601 date-time (YYYY-MM-DDThh:mm:ss with an optional fraction and zone)"

// TimestampError is ParseTimestamp's error: one wording for every time it cannot read, saying
// what is wrong when it can say more than the shape (a day out of range, an offset beyond 23:59,
// what follows the seconds). Go's layouts ("2006-01-02T15:04:05Z07:00") are never shown: they
// mean nothing to a shop's developer (tester 33's F5).
type TimestampError struct {
	Detail string // what is wrong; "" for a text not shaped as a date-time at all
}

func (e *TimestampError) Error() string {
	if e.Detail == "" {
		return "not " + TimestampForm
	}
	return "not " + TimestampForm + ": " + e.Detail
}

// checkOffset refuses a numeric offset beyond 23:59 at the end of rest (what follows a time's
// seconds): Go's time.Parse reads hours up to 24 and minutes up to 99 (+24:00 as a day, +0260 as
// +03:00). Other faults of rest are time.Parse's to report.
func checkOffset(rest string) error {
	i := strings.LastIndexAny(rest, "+-")
	if i < 0 {
		return nil
	}
	zone := strings.ReplaceAll(rest[i+1:], ":", "")
	if len(zone) != 2 && len(zone) != 4 || strings.Trim(zone, "0123456789") != "" {
		return nil
	}
	if zone[:2] > "23" || len(zone) == 4 && zone[2:] > "59" {
		return &TimestampError{Detail: fmt.Sprintf("offset %s is beyond ±23:59 (RFC 3339 §5.6)", rest[i:])}
	}
	return nil
}

// timeMember is a time member of a message as sent: its text, and whether a string was sent. JSON
// null, like an absent member, is not sent (the time is then taken from another member); "" is
// sent, and refused as an invalid_timestamp, never replaced by another time.
type timeMember struct {
	text string
	sent bool
}

// timestamp reads a time member (a string, or null) into *dst; any other JSON type is an
// invalid_timestamp naming the field, like a string ParseTimestamp cannot read: an epoch number,
// for one, says neither its unit nor that it is UTC. Of repeated members the last string wins.
func (s *jsonScanner) timestamp(field string, dst *timeMember) error {
	switch s.peek() {
	case '"':
		raw, escaped, err := s.rawString()
		*dst = timeMember{text: unquote(raw, escaped), sent: true}
		return err
	case 'n':
		*dst = timeMember{} // null is as absent, also after an earlier copy of the member
		return s.literal("null")
	}
	raw, err := s.value()
	if err == nil {
		s.mistyped(&InvalidError{Reason: ReasonInvalidTimestamp, Field: field, Err: fmt.Errorf("want an ISO 8601 date-time string, got %s", abbreviate(raw))})
	}
	return err
}
