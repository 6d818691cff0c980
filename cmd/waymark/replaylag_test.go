package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReplayOfAnOldExportIsNoStoredLag: a Segment export's lines carry the receivedAt of their
// first delivery (here 2024), which a replay keeps on the events. The stored lag histogram
// measured from it, so importing an export counted its age as pipeline lag and fired
// WaymarkStoredLagBudgetBurnFast; it measures from when Waymark received the messages, the
// replay's produce time.
func TestReplayOfAnOldExportIsNoStoredLag(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	lines := []string{
		`{"type":"track","userId":"lag1","event":"Old Import","messageId":"lag-1","timestamp":"2024-03-01T10:00:00Z","receivedAt":"2024-03-01T10:00:01Z","sentAt":"2024-03-01T10:00:00Z"}`,
		`{"type":"page","userId":"lag1","name":"Old Page","messageId":"lag-2","timestamp":"2024-03-01T10:01:00Z","receivedAt":"2024-03-01T10:01:02Z"}`,
	}
	file := filepath.Join(t.TempDir(), "export.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Each event's lag is at most the time from the replay's start to the scrape, however slow
	// the machine; measured from the export's receivedAt, it was two years.
	start := time.Now()
	if out := s.waymark(t, "replay", "--format", "segment", "--file", file, "--wait", "2m"); !strings.Contains(out, "sent 2 events, skipped 0 events") {
		t.Fatalf("replay:\n%s", out)
	}
	metrics := scrape(t, s.http)
	elapsed := time.Since(start).Seconds()
	n := metricValue(t, metrics, "waymark_pipeline_stored_lag_seconds_count")
	sum := metricValue(t, metrics, "waymark_pipeline_stored_lag_seconds_sum")
	if n != float64(len(lines)) || sum > n*elapsed {
		t.Errorf("stored lag: %g s over %g events, want %d events, each within the %.1f s since the replay started", sum, n, len(lines), elapsed)
	}
}
