package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestCopiesByOtherPathsCountOnce is the tester's kind of field case identity/01 across paths:
// one messageId that reaches Waymark through the collector (stored with the write key's source,
// "test"), through `waymark replay --format segment` ("replay-segment") and produced straight to
// Kafka with kcat ("kafka") is one message, its earliest copy the event, whatever path each copy
// came by: Segment's deduplication "is not scoped to a specific source or a workspace"
// (https://www.twilio.com/docs/segment/guides/duplicate-data). The copies: the tester's (view and
// order through the collector, the order replayed 7 s later and produced to Kafka 12 s later);
// the earliest copy arriving last, by another path each time, across a month's end; a copy at the
// same time with another amount by Kafka after the collector's; the same line produced to Kafka
// and replayed; a copy under the userId alone by Kafka of an order the device sent. Each step of
// a case is sent once the one before is stored, so copies arrive in the order given.
//
// Every answer (funnels by name and by stage, retention, stages, sessions, also from a time that
// leaves the earliest copies out), before and after ClickHouse merges the parts, equals that of
// a Waymark that got each message once (its earliest copy) through the collector: one order per
// customer, so no loyalty stage and no repeater; so do the live orders, revenue and stage entries.
func TestCopiesByOtherPathsCountOnce(t *testing.T) {
	t.Parallel()
	order := func(anon, user, id, ts string, revenue int) string {
		m := map[string]any{"type": "track", "event": "Order Completed", "messageId": id, "timestamp": ts,
			"properties": map[string]any{"revenue": revenue}}
		return messageJSON(m, anon, user)
	}
	view := func(user, id, ts string) string {
		return fmt.Sprintf(`{"type":"track","userId":%q,"event":"Product Viewed","messageId":%q,"timestamp":%q}`, user, id, ts)
	}
	type step struct {
		path  string // "http" (one /v1/batch call), "replay" (waymark replay --format segment) or "kafka" (kcat)
		lines []string
	}
	cases := []struct {
		name  string
		steps []step // in the order they are sent, each once the one before is stored
		from  string // a time after the earliest copy of the case's order, before a later copy
	}{
		{"the tester's: later copies by a replay and by Kafka", []step{
			{"http", []string{view("cust-x", "x-view-1", "2024-05-06T10:00:00Z"), order("", "cust-x", "x-order-1", "2024-05-06T10:05:00Z", 40)}},
			{"replay", []string{order("", "cust-x", "x-order-1", "2024-05-06T10:05:07Z", 40)}},
			{"kafka", []string{order("", "cust-x", "x-order-1", "2024-05-06T10:05:12Z", 40)}},
		}, "2024-05-06T10:05:05Z"},
		{"the earliest copy last, each by another path, across a month's end", []step{
			{"replay", []string{order("", "cust-m", "m-order-1", "2024-06-01T00:00:03Z", 25)}},
			{"kafka", []string{order("", "cust-m", "m-order-1", "2024-06-01T00:00:01Z", 25)}},
			{"http", []string{order("", "cust-m", "m-order-1", "2024-05-31T23:59:58Z", 25)}},
		}, "2024-06-01T00:00:00Z"},
		{"a copy at the same time with another amount, by Kafka after the collector", []step{
			{"http", []string{order("", "cust-s", "s-order-1", "2024-07-01T10:00:00Z", 30)}},
			{"kafka", []string{order("", "cust-s", "s-order-1", "2024-07-01T10:00:00Z", 99)}},
		}, "2024-07-01T10:00:00Z"},
		{"the same line produced to Kafka and replayed", []step{
			{"kafka", []string{order("", "cust-l", "l-order-1", "2024-07-02T10:00:00Z", 15)}},
			{"replay", []string{order("", "cust-l", "l-order-1", "2024-07-02T10:00:00Z", 15)}},
		}, "2024-07-02T10:00:00Z"},
		{"a copy on the userId alone by Kafka, an hour later", []step{
			{"http", []string{order("dev-u", "cust-u", "u-order-1", "2024-07-03T10:00:00Z", 20)}},
			{"kafka", []string{order("", "cust-u", "u-order-1", "2024-07-03T11:00:00Z", 20)}},
		}, "2024-07-03T10:30:00Z"},
	}
	every, once := startServe(t), startServe(t)
	var sent []string // every line, in the order sent
	for i := 0; ; i++ {
		byPath := map[string][]string{}
		for _, c := range cases {
			if i < len(c.steps) {
				byPath[c.steps[i].path] = append(byPath[c.steps[i].path], c.steps[i].lines...)
			}
		}
		if len(byPath) == 0 {
			break
		}
		for _, path := range slices.Sorted(maps.Keys(byPath)) {
			lines := byPath[path]
			sent = append(sent, lines...)
			switch path {
			case "http":
				every.sendBatch(t, lines...)
			case "replay":
				every.replayLines(t, lines)
			case "kafka":
				produceWithKcat(t, every.broker, lines)
			}
		}
		every.waitStored(t)
	}
	once.sendBatch(t, earliestCopiesOnly(t, sent)...)
	once.waitStored(t)
	if sources := queryStrings(t, "SELECT DISTINCT source FROM "+every.database+".events ORDER BY source"); !slices.Equal(sources, []string{"kafka", "replay-segment", "test"}) {
		t.Fatalf("stored sources %q, want the three paths' (kafka, replay-segment, test)", sources)
	}

	gets := []string{"/api/v1/funnel?steps=conversion,loyalty&window=720h", "/api/v1/funnel?steps=Order+Completed,Order+Completed&window=720h",
		"/api/v1/retention?period=month", "/api/v1/stages", "/api/v1/sessions", "/api/v1/paths?anchor=Order+Completed&direction=end"}
	for _, c := range cases {
		from := url.QueryEscape(c.from)
		gets = append(gets, "/api/v1/sessions?from="+from, "/api/v1/funnel?steps=Order+Completed&from="+from)
	}
	want := answersOf(t, once, gets)
	// The answers of a Waymark that got each message once: five customers, one order each.
	var funnel struct{ Steps []struct{ Customers int64 } }
	if err := json.Unmarshal([]byte(strings.TrimPrefix(want[gets[0]], "200 ")), &funnel); err != nil ||
		len(funnel.Steps) != 2 || funnel.Steps[0].Customers != int64(len(cases)) || funnel.Steps[1].Customers != 0 {
		t.Fatalf("delivered once: %s answers %s, want %d customers converted, none loyal", gets[0], want[gets[0]], len(cases))
	}
	answerAsDeliveredOnce(t, want, gets, namedServer{"every copy, by three paths", every})

	// The tester's numbers, as every's own answers.
	if got := every.funnel(t, "conversion,loyalty", "720h"); got.Steps[0].Customers != int64(len(cases)) || got.Steps[1].Customers != 0 {
		t.Errorf("funnel conversion,loyalty %+v, want %d 0", got.Steps, len(cases))
	}
	var retention struct{ Repeaters int64 }
	if code, body := httpGet(t, "http://"+every.http+"/api/v1/retention?period=month"); code != 200 || json.Unmarshal([]byte(body), &retention) != nil || retention.Repeaters != 0 {
		t.Errorf("retention %d %s, want no repeaters", code, body)
	}
	var stages struct {
		Stages []struct {
			Stage   string
			Entered int64
		}
	}
	if code, body := httpGet(t, "http://"+every.http+"/api/v1/stages"); code != 200 || json.Unmarshal([]byte(body), &stages) != nil {
		t.Errorf("stages %d %s", code, body)
	}
	for _, st := range stages.Stages {
		if st.Stage == "loyalty" && st.Entered != 0 {
			t.Errorf("stages: loyalty entered by %d, want 0", st.Entered)
		}
	}
	if sum := every.sessions(t); sum.Events != uint64(len(cases)+1) {
		t.Errorf("sessions count %d events, want %d (cust-x's view, and one order per customer)", sum.Events, len(cases)+1)
	}

	// The live counters count each message once, with its first arrival's amount.
	live := func(s *server) map[string]float64 {
		metrics := scrape(t, s.http)
		got := map[string]float64{}
		for stage, n := range liveStageEntries(t, metrics) {
			got["entries "+stage] = float64(n)
		}
		for _, line := range strings.Split(metrics, "\n") {
			for _, name := range []string{"waymark_journey_orders_total{", "waymark_journey_revenue_total{"} {
				if strings.HasPrefix(line, name) {
					var v float64
					if _, err := fmt.Sscan(line[strings.LastIndex(line, " ")+1:], &v); err != nil {
						t.Fatalf("%s: %v", line, err)
					}
					got[strings.TrimSuffix(name, "{")] += v
				}
			}
		}
		return got
	}
	if got, w := live(every), live(once); !maps.Equal(got, w) || got["entries loyalty"] != 0 {
		t.Errorf("live counters %v, want those of each message once: %v", got, w)
	}
}

// TestCopiesJustBeforeTheRangeCountThere sends copies the sessionizer cannot know as copies (a
// shared device's anonymous event, sent again by the server under the userId of the user signed
// in on it: a sign-in joins no persons, so no merge supersedes one) whose earliest copy is just
// before a query's from. The message happened then: every query of the range (funnels with and
// without a breakdown that reads history, exclusions, strict, drop-off, paths and next with a
// short window, stages, sessions) answers as a Waymark that got each message once, however far
// back it reads. Before, the later copy counted in the range unless the query read all history.
func TestCopiesJustBeforeTheRangeCountThere(t *testing.T) {
	t.Parallel()
	msg := func(typ, anon, user, name, id, ts string) string {
		m := map[string]any{"type": typ, "messageId": id, "timestamp": ts}
		if typ == "track" {
			m["event"] = name
		} else if name != "" {
			m["traits"] = map[string]any{"plan": name}
		}
		return messageJSON(m, anon, user)
	}
	// Each device is shared: two users sign in on it, and its events then are the second's.
	shared := func(device, first, second, at1, at2 string) []string {
		return []string{msg("identify", device, first, "", device+"-in-1", at1), msg("identify", device, second, "pro", device+"-in-2", at2)}
	}
	devices := slices.Concat(
		// The tester's: a step on the device at 10:05, the server's copy at 10:06.
		shared("cpD", "cp-alice", "cp-bob", "2025-03-18T10:00:00Z", "2025-03-18T10:02:00Z"),
		[]string{msg("track", "cpD", "", "CP Step", "cp-x", "2025-03-18T10:05:00Z")},
		// An order a minute before a month's end, its copy 30 s into the next.
		shared("odD", "od-ann", "od-ben", "2025-03-31T23:50:00Z", "2025-03-31T23:55:00Z"),
		[]string{msg("track", "odD", "", "Order Completed", "od-1", "2025-03-31T23:59:00Z")},
		// An excluded event at 10:05, its copy at 10:07, between the steps.
		shared("exD", "ex-amy", "ex-bo", "2025-05-06T09:00:00Z", "2025-05-06T09:02:00Z"),
		[]string{msg("track", "exD", "", "EX Y", "ex-y", "2025-05-06T10:05:00Z")},
	)
	retries := []string{
		msg("track", "", "cp-bob", "CP Step", "cp-x", "2025-03-18T10:06:00Z"),
		msg("track", "", "cp-bob", "CP Next", "cp-next", "2025-03-18T10:10:00Z"),
		msg("track", "", "od-ben", "Order Completed", "od-1", "2025-04-01T00:00:30Z"),
		msg("track", "", "ex-bo", "EX A", "ex-a", "2025-05-06T10:06:00Z"),
		msg("track", "", "ex-bo", "EX Y", "ex-y", "2025-05-06T10:07:00Z"),
		msg("track", "", "ex-bo", "EX B", "ex-b", "2025-05-06T10:08:00Z"),
	}
	every, once := startServe(t), startServe(t)
	for _, batch := range [][]string{devices, retries} {
		every.sendBatch(t, batch...)
		every.waitStored(t)
	}
	once.sendBatch(t, earliestCopiesOnly(t, slices.Concat(devices, retries))...)
	once.waitStored(t)

	cp, od, ex := "&from=2025-03-18T10:06:00Z&to=2025-03-19T00:00:00Z", "&from=2025-04-01T00:00:00Z&to=2025-04-02T00:00:00Z", "&from=2025-05-06T10:06:00Z&to=2025-05-07T00:00:00Z"
	gets := []string{
		"/api/v1/funnel?steps=CP+Step,CP+Next" + cp,
		"/api/v1/funnel?steps=CP+Step,CP+Next&count_by=sessions" + cp,
		"/api/v1/dropoff?steps=CP+Step,CP+Next" + cp,
		"/api/v1/paths?anchor=CP+Step&window=30s" + cp,
		"/api/v1/next?anchor=CP+Step&window=30s" + cp,
		"/api/v1/funnel?steps=Order+Completed" + od,
		"/api/v1/funnel?steps=Order+Completed&breakdown=trait:plan" + od,
		"/api/v1/stages?" + od[1:],
		"/api/v1/sessions?" + od[1:],
		"/api/v1/funnel?steps=EX+A,EX+B&exclude=EX+Y" + ex,
		"/api/v1/funnel?steps=EX+A,EX+Y,EX+B&mode=strict" + ex,
	}
	want := answersOf(t, once, gets)
	// Not an answer both could get wrong alike: the range holds no CP Step, no order, and no EX Y
	// between EX A and EX B.
	for g, steps := range map[string][]int64{gets[0]: {0, 0}, gets[5]: {0}, gets[9]: {1, 1}} {
		var f funnelJSON
		if err := json.Unmarshal([]byte(strings.TrimPrefix(want[g], "200 ")), &f); err != nil || !slices.Equal(customersOf(f), steps) {
			t.Fatalf("delivered once: %s answers %s, want customers %v", g, want[g], steps)
		}
	}
	answerAsDeliveredOnce(t, want, gets, namedServer{"the copies too", every})
}

// customersOf is the customers of each step of a funnel answer.
func customersOf(f funnelJSON) []int64 {
	var n []int64
	for _, s := range f.Steps {
		n = append(n, s.Customers)
	}
	return n
}
