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

// ParseTimestamp reads a Segment message's time (timestamp, originalTimestamp, sentAt,
// receivedAt) and returns it in UTC. It accepts every RFC 3339 date-time (RFC 3339 §5.6 allows
// 't' and 'z' in lower case) and the ISO 8601 forms SDKs send besides: a space for the 'T', an
// offset written +0000 or +02, and no zone at all, read as UTC as PostHog and Segment's own
// libraries do. Anything else is an error; a time is never guessed.
func ParseTimestamp(s string) (time.Time, error) {
	if len(s) < len("2006-01-02T15:04:05") {
		return time.Time{}, errors.New("not an ISO 8601 date-time (YYYY-MM-DDThh:mm:ss with an optional fraction and zone)")
	}
	b := []byte(s)
	if c := b[10]; c == 't' || c == ' ' {
		b[10] = 'T'
	}
	if last := len(b) - 1; b[last] == 'z' {
		b[last] = 'Z'
	}
	norm := string(b)
	// Go reads an offset's minutes up to 99 (+0260 as +03:00); ISO 8601 stops at 59.
	if i := strings.LastIndexAny(norm[len("2006-01-02T15:04:05"):], "+-"); i >= 0 {
		if zone := strings.ReplaceAll(norm[len("2006-01-02T15:04:05")+i+1:], ":", ""); len(zone) == 4 && zone[2:] >= "60" {
			return time.Time{}, fmt.Errorf("offset %s: minutes above 59", zone)
		}
	}
	var first error
	for _, layout := range timestampLayouts {
		t, err := time.Parse(layout, norm)
		if err == nil {
			return t.UTC(), nil
		}
		if first == nil {
			first = err
		}
	}
	return time.Time{}, first
}

// timestamp reads a time member (a string, or null) into *dst; any other JSON type is an
// invalid_timestamp naming the field, like a string ParseTimestamp cannot read: an epoch number,
// for one, says neither its unit nor that it is UTC.
func (s *jsonScanner) timestamp(field string, dst *string) error {
	if c := s.peek(); c == '"' || c == 'n' {
		return s.str(field, dst)
	}
	raw, err := s.value()
	if err == nil && s.typeErr == nil {
		s.typeErr = &InvalidError{Reason: ReasonInvalidTimestamp, Field: field, Err: fmt.Errorf("want an ISO 8601 date-time string, got %s", abbreviate(raw))}
	}
	return err
}
