package main

import (
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/store"
)

// queryCommand is how the CLI shows one of the store's journey queries: its line in the usage,
// the synopsis of its help and the table it prints (nil: the API's JSON, as --json).
type queryCommand struct {
	name, summary, synopsis string
	print                   func(io.Writer, any)
}

// queryCommands show the store's journey queries (store.QueryNames), in the order the usage lists
// them. Each query of the registry is a command whether or not it is here (see commandFor): each
// answers exactly as its /api/v1/ endpoint and takes its parameters (store.QueryParams) as flags,
// with dashes for underscores.
var queryCommands = []queryCommand{
	{"funnel", "count customers through a sequence of steps (modes, exclusions, breakdowns)",
		`funnel --steps "Product Viewed,Product Added,Order Completed" [--window 24h] [--mode ordered] [--breakdown channel] [--json]`, printFunnel},
	{"dropoff", "where the customers who did not reach the next step left from, and what they did instead",
		`dropoff --steps "Product Viewed,Order Completed" [--step 1] [--json | --csv]`, printDropoff},
	{"correlation", "which touchpoints tell the customers who converted from those who did not (odds ratios)",
		`correlation --steps "Product Viewed,Order Completed" [--window 24h] [--breakdown channel] [--limit 10] [--json]`, printCorrelation},
	{"paths", "the top touchpoint sequences starting or ending at an event or stage",
		`paths --anchor "Product Viewed" [--direction start|end] [--depth 4] [--convert "Order Completed"] [--json]`, printPaths},
	{"next", "where customers go right after (or came from right before) an event or stage",
		`next --anchor "Product Added" [--direction next|previous] [--json]`, printNext},
	{"retention", "cohorts by first order: who comes back, time to second order, repeat rate by channel",
		`retention [--conversion "Order Completed"] [--return EVENT] [--period week|month] [--json]`, printRetention},
	{"stages", "per journey stage: people entering, dwell time, exit rate, touchpoints, Net Promoter Score, survey scores",
		`stages [--from T] [--to T] [--json]`, printStages},
	{"sessions", "summarize sessions: counts, persons, durations, end reasons, entry channels, entry and exit touchpoints",
		`sessions [--from T] [--to T] [--limit 10] [--json]`, printSessions},
}

// journeyCommands returns a command for each query of the store's registry: those of
// queryCommands in their order, then any other query of the registry with a plain synopsis,
// printing JSON.
func journeyCommands() []queryCommand {
	names := store.QueryNames()
	var out []queryCommand
	for _, c := range queryCommands {
		if slices.Contains(names, c.name) {
			out = append(out, c)
		}
	}
	for _, name := range names {
		if !slices.ContainsFunc(out, func(c queryCommand) bool { return c.name == name }) {
			out = append(out, queryCommand{name: name, summary: "the " + name + " journey query (/api/v1/" + name + "), as JSON",
				synopsis: name + " [flags]"})
		}
	}
	return out
}

// commandFor returns the command of the named query of the store's registry; false when there is
// no such query.
func commandFor(name string) (queryCommand, bool) {
	cmds := journeyCommands()
	i := slices.IndexFunc(cmds, func(c queryCommand) bool { return c.name == name })
	if i < 0 {
		return queryCommand{}, false
	}
	return cmds[i], true
}

// flagName is the CLI's flag for a query parameter: count_by is --count-by.
func flagName(param string) string { return strings.ReplaceAll(param, "_", "-") }

// queryFlags are the flags of a journey query's command: its parameters, by the query's schema;
// the store's, --funnel-matching only where the query heeds it; and the output's.
type queryFlags struct {
	fs      *flagSet
	store   *clickhouseFlags
	params  map[string]*paramFlag // by parameter name
	mapPath *string
	asJSON  *bool
	asCSV   *bool // dropoff's only; nil for the others
}

// newQueryFlags returns the flags of the query's command.
func newQueryFlags(cmd queryCommand) *queryFlags {
	name := cmd.name
	f := &queryFlags{fs: newFlagSet(name, cmd.synopsis), params: map[string]*paramFlag{}}
	f.store = addStoreFlags(f.fs)
	addQueryLimitFlags(f.fs, f.store, "over it the command fails")
	addFunnelMatchingFlag(f.fs, f.store)
	for _, p := range store.QueryParams(name) {
		v := &paramFlag{def: p.Default, isBool: p.Bool}
		f.fs.Var(v, flagName(p.Name), p.Usage)
		f.params[p.Name] = v
	}
	f.mapPath = f.fs.String("journey-map", "", "journey map YAML file; empty: the built-in shop map")
	f.asJSON = f.fs.Bool("json", false, "print JSON (the API's) instead of a table")
	if name == "dropoff" {
		f.asCSV = f.fs.Bool("csv", false, "print the ids of every person who dropped off, as CSV")
	}
	return f
}

// paramFlag is the flag of a query parameter. It keeps every value given, and values passes them
// all to the query, which refuses a parameter given twice as the API does (store.CheckParams:
// "--steps: given 2 times; give it once"): the flag package keeps the last value, and `funnel
// --steps A --steps B` asked a one-step funnel of B (tester 23's F6). The other flags keep their
// last value, as in every getopt program (docs/configuration.md). A true-or-false parameter
// (store.Param.Bool) is a boolean flag, --collapse or --collapse=false, as --json is, keeping the
// text the query's parameters take.
type paramFlag struct {
	def    string
	given  []string // on the command line, in order, or from the environment
	isBool bool
}

// String is the value the query takes: the last given, else the default.
func (p *paramFlag) String() string {
	switch {
	case p == nil:
		return ""
	case len(p.given) > 0:
		return p.given[len(p.given)-1]
	}
	return p.def
}

// Set reads a boolean parameter as strconv.ParseBool does; the setter of parseFlags says "not
// true or false" for every boolean flag.
func (p *paramFlag) Set(s string) error {
	if p.isBool {
		v, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		s = strconv.FormatBool(v)
	}
	p.given = append(p.given, s)
	return nil
}

func (p *paramFlag) IsBoolFlag() bool { return p.isBool }

// values returns the query's parameters as the parsed flags give them, each given more than once
// with all its values; --csv asks for every person id. A flag not given is left out, for the
// query to take its default (the same schema's), as the API's query string does: the query then
// tells a parameter given from its default, and refuses --breakdown-limit without --breakdown
// as the API does (tester 50's F9), where the default passed here read as given.
func (f *queryFlags) values() url.Values {
	v := url.Values{}
	for name, p := range f.params {
		if len(p.given) > 1 {
			v[name] = p.given
		} else if len(p.given) == 1 && p.given[0] != "" {
			v.Set(name, p.given[0])
		}
	}
	if f.asCSV != nil && *f.asCSV {
		v.Set("ids_limit", strconv.Itoa(store.MaxIDsLimit))
	}
	return v
}

// runQuery runs one of the journey queries from the command line.
func runQuery(ctx context.Context, cmd queryCommand, args []string, stdout io.Writer, log *slog.Logger) error {
	name := cmd.name
	f := newQueryFlags(cmd)
	if err := parseFlags(f.fs, args); err != nil {
		return err
	}
	v := f.values()
	asCSV := f.asCSV != nil && *f.asCSV
	if asCSV && *f.asJSON {
		return fmt.Errorf("%s and %s: give one of them (--csv prints the person ids, --json the whole answer)", f.fs.ref("csv"), f.fs.ref("json"))
	}
	if asCSV && f.fs.given("ids-limit") { // --csv lists every person; it ignored --ids-limit
		return fmt.Errorf("%s and %s: give one of them (--csv prints the id of every person who dropped off, --ids-limit caps the ids of the table or --json)", f.fs.ref("csv"), f.fs.ref("ids-limit"))
	}
	if err := store.CheckParams(name, v); err != nil {
		return paramFlagError(f.fs, err)
	}
	st, jm, err := openWithMap(ctx, f.fs, f.store, *f.mapPath, log)
	if err != nil {
		return err
	}
	defer st.Close()
	res, err := st.Query(ctx, jm, name, v)
	if errors.Is(err, store.ErrQueryLimit) {
		return fmt.Errorf("%w; %s and %s set the limits", err, f.fs.ref("query-timeout"), f.fs.ref("query-max-memory"))
	}
	if err != nil {
		return paramFlagError(f.fs, err)
	}
	switch {
	case *f.asJSON || cmd.print == nil:
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(res)
	case asCSV:
		return writeDropoffCSV(stdout, f.fs, res.(*store.DropoffResult))
	}
	cmd.print(stdout, res)
	return nil
}

// writeDropoffCSV writes the person ids of a drop-off's answer res as CSV under the header
// person_id, each made safe for a spreadsheet (csvCell); a person named by a device
// (ingest.DevicePerson) is written quoted with its escapes, "\x00\x00…", as the Persons line
// prints it, never as raw NUL bytes, which grep, sqlite3's import and PostgreSQL's text cannot
// take, and which hid a device id's leading = from csvCell (tester 46's F3). When res lists fewer persons than
// dropped off (more than store.MaxIDsLimit did), it writes those and fails naming --csv (a flag
// of fs), as the answer's persons_truncated says, rather than pass the first ones for all.
func writeDropoffCSV(out io.Writer, fs *flagSet, res *store.DropoffResult) error {
	w := csv.NewWriter(out)
	_ = w.Write([]string{"person_id"})
	for _, p := range res.Persons {
		if strings.Contains(p, ingest.Internal) {
			p = quote(p) // a device's person: "\x00\x00…" as the Persons line prints it
		}
		_ = w.Write([]string{csvCell(p)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	if res.PersonsTruncated {
		return fs.errorf("csv", "wrote the first %d persons who dropped off, the most a drop-off lists, not all: narrow --from and --to for the rest", len(res.Persons))
	}
	return nil
}

// csvCell returns a value for a CSV cell that a spreadsheet shows as text rather than runs as a
// formula: a value beginning with =, +, -, @, a tab or a carriage return gets a leading
// apostrophe, as OWASP's "CSV Injection" page advises (person ids are whatever a visitor's client
// sent as userId). --json gives the ids as stored.
func csvCell(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

func seconds(s *float64) string {
	if s == nil {
		return "-"
	}
	return formatDuration(*s)
}

// formatDuration prints seconds readably: 42s, 3m10s, 5h02m, 3d04h.
func formatDuration(s float64) string {
	n := int64(s + 0.5)
	switch {
	case n < 60:
		return fmt.Sprintf("%ds", n)
	case n < 3600:
		return fmt.Sprintf("%dm%02ds", n/60, n%60)
	case n < 86400:
		return fmt.Sprintf("%dh%02dm", n/3600, n%3600/60)
	}
	return fmt.Sprintf("%dd%02dh", n/86400, n%86400/3600)
}

// printFunnelSteps prints a funnel's steps, their units (countBy: store.CountPersons, the
// customers, or store.CountSessions) in the third column.
func printFunnelSteps(w io.Writer, steps []store.FunnelStep, countBy string) {
	units := "CUSTOMERS"
	if countBy == store.CountSessions {
		units = "SESSIONS" // the JSON keeps customers, the API's name for a step's units
	}
	tw := table(w)
	fmt.Fprintln(tw, "#\tSTEP\t"+units+"\tFROM FIRST\tFROM PREVIOUS\tDROP-OFF\tMEDIAN TIME\tP90 TIME\t")
	for i, s := range steps {
		mark := ""
		if s.LargestDropOff {
			mark = "  ← largest drop-off"
		}
		dropOff := "-" // nothing comes after the last step
		if i+1 < len(steps) {
			dropOff = fmt.Sprintf("%d (%.1f%%)", s.DropOff, 100*s.DropOffRate)
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%.1f%%\t%.1f%%\t%s\t%s\t%s\t%s\n", i+1, label(s.Name, ""), s.Customers,
			100*s.ConversionFromFirst, 100*s.ConversionFromPrevious, dropOff,
			seconds(s.MedianSecondsFromPrevious), seconds(s.P90SecondsFromPrevious), mark)
	}
	tw.Flush()
}

func printFunnel(w io.Writer, v any) {
	res := v.(*store.FunnelResult)
	printFunnelSteps(w, res.Steps, res.CountBy)
	window := "the session"
	if res.WindowSeconds != nil {
		window = formatSeconds(*res.WindowSeconds)
	}
	fmt.Fprintf(w, "%s, counting %s, window %s", res.Mode, res.CountBy, window)
	if res.Hold != "" {
		fmt.Fprintf(w, ", holding %s constant", res.Hold)
	}
	if res.From != nil {
		fmt.Fprintf(w, ", from %s", store.FormatTime(*res.From))
	}
	if res.To != nil {
		fmt.Fprintf(w, ", to %s", store.FormatTime(*res.To))
	}
	fmt.Fprintln(w)
	var converted int64
	for _, b := range res.TimeToConvert {
		converted += b.Count
	}
	if converted > 0 {
		fmt.Fprintln(w, "\nTime to convert (first step to last)")
		tw := table(w)
		for _, b := range res.TimeToConvert {
			fmt.Fprintf(tw, "  %s\t%d\t%.1f%%\t\n", b.Label, b.Count, 100*float64(b.Count)/float64(converted))
		}
		tw.Flush()
	}
	for _, g := range res.Groups {
		fmt.Fprintf(w, "\n%s = %s\n", res.Breakdown, label(g.Value, g.Marker))
		printFunnelSteps(w, g.Steps, res.CountBy)
	}
}

func formatSeconds(f float64) string {
	s := int64(f)
	if float64(s) != f { // a sub-second part: as a Go duration, 1µs or 1.5s
		return time.Duration(math.Round(f * float64(time.Second))).String()
	}
	switch {
	case s%86400 == 0 && s >= 2*86400:
		return fmt.Sprintf("%dd", s/86400)
	case s%3600 == 0:
		return fmt.Sprintf("%dh", s/3600)
	}
	return fmt.Sprintf("%ds", s)
}

// label is how the tables show a value of an answer: a marker (store.MarkerNone, …) as words in
// parentheses, a real value as it is, or Go-quoted (quote) when it could be mistaken (mistakable),
// so two values never print alike and a value never prints like a marker: an event named
// "(exit)" prints as "(exit)" in quotes, the value " 100" as " 100" in quotes. A touchpoint is
// given as the step that asks about it (store.TouchpointStep: the answer's step), so that pasted
// back into --anchor, --steps or --exclude it means what was counted: the event "event:x" prints
// as event\:x, an event named like a stage as event:NAME.
func label(value, marker string) string {
	switch marker {
	case "":
	case store.MarkerNone:
		return "(no value)"
	case store.MarkerOther:
		return "(other values)"
	default:
		return "(" + marker + ")"
	}
	if mistakable(value) {
		return quote(value)
	}
	return value
}

// mistakable reports whether a real value printed as it is could be read as a marker or as
// another value: it is empty; in parentheses, like a marker; starts with a quote, like a quoted
// value; has space at either end; holds a character that does not print or prints as nothing
// (invisible); is not UTF-8; holds a separator the tables put between values (" → " in paths,
// ", " in top touchpoints, whose values are steps: there a comma after a backslash is a name's
// own, store.EscapeStep); is not in Unicode's NFC form, so that of the forms of one text that
// print alike ("é" as one code point, or as "e" and a combining accent) only the NFC one prints
// as it is (tester 23's F7); or starts with a character that combines with the one before it (an
// accent), which would sit on what the table prints before the value. Values printed as they are
// never start with a quote and are never in parentheses, so they are apart from the quoted ones
// and from the markers.
func mistakable(v string) bool {
	if v == "" || !utf8.ValidString(v) {
		return true
	}
	first, _ := utf8.DecodeRuneInString(v)
	last, _ := utf8.DecodeLastRuneInString(v)
	return strings.HasPrefix(v, "(") && strings.HasSuffix(v, ")") || first == '"' ||
		unicode.IsSpace(first) || unicode.IsSpace(last) ||
		strings.Contains(v, " → ") || separates(v, ", ") || strings.ContainsFunc(v, invisible) ||
		!norm.NFC.IsNormalString(v) || combining(first)
}

// combining reports whether r is changed by Unicode's NFC normalization or combines with the
// character before it: a combining mark (U+0301), a Hangul vowel or final jamo (U+1161), or a
// character NFC replaces (U+212B ANGSTROM SIGN is U+00C5 Å). Outside these, each character is
// NFC alone and starts a segment of its own, so two texts that differ only in normalization
// differ in one of them.
func combining(r rune) bool {
	p := norm.NFC.PropertiesString(string(r))
	return !p.BoundaryBefore() || !norm.NFC.IsNormalString(string(r))
}

// separates reports whether v holds sep not right after a backslash.
func separates(v, sep string) bool {
	for i := 0; ; i++ {
		j := strings.Index(v[i:], sep)
		if j < 0 {
			return false
		}
		if i+j == 0 || v[i+j-1] != '\\' {
			return true
		}
		i += j
	}
}

// invisible reports whether r prints as nothing or not at all: not printable (control and
// format characters such as U+200B and U+202E, spaces other than ASCII's), or a default-ignorable
// code point (Unicode's DerivedCoreProperties: variation selectors, the Hangul fillers, U+034F).
func invisible(r rune) bool {
	return !unicode.IsPrint(r) || unicode.In(r, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point)
}

// quote is strconv.Quote(v) with every invisible character escaped (strconv.Quote leaves
// printable ones as they are), and, when v is not in NFC form or starts with a combining
// character, every combining one too (combining), so two values never look alike quoted:
// "cafe\u0301" apart from "café" and from "café" quoted for another reason (an end space), and
// no accent sits on the opening quote. strconv.Unquote reads it back.
func quote(v string) string {
	q := strconv.Quote(v)
	escape := invisible
	if first, _ := utf8.DecodeRuneInString(v); !norm.NFC.IsNormalString(v) || combining(first) {
		escape = func(r rune) bool { return invisible(r) || combining(r) }
	}
	if !strings.ContainsFunc(q, escape) {
		return q
	}
	var b strings.Builder
	for _, r := range q {
		switch {
		case !escape(r):
			b.WriteRune(r)
		case r > 0xFFFF:
			fmt.Fprintf(&b, `\U%08x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}

func printRanked(w io.Writer, title string, rows []store.Ranked) {
	if title != "" {
		fmt.Fprintf(w, "\n%s\n", title)
	}
	tw := table(w)
	for _, r := range rows {
		fmt.Fprintf(tw, "  %s\t%d\t%.1f%%\t\n", label(cmp.Or(r.Step, r.Value), r.Marker), r.Count, 100*r.Share)
	}
	tw.Flush()
}

func printDropoff(w io.Writer, v any) {
	res := v.(*store.DropoffResult)
	fmt.Fprintf(w, "%d of %d who reached step %d (%s) did not go on to %s\n", res.Dropped, res.Reached, res.Step, label(res.StepName, ""), label(res.NextStep, ""))
	printRanked(w, "Last touchpoint (event)", res.LastEvents)
	printRanked(w, "Last touchpoint (page or category)", res.LastLocations)
	printRanked(w, "Last touchpoint (channel)", res.LastChannels)
	printRanked(w, "What they did instead (next event)", res.NextEvents)
	more := ""
	if res.PersonsTruncated {
		more = " (more: use --csv)"
	}
	ids := make([]string, len(res.Persons))
	for i, id := range res.Persons {
		ids[i] = personLabel(id)
	}
	fmt.Fprintf(w, "\nPersons%s: %s\n", more, strings.Join(ids, ", "))
}

func printCorrelation(w io.Writer, v any) {
	res := v.(*store.CorrelationResult)
	fmt.Fprintf(w, "%d %s converted, %d entered and did not\n", res.SuccessTotal, res.CountBy, res.FailureTotal)
	if res.Skewed {
		fmt.Fprintln(w, "skewed: one side has more than 10 times the other's units (or none), the odds ratios say little")
	}
	what, column, few := "touchpoints", "TOUCHPOINT", "done by"
	if res.Breakdown != "" {
		what, column, few = "values", strings.ToUpper(res.Breakdown), "each of"
	}
	tw := table(w)
	fmt.Fprintf(tw, "CORRELATION\tODDS RATIO\tCONVERTED\tDID NOT\t  %s\n", column)
	for _, e := range res.Events {
		// The odds ratio as the API gives it (rounded to 4 decimals), never in e-notation.
		odds := strconv.FormatFloat(e.OddsRatio, 'f', -1, 64)
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t  %s\n", e.CorrelationType, odds, e.SuccessCount, e.FailureCount, label(cmp.Or(e.Step, e.Value), e.Marker))
	}
	tw.Flush()
	if res.LeftOut > 0 {
		fmt.Fprintf(w, "%d %s left out, %s too few %s to be listed (fewer than 25, or than 2%% of them if that is fewer)\n", res.LeftOut, what, few, res.CountBy)
	}
}

// personLabel is a person id as the drop-off's Persons line prints it: as it is, or quoted (see
// quote) when it is mistakable or holds a comma, so that the list splits back into its ids.
func personLabel(id string) string {
	if mistakable(id) || strings.Contains(id, ",") {
		return quote(id)
	}
	return id
}

func printPaths(w io.Writer, v any) {
	res := v.(*store.PathsResult)
	converting := "converting = " + label(res.Convert, "") + " at or after it"
	if res.Convert == "" {
		converting = "no conversion counted (the journey map has no stage conversion; --convert names one)"
	}
	fmt.Fprintf(w, "%d persons with %s; paths that %s there; %s\n", res.Persons, label(res.Anchor, ""), map[string]string{"start": "start", "end": "end"}[res.Direction], converting)
	tw := table(w)
	fmt.Fprintln(tw, "PERSONS\tCONVERTED\tRATE\t  PATH")
	for _, p := range res.Paths {
		steps := make([]string, 0, len(p.Touchpoints)+1)
		for _, t := range p.Steps {
			steps = append(steps, label(t, ""))
		}
		switch p.Marker {
		case store.MarkerStart:
			steps = append([]string{label("", p.Marker)}, steps...)
		case store.MarkerExit:
			steps = append(steps, label("", p.Marker))
		}
		fmt.Fprintf(tw, "%d\t%d\t%.1f%%\t  %s\n", p.Persons, p.Converted, 100*p.ConversionRate, strings.Join(steps, " → "))
	}
	tw.Flush()
}

func printNext(w io.Writer, v any) {
	res := v.(*store.NextResult)
	fmt.Fprintf(w, "%d persons with %s; their %s touchpoint:\n\n", res.Persons, label(res.Anchor, ""), res.Direction)
	printRanked(w, "", res.Touchpoints)
}

func printRetention(w io.Writer, v any) {
	res := v.(*store.RetentionResult)
	fmt.Fprintf(w, "%d persons first did %s; %d (%.1f%%) came back with %s; median time to return %s, p90 %s\n\n",
		res.Persons, label(res.Conversion, ""), res.Repeaters, 100*res.RepeatRate, label(res.Return, ""), seconds(res.MedianSeconds), seconds(res.P90Seconds))
	tw := table(w)
	// +0: came back later within the cohort's own period, so that every repeater of the
	// headline is in a cell.
	fmt.Fprintf(tw, "COHORT (%s)\tPERSONS\t+0\t", res.Period)
	if len(res.Cohorts) > 0 {
		for i := range res.Cohorts[0].Rates {
			fmt.Fprintf(tw, "+%d\t", i+1)
		}
	}
	fmt.Fprintln(tw)
	for _, c := range res.Cohorts {
		fmt.Fprintf(tw, "%s\t%d\t%.1f%%\t", c.Start.Format("2006-01-02"), c.Persons, 100*c.SamePeriodRate)
		for _, r := range c.Rates {
			fmt.Fprintf(tw, "%.1f%%\t", 100*r)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nTime to return")
	tw = table(w)
	for _, b := range res.Histogram {
		fmt.Fprintf(tw, "  %s\t%d\t\n", b.Label, b.Count)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nRepeat rate by acquisition channel (first touch)")
	tw = table(w)
	for _, c := range res.ByChannel {
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%.1f%%\t\n", label(c.Channel, c.Marker), c.Persons, c.Repeaters, 100*c.RepeatRate)
	}
	tw.Flush()
}

func printStages(w io.Writer, v any) {
	res := v.(*store.StagesResult)
	tw := table(w)
	// MOVED ON and EXIT RATE are of those entering; ALL MOVED ON is the flow out of the stage,
	// whenever its persons entered it (store.StageHealth).
	fmt.Fprintln(tw, "STAGE\tENTERED\tMOVED ON\tEXIT RATE\tALL MOVED ON\tMEDIAN DWELL\tNPS\tPROMOTERS/PASSIVES/DETRACTORS\tSURVEYS\tMEAN SCORE\t  TOP TOUCHPOINTS")
	var ignored []string
	for _, s := range res.Stages {
		score := "-"
		if s.MeanScore != nil {
			score = scoreText(*s.MeanScore)
		}
		nps, split := "-", "-"
		if s.NPS != nil {
			nps = strconv.FormatFloat(s.NPS.Score, 'f', -1, 64)
			split = fmt.Sprintf("%d/%d/%d", s.NPS.Promoters, s.NPS.Passives, s.NPS.Detractors)
		}
		var top []string
		for _, t := range s.TopTouchpoints {
			top = append(top, fmt.Sprintf("%s %.0f%%", label(cmp.Or(t.Step, t.Value), t.Marker), 100*t.Share))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f%%\t%d\t%s\t%s\t%s\t%d\t%s\t  %s\n", s.Stage, s.Entered, s.EnteredMovedOn, 100*s.ExitRate, s.MovedOn,
			seconds(s.MedianDwellSeconds), nps, split, s.SurveyResponses, score, strings.Join(top, ", "))
		for _, reason := range slices.Sorted(maps.Keys(s.IgnoredScores)) {
			ignored = append(ignored, fmt.Sprintf("%s %d %s", s.Stage, s.IgnoredScores[reason], reason))
		}
	}
	tw.Flush()
	for _, reason := range slices.Sorted(maps.Keys(res.IgnoredScores)) {
		ignored = append(ignored, fmt.Sprintf("no stage %d %s", res.IgnoredScores[reason], reason))
	}
	if len(ignored) > 0 {
		fmt.Fprintf(w, "\nSurvey scores left out of the NPS and the means (no number, outside the survey's scale, or given before any stage): %s\n", strings.Join(ignored, ", "))
	}
}

// scoreText prints a mean survey score with two decimals, and one far outside any survey's scale
// (an older server's answer) in at most three significant digits, never as hundreds of digits.
func scoreText(v float64) string {
	if math.Abs(v) < 1e6 {
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}
