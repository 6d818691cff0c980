package store

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // the IANA zones a query's timezone names, on any host (the UDF's too)

	"github.com/waymark-dev/waymark/ingest"
)

// The times a query may name, in ms since 1970: from 1970-01-01, where ClickHouse's Date and
// DateTime start (events are stored at ts_ms ≥ 0), to 2100-01-01, the end of the event times
// ingest accepts (ingest.LatestEventMs, excluded there as a query's to is), so that every event
// stored can be read. ClickHouse 18.16's Date ends in 2105 (it reads later dates as 0000-00-00,
// and a year of five digits not at all); the margin leaves room for a 366-day window and the day
// added to the date bounds of a scan.
const (
	earliestTimeMs = 0
	latestTimeMs   = ingest.LatestEventMs
)

// ParseTime reads a time given as a UTC date YYYY-MM-DD or as a date-time in any form an event's
// timestamp may take (ingest.ParseTimestamp: every RFC 3339 form, lower-case 't' and 'z' included,
// a leap second as its minute's last microsecond, and the ISO 8601 forms it reads besides), from 1970-01-01 to 2100-01-01 (what ClickHouse can
// hold with a year's window to spare). "" is the zero time (unbounded). Queries compare times to the
// microsecond, as events are stored (ingest.Event.Timestamp): digits beyond are cut, as an
// event's are.
func ParseTime(s string) (time.Time, error) { return ParseTimeIn(s, time.UTC) }

// ParseTimeIn is ParseTime with a date YYYY-MM-DD read as the start of that day in loc (a
// query's timezone); a date-time says its own offset.
func ParseTimeIn(s string, loc *time.Location) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := ingest.ParseTimestamp(s)
	if err != nil {
		var derr error
		if t, derr = time.Parse(time.DateOnly, s); derr == nil {
			t = StartOfDay(t.Year(), t.Month(), t.Day(), loc)
		} else {
			te := &TimeError{Text: s, Plus: plusRead(s)}
			var tse *ingest.TimestampError
			var pe *time.ParseError
			switch {
			case len(s) == len(time.DateOnly) && errors.As(derr, &pe) && strings.HasSuffix(pe.Message, " out of range"):
				te.Detail = strings.TrimPrefix(pe.Message, ": ") // a date, but 2017-02-30
			case errors.As(err, &tse) && te.Plus == "":
				te.Detail = tse.Detail // a date-time, but for what it says
			}
			return time.Time{}, te
		}
	}
	if t = t.UTC(); outOfRange(t) { // 0001-01-01 too, which is the zero time
		if len(s) == len(time.DateOnly) && loc != time.UTC {
			// 1970-01-01 in Tokyo starts in 1969 (tester 38's F5)
			return time.Time{}, fmt.Errorf("%q, whose day starts at %s in %s, %s", s, FormatTime(t), loc, outOfRangeText())
		}
		return time.Time{}, fmt.Errorf("%q %s", s, outOfRangeText())
	}
	// Cut here, so that a from and a to less than a microsecond apart are one time, which
	// CheckRange refuses, not an empty range answered with zeros (tester 19's T7).
	return t.Truncate(time.Microsecond), nil
}

// ParseTimezone reads a query's timezone: an IANA time zone name (Europe/Paris, Asia/Tokyo) or
// UTC, as Amplitude's and Mixpanel's project time zones are named. What names no zone of the
// IANA database is refused, though a host's zoneinfo folder may hold it: "Local" and
// "localtime" (the host's zone: an answer must not depend on where Waymark runs), the folders
// "posix/" and "right/" (leap seconds), "posixrules" and "Factory". The zone's rules are the
// host's zoneinfo's, else the copy built into Waymark (time/tzdata): keep both hosts' tzdata
// current, as a zone whose rules changed recently could differ (docs/queries.md).
func ParseTimezone(s string) (*time.Location, error) {
	if s == "" || s == "UTC" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(s)
	if err != nil || strings.HasPrefix(s, "posix/") || strings.HasPrefix(s, "right/") ||
		slices.Contains([]string{"Local", "localtime", "posixrules", "Factory"}, s) {
		hint := ""
		if strings.Contains(s, " ") {
			if _, err := time.LoadLocation(strings.ReplaceAll(s, " ", "+")); err == nil {
				// Etc/GMT+5 in a URL's query string, whose + reads as a space (tester 38's F6)
				hint = fmt.Sprintf(": in a URL, write %q's + as %%2B", strings.ReplaceAll(s, " ", "+"))
			}
		}
		return nil, fmt.Errorf("%q is no IANA time zone name (Europe/Paris, America/New_York, Asia/Tokyo) nor UTC%s", s, hint)
	}
	return loc, nil
}

// StartOfDay is the first instant of the day y-m-d in loc: its midnight, or, where a clock
// change skips midnight (Atlantic/Azores, America/Santiago each spring), the instant the clocks
// jump, not the hour before it in the day before, which time.Date gives (tester 38's F1).
func StartOfDay(y int, m time.Month, d int, loc *time.Location) time.Time {
	t := time.Date(y, m, d, 0, 0, 0, 0, loc)
	if t.Day() != d { // midnight was skipped: t is in the day before
		_, end := t.ZoneBounds()
		return end
	}
	return t
}

// TimeError is ParseTime's error for text that is neither a date-time nor a date, worded as
// ingest.TimestampError is, an event time's.
type TimeError struct {
	Text string // the text given
	// Detail is what is wrong, as ingest.TimestampError.Detail says it ("day out of range"), when
	// Text is shaped as a date-time or a date; "" when it is neither.
	Detail string
	// Plus is Text with its last space written +, when that is a time: most likely the offset's
	// +, which a URL's query string reads as a space (RFC 3986 leaves + as it is, but HTML forms
	// and Go's url.ParseQuery read it as one); "" when it is not. How to give the + depends on
	// where the time was written, which the store does not know: the query API's GET tells its
	// client to write %2B, the CLI that a + on the command line is written as it is.
	Plus string
}

func (e *TimeError) Error() string {
	msg := fmt.Sprintf("%q is neither %s nor a date (YYYY-MM-DD)", e.Text, ingest.TimestampForm)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Plus != "" {
		msg += "; was the space a + ?"
	}
	return msg
}

// plusRead is TimeError.Plus for s: s with its last space written +, when that is a time, else "".
func plusRead(s string) string {
	i := strings.LastIndexByte(s, ' ')
	if i < 0 {
		return ""
	}
	plus := s[:i] + "+" + s[i+1:]
	if _, err := ingest.ParseTimestamp(plus); err != nil {
		return ""
	}
	return plus
}

// outOfRangeText says which times a query can name, in errors.
func outOfRangeText() string {
	return fmt.Sprintf("is outside %s … %s, the times a query can name", time.UnixMilli(earliestTimeMs).UTC().Format(time.DateOnly),
		time.UnixMilli(latestTimeMs).UTC().Format(time.DateOnly))
}

// outOfRange reports whether t lies outside 1970-01-01 … 2100-01-01.
func outOfRange(t time.Time) bool {
	return t.Before(time.UnixMilli(earliestTimeMs)) || t.After(time.UnixMilli(latestTimeMs))
}

// FormatTime writes t as the answers and their errors print a time: RFC 3339 in UTC, with as
// many decimals of the second as it needs (none for a whole second, up to nine), so that two
// times a query tells apart never print alike (10:00:00.0004Z is not 10:00:00Z).
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// checkTime reports a time outside 1970-01-01 … 2100-01-01; the zero time (unbounded) is fine.
func checkTime(t time.Time) error {
	if !t.IsZero() && outOfRange(t) {
		return errors.New(outOfRangeText())
	}
	return nil
}

// RangeError is the error of a range whose to is not after its from: it holds no time. A query's
// *ParamError names to, the end judged against the start, as it names to for a range longer than
// a query takes; the CLI names --to (CheckRange).
type RangeError struct{ From, To time.Time }

func (e *RangeError) Error() string {
	return fmt.Sprintf("%s is not after from %s", FormatTime(e.To), FormatTime(e.From))
}

// CheckRange reports a from or to outside 1970-01-01 … 2100-01-01, or a to not after from (a
// *RangeError), as a *ParamError naming the parameter; zero times are unbounded. Every query
// checks its range with it, and the CLI its --from and --to, so the two name the same one.
func CheckRange(from, to time.Time) error {
	if err := checkTime(from); err != nil {
		return paramErrorf("from", "%s %w", FormatTime(from), err)
	}
	if err := checkTime(to); err != nil {
		return paramErrorf("to", "%s %w", FormatTime(to), err)
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return &ParamError{Param: "to", Err: &RangeError{From: from, To: to}}
	}
	return nil
}

// maxWindowDays bounds the days ParseWindow reads: the longest window a query takes (MaxWindow),
// which its error names, where it named 100,000 days and a window of 400d was then refused as
// longer than 366 (tester 19's T7).
const maxWindowDays = int(MaxWindow / (24 * time.Hour))

// ParseWindow reads a duration in Go syntax (90m, 24h) or in days (7d).
func ParseWindow(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || !isDigits(days) || n <= 0 || n > maxWindowDays {
			return 0, fmt.Errorf("%q is not a whole number of days from 1 to %d", s, maxWindowDays)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || strings.HasPrefix(s, "+") { // a sign is refused, as in days (tester 50's F5)
		return 0, fmt.Errorf("%q is not a duration like 30m, 24h or 7d", s)
	}
	return d, nil
}
