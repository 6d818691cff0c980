package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/store/storetest"
)

// Clients nobody here wrote, driven unmodified against a running Waymark.

func (s *server) waitStored(t *testing.T) {
	t.Helper()
	s.waitStoredWithin(t, 5*time.Minute) // a hang guard, not a speed bound
}

func (s *server) waitStoredWithin(t *testing.T, limit time.Duration) {
	t.Helper()
	if err := s.caughtUp(limit); err != nil {
		t.Fatal(err)
	}
}

// caughtUp waits up to limit until serve's consumer group has stored every message on its broker.
func (s *server) caughtUp(limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	return ingest.WaitCaughtUp(ctx, []string{s.broker}, "waymark", "waymark.events")
}

// waitAllStored is waitStored for several serves, each on a broker of its own, waited for at
// once: each wait polls its group's lag (ingest.WaitCaughtUp, a connection and an offsets
// request to the broker, then every 200 ms), so waited for one after another, the serves of
// sendSideBySide's and arriveSideBySide's rounds cost a poll each after the first had caught up
// (a round of ten serves about 0.6 s under the race detector, 2026-12-07).
func waitAllStored(t *testing.T, servers []*server) {
	t.Helper()
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() { errs[i] = s.caughtUp(5 * time.Minute) }) // a hang guard, not a speed bound
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// storedIDs returns the distinct messageIds stored for a source, sorted.
func storedIDs(t *testing.T, database, source string) []string {
	t.Helper()
	ids := queryStrings(t, "SELECT DISTINCT message_id FROM "+database+".events WHERE source = ?", source)
	sort.Strings(ids)
	return ids
}

// npmInstall installs packages into a temp dir (never globally) and returns its node_modules.
func npmInstall(t *testing.T, pkgs ...string) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("npm", append([]string{"install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", dir}, pkgs...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install %s: %v\n%s", strings.Join(pkgs, " "), err, out)
	}
	return dir
}

func TestAnalyticsNodeDeliversUnmodified(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	if _, err := exec.LookPath("npm"); err != nil {
		t.Fatal("npm not found: run deploy/test.sh, which installs it")
	}
	s := startServe(t)
	dir := npmInstall(t, "@segment/analytics-node")
	cmd := exec.Command("node", filepath.Join(mustAbs(t, "testdata"), "analytics-node.js"), "http://"+s.http)
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("analytics-node: %v\n%s", err, out)
	}
	s.waitStored(t)
	var want []string
	for i := range 25 {
		want = append(want, fmt.Sprintf("node-track-%d", i))
	}
	want = append(want, "node-identify-1", "node-page-1", "node-alias-1")
	sort.Strings(want)
	if got := storedIDs(t, s.database, "test"); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("stored messageIds\n got %v\nwant %v", got, want)
	}
	if f := s.funnel(t, "Product Viewed,Order Completed", "1h"); f.Steps[0].Customers != 5 {
		t.Errorf("customers with a product view = %d, want 5", f.Steps[0].Customers)
	}
}

func TestKcatProducesStraightToTheTopic(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Fatal("kcat not found: run deploy/test.sh, which installs it")
	}
	s := startServe(t)
	lines := []string{
		`{"type":"track","event":"Product Viewed","userId":"k1","messageId":"kcat-1","timestamp":"2026-03-01T10:00:00Z"}`,
		`{"type":"track","event":"Order Completed","userId":"k1","messageId":"kcat-2","timestamp":"2026-03-01T10:05:00Z"}`,
		`{"type":"page","anonymousId":"k2","name":"Home","messageId":"kcat-3"}`,
	}
	cmd := exec.Command("kcat", "-P", "-b", s.broker, "-t", "waymark.events", "-K", "\t")
	var in strings.Builder
	for _, l := range lines {
		in.WriteString("k1\t" + l + "\n")
	}
	cmd.Stdin = strings.NewReader(in.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	s.waitStored(t)
	if got := strings.Join(storedIDs(t, s.database, "kafka"), ","); got != "kcat-1,kcat-2,kcat-3" {
		t.Errorf("stored messageIds %s, want kcat-1,kcat-2,kcat-3", got)
	}
}

func TestReplayThroughTheCollector(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	s := startServe(t)
	// Twice, as a client retrying after a timeout would: each event is stored once.
	for range 2 {
		out := s.waymark(t, "replay", "--format", "taobao", "--file", taobaoSample, "--collector", "http://"+s.http, "--write-key", "test-key")
		if !strings.Contains(out, "sent 10000 events, skipped 0 events") {
			t.Fatalf("replay output:\n%s", out)
		}
	}
	s.waitStored(t)
	if n := len(storedIDs(t, s.database, "test")); n != 10000 {
		t.Errorf("stored %d events from the collector, want 10000", n)
	}
	checkKnownAnswers(t, s)

	// A base URL with a proxy's path prefix, and one that serves no collector:
	// TestReplayCollectorIsABaseURL.
	var stderr strings.Builder
	var cmd *exec.Cmd

	// --wait reads the consumer group's progress from Kafka: a broker that does not answer is
	// the broker flag's fault, not --wait's (tester 26 F2), and is found before anything is sent
	// (tester 42's F7: the events went to the collector, then replay exited 1).
	for _, tc := range []struct{ flag, value, want string }{
		{"--kafka-brokers", "127.0.0.1:1", "waymark: --kafka-brokers: no Kafka broker answers at 127.0.0.1:1: --wait reads the consumer group's progress there, after sending to --collector; nothing was sent: "},
		{"--dev-broker-addr", "127.0.0.1:1", "waymark: --dev-broker-addr: no dev broker of a running `waymark serve` (--kafka-brokers is empty) answers at 127.0.0.1:1: --wait reads"},
	} {
		cmd = exec.Command(binary, "replay", "--format", "taobao", "--file", taobaoSample, "--collector", "http://"+s.http, "--write-key", "test-key",
			"--wait", "1m", tc.flag, tc.value)
		var stdout strings.Builder
		stderr.Reset()
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err == nil || !strings.HasPrefix(stderr.String(), tc.want) || !strings.Contains(stderr.String(), "nothing was sent") {
			t.Errorf("replay --wait with %s %s: %v\n%s\nwant it to start %q and say nothing was sent", tc.flag, tc.value, err, stderr.String(), tc.want)
		}
		if stdout.Len() > 0 {
			t.Errorf("replay --wait with %s %s sent before it found no broker:\n%s", tc.flag, tc.value, stdout.String())
		}
	}
}

func TestAnalyticsJSInChromium(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Fatal("/usr/bin/chromium not found: run deploy/test.sh, which installs Debian's chromium")
	}
	s := startServe(t)
	dir := npmInstall(t, "@segment/analytics-next", "playwright-core")
	umd := filepath.Join(dir, "node_modules", "@segment", "analytics-next", "dist", "umd")
	shop := http.NewServeMux()
	shop.Handle("GET /{$}", http.FileServer(http.Dir("testdata/shop")))
	shop.HandleFunc("GET /analytics.js", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(umd, "index.js"))
	})
	shop.Handle("GET /analytics-next/bundles/", http.StripPrefix("/analytics-next/bundles/", http.FileServer(http.Dir(umd))))
	srv := httptest.NewServer(shop)
	defer srv.Close()

	page := srv.URL + "/?writeKey=test-key&cdnURL=" + url.QueryEscape("http://"+s.http)
	cmd := exec.Command("node", filepath.Join(mustAbs(t, "testdata"), "drive-chromium.js"), page)
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	s.waitStored(t)
	got := queryStrings(t, "SELECT concat(type, ':', event) FROM "+s.database+".events WHERE source = 'test' ORDER BY ts_ms")
	want := "page:Home,track:Product Viewed,track:Product Added,identify:,track:Order Completed"
	if strings.Join(got, ",") != want {
		t.Errorf("stored events %v, want %s", got, want)
	}
}

func mustAbs(t *testing.T, path string) string {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// queryStrings runs a query returning one string column.
func queryStrings(t *testing.T, q string, args ...any) []string {
	t.Helper()
	return queryStringsOn(t, chServer.Addr, q, args...)
}

// queryStringsOn is queryStrings on a given ClickHouse server.
func queryStringsOn(t *testing.T, addr, q string, args ...any) []string {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.Query(context.Background(), q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// sendBatch posts lines (Segment messages' JSON) to /v1/batch as one call with the write key, and
// fails t unless it is answered 200.
func (s *server) sendBatch(t *testing.T, lines ...string) {
	t.Helper()
	if status, answer := s.track(t, "/v1/batch", `{"batch":[`+strings.Join(lines, ",")+`]}`); status != 200 {
		t.Fatalf("POST /v1/batch of %d messages: %d %s", len(lines), status, answer)
	}
}
