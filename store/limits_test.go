package store_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
	"github.com/waymark-dev/waymark/store"
)

// writeEvents stores events as the pipeline would.
func writeEvents(t testing.TB, s *store.Store, events []ingest.Event) {
	t.Helper()
	if err := s.Write(context.Background(), sessionize.Batch{Events: events, Channels: make([]string, len(events))}); err != nil {
		t.Fatal(err)
	}
}

// tiedEvents are n events name of user at one second, with distinct message ids (one /v1/batch
// of a bot, or of a client whose clock ticks in seconds).
func tiedEvents(user, name string, n int) []ingest.Event {
	events := make([]ingest.Event, n)
	for i := range events {
		events[i] = ev(user, name, 0)
		events[i].MessageID = fmt.Sprintf("%s-%d", user, i)
	}
	return events
}

// repeat is the steps parameter repeating step n times.
func repeat(step string, n int) string {
	return strings.TrimSuffix(strings.Repeat(step+",", n), ",")
}

// TestHostileQueries holds the rows of the hostile-input table (../shared/cases/hostile/README.md)
// that are queries, and their kin: each gets an exact answer or a ParamError naming the parameter.
func TestHostileQueries(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	events := append(tiedEvents("twelve", "V", 12), tiedEvents("thousand", "V", 1000)...)
	events = append(events, ev("other", "Order Completed", 60))
	writeEvents(t, s, events)
	// reached returns a funnel answer's customers per step.
	reached := func(body map[string]any) string {
		var out []string
		for _, st := range body["steps"].([]any) {
			out = append(out, fmt.Sprint(st.(map[string]any)["customers"]))
		}
		return strings.Join(out, " ")
	}
	twelveTwice := strings.TrimSpace(strings.Repeat("2 ", 12))
	manyFilters := "V[" + strings.Repeat("revenue>1;", 5000) + "]"
	tests := []struct {
		name   string
		query  string
		params url.Values
		param  string // the parameter a ParamError names; "": an answer
		want   string // of an answer: customers per step (funnel) or dropped (dropoff)
	}{
		{"row 3: 12 same-second events, 12 repeated steps", "funnel", url.Values{"steps": {repeat("V", 12)}}, "", twelveTwice},
		{"row 3, strict", "funnel", url.Values{"steps": {repeat("V", 12)}, "mode": {"strict"}}, "", twelveTwice},
		{"row 3, any order", "funnel", url.Values{"steps": {repeat("V", 12)}, "mode": {"any"}}, "", twelveTwice},
		{"row 3, by sessions of no stored session", "funnel", url.Values{"steps": {repeat("V", 12)}, "count_by": {"sessions"}}, "", strings.TrimSpace(strings.Repeat("0 ", 12))},
		{"1,000 same-second events, 32 repeated steps", "funnel", url.Values{"steps": {repeat("V", 32)}},
			"", strings.TrimSpace(strings.Repeat("2 ", 12) + strings.Repeat("1 ", 20))},
		{"1,000 same-second events, 32 repeated steps, broken down", "funnel", url.Values{"steps": {repeat("V", 32)}, "breakdown": {"channel"}},
			"", strings.TrimSpace(strings.Repeat("2 ", 12) + strings.Repeat("1 ", 20))},
		{"drop-off after 12 of 32 repeated steps", "dropoff", url.Values{"steps": {repeat("V", 32)}, "step": {"12"}}, "", "1"},
		{"row 4: to=9999-12-31", "funnel", url.Values{"steps": {"V"}, "to": {"9999-12-31"}}, "to", ""},
		{"from=0001-01-01 is not 'no from'", "funnel", url.Values{"steps": {"V"}, "from": {"0001-01-01"}}, "from", ""},
		{"from before 1970", "paths", url.Values{"anchor": {"V"}, "from": {"1969-12-31T23:59:59Z"}}, "from", ""},
		{"to after 2100", "retention", url.Values{"to": {"2100-01-01T00:00:00.001Z"}}, "to", ""},
		{"to in 2106, past ClickHouse's dates", "stages", url.Values{"to": {"2106-03-01"}}, "to", ""},
		{"from=1970-01-01 is a bound", "funnel", url.Values{"steps": {"V"}, "from": {"1970-01-01"}}, "", "2"},
		{"from in lower-case RFC 3339", "funnel", url.Values{"steps": {"V"}, "from": {"1970-01-01t00:00:00z"}}, "", "2"},
		{"to in lower-case RFC 3339 with an offset", "funnel", url.Values{"steps": {"V"}, "to": {"2099-12-31t23:00:00-00:30"}, "window": {"366d"}}, "", "2"},
		{"to with an offset of 24 hours", "funnel", url.Values{"steps": {"V"}, "to": {"2099-12-31T00:00:00+24:00"}}, "to", ""},
		{"to=2100-01-01 is a bound", "funnel", url.Values{"steps": {"V"}, "to": {"2100-01-01"}, "window": {"366d"}}, "", "2"},
		{"the first bound, stages", "stages", url.Values{"from": {"1970-01-01"}, "to": {"1970-01-02"}}, "", ""},
		{"the last bound, stages", "stages", url.Values{"from": {"2099-12-31"}, "to": {"2100-01-01"}}, "", ""},
		{"a range over 366 days", "stages", url.Values{"from": {"1970-01-01"}, "to": {"2100-01-01"}}, "to", ""},
		{"a step with thousands of ; filters", "funnel", url.Values{"steps": {manyFilters}}, "steps", ""},
		{"eleven filters", "funnel", url.Values{"steps": {"V[" + strings.Repeat("a=1;", 11) + "]"}}, "steps", ""},
		{"a step longer than MaxTextBytes", "funnel", url.Values{"steps": {strings.Repeat("V", store.MaxTextBytes+1)}}, "steps", ""},
		{"an anchor longer than MaxTextBytes", "next", url.Values{"anchor": {strings.Repeat("V", store.MaxTextBytes+1)}}, "anchor", ""},
		{"a filter on NaN", "funnel", url.Values{"steps": {"V[revenue>NaN]"}}, "steps", ""},
		{"a filter on infinity", "funnel", url.Values{"steps": {"V[revenue<=-Inf]"}}, "steps", ""},
		{"a regexp Go reads and ClickHouse does not", "funnel", url.Values{"steps": {"V[coupon~=(?<x>a)]"}}, "steps", ""},
		{"an exclusion's range with an en dash", "funnel", url.Values{"steps": {"V,V"}, "exclude": {"V:1–2"}}, "exclude", ""},
		{"a regexp in an exclusion", "funnel", url.Values{"steps": {"V,V"}, "exclude": {"V[coupon~=(?<x>a)]"}}, "exclude", ""},
		{"a window of days that overflows", "funnel", url.Values{"steps": {"V"}, "window": {"213504d"}}, "window", ""},
		{"33 exclusions", "funnel", url.Values{"steps": {"V,V"}, "exclude": {repeat("V", 33)}}, "exclude", ""},
		{"breakdown_limit 0", "funnel", url.Values{"steps": {"V"}, "breakdown_limit": {"0"}}, "breakdown_limit", ""},
		// digits only, as 1e2 and 3.0 are refused (tester 49's F6)
		{"breakdown_limit with a plus", "funnel", url.Values{"steps": {"V"}, "breakdown_limit": {"+5"}}, "breakdown_limit", ""},
		{"ids_limit minus zero", "dropoff", url.Values{"steps": {"V,V"}, "ids_limit": {"-0"}}, "ids_limit", ""},
		{"limit over 1000", "dropoff", url.Values{"steps": {"V,V"}, "limit": {"1001"}}, "limit", ""},
		{"ids_limit negative", "dropoff", url.Values{"steps": {"V,V"}, "ids_limit": {"-1"}}, "ids_limit", ""},
		{"depth 11", "paths", url.Values{"anchor": {"V"}, "depth": {"11"}}, "depth", ""},
		{"periods 53", "retention", url.Values{"periods": {"53"}}, "periods", ""},
		{"a long breakdown name", "funnel", url.Values{"steps": {"V"}, "breakdown": {"property:" + strings.Repeat("p", store.MaxTextBytes)}}, "breakdown", ""},
		{"a long held property's name", "funnel", url.Values{"steps": {"V"}, "hold": {"property:" + strings.Repeat("p", store.MaxTextBytes)}}, "hold", ""},
		{"a held property never stored", "dropoff", url.Values{"steps": {"V,V"}, "hold": {"property:sku"}}, "hold", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := ask(t, s, tt.query, tt.params)
			var pe *store.ParamError
			switch {
			case tt.param != "":
				if !errors.As(err, &pe) || pe.Param != tt.param {
					t.Errorf("got %v, want a ParamError naming %s", err, tt.param)
				}
			case err != nil:
				t.Fatalf("got %v, want an answer", err)
			case tt.want != "" && tt.query == "funnel":
				if got := reached(body); got != tt.want {
					t.Errorf("customers %s, want %s", got, tt.want)
				}
			case tt.want != "":
				if got := fmt.Sprint(body["dropped"]); got != tt.want {
					t.Errorf("dropped %s, want %s", got, tt.want)
				}
			}
		})
	}
}

// TestParametersAtTheirLimitsRunOnClickHouse runs the largest queries validation lets through:
// ClickHouse answers them all (an error here is a limit missing from validation).
func TestParametersAtTheirLimitsRunOnClickHouse(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	writeEvents(t, s, []ingest.Event{withFilterProperties(ev("a", "V", 0)), ev("a", "Order Completed", 10), ev("b", "V", 5)})
	// Steps as large as allowed: ten filters, with the operators that make the most SQL, filling
	// size bytes; i makes each different (equal steps share their SQL).
	fill := func(size, i int, name string, filters ...string) string {
		filters = append(filters, fmt.Sprintf("n>=%d", i))
		step := name + "[" + strings.Join(filters, ";") + "]"
		if pad := size - len(step) - len(";p="); pad > 0 {
			// MaxFilterChoices values filling the rest (fewer, if it is short), the last one
			// longer by what the division leaves.
			n := min(store.MaxFilterChoices, (pad+1)/2)
			w := (pad+1)/n - 1
			choices := slices.Repeat([]string{strings.Repeat("x", w)}, n)
			choices[n-1] += strings.Repeat("x", pad-(n*w+n-1))
			step = name + "[" + strings.Join(filters, ";") + ";p=" + strings.Join(choices, "|") + "]"
		}
		return step
	}
	numeric := []string{"a>1", "b>=-1e300", "c<1", "d<=2", "e>0.5", "f>=3", "g<4"}
	oneOf := func(i int) string { return fill(store.MaxTextBytes, i, "V", append(numeric, "i~=^(a|b)[0-9]{3}$")...) }
	stage := func(i int) string {
		return fill(store.MaxTextBytes, i, "awareness", append(numeric, "campaign.medium^=e")...)
	}
	quoted := func(i int) string { return fill(store.MaxTextBytes, i, "V", `q='\'`, `r=\\\'?`) }
	steps := func(n int, step func(int) string) string {
		var out []string
		for i := range n {
			out = append(out, step(i))
		}
		return strings.Join(out, ",")
	}
	var exclusions []string
	for i := range store.MaxExclusions {
		exclusions = append(exclusions, fill(store.MaxTextBytes-5, i, "V", numeric...)+":1-30")
	}
	for _, x := range append(strings.Split(steps(32, stage), ","), exclusions...) {
		if len(x) > store.MaxTextBytes || len(x) < store.MaxTextBytes-10 {
			t.Fatalf("a step of %d bytes: %s", len(x), x)
		}
	}
	cases := []struct {
		query string
		v     url.Values
	}{
		{"funnel", url.Values{"steps": {steps(32, oneOf)}, "from": {"2099-01-01"}, "to": {"2100-01-01"}, "window": {"366d"}}},
		{"funnel", url.Values{"steps": {steps(32, stage)}, "breakdown": {"property:" + strings.Repeat("t", 900)}, "breakdown_limit": {"1000"}}},
		{"funnel", url.Values{"steps": {steps(31, stage)}, "mode": {"strict"}, "breakdown": {"trait:" + strings.Repeat("t", 900)}}},
		{"funnel", url.Values{"steps": {steps(32, quoted)}, "mode": {"any"}, "count_by": {"sessions"}}},
		{"funnel", url.Values{"steps": {repeat("V", 30)}, "exclude": {strings.Join(exclusions, ",")}}},
		{"dropoff", url.Values{"steps": {steps(31, stage)}, "step": {"1"}, "limit": {"1000"}, "ids_limit": {"100000"}, "to": {"2100-01-01"}, "window": {"366d"}}},
		{"paths", url.Values{"anchor": {stage(0)}, "convert": {oneOf(0)}, "depth": {"10"}, "limit": {"1000"}, "from": {"2099-01-01"}, "to": {"2100-01-01"}, "window": {"366d"}, "direction": {"end"}, "collapse": {"true"}}},
		{"next", url.Values{"anchor": {oneOf(0)}, "from": {"1970-01-01"}, "window": {"1ns"}, "direction": {"previous"}}},
		{"retention", url.Values{"conversion": {stage(0)}, "return": {oneOf(0)}, "period": {"month"}, "periods": {"52"}, "to": {"2100-01-01"}}},
		{"stages", url.Values{"from": {"2099-12-31"}, "to": {"2100-01-01"}, "limit": {"100"}}},
	}
	for _, c := range cases {
		if _, err := ask(t, s, c.query, c.v); err != nil {
			t.Errorf("%s (%d bytes of parameters): %v", c.query, len(c.v.Encode()), err)
		}
	}
}

// TestValidatedParametersNeverFailOnClickHouse throws random parameters, drawn near every limit,
// at every query: each is answered, or refused with a ParamError naming a parameter of the
// request; never another error.
func TestValidatedParametersNeverFailOnClickHouse(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	writeEvents(t, s, []ingest.Event{withFilterProperties(ev("a", "V", 0)), ev("a", "Order Completed", 10), ev("b", "V", 5)})
	rng := rand.New(rand.NewPCG(14, 4))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	// either draws a value near a limit: one that passes, or while the request's budget lasts
	// sometimes one just past it.
	bad, early := 0, false
	either := func(good, worse []string) string {
		if bad > 0 && rng.IntN(6) == 0 {
			bad--
			return pick(worse...)
		}
		return pick(good...)
	}
	times := func() string {
		if early { // near the first bound
			return either([]string{"", "1970-01-01", "1970-01-01T00:00:00.001Z", "1970-01-02T01:00:00+01:00", "1970-06-01"}, []string{"1969-12-31", "0001-01-01", "0000-01-01T00:00:00Z"})
		}
		return either([]string{"", "2099-12-31T23:59:59.999999999Z", "2100-01-01", "2100-01-01T01:00:00+01:00", "2099-06-01", "2026-03-01T12:00:00-23:59"},
			[]string{"1969-12-31", "2100-01-02", "2105-12-31", "9999-12-31", "0001-01-01", "0000-01-01T00:00:00Z", "2026-02-30", "+2026-03-01"})
	}
	window := func() string {
		return either([]string{"", "1ns", "1ms", "24h", "366d", "8784h", "7d", "1d"},
			[]string{"0s", "-1h", "367d", "8784h0m0.000000001s", "106751d", "213504d", "9223372036854775807ns", "1e3h", "d", "-0d"})
	}
	filter := func() string {
		return either([]string{"a>1", "a>=1e308", "a<-1e308", "a>0x1p-2", "a=", "a^=", "a~=", "a~=(?P<n>x)", "a~=x{1000}",
			"page.path^=/", "campaign.medium=a|b|c", "a=x|" + strings.Repeat("y|", 100) + "z", "a='", `a=\`, "a=?", "properties.a=1"},
			[]string{"a>1e309", "a<=NaN", "a>Inf", "=x", "a~=(?<n>x)", "a~=(x{100}){100}", "a~=\\C", "a"})
	}
	step := func() string {
		name := either([]string{"V", "Order Completed", "awareness", "conversion", "loyalty", "page", "screen", "V "}, []string{"Unknown"})
		if rng.IntN(2) == 0 {
			return name
		}
		var fs []string
		for range rng.IntN(11) {
			fs = append(fs, filter())
		}
		return name + "[" + strings.Join(fs, ";") + "]"
	}
	steps := func() string {
		var out []string
		for range 1 + rng.IntN(32) {
			out = append(out, step())
		}
		return strings.Join(out, ",")
	}
	// number draws a whole number for a parameter from lo to hi.
	number := func(lo, hi int) func() string {
		return func() string {
			return either([]string{"", strconv.Itoa(lo), strconv.Itoa(hi), strconv.Itoa((lo + hi) / 2)},
				[]string{strconv.Itoa(lo - 1), strconv.Itoa(hi + 1), "1e3", "x", "9223372036854775808"})
		}
	}
	hold := func() string {
		return either([]string{"", "", "property:a", "property:" + strings.Repeat("t", 900)},
			[]string{"property:", "trait:a", "channel", "property:" + strings.Repeat("p", store.MaxTextBytes-len("property:")+1)})
	}
	queries := map[string]map[string]func() string{
		"funnel": {"steps": steps, "window": window, "from": times, "to": times,
			"mode": func() string { return either([]string{"", "ordered", "strict", "any"}, []string{"sideways"}) },
			"exclude": func() string {
				return either([]string{"", "", step() + ":1-2", step()},
					[]string{step() + ":2-1", step() + ":0-33", repeat(step(), 33), step() + ":1-99999999999999999999"})
			},
			"count_by": func() string { return either([]string{"", "persons", "sessions"}, []string{"x"}) },
			"breakdown": func() string {
				return either([]string{"", "channel", "campaign", "device", "trait:customer_type", "property:category", "property:" + strings.Repeat("p", store.MaxTextBytes-len("property:"))},
					[]string{"property:", "trait", "x", "property:" + strings.Repeat("p", store.MaxTextBytes-len("property:")+1)})
			},
			"breakdown_limit": number(1, 1000), "hold": hold},
		"dropoff": {"steps": steps, "window": window, "from": times, "to": times, "step": number(0, 1), "limit": number(1, 1000), "ids_limit": number(0, 100000), "hold": hold,
			"mode": func() string { return pick("", "ordered", "strict") }, "count_by": func() string { return pick("", "persons", "sessions") }},
		"paths": {"anchor": step, "convert": step, "window": window, "from": times, "to": times, "depth": number(2, 10), "limit": number(1, 1000),
			"direction": func() string { return either([]string{"", "start", "end"}, []string{"x"}) },
			"collapse":  func() string { return either([]string{"", "true", "0"}, []string{"yes"}) }},
		"next": {"anchor": step, "window": window, "from": times, "to": times, "limit": number(1, 1000),
			"direction": func() string { return either([]string{"", "next", "previous"}, []string{"x"}) }},
		"retention": {"conversion": step, "return": step, "from": times, "to": times, "periods": number(1, 52),
			"period": func() string { return either([]string{"", "week", "month"}, []string{"day"}) }},
		"stages": {"from": times, "to": times, "limit": number(1, 100)},
	}
	answered, refused := 0, 0
	for i := range 100 {
		for name, params := range queries {
			bad, early = rng.IntN(2), rng.IntN(2) == 0
			v := url.Values{}
			for param, gen := range params {
				if x := gen(); x != "" {
					v.Set(param, x)
				}
			}
			_, err := ask(t, s, name, v)
			var pe *store.ParamError
			switch {
			case err == nil:
				answered++
			case errors.As(err, &pe):
				refused++
				if _, ok := v[pe.Param]; !ok && pe.Param != "steps" && pe.Param != "anchor" {
					t.Errorf("case %d: %s?%s: the error names %s, not a parameter of the request: %v", i, name, v.Encode(), pe.Param, err)
				}
			default:
				t.Errorf("case %d: %s?%s: %v", i, name, v.Encode(), err)
			}
		}
	}
	t.Logf("%d answered, %d refused", answered, refused)
	if answered == 0 || refused == 0 {
		t.Errorf("%d answered, %d refused: the draws should give both", answered, refused)
	}
}

// logWatch is a slog handler that passes each record's message to the test.
type logWatch struct{ msgs chan string }

func newLogWatch() *logWatch                                 { return &logWatch{msgs: make(chan string, 1000)} }
func (l *logWatch) Enabled(context.Context, slog.Level) bool { return true }
func (l *logWatch) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logWatch) WithGroup(string) slog.Handler            { return l }
func (l *logWatch) Handle(_ context.Context, r slog.Record) error {
	select {
	case l.msgs <- r.Message:
	default: // the test reads only the first thousand
	}
	return nil
}

// wait returns once a record with msg has been logged. It fails the test after two minutes:
// that only guards against hanging, what it waits for takes milliseconds.
func (l *logWatch) wait(t *testing.T, msg string) {
	t.Helper()
	guard := time.After(2 * time.Minute)
	for {
		select {
		case m := <-l.msgs:
			if m == msg {
				return
			}
		case <-guard:
			t.Fatalf("no log %q", msg)
		}
	}
}

// heavyPerson is a person whose funnel takes a long time to match: n events V at distinct times
// within a day, for a funnel in any order of 31 steps V and a last step X they never take, so
// every start matches the steps to every event of its day (n² work: many minutes for n = 100,000).
// (In order, the same takes a few milliseconds.)
func heavyPerson(n int) []ingest.Event {
	events := make([]ingest.Event, n, n+1)
	for i := range events {
		events[i] = ev("heavy", "V", 0)
		events[i].MessageID = fmt.Sprintf("heavy-%d", i)
		events[i].Timestamp = t0.Add(time.Duration(i) * 400 * time.Millisecond)
	}
	return append(events, ev("other", "X", 0))
}

var heavySteps = url.Values{"steps": {repeat("V", 31) + ",X"}, "mode": {"any"}}

// TestQueriesAreBounded: a query that takes long holds one of the --query-concurrency slots (one
// more fails with ErrBusy) until its context is cancelled (its client went away), which stops it;
// a query over --query-timeout fails with ErrQueryLimit. The API answers both errors with 503 and
// Retry-After (queryapi's TestFailedQueriesAnswer). The matching runs in process (the in-engine
// one is TestEngineMatchingIsBounded).
func TestQueriesAreBounded(t *testing.T) {
	t.Parallel()
	var database string
	writeEvents(t, openStoreWith(t, func(c *store.Config) { database = c.Database }), heavyPerson(100_000))
	// A serving store: one query at a time, an hour for each; it logs to the test.
	logs := newLogWatch()
	s, err := store.Open(context.Background(), store.Config{Addr: server.Addr, Database: database, QueryConcurrency: 1, QueryTimeout: time.Hour,
		FunnelMatching: store.MatchProcess},
		slog.New(logs), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	jm := defaultMap(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := s.Query(ctx, jm, "funnel", heavySteps)
		if err == nil {
			err = errors.New("the heavy query answered")
		}
		done <- err
	}()
	logs.wait(t, "matching a unit with many events; --query-timeout bounds the query")

	// The heavy query holds the only slot.
	if _, err := ask(t, s, "funnel", url.Values{"steps": {"X"}}); !errors.Is(err, store.ErrBusy) {
		t.Errorf("a query beyond --query-concurrency: %v, want ErrBusy", err)
	}

	// Its client goes away: the query stops, and its slot is free again.
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("heavy query: %v, want it stopped by its cancelled context", err)
	}
	if _, err := ask(t, s, "funnel", url.Values{"steps": {"X"}}); err != nil {
		t.Errorf("after the heavy query stopped: %v", err)
	}

	// Over --query-timeout (1ns: every query is), ErrQueryLimit, whatever part it was in.
	short, err := store.Open(context.Background(), store.Config{Addr: server.Addr, Database: database, QueryTimeout: time.Nanosecond}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer short.Close()
	if _, err := ask(t, short, "funnel", heavySteps); !errors.Is(err, store.ErrQueryLimit) {
		t.Errorf("a query over --query-timeout: %v, want ErrQueryLimit", err)
	}
}

// TestEngineMatchingIsBounded: matched inside ClickHouse, a funnel over --query-timeout fails
// with ErrQueryLimit, and the waymark_funnel process matching it stops too (ClickHouse lets a
// pool process finish its chunk: the spec carries the timeout).
func TestEngineMatchingIsBounded(t *testing.T) {
	if !server.FunnelUDF {
		t.Skip("the engine has no waymark_funnel UDF")
	}
	var database string
	writeEvents(t, openStoreWith(t, func(c *store.Config) { database = c.Database }), heavyPerson(100_000))
	s := openStoreWith(t, func(c *store.Config) {
		c.Database, c.FunnelMatching, c.QueryTimeout = database, store.MatchEngine, 2*time.Second
	})
	q := store.FunnelQuery{Steps: strings.Split(repeat("V", 31)+",X", ","), Window: 24 * time.Hour, Mode: store.ModeAny}
	if _, err := s.Funnel(context.Background(), defaultMap(t), q); !errors.Is(err, store.ErrQueryLimit) {
		t.Fatalf("got %v, want ErrQueryLimit", err)
	}
	// Every waymark_funnel process of this server is soon idle (blocked reading) or gone; the
	// heavy person alone would keep one busy for many minutes. The wait only guards against hanging.
	guard := time.Now().Add(2 * time.Minute)
	for {
		busy := busyUDFProcesses(t, server.Dir)
		if len(busy) == 0 {
			return
		}
		if time.Now().After(guard) {
			t.Fatalf("waymark_funnel processes still running: %v", busy)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// busyUDFProcesses lists the pids of the running (state R) `waymark udf-funnel` processes whose
// binary is under dir.
func busyUDFProcesses(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var busy []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !strings.HasPrefix(string(cmdline), dir) || !strings.Contains(string(cmdline), "udf-funnel") {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone
		}
		// "pid (comm) S …": the state follows the command's closing parenthesis.
		if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'R' {
			busy = append(busy, e.Name())
		}
	}
	return busy
}

// withFilterProperties gives e every property the filters of these tests name, so a filter is
// never refused for naming a property no stored event has.
func withFilterProperties(e ingest.Event) ingest.Event {
	e.PropertyKeys = append(strings.Split("a b c d e f g i n p q r", " "), strings.Repeat("t", 900), ingest.TraitPrefix+strings.Repeat("t", 900))
	slices.Sort(e.PropertyKeys)
	e.PropertyValues = make([]string, len(e.PropertyKeys))
	return e
}

// TestCheckJourneyMapAsksClickHouse checks that a journey map whose regular expression ClickHouse
// cannot compile is refused by name before serve serves (its stage queries would all fail), and
// that the shipped map passes.
func TestCheckJourneyMapAsksClickHouse(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := context.Background()
	if err := s.CheckJourneyMap(ctx, defaultMap(t)); err != nil {
		t.Errorf("the default journey map: %v", err)
	}
	re := `^\pL{1000}$` // Go compiles it; re2 finds it over its memory limit, on both engines
	bad, err := sessionize.ParseMap([]byte("version: v\nstages:\n  - name: vip\n    rules:\n      - where:\n          - field: tier\n            regexp: '" + re + "'\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = s.CheckJourneyMap(ctx, bad)
	if err == nil || !strings.Contains(err.Error(), `stage "vip"`) || !strings.Contains(err.Error(), strconv.Quote(re)) {
		t.Errorf("got %v, want an error naming stage vip and %q", err, re)
	}
}
