package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/waymark-dev/waymark/store/storetest"
)

type sessionsJSON struct {
	Sessions       uint64            `json:"sessions"`
	Persons        uint64            `json:"persons"`
	Events         uint64            `json:"events"`
	ByEndReason    map[string]uint64 `json:"by_end_reason"`
	ByEntryChannel map[string]uint64 `json:"by_entry_channel"`
	// The sessions by their first and last touchpoint, ranked.
	ByEntryTouchpoint []rankedJSON `json:"by_entry_touchpoint"`
	ByExitTouchpoint  []rankedJSON `json:"by_exit_touchpoint"`
	// The durations' quantiles, in seconds.
	MedianDurationSeconds float64 `json:"median_duration_seconds"`
	P90DurationSeconds    float64 `json:"p90_duration_seconds"`
}

// rankedJSON is a ranked row of an answer (store.Ranked).
type rankedJSON struct {
	Value  string `json:"value"`
	Marker string `json:"marker"`
	Step   string `json:"step"`
	Count  int64  `json:"count"`
}

// sessions is `waymark sessions --json` with args (a range: --from T --to T).
func (s *server) sessions(t *testing.T, args ...string) sessionsJSON {
	t.Helper()
	out := s.waymark(t, append([]string{"sessions", "--json"}, args...)...)
	var sum sessionsJSON
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("sessions --json: %v\n%s", err, out)
	}
	return sum
}

// TestSessionKnownAnswers: session counts on real data, computed independently: at the default
// 30-minute gap the Taobao sample has 1,700 sessions and the OTTO sample (one customer per line)
// 144; with a 10-minute gap, 2,072 and 162.
func TestSessionKnownAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		format, file, gap string
		sessions, persons uint64
		events            uint64
	}{
		{"taobao", taobaoSample, "30m", 1700, 114, 10000},
		{"taobao", taobaoSample, "10m", 2072, 114, 10000},
		{"otto", "../../../shared/data/otto-sample/train.jsonl", "30m", 144, 20, 862},
		{"otto", "../../../shared/data/otto-sample/train.jsonl", "10m", 162, 20, 862},
	}
	for _, tt := range tests {
		t.Run(tt.format+"/"+tt.gap, func(t *testing.T) {
			s := startServe(t, "--session-gap", tt.gap)
			out := s.waymark(t, "replay", "--format", tt.format, "--file", tt.file, "--wait", "2m")
			if !strings.Contains(out, "skipped 0") {
				t.Fatalf("replay: %s", out)
			}
			sum := s.sessions(t)
			if sum.Sessions != tt.sessions || sum.Persons != tt.persons || sum.Events != tt.events {
				t.Errorf("sessions %d persons %d events %d, want %d, %d, %d", sum.Sessions, sum.Persons, sum.Events, tt.sessions, tt.persons, tt.events)
			}
			var byReason uint64
			for _, n := range sum.ByEndReason {
				byReason += n
			}
			if byReason != sum.Sessions || sum.ByEntryChannel["direct"] != sum.Sessions {
				t.Errorf("by end reason %v, by entry channel %v: want them to add up to %d (all direct)", sum.ByEndReason, sum.ByEntryChannel, sum.Sessions)
			}
		})
	}
}

// TestResessionize: sessions stored with a 30-minute gap, recomputed with a 10-minute gap from the
// stored events, give the 10-minute answer; recomputing again changes nothing.
func TestResessionize(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	s.replayTaobao(t)
	if got := s.sessions(t).Sessions; got != 1700 {
		t.Fatalf("sessions = %d, want 1700", got)
	}
	out := s.waymark(t, "resessionize", "--session-gap", "10m")
	if got := s.sessions(t).Sessions; got != 2072 {
		t.Errorf("after resessionize --session-gap 10m: %d sessions, want 2072 (%s)", got, out)
	}
	again := s.waymark(t, "resessionize", "--session-gap", "10m", "--from", "2017-11-20", "--to", "2017-12-10")
	if !strings.Contains(again, "0 sessions written (new or changed), 0 deleted") {
		t.Errorf("a second resessionize changed sessions: %s", again)
	}
}

// TestBenchCommand runs `waymark bench` small: the pipeline and the baseline both move every
// event, and the report has every figure.
func TestBenchCommand(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	cmd := exec.Command(binary, "bench", "--events", "5000", "--clickhouse-addr", chServer.Addr)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("waymark bench: %v\n%s", err, out)
	}
	for _, want := range []string{"end to end", "events/s", "lag receivedAt → stored", "p99", "funnel query", "baseline", "ratio"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("bench report lacks %q:\n%s", want, out)
		}
	}
}

// TestClientSessionIDChangeEndsASessionAcrossEventsWithoutOne: a session ends when an event
// carries another client session id (context.sessionId) than the last one the session carried,
// even with events without one between them (device cs9: A, none, C is two sessions, as
// Amplitude counts them), and the session's id keeps it open across a gap after such events
// (device cs10: A, none 20 minutes later, A 40 minutes after that is one session). The events
// arrive one call each, in order and reversed: sessions are cut on event time.
func TestClientSessionIDChangeEndsASessionAcrossEventsWithoutOne(t *testing.T) {
	t.Parallel()
	lines := []string{
		`{"type":"page","anonymousId":"cs9","name":"One","messageId":"cs9-1","timestamp":"2025-03-04T11:00:00Z","context":{"sessionId":"A"}}`,
		`{"type":"page","anonymousId":"cs9","name":"Two","messageId":"cs9-2","timestamp":"2025-03-04T11:01:00Z"}`,
		`{"type":"page","anonymousId":"cs9","name":"Three","messageId":"cs9-3","timestamp":"2025-03-04T11:02:00Z","context":{"sessionId":"C"}}`,
		`{"type":"page","anonymousId":"cs10","name":"One","messageId":"cs10-1","timestamp":"2025-03-04T11:00:00Z","context":{"sessionId":"A"}}`,
		`{"type":"page","anonymousId":"cs10","name":"Two","messageId":"cs10-2","timestamp":"2025-03-04T11:20:00Z"}`,
		`{"type":"page","anonymousId":"cs10","name":"Three","messageId":"cs10-3","timestamp":"2025-03-04T12:00:00Z","context":{"sessionId":"A"}}`,
	}
	eachArrivalOrder(t, lines, func(t *testing.T, s *server) {
		sum := s.sessions(t)
		if sum.Sessions != 3 || sum.ByEndReason["client_session"] != 1 || sum.ByEndReason["open"] != 2 {
			t.Errorf("sessions %d by end reason %v, want 3: cs9's A, none (client_session) and C (open), cs10's one (open)", sum.Sessions, sum.ByEndReason)
		}
	})
}

// TestVisitsCutWithinOneMillisecondAreSessionsApart is the kind of fault tester 8 found (F3):
// a client session id changing between events 500 µs apart cuts two visits of device cs8a in
// one millisecond (S1 at .000100, S2 at .000600 and five minutes later), and every answer counts
// them as the sessionizer cut them: two sessions, three events, one ended by the client's new
// session id and one open, with CS8 One and CS8 Two in sessions apart and CS8 Two and CS8 Three
// in one. The events arrive one call each, in order and reversed. Recomputed from the stored
// events and sessions (`waymark resessionize`, which reads them back as a restart does), the
// sessions are the same, to the µs: none is written again.
func TestVisitsCutWithinOneMillisecondAreSessionsApart(t *testing.T) {
	t.Parallel()
	lines := []string{
		`{"type":"page","anonymousId":"cs8a","name":"CS8 One","messageId":"cs8a-1","timestamp":"2025-05-02T10:00:00.000100Z","context":{"sessionId":"S1"}}`,
		`{"type":"page","anonymousId":"cs8a","name":"CS8 Two","messageId":"cs8a-2","timestamp":"2025-05-02T10:00:00.000600Z","context":{"sessionId":"S2"}}`,
		`{"type":"page","anonymousId":"cs8a","name":"CS8 Three","messageId":"cs8a-3","timestamp":"2025-05-02T10:05:00Z","context":{"sessionId":"S2"}}`,
	}
	eachArrivalOrder(t, lines, func(t *testing.T, s *server) {
		checkCutInTwo(t, s, 3, []sessionsFunnel{{"CS8 One,CS8 Two", []int64{1, 0}}, {"CS8 Two,CS8 Three", []int64{1, 1}}}, "2025-05-02", "2025-05-03")
	})
}

// TestVisitsCutWithinOneMicrosecondAreSessionsApart is the kind of fault tester 9 found (B):
// a client session id changing within one second-precision timestamp cuts device cu9's visits
// between events of one µs (S1 Landing, S1 Logout and S2 Home, one batch stamped 10:00:00, then
// S2 Order at 10:03), and every answer counts them as the sessionizer cut them, by the tie rule
// (time, then the client's order): two sessions of four events, one ended by the client's new
// session id and one open, with Landing and Order in sessions apart and Home and Order in one.
// The two calls arrive in order and reversed. Recomputed from the stored events and sessions
// (`waymark resessionize`, which reads them back as a restart does), the sessions are the same:
// none is written again.
func TestVisitsCutWithinOneMicrosecondAreSessionsApart(t *testing.T) {
	t.Parallel()
	calls := []string{ // each the members of one batch
		`{"type":"page","anonymousId":"cu9","name":"CU9 Landing","messageId":"cu9-1","timestamp":"2025-05-05T10:00:00Z","context":{"sessionId":"S1"}},` +
			`{"type":"track","anonymousId":"cu9","event":"CU9 Logout","messageId":"cu9-2","timestamp":"2025-05-05T10:00:00Z","context":{"sessionId":"S1"}},` +
			`{"type":"page","anonymousId":"cu9","name":"CU9 Home","messageId":"cu9-3","timestamp":"2025-05-05T10:00:00Z","context":{"sessionId":"S2"}}`,
		`{"type":"track","anonymousId":"cu9","event":"CU9 Order","messageId":"cu9-4","timestamp":"2025-05-05T10:03:00Z","context":{"sessionId":"S2"}}`,
	}
	eachArrivalOrder(t, calls, func(t *testing.T, s *server) {
		checkCutInTwo(t, s, 4, []sessionsFunnel{
			{"CU9 Landing,CU9 Order", []int64{1, 0}}, {"CU9 Logout,CU9 Home", []int64{1, 0}}, {"CU9 Home,CU9 Order", []int64{1, 1}},
		}, "2025-05-05", "2025-05-06")
	})
}

// TestEventWithoutClientSessionIDInAPauseKeepsTheSession is the kind of fault tester 8 found
// (F5): an event without a client session id (a server-side call) sent during a pause longer
// than the gap does not split the client's session when the next event carrying an id carries
// the session's: device ga8b's A at 10:00, none at 10:40, A at 10:45 is one session, as ga8a's
// A at 10:00, A at 10:45 is (Amplitude takes an event without a session id as outside any
// session, not as a cut). Device ga8c's A, none 40 minutes later, B is still cut by the gap:
// no later event carries A. The events arrive one call each, in order and reversed.
func TestEventWithoutClientSessionIDInAPauseKeepsTheSession(t *testing.T) {
	t.Parallel()
	lines := []string{
		`{"type":"page","anonymousId":"ga8a","name":"GA8","messageId":"ga8a-1","timestamp":"2025-05-24T10:00:00Z","context":{"sessionId":"A"}}`,
		`{"type":"page","anonymousId":"ga8a","name":"GA8","messageId":"ga8a-3","timestamp":"2025-05-24T10:45:00Z","context":{"sessionId":"A"}}`,
		`{"type":"page","anonymousId":"ga8b","name":"GA8","messageId":"ga8b-1","timestamp":"2025-05-24T10:00:00Z","context":{"sessionId":"A"}}`,
		`{"type":"page","anonymousId":"ga8b","name":"GA8 NoId","messageId":"ga8b-2","timestamp":"2025-05-24T10:40:00Z"}`,
		`{"type":"page","anonymousId":"ga8b","name":"GA8","messageId":"ga8b-3","timestamp":"2025-05-24T10:45:00Z","context":{"sessionId":"A"}}`,
		`{"type":"page","anonymousId":"ga8c","name":"GA8","messageId":"ga8c-1","timestamp":"2025-05-24T10:00:00Z","context":{"sessionId":"A"}}`,
		`{"type":"page","anonymousId":"ga8c","name":"GA8 NoId","messageId":"ga8c-2","timestamp":"2025-05-24T10:40:00Z"}`,
		`{"type":"page","anonymousId":"ga8c","name":"GA8","messageId":"ga8c-3","timestamp":"2025-05-24T10:45:00Z","context":{"sessionId":"B"}}`,
	}
	eachArrivalOrder(t, lines, func(t *testing.T, s *server) {
		sum := s.sessions(t)
		if sum.Sessions != 4 || sum.Events != 8 || sum.ByEndReason["timeout"] != 1 || sum.ByEndReason["open"] != 3 {
			t.Errorf("sessions %d events %d by end reason %v, want 4 of 8 events: ga8a's and ga8b's one each (open), ga8c's two (timeout, open)",
				sum.Sessions, sum.Events, sum.ByEndReason)
		}
		if got, want := s.funnelBySessions(t, "GA8,GA8"), []int64{4, 2}; !slices.Equal(got, want) {
			t.Errorf("funnel GA8,GA8 by sessions %v, want %v: ga8a's and ga8b's sessions convert", got, want)
		}
	})
}

// eachArrivalOrder starts a Waymark for each order of lines (Segment messages) — as listed and
// reversed — posts them one call each, and runs check on it once it has stored them all.
func eachArrivalOrder(t *testing.T, lines []string, check func(t *testing.T, s *server)) {
	t.Helper()
	for _, order := range []struct {
		name  string
		lines []string
	}{{"in order", lines}, {"reversed", reversed(lines)}} {
		t.Run(order.name, func(t *testing.T) {
			t.Parallel()
			s := startServe(t)
			for _, l := range order.lines {
				s.sendBatch(t, l)
			}
			s.waitStored(t)
			check(t, s)
		})
	}
}

// sessionsFunnel is a funnel's steps and its counts per step, counted by sessions.
type sessionsFunnel struct {
	steps string
	want  []int64
}

// funnelBySessions is the count of each step of the funnel of steps counted by sessions, with a
// 1-hour window, as the CLI answers it.
func (s *server) funnelBySessions(t *testing.T, steps string) []int64 {
	t.Helper()
	out := s.waymark(t, "funnel", "--steps", steps, "--window", "1h", "--count-by", "sessions", "--json")
	var f funnelJSON
	if err := json.Unmarshal([]byte(out), &f); err != nil {
		t.Fatalf("funnel --json: %v\n%s", err, out)
	}
	var got []int64
	for _, st := range f.Steps {
		got = append(got, st.Customers)
	}
	return got
}

// checkCutInTwo checks that s holds two sessions of events events, one ended by the client's
// new session id and one open, and each funnel's counts by sessions; then that `waymark
// resessionize` over [from, to) writes none of them again and the answers stay.
func checkCutInTwo(t *testing.T, s *server, events uint64, funnels []sessionsFunnel, from, to string) {
	t.Helper()
	check := func(when string) {
		t.Helper()
		sum := s.sessions(t)
		if sum.Sessions != 2 || sum.Events != events || sum.ByEndReason["client_session"] != 1 || sum.ByEndReason["open"] != 1 {
			t.Errorf("%s: sessions %d events %d by end reason %v, want 2 sessions of %d events: one client_session, one open",
				when, sum.Sessions, sum.Events, sum.ByEndReason, events)
		}
		for _, f := range funnels {
			if got := s.funnelBySessions(t, f.steps); !slices.Equal(got, f.want) {
				t.Errorf("%s: funnel %s by sessions %v, want %v", when, f.steps, got, f.want)
			}
		}
	}
	check("stored")
	out := s.waymark(t, "resessionize", "--from", from, "--to", to)
	if !strings.Contains(out, "0 sessions written (new or changed), 0 deleted") {
		t.Errorf("resessionize changed sessions read back from the store: %s", out)
	}
	check("after resessionize")
}

// TestSessionDurationsShareTheFunnelsQuantileRule is the tenth tester's M1: the sessions
// summary's median and p90 took the element at index floor(q·n), every other median and p90 the
// nearest rank (⌈q·n⌉−1), so ten sessions of 1…10 minutes had a median of 6 minutes and a p90 of
// their longest, while a funnel over the same ten gaps said 5 and 9. One rule gives both answers.
func TestSessionDurationsShareTheFunnelsQuantileRule(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	var lines []string
	for i := 1; i <= 10; i++ {
		lines = append(lines,
			fmt.Sprintf(`{"type":"track","userId":"qd%d","event":"Product Viewed","messageId":"qd%d-v","timestamp":"2025-11-05T10:00:00Z"}`, i, i),
			fmt.Sprintf(`{"type":"track","userId":"qd%d","event":"Product Added","messageId":"qd%d-a","timestamp":"2025-11-05T10:%02d:00Z"}`, i, i, i))
	}
	s.sendBatch(t, lines...)
	s.waitStored(t)
	sum := s.sessions(t)
	code, body := httpGet(t, "http://"+s.http+"/api/v1/funnel?window=1h&steps=Product+Viewed,Product+Added")
	var f struct {
		Steps []struct {
			Median *float64 `json:"median_seconds_from_previous"`
			P90    *float64 `json:"p90_seconds_from_previous"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(body), &f); code != 200 || err != nil || len(f.Steps) != 2 || f.Steps[1].Median == nil || f.Steps[1].P90 == nil {
		t.Fatalf("funnel: %d %s", code, body)
	}
	got := [2]float64{sum.MedianDurationSeconds, sum.P90DurationSeconds}
	if funnel := [2]float64{*f.Steps[1].Median, *f.Steps[1].P90}; got != funnel || got != [2]float64{300, 540} {
		t.Errorf("sessions' median and p90 %v, the funnel's over the same gaps %v, want both [300 540] (nearest rank)", got, funnel)
	}
}
