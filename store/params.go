package store

import (
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// params reads a query's text parameters (the API's query string, the CLI's flags), keeping the
// first problem, which names the parameter.
type params struct {
	v    url.Values
	err  error
	read map[string]bool // the parameters the query takes, as it reads them
}

func newParams(v url.Values) *params { return &params{v: v, read: map[string]bool{}} }

// finish returns the first problem: one met while reading, else a parameter the query does not
// take (a misspelt one, windw=7d, would otherwise be ignored and answer another question than
// the one asked), else one given more than once.
func (p *params) finish() error {
	if p.err != nil {
		return p.err
	}
	var takes []string
	for name := range p.read {
		takes = append(takes, name)
	}
	slices.Sort(takes)
	for _, name := range slices.Sorted(maps.Keys(p.v)) {
		switch {
		case !p.read[name]:
			p.fail(name, "this query takes no such parameter (it takes %s)", strings.Join(takes, ", "))
		case len(p.v[name]) > 1:
			p.fail(name, "given %d times; give it once", len(p.v[name]))
		}
	}
	return p.err
}

func (p *params) fail(name, format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...))
	}
}

// MaxTextBytes is the longest text a parameter may hold, and each entry of a list (a step, an
// exclusion): longer ones are refused, as ClickHouse limits the size of a query.
const MaxTextBytes = 1000

func (p *params) str(name, def string) string {
	p.read[name] = true
	s := strings.TrimSpace(p.v.Get(name))
	if len(s) > MaxTextBytes {
		p.fail(name, "%d bytes, at most %d", len(s), MaxTextBytes)
		return def
	}
	if s != "" {
		return s
	}
	return def
}

// list splits a comma-separated parameter, dropping empty entries.
func (p *params) list(name string) []string {
	p.read[name] = true
	var out []string
	for _, s := range strings.Split(p.v.Get(name), ",") {
		if s = strings.TrimSpace(s); len(s) > MaxTextBytes {
			p.fail(name, "%.40q… is %d bytes, at most %d", s, len(s), MaxTextBytes)
		} else if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// time reads a time, from 1970-01-01 to 2100-01-01 (see ParseTime); "" is unbounded.
func (p *params) time(name string) time.Time {
	t, err := ParseTime(p.str(name, ""))
	if err != nil {
		p.fail(name, "%v", err)
	}
	return t
}

func (p *params) window(name, def string) time.Duration {
	d, err := ParseWindow(p.str(name, def))
	switch {
	case err != nil:
		p.fail(name, "%v", err)
	case d <= 0:
		p.fail(name, "must be positive, got %s", d)
	case d > MaxWindow:
		p.fail(name, "at most 366d, got %s", d)
	}
	return d
}

func (p *params) int(name string, def, lo, hi int) int {
	s := p.str(name, "")
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		p.fail(name, "%q is not a whole number from %d to %d", s, lo, hi)
	}
	return n
}

func (p *params) bool(name string) bool {
	s := p.str(name, "false")
	b, err := strconv.ParseBool(s)
	if err != nil {
		p.fail(name, "%q is not true or false", s)
	}
	return b
}

func (p *params) oneOf(name, def string, allowed ...string) string {
	s := p.str(name, def)
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	p.fail(name, "%q is not one of %s", s, strings.Join(allowed, ", "))
	return def
}

// timeRange reads from and to, checking that from comes first and that the range is at most
// MaxWindow long.
func (p *params) timeRange() (from, to time.Time) {
	from, to = p.time("from"), p.time("to")
	if !from.IsZero() && !to.IsZero() {
		if !from.Before(to) {
			p.fail("from", "%s is not before to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
		} else if to.Sub(from) > MaxWindow {
			p.fail("to", "the range from %s is longer than 366 days", from.Format(time.RFC3339))
		}
	}
	return from, to
}

var exclusionRange = regexp.MustCompile(`^(.*):\s*(\d+)\s*-\s*(\d+)$`)

// ParseFunnelQuery builds a FunnelQuery from text parameters: steps (comma-separated), window,
// from, to, mode, exclude ("Event" or "Event:2-3", comma-separated), count_by, breakdown
// ("channel", "trait:customer_type", …) and breakdown_limit. Errors start with the parameter's name.
func ParseFunnelQuery(v url.Values) (FunnelQuery, error) {
	p := newParams(v)
	q := parseFunnel(p)
	if err := p.finish(); err != nil {
		return q, err
	}
	return q, q.Validate()
}

// parseFunnel reads a funnel's parameters; the caller finishes p.
func parseFunnel(p *params) FunnelQuery {
	q := FunnelQuery{Steps: p.list("steps")}
	if len(q.Steps) == 0 && p.err == nil {
		p.fail("steps", "at least one step is required")
	}
	q.Window = p.window("window", "24h")
	q.From, q.To = p.timeRange()
	q.Mode = Mode(p.oneOf("mode", string(ModeOrdered), string(ModeOrdered), string(ModeStrict), string(ModeAny)))
	q.CountBy = p.oneOf("count_by", CountPersons, CountPersons, CountSessions)
	for _, x := range p.list("exclude") {
		e := Exclusion{Step: x, After: 1, Before: len(q.Steps)}
		if m := exclusionRange.FindStringSubmatch(x); m != nil {
			e.Step = strings.TrimSpace(m[1])
			e.After, _ = strconv.Atoi(m[2])
			e.Before, _ = strconv.Atoi(m[3])
		}
		q.Exclusions = append(q.Exclusions, e)
	}
	if b := p.str("breakdown", ""); b != "" {
		q.Breakdown.By, q.Breakdown.Name, _ = strings.Cut(b, ":")
	}
	q.BreakdownLimit = p.int("breakdown_limit", 20, 1, 1000)
	return q
}
