package store

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseTime reads a time given as RFC 3339 or as a UTC date YYYY-MM-DD. "" is the zero time
// (unbounded).
func ParseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 (2017-11-25T00:00:00Z) nor a date (2017-11-25)", s)
	}
	return t, nil
}

// ParseWindow reads a duration in Go syntax (90m, 24h) or in days (7d).
func ParseWindow(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("%q is not a whole number of days", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration like 30m, 24h or 7d", s)
	}
	return d, nil
}
