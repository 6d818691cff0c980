package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
	"github.com/waymark-dev/waymark/store"
	"github.com/waymark-dev/waymark/store/storetest"
)

// TestQueryStopsOnSignal: `waymark funnel` stops at once on SIGINT or SIGTERM, in the middle of
// matching a person whose funnel would take many minutes, and says so.
func TestQueryStopsOnSignal(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	database := newDatabase(t, "e2e")
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{Addr: chServer.Addr, Database: database}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// 100,000 events V at distinct times within a day, and a funnel in any order of 31 steps V and
	// a last step X they never take: every start matches the steps to every event of its day
	// (100,000² work: many minutes).
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	events := make([]ingest.Event, 100_001)
	for i := range events {
		events[i] = ingest.Event{Source: "test", Type: "track", Event: "V", UserID: "heavy", MessageID: fmt.Sprint(i),
			Timestamp: t0.Add(time.Duration(i) * 400 * time.Millisecond), ReceivedAt: t0, Raw: []byte(`{}`)}
	}
	events[len(events)-1].Event, events[len(events)-1].UserID = "X", "other"
	if err := st.Write(ctx, sessionize.Batch{Events: events, Channels: make([]string, len(events))}); err != nil {
		t.Fatal(err)
	}
	steps := strings.Repeat("V,", 31) + "X"

	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			// Matched in Waymark (on current ClickHouse with the UDF the matching would run there).
			cmd := exec.Command(binary, "funnel", "--steps", steps, "--mode", "any", "--query-timeout", "2h", "--funnel-matching", "process")
			cmd.Env = append(os.Environ(), "WAYMARK_CLICKHOUSE_ADDR="+chServer.Addr, "WAYMARK_CLICKHOUSE_DATABASE="+database)
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			lines := make(chan string, 100)
			go func() {
				sc := bufio.NewScanner(stderr)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			var log []string
			// read returns once a line holding want came (the guards only stop a hang: what they
			// wait for takes moments).
			read := func(want string) bool {
				guard := time.After(2 * time.Minute)
				for {
					select {
					case l, ok := <-lines:
						if !ok {
							return false
						}
						log = append(log, l)
						if strings.Contains(l, want) {
							return true
						}
					case <-guard:
						return false
					}
				}
			}
			if !read("matching a unit with many events") {
				t.Fatalf("the funnel did not start matching:\n%s", strings.Join(log, "\n"))
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if !read("waymark: stopped (") {
				t.Fatalf("no word of stopping after %s:\n%s", sig, strings.Join(log, "\n"))
			}
			for range lines {
			}
			err = cmd.Wait()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Errorf("exit: %v, want status 1", err)
			}
			t.Logf("stderr: %s", strings.Join(log, "\n"))
			if last := log[len(log)-1]; !strings.Contains(last, sig.String()) || !strings.Contains(last, "context canceled") {
				t.Errorf("last line %q names neither the signal (%s) nor the cancelled query", last, sig)
			}
		})
	}
}
