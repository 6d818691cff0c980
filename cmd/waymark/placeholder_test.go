package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// placeholderLines are the messages of TestPlaceholderIDsMergeNobody: for each placeholder id
// (written as JSON), three devices of three visitors each view a product, and each visitor's
// broken client signs in with the placeholder: two identify as it, the third aliases its device
// to it and aliases a real user of its own ("shopper-i") from it, then orders as it. A last
// server-side call names no one but the placeholder. Event names carry the placeholder's index
// (View 0, Order 0, …), so each placeholder is its own funnel.
func placeholderLines(placeholders []string) (lines []string, refused []string) {
	base := time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)
	for i, p := range placeholders {
		at := func(d time.Duration) string {
			return base.Add(time.Duration(i)*3*time.Hour + d).Format(time.RFC3339)
		}
		dev := func(n int) string { return fmt.Sprintf("ph%d-d%d", i, n) }
		id := func(n int) string { return fmt.Sprintf("ph%d-%d", i, n) }
		add := func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) }
		for n := 1; n <= 2; n++ {
			add(`{"type":"track","anonymousId":"%s","event":"View %d","messageId":"%s","timestamp":"%s"}`, dev(n), i, id(10*n), at(time.Duration(n)*time.Hour))
			add(`{"type":"identify","anonymousId":"%s","userId":%s,"messageId":"%s","timestamp":"%s"}`, dev(n), p, id(10*n+1), at(time.Duration(n)*time.Hour+time.Minute))
		}
		add(`{"type":"track","anonymousId":"%s","event":"View %d","messageId":"%s","timestamp":"%s"}`, dev(3), i, id(30), at(0))
		add(`{"type":"alias","anonymousId":"%s","userId":%s,"previousId":"%s","messageId":"%s","timestamp":"%s"}`, dev(3), p, dev(1), id(31), at(time.Minute))
		add(`{"type":"alias","anonymousId":"%s","userId":"shopper-%d","previousId":%s,"messageId":"%s","timestamp":"%s"}`, dev(3), i, p, id(32), at(2*time.Minute))
		add(`{"type":"track","anonymousId":"%s","userId":%s,"event":"Order %d","messageId":"%s","timestamp":"%s"}`, dev(3), p, i, id(33), at(3*time.Minute))
		add(`{"type":"track","userId":%s,"event":"Order %d","messageId":"%s","timestamp":"%s"}`, p, i, id(40), at(4*time.Minute))
		refused = append(refused, id(40))
	}
	return lines, refused
}

// TestPlaceholderIDsMergeNobody is field case kind 05 (shared identity) for ids that are no ids:
// broken client code identifies every visitor as "undefined" (or null, 0, blank, "[object
// Object]"). Such an id is read as none on every path, so the three visitors of each placeholder
// stay three persons, one of whom ordered (funnel 3 → 1, not 1 → 1), the third under the real
// user its alias named; the events that named no one else are refused as missing_identity naming
// userId (listed in a batch's answer, 400 on a single call, dead-lettered from Kafka, skipped by
// replay), and the placeholders of the events kept are counted by field and placeholder.
// Through /v1/batch in one call, each line on its own endpoint (/v1/track, /v1/identify,
// /v1/alias), straight through Kafka with kcat, and with `waymark replay` of the lines as a
// Segment export; the answers are the same each way (in a later pass of the run, the first way:
// see everyPath).
func TestPlaceholderIDsMergeNobody(t *testing.T) {
	t.Parallel()
	placeholders := []string{`"undefined"`, `"null"`, `"0"`, `0`, `" "`, `"[object Object]"`, `"Undefined"`, `"(null)"`, `"nil"`, `"00000000-0000-0000-0000-000000000000"`}
	lines, refused := placeholderLines(placeholders)
	var steps []string
	for i := range placeholders {
		steps = append(steps, fmt.Sprintf("View %d,Order %d", i, i))
	}
	arrivals := []string{"one batch", "one call each", "kcat", "replay"}
	var first []string // the answers of the first arrival
	for _, arrival := range arrivals {
		if arrival != arrivals[0] && !everyPath() {
			continue // the same lines by another path
		}
		s := startServe(t)
		switch arrival {
		case "one batch":
			status, answer := s.track(t, "/v1/batch", `{"batch":[`+strings.Join(lines, ",")+`]}`)
			var got struct {
				Rejected []struct {
					Index         int
					Reason, Field string
				}
			}
			if err := json.Unmarshal([]byte(answer), &got); err != nil || status != 200 {
				t.Fatalf("POST /v1/batch: %d %s", status, answer)
			}
			var rejected []string
			for _, r := range got.Rejected {
				rejected = append(rejected, fmt.Sprintf("%s %s %s", r.Reason, r.Field, messageID(t, lines[r.Index])))
			}
			var want []string
			for _, id := range refused {
				i := lineOf(t, lines, id)
				want = append(want, fmt.Sprintf("missing_identity batch[%d].userId %s", i, id))
			}
			if fmt.Sprint(rejected) != fmt.Sprint(want) {
				t.Errorf("POST /v1/batch rejected %v, want %v", rejected, want)
			}
		case "one call each":
			for _, l := range lines {
				var m struct{ Type, MessageID string }
				if err := json.Unmarshal([]byte(l), &m); err != nil {
					t.Fatal(err)
				}
				status, answer := s.track(t, "/v1/"+m.Type, l)
				var body struct{ Field string }
				json.Unmarshal([]byte(answer), &body)
				isRefused := strings.Contains(strings.Join(refused, " "), m.MessageID)
				switch {
				case !isRefused && status != 200:
					t.Errorf("POST /v1/%s %s: %d %s, want 200", m.Type, l, status, answer)
				case isRefused && (status != 400 || body.Field != "userId" || !strings.Contains(answer, "missing_identity")):
					t.Errorf("POST /v1/%s %s: %d %s, want 400 missing_identity naming userId", m.Type, l, status, answer)
				}
			}
		case "kcat":
			produceWithKcat(t, s.broker, lines)
		case "replay":
			out := s.replayLines(t, lines)
			if want := fmt.Sprintf("skipped %d events", len(refused)); !strings.Contains(out, want) || strings.Count(out, "missing_identity (field userId)") != len(refused) {
				t.Errorf("replay: %s\nwant %s, each as missing_identity (field userId)", out, want)
			}
		}
		s.waitStored(t)

		var answers []string
		for i, st := range steps {
			var counts []int64
			for _, step := range s.funnel(t, st, "24h").Steps {
				counts = append(counts, step.Customers)
			}
			answers = append(answers, fmt.Sprintf("%s: %v", st, counts))
			if fmt.Sprint(counts) != "[3 1]" {
				t.Errorf("%s: funnel %s (placeholder %s) = %v, want [3 1]: three visitors, one ordered", arrival, st, placeholders[i], counts)
			}
		}
		sum := s.sessions(t)
		answers = append(answers, fmt.Sprintf("sessions %d persons %d events %d", sum.Sessions, sum.Persons, sum.Events))
		if n := uint64(3 * len(placeholders)); sum.Sessions != n || sum.Persons != n {
			t.Errorf("%s: %d sessions of %d persons, want %d of %d (each device one visitor)", arrival, sum.Sessions, sum.Persons, n, n)
		}
		stored := queryStrings(t, "SELECT DISTINCT user_id FROM "+s.database+".events WHERE user_id != '' ORDER BY user_id")
		var shoppers []string
		for i := range placeholders {
			shoppers = append(shoppers, fmt.Sprintf("shopper-%d", i))
		}
		if fmt.Sprint(stored) != fmt.Sprint(shoppers) {
			t.Errorf("%s: stored user ids %q, want only the real ones %q", arrival, stored, shoppers)
		}

		// A single call refused gets a 400, and replay skips the line with its reason: neither
		// reaches Kafka. The others are dead-lettered.
		if arrival == "one batch" || arrival == "kcat" {
			dead, err := readDLQ(t.Context(), s.broker)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(dead["missing_identity"], `"userId":`) {
				t.Errorf("%s: no dead letter missing_identity (dead letters: %v)", arrival, dead)
			}
		}
		metrics := scrape(t, s.http)
		for _, m := range []struct {
			field, name string
			want        float64
		}{
			{"userId", "undefined", 8}, {"userId", "null", 4}, {"userId", "0", 8}, {"userId", "blank", 4}, {"userId", "[object object]", 4},
			{"previousId", "undefined", 2}, {"previousId", "0", 2}, {"previousId", "blank", 1},
		} {
			name := fmt.Sprintf(`waymark_consumer_placeholder_ids_total{field=%q,placeholder=%q}`, m.field, m.name)
			if got := metricValue(t, metrics, name); got != m.want {
				t.Errorf("%s: %s = %g, want %g", arrival, name, got, m.want)
			}
		}

		if first == nil {
			first = answers
		} else if fmt.Sprint(answers) != fmt.Sprint(first) {
			t.Errorf("%s answers %v, %s answers %v", arrival, answers, arrivals[0], first)
		}
	}
}

// messageID returns the messageId of a Segment message.
func messageID(t *testing.T, line string) string {
	t.Helper()
	var m struct{ MessageID string }
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatal(err)
	}
	return m.MessageID
}

// lineOf returns the index of the line whose messageId is id.
func lineOf(t *testing.T, lines []string, id string) int {
	t.Helper()
	for i, l := range lines {
		if messageID(t, l) == id {
			return i
		}
	}
	t.Fatalf("no line has messageId %s", id)
	return -1
}

// TestPlaceholderMessageIDsAreNoID: a client that sends one placeholder messageId
// ("undefined", "null", 0) with every message has each message counted, not all of them
// deduplicated into its first one; the same messages sent again (a retry: the batch posted
// again, the messages produced again, the file replayed again) still count once. Through the
// collector, straight to Kafka and replay. Two identical members of one batch, or lines of one
// file, are no retry of each other but two events (TestDerivedIDsTellCallsAndTwinsApart).
func TestPlaceholderMessageIDsAreNoID(t *testing.T) {
	t.Parallel()
	line := func(user, event, id, ts string) string {
		return fmt.Sprintf(`{"type":"track","userId":%q,"event":%q,"messageId":%s,"timestamp":"2024-05-15T%s:00Z"}`, user, event, id, ts)
	}
	var lines []string
	for i, id := range []string{`"undefined"`, `"null"`, `0`} {
		user := fmt.Sprintf("buyer-%d", i)
		view := line(user, "PM View", id, "10:00")
		lines = append(lines, view, line(user, "PM Order", id, "10:05"), line(user, "PM Order", id, "10:20"))
	}
	for i, arrival := range []string{"one batch", "kcat", "replay"} {
		if i > 0 && !everyPath() {
			continue // the same lines by another path
		}
		s := startServe(t)
		for range 2 { // sent, then sent again: a retry
			switch arrival {
			case "one batch":
				s.sendBatch(t, lines...)
			case "kcat":
				produceWithKcat(t, s.broker, lines)
			case "replay":
				s.replayLines(t, lines)
			}
		}
		s.waitStored(t)
		for _, tt := range []struct{ steps, want string }{
			{"PM View,PM Order,PM Order", "[3 3 3]"}, // every buyer ordered twice
			{"PM View,PM View", "[3 0]"},             // the view sent again is one event
		} {
			var counts []int64
			for _, step := range s.funnel(t, tt.steps, "24h").Steps {
				counts = append(counts, step.Customers)
			}
			if fmt.Sprint(counts) != tt.want {
				t.Errorf("%s: funnel %s = %v, want %s", arrival, tt.steps, counts, tt.want)
			}
		}
	}
}

// TestPlaceholderSessionIDsSplitNoVisit: a visit whose client sends a placeholder session id
// ("undefined", 0) on some calls is one session: the placeholder is no session id, not a change
// of session (tester4's repro).
func TestPlaceholderSessionIDsSplitNoVisit(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	var lines []string
	for i, id := range []string{`1733000000`, `"undefined"`, `1733000000`, `0`, `-1`} {
		lines = append(lines, fmt.Sprintf(`{"type":"track","userId":"visitor","event":"PS View","messageId":"ps-%d","timestamp":"2024-05-15T10:%02d:00Z","context":{"sessionId":%s}}`, i, i, id))
	}
	s.sendBatch(t, lines...)
	s.waitStored(t)
	if sum := s.sessions(t); sum.Sessions != 1 || sum.Events != uint64(len(lines)) {
		t.Errorf("%d sessions of %d events, want 1 of %d", sum.Sessions, sum.Events, len(lines))
	}
}

// replayLines replays lines, Segment messages, with `waymark replay --format segment` from a file
// of them, waits until they are stored, and returns what replay printed.
func (s *server) replayLines(t *testing.T, lines []string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "export.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return s.waymark(t, "replay", "--format", "segment", "--file", file, "--wait", "2m")
}
