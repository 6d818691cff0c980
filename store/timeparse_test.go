package store_test

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/store"
)

// TestParseTime: a query's from and to take every form of time an event may carry (one parser,
// ingest.ParseTimestamp) and a UTC date; anything else, or a time outside 1970..2100, is an error.
func TestParseTime(t *testing.T) {
	t.Parallel()
	ten := time.Date(2017, 11, 25, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time // zero: an error, unless in is "" (unbounded)
	}{
		{"", time.Time{}},
		{"2017-11-25", time.Date(2017, 11, 25, 0, 0, 0, 0, time.UTC)},
		{"2017-11-25T10:00:00Z", ten},
		{"2017-11-25t10:00:00z", ten}, // RFC 3339 §5.6: t and z may be lower case
		{"2017-11-25t10:00:00Z", ten},
		{"2017-11-25T10:00:00z", ten},
		{"2017-11-25t12:00:00+02:00", ten},
		{"2017-11-25T10:00:00.250z", ten.Add(250 * time.Millisecond)},
		{"2017-11-25T10:00:00.0000009Z", ten}, // cut to the microsecond, as events' times are
		{"2017-11-25T07:30:00-02:30", ten},
		{"2017-11-25 10:00:00", ten}, // as ingest reads it: no zone is UTC
		{"2017-11-25T10:00:00+0000", ten},
		{"2017-11-26T10:00:00+24:00", time.Time{}},
		{"2017-11-24T10:00:00-24:00", time.Time{}},
		{"2017-11-25T10:00:00+02:60", time.Time{}},
		{"2017-11-25T12:00:00 02:00", time.Time{}}, // a '+' that a URL turned into a space
		{"25/11/2017", time.Time{}},
		{"1511604000", time.Time{}},
		{"2017-11-25T10:00", time.Time{}},
		{"1969-12-31t23:59:59z", time.Time{}},
		{"2100-01-02", time.Time{}},
		{"2100-01-01", time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"2100-01-01T00:00:00.001Z", time.Time{}},
		{"2017-11-25T1:00:00Z", time.Time{}}, // RFC 3339's hour has two digits
		{"2017-11-25t1:00:00z", time.Time{}},
		{"2017-11-25 1:00:00", time.Time{}},
		// A leap second is its minute's last microsecond (ingest.ParseTimestamp; tester 51's F1).
		{"2017-11-25T10:00:60Z", ten.Add(time.Minute - time.Microsecond)},
		{"2017-11-25t10:00:60.250z", ten.Add(time.Minute - time.Microsecond)},
		{"2017-11-25T02:00:60-08:00", ten.Add(time.Minute - time.Microsecond)},
		{"2099-12-31T23:59:60Z", time.Date(2099, 12, 31, 23, 59, 59, 999999000, time.UTC)},
		{"2017-11-25T10:00:61Z", time.Time{}},
	}
	for _, tt := range tests {
		got, err := store.ParseTime(tt.in)
		switch {
		case tt.want.IsZero() && tt.in != "" && err == nil:
			t.Errorf("ParseTime(%q) = %s, want an error", tt.in, got)
		case (!tt.want.IsZero() || tt.in == "") && err != nil:
			t.Errorf("ParseTime(%q): %v, want %s", tt.in, err, tt.want)
		case err == nil && (!got.Equal(tt.want) || !got.IsZero() && got.Location() != time.UTC):
			t.Errorf("ParseTime(%q) = %s, want %s in UTC", tt.in, got, tt.want)
		}
	}
}

// TestParseTimeErrorsAreOneWording is tester 33's F5 for the query API's and the CLI's times: they
// are refused in the words an event's time is (ingest.TimestampError), saying what is wrong when
// known, never with Go's layout.
func TestParseTimeErrorsAreOneWording(t *testing.T) {
	t.Parallel()
	const form = "is neither an ISO 8601 date-time (YYYY-MM-DDThh:mm:ss with an optional fraction and zone) nor a date (YYYY-MM-DD)"
	tests := []struct{ in, detail string }{
		{"yesterday", ""},
		{"25/11/2017", ""},
		{"2017-11-25T10:00", ""},
		{"2017-02-30", ": day out of range"},
		{"2017-13-01", ": month out of range"},
		{"2017-11-25T25:00:00Z", ": hour out of range"},
		{"2017-11-25T10:00:61Z", ": second out of range"}, // 60 is a leap second (TestParseTime)
		{"2017-11-25T10:00:00 GMT", `: " GMT" after the seconds is neither a fraction (.123) nor a zone (Z, +hh:mm, +hhmm, +hh)`},
		{"2017-11-26T10:00:00+24:00", ": offset +24:00 is beyond ±23:59 (RFC 3339 §5.6)"},
		{"2017-11-25T12:00:00 02:00", "; was the space a + ?"}, // the hint, not the detail
	}
	for _, tt := range tests {
		_, err := store.ParseTime(tt.in)
		var te *store.TimeError
		want := strconv.Quote(tt.in) + " " + form + tt.detail
		switch {
		case !errors.As(err, &te):
			t.Errorf("ParseTime(%q): %v, want a *store.TimeError", tt.in, err)
		case err.Error() != want:
			t.Errorf("ParseTime(%q): %v\nwant %s", tt.in, err, want)
		}
	}
}

// TestQueryRangeTakesALeapSecond is tester 51's F1 for the query API: a from or to at a leap
// second (second 60) was refused as "second out of range". It is its minute's last microsecond,
// so a range ending there takes the minute's other events, and one starting there is before the
// next minute; second 61 is refused naming its parameter.
func TestQueryRangeTakesALeapSecond(t *testing.T) {
	t.Parallel()
	leap := time.Date(2016, 12, 31, 23, 59, 59, 999999000, time.UTC)
	tests := []struct {
		name, from, to string
		wantFrom       time.Time
		wantTo         time.Time
		refused        string // the parameter named, "" when the range is taken
	}{
		{"from a leap second", "2016-12-31T23:59:60Z", "2017-01-01T00:00:00Z", leap, leap.Add(time.Microsecond), ""},
		{"to a leap second", "2016-12-31T23:59:59.999998Z", "2016-12-31T23:59:60.5Z", leap.Add(-time.Microsecond), leap, ""},
		{"in its zone, lower case", "2016-12-31", "2016-12-31t15:59:60-08:00", time.Date(2016, 12, 31, 0, 0, 0, 0, time.UTC), leap, ""},
		{"to a leap second, from its minute's last microsecond", "2016-12-31T23:59:59.999999Z", "2016-12-31T23:59:60Z", time.Time{}, time.Time{}, "to"},
		{"from second 61", "2016-12-31T23:59:61Z", "", time.Time{}, time.Time{}, "from"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := store.ParseFunnelQuery(url.Values{"steps": {"V"}, "from": {tt.from}, "to": {tt.to}})
			var pe *store.ParamError
			switch {
			case tt.refused != "" && (!errors.As(err, &pe) || pe.Param != tt.refused):
				t.Errorf("from %q, to %q: %v, want refused naming %s", tt.from, tt.to, err, tt.refused)
			case tt.refused == "" && err != nil:
				t.Errorf("from %q, to %q: %v", tt.from, tt.to, err)
			case tt.refused == "" && (!q.From.Equal(tt.wantFrom) || !q.To.Equal(tt.wantTo)):
				t.Errorf("from %q, to %q: read [%s, %s), want [%s, %s)", tt.from, tt.to,
					store.FormatTime(q.From), store.FormatTime(q.To), store.FormatTime(tt.wantFrom), store.FormatTime(tt.wantTo))
			}
		})
	}
}

// TestParseTimeHintsAPlusReadAsASpace: a time whose offset's + a query string read as a space
// is refused asking whether the space was a +, with the time so written (TimeError.Plus), which
// the API and the CLI each say how to give (tester 24); other bad times get no such hint.
func TestParseTimeHintsAPlusReadAsASpace(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, plus string // plus: "" when the error must not hint
	}{
		{"2017-11-25T12:00:00 02:00", "2017-11-25T12:00:00+02:00"},
		{"2017-11-25 12:00:00 02:00", "2017-11-25 12:00:00+02:00"},
		{"2017-11-25T12:00:00.5 0200", "2017-11-25T12:00:00.5+0200"},
		{"2017-11-25 1:00:00", ""},
		{"2017-11-25T12:00:00 x", ""},
		{"25/11/2017", ""},
	}
	for _, tt := range tests {
		_, err := store.ParseTime(tt.in)
		var te *store.TimeError
		switch {
		case !errors.As(err, &te):
			t.Errorf("ParseTime(%q): %v, want a *store.TimeError", tt.in, err)
		case te.Text != tt.in || te.Plus != tt.plus:
			t.Errorf("ParseTime(%q): Text %q, Plus %q; want %q, %q", tt.in, te.Text, te.Plus, tt.in, tt.plus)
		case strings.Contains(err.Error(), "was the space a +") != (tt.plus != ""):
			t.Errorf("ParseTime(%q): %v; want it to ask about a + only when Plus is set", tt.in, err)
		case strings.Contains(err.Error(), "%2B"):
			t.Errorf("ParseTime(%q): %v; the store says nothing of URLs (the API does)", tt.in, err)
		}
	}
}

// TestEveryEventTimeCanBeQueried: the event times ingest accepts and the times a query can name
// share their end (ingest.LatestEventMs), so the last event time accepted lies before a to that
// ParseTime takes, and the first refused does not.
func TestEveryEventTimeCanBeQueried(t *testing.T) {
	t.Parallel()
	last := time.UnixMilli(ingest.LatestEventMs - 1).UTC()
	if !ingest.InTimeRange(last) || ingest.InTimeRange(last.Add(time.Millisecond)) {
		t.Fatalf("ingest's last event time is not %s", last)
	}
	for _, at := range []time.Time{time.UnixMilli(ingest.EarliestEventMs), last} {
		from, err := store.ParseTime(at.Format(time.RFC3339Nano))
		if err != nil {
			t.Errorf("from %s: %v", at, err)
		}
		to, err := store.ParseTime(at.Add(time.Millisecond).Format(time.RFC3339Nano)) // to is excluded
		if err != nil || !from.Before(to) {
			t.Errorf("to %s: %v", at.Add(time.Millisecond), err)
		}
	}
}

// TestParseWindowNamesItsRange: a window in days is a whole number from 1 to the longest window
// a query takes (366 days), which its error names; it named 100,000 days, and 400d, read, was
// then refused as longer than 366 (tester 19's T7).
func TestParseWindowNamesItsRange(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration // 0: refused, naming the range
	}{
		{"1d", 24 * time.Hour}, {"366d", store.MaxWindow}, {"90m", 90 * time.Minute},
		{"367d", 0}, {"400d", 0}, {"100001d", 0}, {"1.5d", 0}, {"0d", 0}, {"-1d", 0}, {"+7d", 0},
	} {
		d, err := store.ParseWindow(tt.in)
		switch {
		case tt.want != 0 && (err != nil || d != tt.want):
			t.Errorf("ParseWindow(%q) = %s, %v; want %s", tt.in, d, err, tt.want)
		case tt.want == 0 && (err == nil || !strings.Contains(err.Error(), "from 1 to 366")):
			t.Errorf("ParseWindow(%q) = %s, %v; want an error naming 1 to 366", tt.in, d, err)
		}
	}
	// a sign is refused in a duration too, as in days (tester 50's F5)
	if d, err := store.ParseWindow("+24h"); err == nil || !strings.Contains(err.Error(), "not a duration") {
		t.Errorf("ParseWindow(\"+24h\") = %s, %v; want an error", d, err)
	}
}

// TestTimezoneDays: a date in a query's timezone is the first instant of that day there, also
// where a clock change skips midnight (the day starts at 01:00 when the clocks jump, not at
// 23:00 the day before: tester 38's F1); a range of 366 of the zone's days is taken across a
// clock change (tester 38's F4); a date whose day starts before 1970 says when it starts (F5);
// and only names of the IANA database are zones, a + read as a space told how to write it (F6,
// F7).
func TestTimezoneDays(t *testing.T) {
	t.Parallel()
	zone := func(name string) *time.Location {
		loc, err := store.ParseTimezone(name)
		if err != nil {
			t.Fatal(err)
		}
		return loc
	}
	for _, tt := range []struct {
		date, zone, want string
	}{
		{"2024-10-01", "Asia/Tokyo", "2024-09-30T15:00:00Z"},
		{"2026-09-06", "America/Santiago", "2026-09-06T04:00:00Z"}, // midnight skipped: 01:00 -03
		{"2025-03-30", "Atlantic/Azores", "2025-03-30T01:00:00Z"},  // midnight skipped: 01:00 +00
		{"2025-03-30", "Europe/Paris", "2025-03-29T23:00:00Z"},     // the change is at 02:00
		{"2025-10-26", "Europe/Paris", "2025-10-25T22:00:00Z"},
	} {
		got, err := store.ParseTimeIn(tt.date, zone(tt.zone))
		if err != nil || store.FormatTime(got) != tt.want {
			t.Errorf("%s in %s: %s, %v; want %s", tt.date, tt.zone, store.FormatTime(got), err, tt.want)
		}
	}
	for _, tt := range []struct {
		params url.Values
		fails  string // the parameter refused, "" for none
		says   string
	}{
		{url.Values{"from": {"2023-11-04"}, "to": {"2024-11-04"}, "timezone": {"America/New_York"}}, "", ""},
		{url.Values{"from": {"2023-11-04"}, "to": {"2024-11-05"}, "timezone": {"America/New_York"}}, "to", "longer than 366 days"},
		{url.Values{"from": {"1970-01-01"}, "timezone": {"Asia/Tokyo"}}, "from", "whose day starts at 1969-12-31T15:00:00Z in Asia/Tokyo"},
		{url.Values{"timezone": {"Etc/GMT 5"}}, "timezone", `write "Etc/GMT+5"'s + as %2B`},
		{url.Values{"timezone": {"Etc/GMT+5"}}, "", ""},
		{url.Values{"timezone": {"posix/Asia/Tokyo"}}, "timezone", "no IANA time zone name"},
		{url.Values{"timezone": {"right/UTC"}}, "timezone", "no IANA time zone name"},
		{url.Values{"timezone": {"Factory"}}, "timezone", "no IANA time zone name"},
		{url.Values{"timezone": {"localtime"}}, "timezone", "no IANA time zone name"},
		{url.Values{"timezone": {"Local"}}, "timezone", "no IANA time zone name"},
	} {
		_, err := store.ParseSessionsQuery(tt.params)
		switch {
		case tt.fails == "" && err != nil:
			t.Errorf("%v: %v", tt.params, err)
		case tt.fails != "" && (!strings.HasPrefix(fmt.Sprint(err), tt.fails+": ") || !strings.Contains(err.Error(), tt.says)):
			t.Errorf("%v: %v, want a problem with %s saying %s", tt.params, err, tt.fails, tt.says)
		}
	}
}
