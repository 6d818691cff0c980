package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
	"github.com/waymark-dev/waymark/store"
	"github.com/waymark-dev/waymark/store/storetest"
)

// ask runs the named journey query with text parameters as the API and the CLI do
// (Store.Query, the built-in journey map), and returns its answer as they print it, read back
// from JSON.
func ask(t testing.TB, s *store.Store, name string, v url.Values) (map[string]any, error) {
	t.Helper()
	res, err := s.Query(context.Background(), defaultMap(t), name, v)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(mustJSON(t, res)), &out); err != nil {
		t.Fatalf("%s?%s: the answer is not a JSON object: %v", name, v.Encode(), err)
	}
	return out, nil
}

// TestQueryParametersResistInjection throws SQL-injection payloads at every parameter of every
// query: each answer matched nothing or is a ParamError naming the parameter, and the data is
// untouched.
func TestQueryParametersResistInjection(t *testing.T) {
	t.Parallel()
	_, s := storedRefData(t, 23, 50)
	before, err := s.Sessions(context.Background(), defaultMap(t), store.SessionsQuery{From: t0.AddDate(-1, 0, 0), To: t0.AddDate(1, 0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	payloads := []string{
		`x' OR '1'='1`, `x') OR 1=1 --`, `'; DROP TABLE events; --`, `\' OR 1 --`, `?`, `x\`,
		`{name:String}`, `') UNION ALL SELECT name, [], [], [] FROM system.tables --`, "x\x00y", `@p`,
	}
	// Every parameter of every query, as the schema lists them.
	base := map[string]url.Values{"funnel": {"steps": {"Product Viewed,Order Completed"}}, "dropoff": {"steps": {"Product Viewed,Order Completed"}}, "correlation": {"steps": {"Product Viewed,Order Completed"}},
		"paths": {"anchor": {"Product Viewed"}}, "next": {"anchor": {"Product Viewed"}}}
	type query struct {
		name   string
		base   url.Values
		params []string
	}
	var queries []query
	for _, name := range store.QueryNames() {
		q := query{name: name, base: base[name]}
		for _, p := range store.QueryParams(name) {
			q.params = append(q.params, p.Name)
		}
		queries = append(queries, q)
	}
	if len(queries) < 7 {
		t.Fatalf("%d queries, want funnel, dropoff, paths, next, retention, stages and sessions", len(queries))
	}
	// Parameters that name events: a payload there is a name nobody sent.
	matchesNothing := map[string]func(map[string]any) bool{
		"steps":      func(r map[string]any) bool { return r["steps"].([]any)[0].(map[string]any)["customers"] == 0.0 },
		"anchor":     func(r map[string]any) bool { return r["persons"] == 0.0 },
		"conversion": func(r map[string]any) bool { return r["persons"] == 0.0 },
	}
	for _, q := range queries {
		for _, param := range q.params {
			for _, payload := range payloads {
				v := url.Values{}
				for k, vs := range q.base {
					v[k] = vs
				}
				v.Set(param, payload)
				if param == "steps" {
					v.Set(param, payload+","+payload)
				}
				body, err := ask(t, s, q.name, v)
				var pe *store.ParamError
				switch {
				case err == nil:
					if q.name == "correlation" && param == "steps" && (body["success_total"] != 0.0 || body["failure_total"] != 0.0) {
						t.Errorf("%s %s=%q matched events: %v", q.name, param, payload, body)
					}
					if check := matchesNothing[param]; check != nil && q.name != "dropoff" && q.name != "correlation" && !check(body) {
						t.Errorf("%s %s=%q matched events: %v", q.name, param, payload, body)
					}
				case errors.As(err, &pe):
					if pe.Param != param {
						t.Errorf("%s %s=%q: the error names %s, want %s: %v", q.name, param, payload, pe.Param, param, err)
					}
				default:
					t.Errorf("%s %s=%q: %v", q.name, param, payload, err)
				}
			}
		}
	}
	after, err := s.Sessions(context.Background(), defaultMap(t), store.SessionsQuery{From: t0.AddDate(-1, 0, 0), To: t0.AddDate(1, 0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(before) != fmt.Sprint(after) || before.Sessions == 0 {
		t.Errorf("data changed: %+v, then %+v", before, after)
	}
}

// TestPropertyNamesWithPlaceholderCharacters: a filter's property name is written into the SQL
// as a literal, and the client replaces every "?" of a query's text with an argument, inside
// literals too ("$1" makes it refuse the query): property names a client sent with those
// characters must find their events, and a filter value must never become SQL.
func TestPropertyNamesWithPlaceholderCharacters(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	lines := []string{
		`{"type":"track","userId":"p1","event":"Product Viewed","messageId":"q1","timestamp":"2026-03-01T10:00:00Z","properties":{"a?b":"x","c$1":"y","d\\?":"z"}}`,
		`{"type":"track","userId":"p2","event":"Product Viewed","messageId":"q2","timestamp":"2026-03-01T10:00:00Z","properties":{"a?b":"w"}}`,
		`{"type":"track","userId":"p3","event":"Product Viewed","messageId":"q3","timestamp":"2026-03-01T10:00:00Z","properties":{"e":"x"}}`,
	}
	var events []ingest.Event
	for _, l := range lines {
		e, err := ingest.Decode([]byte(l), "test", t0)
		if err != nil {
			t.Fatalf("decode %s: %v", l, err)
		}
		events = append(events, e)
	}
	if err := s.Write(context.Background(), sessionize.Batch{Events: events, Channels: make([]string, len(events))}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		step string
		want float64
	}{
		{`Product Viewed[a?b=x]`, 1},
		{`Product Viewed[a?b=x|w]`, 2},
		{`Product Viewed[a?b^=w]`, 1},
		{`Product Viewed[c$1=y]`, 1},
		{`Product Viewed[d\?=z]`, 1},
		{`Product Viewed[a?b=x') OR 1=1 OR (']`, 0},
		{`Product Viewed[a?b=) OR 1 OR (]`, 0},
		{`Product Viewed[c$1=$1]`, 0},
	} {
		v := url.Values{"steps": {c.step}, "from": {"2026-03-01"}, "to": {"2026-03-02"}}
		body, err := ask(t, s, "funnel", v)
		if err != nil {
			t.Errorf("%s: %v", c.step, err)
			continue
		}
		if got := body["steps"].([]any)[0].(map[string]any)["customers"]; got != c.want {
			t.Errorf("%s: %v persons, want %v", c.step, got, c.want)
		}
	}
}

// TestQueryRegistryIsBuiltOnce: the registry is built once, not on each look-up (every API
// request and command looks its query up), and what it hands out are copies a caller may change.
func TestQueryRegistryIsBuiltOnce(t *testing.T) {
	if n := testing.AllocsPerRun(10, func() { store.QueryNames() }); n != 1 {
		t.Errorf("a look-up allocates %.0f times, want 1 (its copy): the registry is built again", n)
	}
	params := store.QueryParams("funnel")
	params[0].Name = "changed"
	names := store.QueryNames()
	names[0] = "changed"
	if store.QueryParams("funnel")[0].Name == "changed" || store.QueryNames()[0] == "changed" {
		t.Error("changing what QueryParams or QueryNames returned changed the registry")
	}
}

// TestQueryMetricsCountRefusalsApartFromFailures: a query refused for a parameter (a typo, a
// name never stored: the client's error, a 400) is counted in
// waymark_store_query_param_errors_total, not in waymark_store_query_errors_total, which counts
// the store's failures (tester 24: typos raised the failures' counter, the one an alert on
// failures would watch; none of deploy/prometheus's rules does); a query its caller stopped (the
// client went away) is neither.
func TestQueryMetricsCountRefusalsApartFromFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.Database()
	server.DropWhenDone(t, db)
	// open opens a store of db with a registry of its own and a query memory limit.
	open := func(maxMemory uint64) (*store.Store, *prometheus.Registry) {
		reg := prometheus.NewRegistry()
		s, err := store.Open(ctx, store.Config{Addr: server.Addr, Database: db, QueryTimeout: storetest.QueryHangGuard, QueryMaxMemory: maxMemory}, slog.New(slog.DiscardHandler), reg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		return s, reg
	}
	s, reg := open(0)                // the default limit
	tight, tightReg := open(1 << 10) // too little for any query
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var b sessionize.Batch
	for i, name := range []string{"View", "Buy"} {
		b.Events = append(b.Events, ingest.Event{Source: "test", Type: "track", Event: name, UserID: "a", MessageID: fmt.Sprint("m", i),
			Timestamp: at.Add(time.Duration(i) * time.Second), ReceivedAt: at, Raw: []byte("{}")})
		b.Channels = append(b.Channels, "")
	}
	if err := s.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	refused := []struct {
		name string
		v    url.Values
	}{
		{"funnel", url.Values{"steps": {"View,Nope"}}},                 // a name never stored
		{"funnel", url.Values{"steps": {"View,Buy"}, "windw": {"1h"}}}, // a parameter misspelt
		{"paths", url.Values{"anchor": {"View"}, "depth": {"3.5"}}},    // a bad value
	}
	for _, q := range refused {
		if _, err := ask(t, s, q.name, q.v); !store.IsParamError(err) {
			t.Fatalf("%s?%s: %v, want a parameter error", q.name, q.v.Encode(), err)
		}
	}
	if _, err := ask(t, s, "funnel", url.Values{"steps": {"View,Buy"}}); err != nil {
		t.Fatal(err)
	}
	stopped, stop := context.WithCancel(ctx) // its caller went away: no failure of the store's
	stop()
	if _, err := s.Query(stopped, defaultMap(t), "funnel", url.Values{"steps": {"View,Buy"}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("a funnel whose caller stopped: %v, want %v", err, context.Canceled)
	}
	if _, err := ask(t, tight, "funnel", url.Values{"steps": {"View,Buy"}}); !errors.Is(err, store.ErrQueryLimit) {
		t.Fatalf("a funnel in 1 KiB: %v, want %v", err, store.ErrQueryLimit)
	}
	for _, c := range []struct {
		reg  *prometheus.Registry
		want map[string]float64
	}{
		{reg, map[string]float64{
			`waymark_store_query_param_errors_total{query="funnel"}`: 2,
			`waymark_store_query_param_errors_total{query="paths"}`:  1,
			`waymark_store_query_errors_total{query="funnel"}`:       0,
			`waymark_store_query_errors_total{query="paths"}`:        0,
		}},
		{tightReg, map[string]float64{
			`waymark_store_query_param_errors_total{query="funnel"}`: 0,
			`waymark_store_query_errors_total{query="funnel"}`:       1,
		}},
	} {
		got := gatherCounters(t, c.reg)
		for name, want := range c.want {
			if got[name] != want {
				t.Errorf("%s = %v, want %v", name, got[name], want)
			}
		}
	}
}
