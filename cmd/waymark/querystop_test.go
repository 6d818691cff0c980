package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
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
	st := migratedStore(t, database)
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

// migratedStore opens a store on database of the test server, migrated, closed when t ends.
func migratedStore(t *testing.T, database string) *store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{Addr: chServer.Addr, Database: database}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

// started starts cmd and returns the channel its Wait's error comes on; when t ends, cmd is
// killed and waited for. Whoever takes the error puts it back, for that cleanup.
func started(t *testing.T, cmd *exec.Cmd) chan error {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	return exited
}

// endsOnSIGINT sends cmd (started, its Wait's error on exited) SIGINT and checks that it ends
// within a hang guard of two minutes, with status and says in out.
func endsOnSIGINT(t *testing.T, cmd *exec.Cmd, exited chan error, status int, out *lockedBuffer, says string) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for started's cleanup
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != status || !strings.Contains(out.String(), says) {
			t.Errorf("exit: %v, output:\n%s\nwant status %d and %q", err, out.String(), status, says)
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("%s did not end on SIGINT:\n%s", cmd.Args, out.String())
	}
}

// ignoringSIGINT is the command that runs binary with args as a shell runs a background command:
// SIGINT ignored from the start (sh's `trap "" INT`, kept across exec).
func ignoringSIGINT(args ...string) *exec.Cmd {
	return exec.Command("sh", append([]string{"-c", `trap "" INT; exec "$0" "$@"`, binary}, args...)...)
}

// TestQueryStopsOnSignalWhileClickHouseHangs: a query stops on SIGINT while ClickHouse, which
// took it, never answers (tester 27's F3: a CLI query whose ClickHouse was stopped mid-query
// printed that it stopped and stayed up until ClickHouse answered, 55 minutes once). The query
// runs as a background command of a shell (SIGINT ignored at the start, as there), through a
// proxy that passes the journey query on and none of ClickHouse's answer.
func TestQueryStopsOnSignalWhileClickHouseHangs(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	database := newDatabase(t, "e2e")
	migratedStore(t, database)
	proxy := storetest.StartProxy(t, chServer.Addr)
	proxy.StallOn("group_by_two_level_threshold") // a setting only the journey queries send

	cmd := ignoringSIGINT("funnel", "--steps", "awareness,conversion", "--query-timeout", "2h", "--clickhouse-dial-timeout", "1h")
	cmd.Env = append(os.Environ(), "WAYMARK_CLICKHOUSE_ADDR="+proxy.Addr, "WAYMARK_CLICKHOUSE_DATABASE="+database)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	exited := started(t, cmd)
	select {
	case <-proxy.Asked():
	case err := <-exited:
		t.Fatalf("the funnel ended before its query reached ClickHouse: %v\n%s", err, stderr.String())
	case <-time.After(2 * time.Minute): // a hang guard
		t.Fatalf("the funnel's query never reached ClickHouse:\n%s", stderr.String())
	}
	// The guard is far less than the query's two hours.
	endsOnSIGINT(t, cmd, exited, 1, &stderr, "waymark: stopped (interrupt signal received)")
}

// TestSecondSignalEndsTheProcess: a second SIGINT ends serve at once during a drain delay that
// would outlast the test, even started with SIGINT ignored, as a shell starts a background
// command (tester 27's F3: main stopped catching signals after the first, so the second went
// back to being ignored). Its status is a killed process's, 128 + 2.
func TestSecondSignalEndsTheProcess(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	addr := freeAddr(t)
	cmd := ignoringSIGINT("serve", "--roles", "query", "--http-addr", addr, "--read-keys-inline", testReadKey+"=tests", "--drain-delay", "1h")
	cmd.Env = append(os.Environ(), "WAYMARK_CLICKHOUSE_ADDR="+chServer.Addr, "WAYMARK_CLICKHOUSE_DATABASE="+newDatabase(t, "e2e"))
	var log lockedBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	exited := started(t, cmd)
	waitFor(t, "serve to answer /healthz", func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "serve to start its drain delay", func() bool { return strings.Contains(log.String(), "drain delay") })
	// The guard is far less than the drain delay's hour.
	endsOnSIGINT(t, cmd, exited, 128+int(syscall.SIGINT), &log, "waymark: stopped at once (interrupt signal received again)")
}

// TestServeAnswersQueriesInFlightWhenItStops: a query still running when serve stops, waiting on
// a ClickHouse that hangs, is answered 503 with Retry-After before the server closes, and serve
// exits 0 (tester 28's F4: the client got an empty reply and serve exited 1 with "context deadline
// exceeded").
func TestServeAnswersQueriesInFlightWhenItStops(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	proxy := storetest.StartProxy(t, chServer.Addr)
	s := startServe(t, "--clickhouse-addr", proxy.Addr, "--query-timeout", "1h")
	proxy.StallOn("group_by_two_level_threshold") // a setting only the journey queries send

	type answer struct {
		status     int
		retryAfter string
		body       string
		err        error
	}
	answers := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+s.http+"/api/v1/stages", nil)
		req.Header.Set("Authorization", "Bearer "+testReadKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answers <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		answers <- answer{resp.StatusCode, resp.Header.Get("Retry-After"), string(b), err}
	}()
	select {
	case <-proxy.Asked():
	case <-time.After(2 * time.Minute): // a hang guard
		t.Fatalf("the query never reached ClickHouse:\n%s", s.log)
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-answers:
		if a.err != nil || a.status != http.StatusServiceUnavailable || a.retryAfter == "" || !strings.Contains(a.body, "shutting down") {
			t.Errorf("the query in flight: %d Retry-After %q %s (%v), want 503 with Retry-After saying the server is shutting down", a.status, a.retryAfter, a.body, a.err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("the query in flight got no answer:\n%s", s.log)
	}
	select {
	case err := <-s.exited:
		s.exited <- err // for the cleanup
		if err != nil {
			t.Errorf("serve exited: %v, want status 0:\n%s", err, s.log)
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("serve did not stop:\n%s", s.log)
	}
}
