package store

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
)

// Param is a parameter of a journey query: one schema gives the API's query string, the CLI's
// flags and the page's defaults.
type Param struct {
	// Name is the query string's name (count_by); the CLI's flag is the same with dashes
	// (--count-by).
	Name string `json:"name"`
	// Default is the value an absent parameter takes; "" for none. A parameter given empty
	// (window=, or a bare collapse) is refused when it has a default, as the CLI refuses
	// --window="": it would otherwise silently mean the default (tester 29's F1). One without a
	// default (from, breakdown) takes empty as none, as its flag does.
	Default string `json:"default"`
	// Usage says what it means, for the CLI's help and the page.
	Usage string `json:"usage"`
	// Bool is set on a true-or-false parameter: the CLI makes it a boolean flag (--collapse,
	// --collapse=false); the query string takes true or false.
	Bool bool `json:"bool,omitempty"`
	// List is set on a list of steps (steps, exclude): entries separated by commas, a comma in
	// an entry escaped (\,; steps.go). A batch body may give it as a JSON array of steps
	// instead, one entry each (JoinSteps).
	List bool `json:"list,omitempty"`
}

func rangeParams() []Param {
	return []Param{
		{Name: "from", Usage: "start of the time range: RFC 3339 or YYYY-MM-DD (the start of that day in timezone); empty: all time"},
		{Name: "to", Usage: "end of the time range (exclusive): RFC 3339 or YYYY-MM-DD (the start of that day in timezone); empty: all time"},
		{Name: "timezone", Default: "UTC", Usage: "IANA time zone (Europe/Paris) of the dates given as YYYY-MM-DD, and of retention's weeks and months"},
	}
}

func funnelParams() []Param {
	return append([]Param{
		{Name: "steps", List: true, Usage: `comma-separated steps: event names or stage names of the journey map, [filters] optional (required); a backslash escapes , ; | [ ] in a name or value: Checkout\, Step 2`},
		{Name: "window", Default: "24h", Usage: "longest time from a customer's first step to their last (30m, 24h, 7d)"},
		{Name: "mode", Default: string(ModeOrdered), Usage: "ordered, strict (no other tracked event between steps) or any (any order within the window)"},
		{Name: "exclude", List: true, Usage: `comma-separated exclusions "Event" (between first and last step) or "Event:2-3"; escapes as in steps`},
		{Name: "count_by", Default: CountPersons, Usage: "persons, or sessions (each session is the window)"},
		{Name: "hold", Usage: "property:NAME held constant: a unit takes the steps only with events of one value of it (the product viewed is the one ordered); events without it take no step"},
		{Name: "breakdown", Usage: "channel, campaign, device, trait:NAME or property:NAME (value at step 1)"},
		{Name: "breakdown_limit", Default: "20", Usage: "breakdown values listed; the rest are summed as (other values); no value is a group of its own, not counted in the limit"},
	}, rangeParams()...)
}

// dropoffParams are the funnel's but its breakdown: a drop-off is not broken down (its rankings
// are its breakdowns), and a breakdown it took and ignored answered as if none were asked
// (tester 24's F2); given, it is refused as every parameter a query does not take is.
func dropoffParams() []Param {
	funnel := slices.DeleteFunc(funnelParams(), func(p Param) bool { return p.Name == "breakdown" || p.Name == "breakdown_limit" })
	return append(funnel,
		Param{Name: "step", Default: "0", Usage: "1-based step they reached and did not go on from, up to the step before the last; 0: the step with the largest drop-off, which the answer's step names"},
		Param{Name: "limit", Default: "10", Usage: "rows per ranking"},
		Param{Name: "ids_limit", Default: "100", Usage: "person ids listed"})
}

// correlationParams are the funnel's but its breakdown limit (every value is ranked) and hold
// (not defined for it yet: which of the other values' touchpoints would count), plus how many
// each side lists; the breakdown ranks its values instead of touchpoints.
func correlationParams() []Param {
	funnel := slices.DeleteFunc(funnelParams(), func(p Param) bool { return p.Name == "breakdown_limit" || p.Name == "hold" })
	for i := range funnel {
		if funnel[i].Name == "breakdown" {
			funnel[i].Usage = "rank the values of channel, campaign, device, trait:NAME or property:NAME (each unit's, as a funnel breaks down) instead of touchpoints"
		}
	}
	return append(funnel, Param{Name: "limit", Default: "10", Usage: "touchpoints (values) listed on each side: success correlations, then failure ones"})
}

func anchorParams() []Param {
	return append([]Param{
		{Name: "anchor", Usage: `event or stage name the touchpoints are counted from, [filters] optional (required); escapes as in steps`},
		{Name: "window", Default: "24h", Usage: "how far from the anchor to look"},
		{Name: "limit", Default: "10", Usage: "rows listed"},
		{Name: "collapse", Default: "false", Usage: "count consecutive repeats of a touchpoint once", Bool: true},
	}, rangeParams()...)
}

func pathsParams() []Param {
	return append(anchorParams(),
		Param{Name: "direction", Default: "start", Usage: "start: sequences starting at the anchor; end: ending at it"},
		Param{Name: "depth", Default: "4", Usage: "touchpoints per sequence, the anchor included"},
		Param{Name: "convert", Usage: "event or stage counting as a conversion after the anchor; empty: the journey map's stage conversion (Order Completed in the built-in map), none when it has no such stage"})
}

func nextParams() []Param {
	return append(anchorParams(),
		Param{Name: "direction", Default: "next", Usage: "next: where people go after the anchor; previous: where they came from"})
}

func retentionParams() []Param {
	return append([]Param{
		{Name: "period", Default: "week", Usage: "cohort period: week (ISO, UTC) or month"},
		{Name: "periods", Default: "8", Usage: "later periods reported per cohort"},
		{Name: "conversion", Usage: "event or stage whose first occurrence puts a person in a cohort; empty: the journey map's stage conversion (Order Completed in the built-in map), required when it has no such stage"},
		{Name: "return", Usage: "event or stage that counts as coming back; empty: the conversion again"},
	}, rangeParams()...)
}

// conversionStage is the journey map stage that a conversion defaults to: paths' convert and
// retention's conversion, when not given, are this stage of the query's map, so a default never
// names an event a shop may not send (the built-in map reaches it by Order Completed; a shop that
// sends none gets no conversions, not an error). A map without it gives no default
// (defaultConversion).
const conversionStage = "conversion"

// defaultConversion returns the step a conversion parameter takes when not given: the stage
// conversionStage of jm, or "" when jm has none.
func defaultConversion(jm *sessionize.Map) string {
	if _, ok := jm.Stage(conversionStage); ok {
		return conversionStage
	}
	return ""
}

func stagesParams() []Param {
	return append([]Param{{Name: "limit", Default: "5", Usage: "touchpoints listed per stage"}}, rangeParams()...)
}

// sessionsParams take a limit for the entry and exit touchpoints listed, with next's default and
// range, and a step's filters that a session's touchpoints must pass (SessionsQuery.Filter).
func sessionsParams() []Param {
	return append([]Param{
		{Name: "limit", Default: "10", Usage: "entry and exit touchpoints listed"},
		{Name: "filter", Usage: `only the sessions with a touchpoint that passes these filters, written as in a step's brackets: FIELD OP VALUE, ; between (device.type!=bot leaves bots out); empty: every session`},
	}, rangeParams()...)
}

// params reads a query's text parameters (the API's query string, the CLI's flags) by the
// query's schema, keeping the first problem, which names the parameter.
type params struct {
	v      url.Values
	schema []Param
	err    error
	read   map[string]bool // the parameters read so far
}

func newParams(v url.Values, schema []Param) *params {
	return &params{v: v, schema: schema, read: map[string]bool{}}
}

// finish returns the first problem: a parameter the query does not take (a misspelt one,
// windw=7d, would otherwise be ignored and answer another question than the one asked; it comes
// first, as the one meant is then missing, and Steps=… would be answered "steps: … required"),
// else one met while reading, else one given more than once. A parameter of the schema the query
// did not read is an error of the program, reported as one.
func (p *params) finish() error {
	var takes []string
	for _, sp := range p.schema {
		takes = append(takes, sp.Name)
	}
	slices.Sort(takes)
	names := slices.Sorted(maps.Keys(p.v))
	names = slices.DeleteFunc(names, func(n string) bool { return n == CacheBuster })
	for _, name := range names {
		if slices.Contains(takes, name) {
			continue
		}
		if name == "" {
			return paramErrorf("", "=%.40q…: give it the name of the parameter it is meant for; this query takes %s", p.v[""][0], strings.Join(takes, ", "))
		}
		if i := slices.IndexFunc(takes, func(t string) bool { return strings.EqualFold(t, name) }); i >= 0 {
			return paramErrorf(name, "this query takes no such parameter; names are lower case: %s", takes[i])
		}
		return paramErrorf(name, "this query takes no such parameter (it takes %s)", strings.Join(takes, ", "))
	}
	if p.err != nil {
		return p.err
	}
	for _, name := range takes {
		if !p.read[name] {
			return fmt.Errorf("internal error: the query does not read its parameter %s", name)
		}
	}
	for _, name := range names {
		if len(p.v[name]) > 1 {
			p.fail(name, "given %d times; give it once", len(p.v[name]))
		}
	}
	return p.err
}

// CacheBuster is the query parameter a client adds to make each URL new, so that no cache
// between it and Waymark answers a query from an earlier answer: jQuery's ajax with cache:
// false adds _=<milliseconds> (its documentation's "cache" setting), as do other HTTP clients
// after it. Every query takes it, with any value, any number of times, and ignores it.
const CacheBuster = "_"

func (p *params) fail(name, format string, args ...any) {
	if p.err == nil {
		p.err = paramErrorf(name, format, args...)
	}
}

// ParamError is a problem with one parameter of a journey query: the client's fault. The API
// answers it with 400 and the parameter's name; the CLI names the flag.
type ParamError struct {
	// Param is the parameter's name in the query string (count_by); the CLI's flag is the same
	// name with dashes (--count-by). "" is a parameter given with no name (a query string's
	// "?=x" or "&=x", a batch's "params": {"": …}): a parameter too, which Error calls so.
	Param string
	Err   error
}

// Error is "PARAM: problem", or "a parameter with no name: problem".
func (e *ParamError) Error() string {
	if e.Param == "" {
		return "a parameter with no name: " + e.Err.Error()
	}
	return e.Param + ": " + e.Err.Error()
}

func (e *ParamError) Unwrap() error { return e.Err }

// paramErrorf returns a ParamError about param, the problem formatted as by fmt.Errorf.
func paramErrorf(param, format string, args ...any) error {
	return &ParamError{Param: param, Err: fmt.Errorf(format, args...)}
}

// IsParamError reports whether err is a problem with a query's parameters.
func IsParamError(err error) bool {
	var pe *ParamError
	return errors.As(err, &pe)
}

// MaxTextBytes is the longest text a parameter may hold, and each entry of a list (a step, an
// exclusion): longer ones are refused, as ClickHouse limits the size of a query. It is derived
// from the longest name ingest stores (ingest.MaxNameBytes), so that every stored event and page
// name can be asked about: escaped (EscapeStep writes at most two bytes for one), after
// "event:" (TouchpointStep), with filters in the room left, as long as such a name (4 KiB).
const MaxTextBytes = 4 * ingest.MaxNameBytes

// get reads a parameter as given, untrimmed, and its default. A parameter read as true or false
// (isBool) must be declared Bool in the schema and the others not, so that the CLI's flags take
// each the way the query reads it; one read as a list (isList) must be declared List, so that a
// batch takes a JSON array for it.
func (p *params) get(name string, isBool, isList bool) (value, def string) {
	i := slices.IndexFunc(p.schema, func(sp Param) bool { return sp.Name == name })
	switch {
	case i < 0:
		if p.err == nil {
			p.err = fmt.Errorf("internal error: the query reads %s, which its schema does not declare", name)
		}
		return "", ""
	case p.schema[i].Bool != isBool && p.err == nil:
		p.err = fmt.Errorf("internal error: the query reads %s as true or false (%v), and its schema's Bool is %v", name, isBool, p.schema[i].Bool)
	case p.schema[i].List != isList && p.err == nil:
		p.err = fmt.Errorf("internal error: the query reads %s as a list (%v), and its schema's List is %v", name, isList, p.schema[i].List)
	}
	p.read[name] = true
	value, def = p.v.Get(name), p.schema[i].Default
	if _, given := p.v[name]; given && strings.TrimSpace(value) == "" && def != "" {
		if isBool {
			p.fail(name, "empty value (a bare %s is not true here); give %s=true, or leave it out for the default %s", name, name, def)
		} else {
			p.fail(name, "empty value; leave it out for the default %s", def)
		}
	}
	return value, def
}

// str reads a text parameter, its default when absent (or empty, where get allows it).
func (p *params) str(name string) string { return p.text(name, false) }

// step reads a parameter that is one step (an anchor, a conversion): its text trimmed as a
// step is (an escaped space at an end stays), its default when absent or empty.
func (p *params) step(name string) string {
	s, def := p.get(name, false, false)
	return p.checkText(name, trimStep(s), def)
}

// text reads a parameter's text, trimmed, its default when absent or empty; isBool as for get.
func (p *params) text(name string, isBool bool) string {
	s, def := p.get(name, isBool, false)
	return p.checkText(name, strings.TrimSpace(s), def)
}

// checkText returns s, at most MaxTextBytes, or def when s is empty.
func (p *params) checkText(name, s, def string) string {
	if len(s) > MaxTextBytes {
		p.fail(name, "%d bytes, at most %d", len(s), MaxTextBytes)
		return def
	}
	if s != "" {
		return s
	}
	return def
}

// list splits a comma-separated list of steps at its unescaped commas (splitList), its default
// when absent or empty. Each entry is at most MaxTextBytes, and none is empty: "A,,B" or "A,B,"
// is refused rather than read as "A,B", which may not be the list meant.
func (p *params) list(name string) []string {
	s, def := p.get(name, false, true)
	if s = trimStep(s); s == "" {
		s = def
	}
	if s == "" {
		return nil
	}
	var out []string
	for i, e := range splitList(s) {
		switch {
		case e == "":
			p.fail(name, "entry %d is empty (two commas in a row, or one at an end; a comma in a name is written \\,)", i+1)
		case len(e) > MaxTextBytes:
			p.fail(name, "%.40q… is %d bytes, at most %d", e, len(e), MaxTextBytes)
		default:
			out = append(out, e)
		}
	}
	return out
}

// time reads a time, from 1970-01-01 to 2100-01-01 (see ParseTimeIn: a date is in loc); "" is
// unbounded.
func (p *params) time(name string, loc *time.Location) time.Time {
	t, err := ParseTimeIn(p.str(name), loc)
	if err != nil {
		p.fail(name, "%w", err) // a *TimeError, which the API and the CLI each give their hint
	}
	return t
}

// location reads a time zone (ParseTimezone), UTC when absent or not one.
func (p *params) location(name string) *time.Location {
	loc, err := ParseTimezone(p.str(name))
	if err != nil {
		p.fail(name, "%v", err)
		return time.UTC
	}
	return loc
}

func (p *params) window(name string) time.Duration {
	d, err := ParseWindow(p.str(name))
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

func (p *params) int(name string, lo, hi int) int {
	s := p.str(name)
	n, err := strconv.Atoi(s)
	switch {
	case plusSigned(s):
		p.fail(name, "%w", PlusSignError(s, "a whole number", fmt.Sprintf("one from %d to %d", lo, hi)))
	case err != nil || !isDigits(s) || n < lo || n > hi:
		p.fail(name, "%q is not a whole number from %d to %d", s, lo, hi)
	}
	return n
}

// plusSigned reports whether s is digits after a + sign ("+1", a %2B in a URL's query; an
// unencoded + there is a space, trimmed): refused, as a whole number is digits only, with words
// that blame the sign, not the number ("+1" is not a whole number from 1 to 2" read as if 1
// were not: tester 50's F7).
func plusSigned(s string) bool {
	return strings.HasPrefix(s, "+") && isDigits(s[1:])
}

// PlusSignError is the refusal of s, a number written with a + sign ("+5"): the sign is what is
// wrong, not the number, then what to give. what names the number ("a whole number", "a step's
// number"), give what is taken ("one from 1 to 1000"). Each parser decides what is a number
// with a sign (plusSigned for a whole number); the query parameters and the number flags of
// every command (cmd/waymark's wholeNumber, number) refuse it in these words, said here alone
// (tester 53's F7: serve's --batch-size +5 was told "want a whole number, at least 1").
func PlusSignError(s, what, give string) error {
	return fmt.Errorf("%q has a + sign, which %s is written without: give %s", s, what, give)
}

// isDigits reports whether s is decimal digits only: a whole number as the API and the CLI take
// one, where strconv also takes a sign ("+5" was read as 5 where "1e2" and "3.0" are refused:
// tester 49's F6).
func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

func (p *params) bool(name string) bool {
	s := p.text(name, true)
	b, err := strconv.ParseBool(s)
	if err != nil {
		p.fail(name, "%q is not true or false", s)
	}
	return b
}

func (p *params) oneOf(name string, allowed ...string) string {
	s := p.str(name)
	if slices.Contains(allowed, s) {
		return s
	}
	p.fail(name, "%q is not one of %s", s, strings.Join(allowed, ", "))
	return s
}

// timeRange reads timezone, then from and to (a date the start of that day there), checking
// them as CheckRange does and that the range is at most MaxWindow long.
func (p *params) timeRange() (from, to time.Time) {
	loc := p.location("timezone")
	from, to = p.time("from", loc), p.time("to", loc)
	if p.err != nil {
		return from, to
	}
	// 366 of the zone's days, one of which may be an hour longer or shorter than 24 (tester
	// 38's F4); in UTC, MaxWindow.
	if err := CheckRange(from, to); err != nil {
		p.err = err
	} else if !from.IsZero() && !to.IsZero() && to.Sub(from) > max(MaxWindow, from.In(loc).AddDate(0, 0, 366).Sub(from)) {
		p.fail("to", "the range from %s is longer than 366 days", FormatTime(from))
	}
	return from, to
}

// ParseFunnelQuery builds a FunnelQuery from text parameters: steps (comma-separated; a comma in
// a step is escaped, \, as steps.go describes), window, from, to, mode, exclude ("Event" or
// "Event:2-3", comma-separated), count_by, hold ("property:product_id"), breakdown
// ("channel", "trait:customer_type", …) and breakdown_limit. Errors start with the parameter's name.
func ParseFunnelQuery(v url.Values) (FunnelQuery, error) {
	p := newParams(v, funnelParams())
	q := parseFunnel(p)
	if err := p.finish(); err != nil {
		return q, err
	}
	return q, q.Validate()
}

// takes reports whether the query p reads takes the parameter name (its schema lists it).
func (p *params) takes(name string) bool {
	return slices.ContainsFunc(p.schema, func(sp Param) bool { return sp.Name == name })
}

// parseFunnel reads a funnel's parameters; the caller finishes p.
func parseFunnel(p *params) FunnelQuery {
	q := FunnelQuery{Steps: p.list("steps")}
	if len(q.Steps) == 0 && p.err == nil {
		p.fail("steps", "at least one step is required")
	}
	q.Window = p.window("window")
	q.From, q.To = p.timeRange()
	q.Mode = Mode(p.oneOf("mode", string(ModeOrdered), string(ModeStrict), string(ModeAny)))
	q.CountBy = p.oneOf("count_by", CountPersons, CountSessions)
	for _, x := range p.list("exclude") {
		e := Exclusion{Step: x, After: 1, Before: len(q.Steps)}
		step, after, before, ok, misspelt := cutExclusionRange(x)
		switch {
		case ok && max(after, before) > MaxFunnelSteps: // quoted as written: past int, Atoi gives its largest (tester 40's F3)
			p.fail("exclude", "%.100q: a range of steps FIRST-LAST lies within the funnel's steps, at most %d", x, MaxFunnelSteps)
		case ok:
			e.Step, e.After, e.Before = step, after, before
		case misspelt:
			p.fail("exclude", "%.100q: a range of steps is FIRST-LAST with a hyphen (Coupon Removed:1-3); an event whose name ends so escapes its colon (\\:)", x)
		}
		q.Exclusions = append(q.Exclusions, e)
	}
	if p.takes("hold") { // not a correlation's
		q.Hold = parseHold(p)
	}
	if !p.takes("breakdown") {
		return q // a drop-off's (dropoffParams)
	}
	if b := p.step("breakdown"); b != "" {
		// trait:NAME and property:NAME name it as a step's filter names its field (fieldName):
		// spaces around it dropped, an escaped one kept (tester 35's F10).
		by, name, named := strings.Cut(b, ":")
		q.Breakdown.By, q.Breakdown.Name = by, fieldName(lexStep(name))
		if err := breakdownError(by, q.Breakdown.Name, named, b); err != nil && p.err == nil {
			p.err = err // quoting b as written, where Validate has only q's parts (tester 50's F10)
		}
	}
	if p.takes("breakdown_limit") { // not a correlation's
		q.BreakdownLimit = p.int("breakdown_limit", 1, 1000)
		// Given without a breakdown, it limits nothing: refused, as a parameter a query does not
		// take is, rather than answered as if it were not asked (tester 50's F9).
		if _, given := p.v["breakdown_limit"]; given && q.Breakdown.By == "" {
			p.fail("breakdown_limit", "needs a breakdown: it caps the values a breakdown lists, and none was given")
		}
	}
	return q
}

// parseHold reads hold, written as a breakdown names a property (property:NAME, the name read as
// a step's filter reads its field: fieldName), and returns the property's name, "" when not
// given. A trait is refused, naming hold: a trait is the person's latest value (the breakdown's
// rule), the same on all of a unit's events, so holding it constant would hold nothing; so is
// any other kind a breakdown takes (channel, campaign, device), which Amplitude and Mixpanel do
// not hold either: they hold an event's properties.
func parseHold(p *params) string {
	h := p.step("hold")
	if h == "" {
		return ""
	}
	by, name, _ := strings.Cut(h, ":")
	name = fieldName(lexStep(name))
	switch {
	case by == "property" && name != "":
		return name
	case by == "property":
		p.fail("hold", "%q: property takes a name (property:product_id)", h)
	case by == "trait":
		p.fail("hold", "%.100q: a trait is the person's latest value, the same on all their events, so holding it constant holds nothing: hold an event's property (property:NAME), or break down by the trait", h)
	default:
		p.fail("hold", "%.100q is not property:NAME: a funnel holds an event's property constant (hold=property:product_id)", h)
	}
	return ""
}
