package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestMicrosecondsOrderEvents is the kind of field case identity/11 (timestamp forms) a tester
// found with Segment's Python, Go and Java libraries, which send microseconds: events of one
// person within one millisecond are in the order of the times they state, not of their arrival
// (testdata/microseconds.jsonl, each person's events sent out of time order). us1 sends US Added
// at .000900, US View at .000100, then US Exit at .001: paths and next from US View go View →
// Added → Exit, and its session enters at US View. Funnels follow the stated order: us2 (A at
// .0002, B at .0005, sent B first) converts from US A to US B, us3 (A at .0007, B at .0003) does
// not. from and to bound to the microsecond: from .0002 leaves us1's View (.0001) out. us4's
// View at .000100999 is cut to .000100, never rounded to .000101 (its Added, sent first): it comes
// before its Added. A shared device's page between two sign-ins in one millisecond goes to the
// user signed in before it by µs. Sent through the collector, straight to Kafka and with `waymark replay`, and
// answered by the API and the CLI (in a later pass of the run, the collector and the API: see
// everyPath), on either engine (WAYMARK_TEST_CLICKHOUSE; chdb runs the
// in-engine matching, docs/udf.md): the same answers. Then a copy earlier by µs replaces its
// stored message, and `waymark resessionize` cuts sessions on the stored µs.
func TestMicrosecondsOrderEvents(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/microseconds.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	servers := sendBothWays(t, lines)
	paths := []string{"collector", "kafka"}[:len(servers)]
	if everyPath() {
		replayed := startServe(t)
		replayed.replayLines(t, lines)
		servers, paths = append(servers, replayed), append(paths, "replay")
	}

	const at = "2024-05-15T10:00:00"
	queries := []struct {
		name string
		get  string // API path and query; the CLI is asked the same with --json where cli is set
		cli  []string
		want string // the answer, as answerText renders it
	}{
		{"next from US View", "/api/v1/next?window=1h&anchor=US+View", []string{"next", "--anchor", "US View", "--window", "1h"},
			"US Added 2"},
		{"paths from US View", "/api/v1/paths?window=1h&depth=3&convert=US+Exit&anchor=US+View", []string{"paths", "--anchor", "US View", "--window", "1h", "--depth", "3", "--convert", "US Exit"},
			"US View > US Added 1; US View > US Added > US Exit 1"},
		{"paths to US Exit", "/api/v1/paths?window=1h&depth=3&direction=end&convert=US+Exit&anchor=US+Exit", nil,
			"US View > US Added > US Exit 1"},
		{"funnel by the stated order", "/api/v1/funnel?window=1h&steps=US+A,US+B", []string{"funnel", "--steps", "US A,US B", "--window", "1h"},
			"US A 2; US B 1"},
		{"funnel View then Added", "/api/v1/funnel?window=1h&steps=US+View,US+Added,US+Exit", nil,
			"US View 2; US Added 2; US Exit 1"},
		{"from to the µs", "/api/v1/funnel?window=1h&steps=US+View,US+Exit&from=" + url.QueryEscape(at+".0002Z"), nil,
			"US View 0; US Exit 0"},
		{"from at the event's µs", "/api/v1/funnel?window=1h&steps=US+View,US+Exit&from=" + url.QueryEscape(at+".0001Z"), nil,
			"US View 2; US Exit 1"},
		{"to before the event's µs", "/api/v1/next?window=1h&anchor=US+View&to=" + url.QueryEscape(at+".0001Z"), nil,
			""},
		{"to after the event's µs", "/api/v1/next?window=1h&anchor=US+View&to=" + url.QueryEscape(at+".000101Z"), nil,
			"US Added 2"},
	}
	for i, s := range servers {
		path := paths[i]
		stored := queryStrings(t, "SELECT concat(message_id, ' ', toString(ts_ms % 1000), ' ', toString(ts_sub_us)) FROM "+s.database+
			".events WHERE message_id IN ('us1-added', 'us1-view', 'us1-exit', 'us4-view') ORDER BY message_id")
		if want := []string{"us1-added 0 900", "us1-exit 1 0", "us1-view 0 100", "us4-view 0 100"}; !slices.Equal(stored, want) {
			t.Errorf("%s: stored ms and µs %q, want %q", path, stored, want)
		}
		sessions := queryStrings(t, "SELECT concat(customer_key, ': ', entry_event, ' > ', exit_event) FROM "+s.database+
			".sessions FINAL WHERE deleted = 0 AND customer_key IN ('us1', 'us4') ORDER BY customer_key")
		if want := []string{"us1: US View > US Exit", "us4: US View > US Added"}; !slices.Equal(sessions, want) {
			t.Errorf("%s: sessions %q, want %q", path, sessions, want)
		}
		// Sign-ins follow their µs too: on a device alice signs in on at .0009 (sent first) and
		// bob at .0001 (sent last), the page viewed at .0005 is bob's (stored with the person known
		// when it arrived, alice, the device's only user then; queries apply the sign-ins).
		if got := queryStrings(t, "SELECT arrayStringConcat(argMax(users, version), ',') FROM "+s.database+".device_sign_ins WHERE device = 'us-dev'"); !slices.Equal(got, []string{"us-bob,us-alice"}) {
			t.Errorf("%s: stored sign-ins %q, want us-bob,us-alice", path, got)
		}
		code, body := httpGet(t, "http://"+s.http+"/api/v1/dropoff?window=1h&step=1&steps="+url.QueryEscape("US Shared,US Shared"))
		var d struct{ Persons []string }
		if err := json.Unmarshal([]byte(body), &d); code != 200 || err != nil || !slices.Equal(d.Persons, []string{"us-bob"}) {
			t.Errorf("%s: the shared device's page went to %d %s, want us-bob", path, code, body)
		}
		for _, q := range queries {
			code, body := httpGet(t, "http://"+s.http+q.get)
			if code != 200 {
				t.Fatalf("%s: %s: %d %s", path, q.get, code, body)
			}
			if got := answerText(t, body); got != q.want {
				t.Errorf("%s: %s: API answered %q, want %q", path, q.name, got, q.want)
			}
			if q.cli != nil && everyPath() {
				if got := answerText(t, s.waymark(t, append(q.cli, "--json")...)); got != q.want {
					t.Errorf("%s: %s: CLI answered %q, want %q", path, q.name, got, q.want)
				}
			}
		}

		// The earliest copy of a message is the earliest to the µs: us5's View stored at
		// .000900, after its Added at .000500, then a copy of it at .000100 arrives by the same
		// path. The copy is the event (the stored one superseded), so us5 goes View → Added too.
		send := func(lines ...string) {
			switch path {
			case "collector":
				s.sendBatch(t, lines...)
			case "kafka":
				produceWithKcat(t, s.broker, lines)
			case "replay":
				s.replayLines(t, lines)
			}
			s.waitStored(t)
		}
		view := func(ts string) string {
			return `{"type":"track","userId":"us5","event":"US View","messageId":"us5-view","timestamp":"` + at + ts + `Z"}`
		}
		send(view(".000900"), `{"type":"track","userId":"us5","event":"US Added","messageId":"us5-added","timestamp":"`+at+`.000500Z"}`)
		send(view(".000100"))
		if got := queryStrings(t, "SELECT concat(message_id, ' ', toString(ts_sub_us)) FROM "+s.database+".superseded_events"); !slices.Equal(got, []string{"us5-view 900"}) {
			t.Errorf("%s: superseded copies %q, want us5-view at .000900", path, got)
		}
		code, body = httpGet(t, "http://"+s.http+"/api/v1/next?window=1h&anchor=US+View")
		if got := answerText(t, body); code != 200 || got != "US Added 3" {
			t.Errorf("%s: next from US View after us5's earlier copy: %d %q, want US Added 3", path, code, got)
		}

		// Sessions recomputed from the stored events (restored, as after a restart) follow their
		// µs: us1's enters at US View still, not at US Added (sent first, in the same ms).
		s.waymark(t, "resessionize")
		sessions = queryStrings(t, "SELECT concat(customer_key, ': ', entry_event, ' > ', exit_event) FROM "+s.database+
			".sessions FINAL WHERE deleted = 0 AND customer_key IN ('us1', 'us4', 'us5') ORDER BY customer_key")
		if want := []string{"us1: US View > US Exit", "us4: US View > US Added", "us5: US View > US Added"}; !slices.Equal(sessions, want) {
			t.Errorf("%s: sessions after resessionize %q, want %q", path, sessions, want)
		}
	}
}

// answerText renders the part of a funnel's, next's or paths' JSON answer the microsecond test
// compares: each step's customers, each touchpoint's count, or each path's touchpoints and
// persons (sorted), joined by "; ".
func answerText(t *testing.T, body string) string {
	t.Helper()
	var a struct {
		Steps []struct {
			Name      string
			Customers int64
		}
		Touchpoints []struct {
			Value string
			Count int64
		}
		Paths []struct {
			Touchpoints []string
			Persons     int64
		}
	}
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatalf("answer is not JSON: %v\n%s", err, body)
	}
	var parts []string
	for _, s := range a.Steps {
		parts = append(parts, fmt.Sprintf("%s %d", s.Name, s.Customers))
	}
	for _, tp := range a.Touchpoints {
		parts = append(parts, fmt.Sprintf("%s %d", tp.Value, tp.Count))
	}
	var paths []string
	for _, p := range a.Paths {
		paths = append(paths, fmt.Sprintf("%s %d", strings.Join(p.Touchpoints, " > "), p.Persons))
	}
	slices.Sort(paths)
	return strings.Join(append(parts, paths...), "; ")
}

// TestCopiesSupersededInOneMillisecondStaySuperseded: three copies of one message stamped within
// one millisecond (.000900, .000500, .000100) arrive latest first, the first by Kafka and the
// others by the collector (a path of its own: their events rows never replace each other on a
// merge), each superseding the one before: the message is one event, at .000100, before ClickHouse
// merges the superseded copies' parts and after, and after it merges everything. (The merge of
// superseded_events keeps one row of the two, as its sort key stops at the millisecond: queries
// still count the message once, as they take a message's earliest copy themselves.) A funnel of the event twice tells: a second copy counted would make it 1 → 1.
func TestCopiesSupersededInOneMillisecondStaySuperseded(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	// Each copy stays in its own part until the test merges them: a background merge (quick on
	// the 26.7 engine) would otherwise keep one copy before the count below.
	execClickHouse(t, "SYSTEM STOP MERGES "+s.database+".events")
	const at = "2025-03-04T10:00:00.123"
	copyAt := func(us string) string {
		return `{"type":"track","userId":"sc1","event":"SC View","messageId":"sc1-view","timestamp":"` + at + us + `Z"}`
	}
	for i, us := range []string{"900", "500", "100"} {
		if line := copyAt(us); i == 0 {
			produceWithKcat(t, s.broker, []string{line})
		} else if status, answer := s.track(t, "/v1/track", line); status != 200 {
			t.Fatalf("POST /v1/track: %d %s", status, answer)
		}
		s.waitStored(t)
	}
	if got := queryStrings(t, "SELECT toString(count()) FROM "+s.database+".events"); !slices.Equal(got, []string{"3"}) {
		t.Fatalf("%v events rows, want the 3 copies (the test needs each stored)", got)
	}
	for _, merged := range []string{"nothing", "the superseded copies", "everything"} {
		switch merged {
		case "the superseded copies": // a small table, merged long before the events
			optimizeFinal(t, s.database+".superseded_events")
		case "everything":
			execClickHouse(t, "SYSTEM START MERGES "+s.database+".events")
			optimizeFinal(t, s.database+".events")
		}
		for get, want := range map[string][]int64{
			"/api/v1/funnel?window=1h&steps=" + url.QueryEscape("SC View,SC View"):                                 {1, 0},
			"/api/v1/funnel?window=1h&steps=" + url.QueryEscape("SC View") + "&to=" + url.QueryEscape(at+"200Z"):   {1},
			"/api/v1/funnel?window=1h&steps=" + url.QueryEscape("SC View") + "&from=" + url.QueryEscape(at+"200Z"): {0},
		} {
			code, body := httpGet(t, "http://"+s.http+get)
			var f funnelJSON
			if err := json.Unmarshal([]byte(body), &f); code != 200 || err != nil {
				t.Fatalf("%s: %d %s", get, code, body)
			}
			var got []int64
			for _, st := range f.Steps {
				got = append(got, st.Customers)
			}
			if !slices.Equal(got, want) {
				t.Errorf("merged %s: %s: %v, want %v (the copy at .000100 alone)", merged, get, got, want)
			}
		}
	}
	// Sessions recomputed from the stored copies (as after a restart) hold the message once.
	s.waymark(t, "resessionize")
	if got := queryStrings(t, "SELECT concat(toString(events), ' ', toString(start_sub_us)) FROM "+s.database+".sessions FINAL WHERE deleted = 0"); !slices.Equal(got, []string{"1 100"}) {
		t.Errorf("sessions after resessionize (events, start µs): %q, want one event at .000100", got)
	}
}
