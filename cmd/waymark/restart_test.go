package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/store/storetest"
)

// TestKill9RestartGivesTheSameSessions kills `waymark serve` with SIGKILL in the middle of a
// stream and starts it again: the sessions (and funnels) equal those of an uninterrupted run over
// the same input, because offsets are committed only for what is stored and a restarted
// sessionizer restores each customer's stored events and sessions before going on.
//
// The middle is made so, not raced for: the sample is split at a time, so that many customers'
// sessions run across it. The earlier half is stored and committed; then ClickHouse is stopped
// and the later half replayed, which the consumer fetches but can neither store nor commit; it is
// killed once it has retried storing a batch of them, and ClickHouse comes back.
//
// Its subject is a consumer killed and ClickHouse stopped, as TestClickHouseOutage's, so one pass
// of a run has it (storetest.FirstPassOnly): a later pass asks 26.7 about the restore's reads of
// the store after a restart and an eviction (TestCopiesOnOtherKeysCountOnceAfterRestartAndEviction)
// and about the Taobao sample's answers (TestTaobaoKnownAnswersAndIdempotentReplay).
func TestKill9RestartGivesTheSameSessions(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	ch := startOwnClickHouse(t)
	broker := startBrokerProcess(t)
	// Two passes of the sample (20,000 events): the later half is several batches (1,000) the
	// consumer cannot store, and the customers whose sessions run across the split are those of
	// every pass (each pass repeats the sample with fresh ids), so more passes add only size.
	const passes = 2
	early, late := splitTaobaoAt(t, time.Date(2017, 11, 30, 0, 0, 0, 0, time.UTC))
	interrupted := fmt.Sprintf("restart_%d", dbSeq.Add(1))
	flags := []string{"--roles", "ingest", "--kafka-brokers", broker, "--clickhouse-addr", ch.Addr, "--clickhouse-database", interrupted, "--batch-size", "1000"}
	first := startServe(t, flags...)
	replay := func(file string) {
		first.waymark(t, "replay", "--format", "taobao", "--file", file, "--repeat", fmt.Sprint(passes), "--kafka-brokers", broker)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // a hang guard
	defer cancel()
	replay(early)
	if err := ingest.WaitCaughtUp(ctx, []string{broker}, "waymark", "waymark.events"); err != nil {
		t.Fatal(err)
	}
	stuck := storeRetries(scrape(t, first.http))
	ch.Stop()
	replay(late)
	waitFor(t, "the consumer to hold events it cannot store", func() bool {
		return storeRetries(scrape(t, first.http)) > stuck
	})
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.exited
	first.exited <- nil
	if err := ch.Restart(); err != nil {
		t.Fatal(err)
	}
	second := startServe(t, flags...)
	second.database, second.broker = interrupted, broker

	// The uninterrupted run: another group and database over the same topic.
	whole := fmt.Sprintf("whole_%d", dbSeq.Add(1))
	startServe(t, "--roles", "ingest", "--kafka-brokers", broker, "--clickhouse-addr", ch.Addr, "--clickhouse-database", whole, "--group", "uninterrupted")

	for _, group := range []string{"waymark", "uninterrupted"} {
		if err := ingest.WaitCaughtUp(ctx, []string{broker}, group, "waymark.events"); err != nil {
			t.Fatal(err)
		}
	}
	want := sessionRows(t, ch.Addr, whole)
	got := sessionRows(t, ch.Addr, interrupted)
	if len(want) != passes*1700 {
		t.Fatalf("uninterrupted run has %d sessions, want %d", len(want), passes*1700)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		missing, extra := diffLines(want, got)
		t.Errorf("sessions after kill -9 and restart differ from the uninterrupted run: %d missing, %d extra\nmissing e.g. %v\nextra e.g. %v",
			len(missing), len(extra), head(missing), head(extra))
	}
	for _, k := range knownAnswers {
		out := second.waymark(t, "funnel", "--clickhouse-addr", ch.Addr, "--steps", k.steps, "--window", k.window, "--json")
		var f funnelJSON
		if err := json.Unmarshal([]byte(out), &f); err != nil {
			t.Fatalf("funnel --json: %v\n%s", err, out)
		}
		for i, st := range f.Steps {
			if st.Customers != passes*k.want[i] {
				t.Errorf("funnel %s window %s step %d: %d customers, want %d", k.steps, k.window, i+1, st.Customers, passes*k.want[i])
			}
		}
	}
}

// splitTaobaoAt writes the Taobao sample's rows before at, and the others, to two files in their
// order, and checks that some customers have rows in both.
func splitTaobaoAt(t *testing.T, at time.Time) (early, late string) {
	t.Helper()
	raw, err := os.ReadFile(taobaoSample)
	if err != nil {
		t.Fatal(err)
	}
	var before, after strings.Builder
	users := map[string]int{} // 1 before, 2 after, 3 both
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		f := strings.Split(line, ",")
		sec, err := strconv.ParseInt(f[len(f)-1], 10, 64)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if sec < at.Unix() {
			before.WriteString(line + "\n")
			users[f[0]] |= 1
		} else {
			after.WriteString(line + "\n")
			users[f[0]] |= 2
		}
	}
	both := 0
	for _, u := range users {
		if u == 3 {
			both++
		}
	}
	if both == 0 {
		t.Fatalf("no customer has rows on both sides of %s", at)
	}
	dir := t.TempDir()
	early, late = filepath.Join(dir, "early.csv"), filepath.Join(dir, "late.csv")
	for file, text := range map[string]string{early: before.String(), late: after.String()} {
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return early, late
}

// sessionRows lists the live sessions of a database, without their versions, sorted.
func sessionRows(t *testing.T, addr, db string) []string {
	t.Helper()
	return queryStringsOn(t, addr, `SELECT concat(session_id, ' ', customer_key, ' ', toString(start), ' ', toString(end), ' ', toString(n), ' ',
		entry, ' ', exit, ' ', arrayStringConcat(stages, ','), ' ', reason)
	FROM (SELECT session_id, argMax(customer_key, version) AS customer_key, argMax(start_ms, version) AS start,
		argMax(end_ms, version) AS end, argMax(events, version) AS n, argMax(entry_event, version) AS entry,
		argMax(exit_event, version) AS exit, argMax(stages, version) AS stages, argMax(end_reason, version) AS reason,
		argMax(deleted, version) AS gone
		FROM `+db+`.sessions GROUP BY session_id HAVING gone = 0)
	ORDER BY session_id`)
}

func diffLines(want, got []string) (missing, extra []string) {
	in := func(list []string) map[string]bool {
		m := map[string]bool{}
		for _, l := range list {
			m[l] = true
		}
		return m
	}
	w, g := in(want), in(got)
	for _, l := range want {
		if !g[l] {
			missing = append(missing, l)
		}
	}
	for _, l := range got {
		if !w[l] {
			extra = append(extra, l)
		}
	}
	return missing, extra
}

func head(list []string) []string { return list[:min(3, len(list))] }

// TestSIGTERMOnTheDevBrokerStoresAcknowledgedEvents: the dev broker keeps events in memory only,
// so `waymark serve` on it must not stop while events the collector acknowledged (HTTP 200) are
// not stored. ClickHouse is held down while 5,000 events are posted, so that when SIGTERM comes
// the consumer holds at most a few batches of them and most are still in the broker, by
// construction, not by timing; ClickHouse comes back after the signal. Every acknowledged event
// is stored before serve exits.
func TestSIGTERMOnTheDevBrokerStoresAcknowledgedEvents(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	ch := startOwnClickHouse(t)
	s := startServe(t, "--clickhouse-addr", ch.Addr, "--batch-size", "100", "--stop-timeout", "90s")
	ch.Stop()
	const calls, perCall = 50, 100
	for c := range calls {
		var batch []string
		for i := range perCall {
			batch = append(batch, fmt.Sprintf(`{"type":"track","event":"Product Viewed","anonymousId":"dev-%d","messageId":"m-%d-%d","timestamp":"2026-11-20T10:%02d:00Z"}`, i, c, i, c))
		}
		s.sendBatch(t, batch...)
	}
	waitFor(t, "the consumer to hold events it cannot store", func() bool { return storeRetries(scrape(t, s.http)) > 0 })
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := ch.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := s.waitExit(t); err != nil {
		t.Fatalf("serve exited with %v after SIGTERM", err)
	}
	if n := liveEventsOn(t, ch.Addr, s.database); n != calls*perCall {
		t.Errorf("%d events stored, want the %d acknowledged", n, calls*perCall)
	}
	if strings.Contains(s.log.String(), "LOST") {
		t.Errorf("serve logged events lost:\n%s", s.log)
	}
}

// TestSIGTERMOnTheDevBrokerLogsLostEvents: when the consumer cannot store the acknowledged events
// within --stop-timeout (ClickHouse stays down), serve still stops (with an error: its last batch
// was not written, within what is left of that timeout: TestDrainBoundsTheLastBatch), and says
// at ERROR level how many acknowledged events are lost with the dev broker.
func TestSIGTERMOnTheDevBrokerLogsLostEvents(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	ch := startOwnClickHouse(t)
	s := startServe(t, "--clickhouse-addr", ch.Addr, "--stop-timeout", "1s")
	ch.Stop()
	if status, answer := s.track(t, "/v1/track", `{"type":"track","event":"Product Viewed","anonymousId":"dev-1"}`); status != 200 {
		t.Fatalf("POST /v1/track: %d %s", status, answer)
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s.waitExit(t) // an error: the consumer's last batch was not written
	if !strings.Contains(s.log.String(), `level=ERROR msg="shutting down: acknowledged events LOST`) || !strings.Contains(s.log.String(), "events=1 ") {
		t.Errorf("no ERROR naming 1 event lost:\n%s", s.log)
	}
	// Its last word says it stopped with an error, not that the consumer flushed (tester 19's T3).
	if strings.Contains(s.log.String(), "flushed and committed") || !strings.Contains(s.log.String(), `level=ERROR msg="stopped with an error`) {
		t.Errorf("serve's last line does not say it stopped with an error:\n%s", s.log)
	}
}

// TestSIGTERMOnACollectorWithTheDevBrokerLogsLostEvents: a collector without the ingest role on
// the dev broker holds acknowledged events no process of its own stores; it says so when it
// starts, and on SIGTERM it waits --stop-timeout for a consumer group to store them, then logs at
// ERROR that they are lost (tester 15's F11: they were lost without a word).
func TestSIGTERMOnACollectorWithTheDevBrokerLogsLostEvents(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	s := startServe(t, "--roles", "collector", "--stop-timeout", "1s")
	s.waitLogged(t, "DEV BROKER without the ingest role")
	if status, answer := s.track(t, "/v1/track", `{"type":"track","event":"Product Viewed","anonymousId":"dev-1"}`); status != 200 {
		t.Fatalf("POST /v1/track: %d %s", status, answer)
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s.waitExit(t)
	if !strings.Contains(s.log.String(), `level=ERROR msg="shutting down: acknowledged events LOST`) || !regexp.MustCompile(`events(_at_most)?=1\n`).MatchString(s.log.String()) {
		t.Errorf("no ERROR naming the 1 event lost:\n%s", s.log)
	}
}

// TestTiesKeepTheClientsOrderAcrossADevBrokerRestart: the dev broker's offsets start at 0 again
// with each serve, and an event's seq (its place in the client's order among events of one
// time) was its offset, so an event sent after a restart at the second of one sent before was
// placed before it: the session's exit and the path after the order were reversed (tester 19's
// T1). Seqs now go on past the stored ones.
func TestTiesKeepTheClientsOrderAcrossADevBrokerRestart(t *testing.T) {
	t.Parallel()
	first := startServe(t)
	first.sendBatch(t,
		`{"type":"track","messageId":"r1","anonymousId":"x","event":"Product Viewed","timestamp":"2026-11-20T09:00:00Z"}`,
		`{"type":"track","messageId":"r2","anonymousId":"x","event":"Product Viewed","timestamp":"2026-11-20T09:01:00Z"}`,
		`{"type":"track","messageId":"r3","anonymousId":"x","event":"Product Added","timestamp":"2026-11-20T09:02:00Z"}`,
		`{"type":"track","messageId":"r4","anonymousId":"x","event":"Order Completed","timestamp":"2026-11-20T09:03:00Z"}`)
	first.waitStored(t)
	first.stop(t)
	s := startServe(t, "--clickhouse-database", first.database)
	s.database = first.database
	s.sendBatch(t, `{"type":"track","messageId":"r5","anonymousId":"x","event":"Product Reviewed","timestamp":"2026-11-20T09:03:00Z"}`)
	s.waitStored(t)
	if seqs := queryStrings(t, "SELECT message_id FROM "+s.database+".events ORDER BY seq, message_id"); !slices.Equal(seqs, []string{"r1", "r2", "r3", "r4", "r5"}) {
		t.Errorf("events by seq: %v, want in the order sent", seqs)
	}
	if exits := queryStrings(t, "SELECT exit_event FROM "+s.database+".sessions FINAL WHERE deleted = 0"); !slices.Equal(exits, []string{"Product Reviewed"}) {
		t.Errorf("sessions' exits %v, want the review sent last", exits)
	}
	code, body := httpGet(t, "http://"+s.http+"/api/v1/next?anchor=Order+Completed&from=2026-11-20&to=2026-11-21")
	if code != 200 || !strings.Contains(body, "Product Reviewed") {
		t.Errorf("next after Order Completed: %d %s, want Product Reviewed", code, body)
	}
}
