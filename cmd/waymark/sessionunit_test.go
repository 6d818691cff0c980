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

// TestSessionIsOnePersonsVisit (field cases 05 and 07; tester3's report, finding 3): every query
// that counts sessions counts one unit, a person's touchpoints within one visit of a device. A
// visit shared by several signed-in persons is one session per person, as Amplitude and Mixpanel
// count sessions per user; a visit in which one person logs in stays one session. The funnel by
// sessions, the sessions summary (sessions, persons, entry channels, end reasons) and the stages
// stored with the visits agree: a stage is stored only when a person reached it, as the stages
// query says (bob's first order on alice's device is not her second).
func TestSessionIsOnePersonsVisit(t *testing.T) {
	t.Parallel()
	case05 := caseLines(t, "identity/05-shared-device-two-users/events.jsonl")
	tests := []struct {
		name     string
		lines    []string
		steps    string
		sessions uint64   // sessions and persons in the summary
		persons  uint64   //
		funnel   []int64  // the funnel of steps by sessions
		channels []string // the sessions' entry channels, sorted
	}{
		{"twelve users sign in one after another in one visit, four order", twelveSignIns(),
			"Product Viewed,Order Completed", 12, 12, []int64{12, 4}, slices.Repeat([]string{"direct"}, 12)},
		{"case 05: alice and bob in two visits", case05,
			"Product Viewed,Order Completed", 2, 2, []int64{1, 0}, []string{"direct", "direct"}},
		{"case 05 in one visit, bob from a search ad", oneVisit(t, case05),
			"Product Viewed,Order Completed", 2, 2, []int64{1, 0}, []string{"direct", "paid_search"}},
		{"case 07: one person logs in mid-visit", caseLines(t, "identity/07-login-mid-session/events.jsonl"),
			"Product Viewed,Product Added,Order Completed", 1, 1, []int64{1, 1, 1}, []string{"direct"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			funnel := "/api/v1/funnel?count_by=sessions&steps=" + url.QueryEscape(tc.steps)
			for _, s := range sendBothWays(t, tc.lines) {
				sum := s.sessions(t)
				if sum.Sessions != tc.sessions || sum.Persons != tc.persons {
					t.Errorf("%s: sessions %d, persons %d; want %d, %d", s.database, sum.Sessions, sum.Persons, tc.sessions, tc.persons)
				}
				var channels []string
				for ch, n := range sum.ByEntryChannel {
					channels = append(channels, slices.Repeat([]string{ch}, int(n))...)
				}
				slices.Sort(channels)
				if !slices.Equal(channels, tc.channels) {
					t.Errorf("%s: entry channels %v, want %v", s.database, sum.ByEntryChannel, tc.channels)
				}
				ended := uint64(0)
				for _, n := range sum.ByEndReason {
					ended += n
				}
				if ended != sum.Sessions {
					t.Errorf("%s: end reasons %v count %d sessions, not %d", s.database, sum.ByEndReason, ended, sum.Sessions)
				}
				code, body := httpGet(t, "http://"+s.http+funnel)
				var f funnelJSON
				if err := json.Unmarshal([]byte(body), &f); code != 200 || err != nil {
					t.Fatalf("%s: funnel by sessions: %d %s", s.database, code, body)
				}
				var counts []int64
				for _, st := range f.Steps {
					counts = append(counts, st.Customers)
				}
				if !slices.Equal(counts, tc.funnel) {
					t.Errorf("%s: funnel %s by sessions: %v, want %v", s.database, tc.steps, counts, tc.funnel)
				}
				code, body = httpGet(t, "http://"+s.http+"/api/v1/stages")
				var st struct {
					Stages []struct {
						Stage   string
						Entered int64
					}
				}
				if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
					t.Fatalf("%s: stages: %d %s", s.database, code, body)
				}
				var entered []string
				for _, x := range st.Stages {
					if x.Entered > 0 {
						entered = append(entered, x.Stage)
					}
				}
				stored := queryStrings(t, "SELECT DISTINCT arrayJoin(stages) FROM "+s.database+".sessions FINAL WHERE deleted = 0")
				slices.Sort(entered)
				slices.Sort(stored)
				if !slices.Equal(stored, entered) {
					t.Errorf("%s: the visits store the stages %v, the stages query has %v entered", s.database, stored, entered)
				}
				s.batchAnswersAsAlone(t, funnel, "/api/v1/sessions", "/api/v1/stages")
			}
		})
	}
}

// caseLines returns the Segment messages of a field case's events file, one per line.
func caseLines(t *testing.T, name string) []string {
	t.Helper()
	return strings.Split(strings.TrimSpace(string(readCase(t, name))), "\n")
}

// twelveSignIns is tester3's repro: twelve users sign in one after another on one device, a
// minute apart (one visit), each views a product, and users 0, 3, 6 and 9 order.
func twelveSignIns() []string {
	var lines []string
	add := func(m map[string]any) {
		m["anonymousId"] = "m-dev"
		m["messageId"] = fmt.Sprintf("mm%d", len(lines))
		b, _ := json.Marshal(m)
		lines = append(lines, string(b))
	}
	for i := range 12 {
		at := fmt.Sprintf("2025-05-05T10:%02d:00Z", i)
		add(map[string]any{"type": "identify", "userId": fmt.Sprintf("m-u%d", i), "timestamp": at})
		add(map[string]any{"type": "track", "event": "Product Viewed", "timestamp": at})
		if i%3 == 0 {
			add(map[string]any{"type": "track", "event": "Order Completed", "timestamp": fmt.Sprintf("2025-05-05T10:%02d:30Z", i)})
		}
	}
	return lines
}

// oneVisit moves field case 05's bob into alice's visit (his sign-in and order ten and fifteen
// minutes after her view, within the 30-minute gap), his order from a search ad.
func oneVisit(t *testing.T, lines []string) []string {
	t.Helper()
	moved := map[string]string{"2024-05-09T10:00:00Z": "2024-05-09T09:10:00Z", "2024-05-09T10:05:00Z": "2024-05-09T09:15:00Z"}
	var out []string
	found := 0
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		if to, ok := moved[m["timestamp"].(string)]; ok {
			m["timestamp"] = to
			found++
			if m["type"] == "track" {
				m["context"] = map[string]any{"campaign": map[string]any{"source": "google", "medium": "cpc"}}
			}
		}
		b, _ := json.Marshal(m)
		out = append(out, string(b))
	}
	if found != len(moved) {
		t.Fatalf("field case 05 has %d of bob's times %v, want each once", found, slices.Collect(maps.Keys(moved)))
	}
	return out
}

// TestSharedVisitEntryIsEachPersons (tester 23's F1): on a shared browser visit, alice arrives
// from an email link (campaign may), signs in and views a product; then bob signs in on the same
// device in the same visit, views a product from an internal link and orders. Each person's
// session enters by their own first touchpoint in the visit, the one rule of a session's entry:
// the sessions summary gives one direct and one email session, and funnels broken down by channel
// or campaign, counted by sessions or persons, give bob's view and order to direct and no
// campaign, where they went to alice's email and may. Sent by HTTP and by Kafka, matched where
// serve matches by default (in ClickHouse when it has waymark_funnel) and, there, in Waymark too,
// byte for byte; a batch answers as the queries alone.
func TestSharedVisitEntryIsEachPersons(t *testing.T) {
	t.Parallel()
	lines := []string{
		`{"type":"page","anonymousId":"dBB1","name":"Home","messageId":"BB1-1","timestamp":"2025-05-05T10:00:00Z","context":{"page":{"url":"https://shop.example/?utm_source=nl&utm_medium=email&utm_campaign=may"}}}`,
		`{"type":"identify","anonymousId":"dBB1","userId":"aliceBB","messageId":"BB1-2","timestamp":"2025-05-05T10:01:00Z"}`,
		`{"type":"track","anonymousId":"dBB1","userId":"aliceBB","event":"Product Viewed","messageId":"BB1-3","timestamp":"2025-05-05T10:02:00Z"}`,
		`{"type":"identify","anonymousId":"dBB1","userId":"bobBB","messageId":"BB1-4","timestamp":"2025-05-05T10:10:00Z"}`,
		`{"type":"track","anonymousId":"dBB1","userId":"bobBB","event":"Product Viewed","messageId":"BB1-5","timestamp":"2025-05-05T10:11:00Z","context":{"page":{"url":"https://shop.example/p/1","referrer":"https://shop.example/"}}}`,
		`{"type":"track","anonymousId":"dBB1","userId":"bobBB","event":"Order Completed","messageId":"BB1-6","timestamp":"2025-05-05T10:15:00Z"}`,
	}
	funnel := "/api/v1/funnel?steps=" + url.QueryEscape("Product Viewed,Order Completed") + "&from=2025-05-05&to=2025-05-06&window=1h"
	tests := []struct {
		query string
		want  string // per breakdown group, the customers of each step
	}{
		{funnel + "&count_by=sessions&breakdown=channel", "direct [1 1], email [1 0]"},
		{funnel + "&count_by=persons&breakdown=channel", "direct [1 1], email [1 0]"},
		{funnel + "&count_by=sessions&breakdown=campaign", "(none) [1 1], may [1 0]"},
		{funnel + "&count_by=persons&breakdown=campaign", "(none) [1 1], may [1 0]"},
	}
	for _, s := range sendBothWays(t, lines) {
		if sum := s.sessions(t, "--from", "2025-05-05", "--to", "2025-05-06"); !maps.Equal(sum.ByEntryChannel, map[string]uint64{"direct": 1, "email": 1}) {
			t.Errorf("%s: sessions by entry channel %v, want direct 1, email 1", s.database, sum.ByEntryChannel)
		}
		servers := []*server{s}
		if chServer.FunnelUDF { // s matches in ClickHouse; this one in Waymark, on the same database
			servers = append(servers, startServe(t, "--clickhouse-database", s.database, "--funnel-matching", "process"))
		}
		var gets []string
		for _, tc := range tests {
			var first string
			for i, srv := range servers {
				code, body := httpGet(t, "http://"+srv.http+tc.query)
				byName, err := parseBreakdownGroups(body)
				if code != 200 || err != nil {
					t.Fatalf("%s: %s: %d %s", s.database, tc.query, code, body)
				}
				var groups []string
				for name, counts := range byName {
					groups = append(groups, fmt.Sprintf("%s %v", name, counts))
				}
				slices.Sort(groups)
				if got := strings.Join(groups, ", "); got != tc.want {
					t.Errorf("%s: %s: %s, want %s", s.database, tc.query, got, tc.want)
				}
				if i == 0 {
					first = body
				} else if body != first {
					t.Errorf("%s: %s: matched in Waymark\n%s\nin ClickHouse\n%s", s.database, tc.query, body, first)
				}
			}
			gets = append(gets, tc.query)
		}
		s.batchAnswersAsAlone(t, gets...)
	}
}
