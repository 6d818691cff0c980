package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/ingest"
)

// TestKill9RestartGivesTheSameSessions kills `waymark serve` with SIGKILL in the middle of a
// replay and starts it again: the sessions (and funnels) equal those of an uninterrupted run over
// the same input, because offsets are committed only for what is stored and a restarted
// sessionizer restores each customer's stored events and sessions before going on.
func TestKill9RestartGivesTheSameSessions(t *testing.T) {
	broker := startBrokerProcess(t)
	const passes = 5
	interrupted := fmt.Sprintf("restart_%d", dbSeq.Add(1))
	flags := []string{"--roles", "ingest", "--kafka-brokers", broker, "--clickhouse-database", interrupted, "--batch-size", "1000"}
	first := startServe(t, flags...)
	first.waymark(t, "replay", "--format", "taobao", "--file", taobaoSample, "--repeat", fmt.Sprint(passes), "--kafka-brokers", broker)
	deadline := time.Now().Add(time.Minute)
	for liveEvents(t, interrupted) < 5000 {
		if time.Now().After(deadline) {
			t.Fatal("nothing stored after a minute")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := liveEvents(t, interrupted); n >= passes*10000 {
		t.Fatalf("all %d events stored before the kill; the test proves nothing", n)
	}
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.exited
	first.exited <- nil
	second := startServe(t, flags...)
	second.database, second.broker = interrupted, broker

	// The uninterrupted run: another group and database over the same topic.
	whole := fmt.Sprintf("whole_%d", dbSeq.Add(1))
	startServe(t, "--roles", "ingest", "--kafka-brokers", broker, "--clickhouse-database", whole, "--group", "uninterrupted")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, group := range []string{"waymark", "uninterrupted"} {
		if err := ingest.WaitCaughtUp(ctx, []string{broker}, group, "waymark.events"); err != nil {
			t.Fatal(err)
		}
	}
	want := sessionRows(t, whole)
	got := sessionRows(t, interrupted)
	if len(want) != passes*1700 {
		t.Fatalf("uninterrupted run has %d sessions, want %d", len(want), passes*1700)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		missing, extra := diffLines(want, got)
		t.Errorf("sessions after kill -9 and restart differ from the uninterrupted run: %d missing, %d extra\nmissing e.g. %v\nextra e.g. %v",
			len(missing), len(extra), head(missing), head(extra))
	}
	for _, k := range knownAnswers {
		f := second.funnel(t, k.steps, k.window)
		for i, st := range f.Steps {
			if st.Customers != passes*k.want[i] {
				t.Errorf("funnel %s window %s step %d: %d customers, want %d", k.steps, k.window, i+1, st.Customers, passes*k.want[i])
			}
		}
	}
}

// sessionRows lists the live sessions of a database, without their versions, sorted.
func sessionRows(t *testing.T, db string) []string {
	t.Helper()
	return queryStrings(t, `SELECT concat(session_id, ' ', customer_key, ' ', toString(start), ' ', toString(end), ' ', toString(n), ' ',
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
