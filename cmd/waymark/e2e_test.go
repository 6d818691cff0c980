package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/segmentio/kafka-go"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/ingest/ingesttest"
	"github.com/waymark-dev/waymark/store/storetest"
)

// These tests run the real binary against a real ClickHouse server and the embedded broker.

var (
	binary   string
	chServer *storetest.Server
	dbSeq    atomic.Int64
)

const taobaoSample = "../../deploy/data/taobao/UserBehavior.csv"

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "waymark-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "waymark")
	if err := storetest.InstallBinary(storetest.WaymarkPkg, binary); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	chDir := filepath.Join(dir, "clickhouse")
	if chServer, err = storetest.Start(chDir); err != nil {
		fmt.Fprintln(os.Stderr, "start clickhouse:", err)
		return 1
	}
	defer chServer.Stop()
	code := m.Run()
	if died, why := chServer.Exited(); died { // the engine died under the tests: say so, with its log
		fmt.Fprintln(os.Stderr, why)
		code = 1
	}
	return code
}

// server is a running `waymark serve` with its own dev broker and database.
type server struct {
	cmd      *exec.Cmd
	broker   string
	http     string
	database string
	log      *lockedBuffer
	exited   chan error
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// testReadKey is the read key startServe gives the query API; httpGet sends it.
const testReadKey = "test-read-key"

// queryHangGuardEnv sets the query timeout of the serve and query commands the tests run (unless
// their flags set another) to storetest.QueryHangGuard, as the store tests' stores have it: a
// query's time is no test's subject, and the default minute is a speed limit a loaded machine
// can overrun.
func queryHangGuardEnv() string {
	return "WAYMARK_QUERY_TIMEOUT=" + storetest.QueryHangGuard.String()
}

// newDatabase returns the name of a database no other test gets (prefix_N), dropped from chServer
// when t's test ends, after the serve processes started later on it are stopped.
func newDatabase(t testing.TB, prefix string) string {
	t.Helper()
	database := fmt.Sprintf("%s_%d", prefix, dbSeq.Add(1))
	chServer.DropWhenDone(t, database)
	return database
}

// everyPath reports whether a test sends its messages by every path it compares (the
// collector, kcat straight to the topic, a replay) and asks the command line what it asks the
// API, or only the collector and the API: in a later pass of the run (storetest.LaterPass). A
// message's path and the command line are not the engine's subject: each path reaches the same
// consumer, which stores the same rows whichever it came by, and a command runs the API's store
// query; the first pass compares them, on 18.16. A later pass, whose subject is the engine,
// asks every query of the rows the collector stored, in every arrival order and before and
// after merges as the first does, and skips the same rows stored again by another path.
func everyPath() bool {
	return !storetest.LaterPass()
}

// everyReordering reports whether a test that compares arrival orders of the same messages runs
// its reorderings of them (one batch against one call each, reversed, shuffled), or, in a later
// pass of the run (storetest.LaterPass), only the arrivals that store rows of another kind: its
// first, and those that restart serve between parts (the restore reads the store) or store
// retried copies. The order the consumer and the sessionizer take messages in is not the
// engine's subject: the first pass compares every order on 18.16, and a later pass asks every
// query of the rows of each kind of arrival, as the first does. The two engines' answers to
// every journey question, over a shop with identity merges after the fact, late events and every
// event delivered twice, are compared byte for byte by store's TestEnginesGiveIdenticalAnswers.
// (A later pass of cmd/waymark cost about 450 CPU-s on 2026-12-07, most of it the engine's
// planning of the hundreds of queries these tests ask.)
func everyReordering() bool {
	return !storetest.LaterPass()
}

// startServe starts `waymark serve` with all roles (write key "test-key", source "test"; read key
// testReadKey), plus extra flags. An --http-addr among them is polled on 127.0.0.1 and its port.
func startServe(t testing.TB, extra ...string) *server {
	t.Helper()
	// The ports are picked free just before serve starts, so on a busy machine another process
	// may take one first: a serve that exits on a port in use is started again on other ports.
	for attempt := 1; ; attempt++ {
		s, err := launchServe(t, extra)
		if err == nil {
			return s
		}
		if attempt == 5 || !strings.Contains(s.log.String(), "address already in use") {
			t.Fatal(err)
		}
		t.Logf("attempt %d: %v; trying other ports", attempt, err)
	}
}

// launchServe is one attempt of startServe: it fails when serve exits before it is ready.
func launchServe(t testing.TB, extra []string) (*server, error) {
	t.Helper()
	s := &server{
		broker:   freeAddr(t),
		http:     freeAddr(t),
		database: newDatabase(t, "e2e"),
		log:      &lockedBuffer{},
		exited:   make(chan error, 1),
	}
	for i, arg := range extra {
		if arg == "--http-addr" && i+1 < len(extra) {
			_, port, _ := net.SplitHostPort(extra[i+1])
			s.http = net.JoinHostPort("127.0.0.1", port)
		}
	}
	args := append([]string{"serve", "--http-addr", s.http, "--flush-interval", "100ms", "--write-keys-inline", "test-key=test",
		"--read-keys-inline", testReadKey + "=tests"}, extra...)
	s.cmd = exec.Command(binary, args...)
	s.cmd.Env = append(os.Environ(),
		"WAYMARK_KAFKA_BROKERS=",
		"WAYMARK_DEV_BROKER_ADDR="+s.broker,
		"WAYMARK_CLICKHOUSE_ADDR="+chServer.Addr,
		"WAYMARK_CLICKHOUSE_DATABASE="+s.database,
		queryHangGuardEnv(),
	)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.exited <- s.cmd.Wait() }()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-s.exited
		if t.Failed() {
			t.Logf("waymark serve log:\n%s", s.log)
		}
	})
	deadline := time.Now().Add(2 * time.Minute) // a hang guard, not a speed bound
	for {
		select {
		case err := <-s.exited:
			s.exited <- err // for the cleanup
			return s, fmt.Errorf("waymark serve exited before it was ready: %v", err)
		default:
		}
		resp, err := http.Get("http://" + s.http + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("waymark serve not ready after 2 minutes: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waymark runs a subcommand against s and returns its standard output.
func (s *server) waymark(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(),
		"WAYMARK_DEV_BROKER_ADDR="+s.broker,
		"WAYMARK_CLICKHOUSE_ADDR="+chServer.Addr,
		"WAYMARK_CLICKHOUSE_DATABASE="+s.database,
		queryHangGuardEnv(),
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("waymark %s: %v\n%s\n%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

func (s *server) replayTaobao(t *testing.T) {
	t.Helper()
	out := s.waymark(t, "replay", "--format", "taobao", "--file", taobaoSample, "--wait", "2m")
	if !strings.Contains(out, "sent 10000 events, skipped 0 events") || !strings.Contains(out, "stored:") {
		t.Fatalf("replay output:\n%s", out)
	}
}

type funnelJSON struct {
	Steps []struct {
		Name                   string  `json:"name"`
		Customers              int64   `json:"customers"`
		ConversionFromFirst    float64 `json:"conversion_from_first"`
		ConversionFromPrevious float64 `json:"conversion_from_previous"`
		DropOff                int64   `json:"drop_off"`
	} `json:"steps"`
	WindowSeconds float64 `json:"window_seconds"`
}

func (s *server) funnel(t *testing.T, steps, window string) funnelJSON {
	t.Helper()
	out := s.waymark(t, "funnel", "--steps", steps, "--window", window, "--json")
	var f funnelJSON
	if err := json.Unmarshal([]byte(out), &f); err != nil {
		t.Fatalf("funnel --json output is not JSON: %v\n%s", err, out)
	}
	return f
}

// knownAnswers were computed independently of Waymark on the Taobao sample.
var knownAnswers = []struct {
	steps  string
	window string
	want   []int64
}{
	{"Product Viewed,Product Added,Order Completed", "24h", []int64{112, 79, 30}},
	{"Product Viewed,Order Completed,Order Completed", "24h", []int64{112, 70, 24}},
	{"Product Viewed,Product Added,Order Completed", "168h", []int64{112, 79, 45}},
	{"awareness,consideration,conversion,loyalty", "24h", []int64{112, 93, 33, 11}},
	{"awareness,consideration,conversion,loyalty", "168h", []int64{112, 93, 50, 25}},
}

func checkKnownAnswers(t *testing.T, s *server) {
	t.Helper()
	for _, k := range knownAnswers {
		f := s.funnel(t, k.steps, k.window)
		var got []int64
		for _, st := range f.Steps {
			got = append(got, st.Customers)
		}
		if fmt.Sprint(got) != fmt.Sprint(k.want) {
			t.Errorf("funnel %s window %s: customers %v, want %v", k.steps, k.window, got, k.want)
		}
		window, _ := time.ParseDuration(k.window)
		if f.WindowSeconds != window.Seconds() {
			t.Errorf("funnel %s: window_seconds %g, want %g", k.steps, f.WindowSeconds, window.Seconds())
		}
	}
}

func TestTaobaoKnownAnswersAndIdempotentReplay(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	s.replayTaobao(t)
	checkKnownAnswers(t, s)
	if got := liveSessions(t, s.database); got != 1700 {
		t.Errorf("sessions = %d, want 1700", got)
	}

	f := s.funnel(t, "Product Viewed,Product Added,Order Completed", "24h")
	first := f.Steps[0]
	if first.ConversionFromFirst != 1 || first.ConversionFromPrevious != 1 || first.DropOff != 33 || f.Steps[2].DropOff != 0 {
		t.Errorf("first step %+v, last drop-off %d: want conversions 1, drop-off 33 then 0", first, f.Steps[2].DropOff)
	}

	// The same file again stores each event once: no answer changes.
	s.replayTaobao(t)
	checkKnownAnswers(t, s)
	if got := liveSessions(t, s.database); got != 1700 {
		t.Errorf("sessions after a second replay = %d, want 1700", got)
	}

	// Every query API answers with the CLI's JSON, and the CLI prints a table.
	for _, q := range []struct {
		args  []string
		query string
		table string // something the table shows
	}{
		{[]string{"funnel", "--steps", "awareness,conversion,loyalty", "--window", "7d"}, "funnel?steps=awareness,conversion,loyalty&window=7d", "MEDIAN TIME"},
		{[]string{"funnel", "--steps", "Product Viewed,Order Completed", "--mode", "strict", "--breakdown", "property:category", "--breakdown-limit", "3"},
			"funnel?steps=Product+Viewed,Order+Completed&mode=strict&breakdown=property:category&breakdown_limit=3", "property:category = (other values)"},
		{[]string{"dropoff", "--steps", "Product Viewed,Product Added,Order Completed"}, "dropoff?steps=Product+Viewed,Product+Added,Order+Completed", "What they did instead"},
		{[]string{"correlation", "--steps", "Product Viewed,Order Completed", "--window", "7d"}, "correlation?steps=Product+Viewed,Order+Completed&window=7d", "ODDS RATIO"},
		{[]string{"correlation", "--steps", "Product Viewed,Order Completed", "--mode", "any", "--breakdown", "channel"},
			"correlation?steps=Product+Viewed,Order+Completed&mode=any&breakdown=channel", "  CHANNEL"},
		{[]string{"paths", "--anchor", "Product Added", "--depth", "3"}, "paths?anchor=Product+Added&depth=3", "Product Added →"},
		{[]string{"next", "--anchor", "Product Added", "--direction", "previous"}, "next?anchor=Product+Added&direction=previous", "previous touchpoint"},
		{[]string{"retention", "--period", "week"}, "retention?period=week", "Repeat rate by acquisition channel"},
		{[]string{"stages"}, "stages", "awareness"},
	} {
		cli := s.waymark(t, append(q.args, "--json")...)
		status, api := httpGet(t, "http://"+s.http+"/api/v1/"+q.query)
		if status != 200 || compactJSON(t, api) != compactJSON(t, cli) {
			t.Errorf("%s: API answered %d:\n%s\nwant the CLI's\n%s", q.query, status, api, cli)
		}
		if table := s.waymark(t, q.args...); !strings.Contains(table, q.table) {
			t.Errorf("%v: table lacks %q:\n%s", q.args, q.table, table)
		}
	}
	for _, bad := range []struct {
		args []string
		flag string
	}{
		{[]string{"funnel", "--steps", "A", "--mode", "sideways"}, "--mode:"},
		{[]string{"funnel", "--steps", "A,B", "--count-by", "carts"}, "--count-by:"},
		{[]string{"paths", "--anchor", "A", "--depth", "99"}, "--depth:"},
		{[]string{"retention", "--period", "fortnight"}, "--period:"},
		{[]string{"correlation", "--steps", "A,B", "--mode", "any"}, "--mode:"},
	} {
		cmd := exec.Command(binary, bad.args...)
		cmd.Env = append(os.Environ(), "WAYMARK_CLICKHOUSE_ADDR="+chServer.Addr, "WAYMARK_CLICKHOUSE_DATABASE="+s.database)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), bad.flag) {
			t.Errorf("waymark %v: %v\n%s\nwant an error naming %s", bad.args, err, out, bad.flag)
		}
	}
	csv := s.waymark(t, "dropoff", "--steps", "Product Viewed,Product Added", "--csv")
	if lines := strings.Split(strings.TrimSpace(csv), "\n"); lines[0] != "person_id" || len(lines) != 34 {
		t.Errorf("dropoff --csv: %d lines, want a header and the 33 who dropped off:\n%s", len(lines), csv)
	}
	for _, bad := range []struct{ query, param string }{
		{"window=24h", "steps"}, {"steps=A&window=3x", "window"}, {"steps=A&from=yesterday", "from"},
		{"steps=A&from=2017-12-01&to=2017-11-01", "to"}, // a range that holds no time names to (store.CheckRange)
	} {
		status, body := httpGet(t, "http://"+s.http+"/api/v1/funnel?"+bad.query)
		if status != 400 || !strings.Contains(body, `"param":"`+bad.param+`"`) {
			t.Errorf("GET /api/v1/funnel?%s: %d %s, want 400 naming %s", bad.query, status, body, bad.param)
		}
	}

	table := s.waymark(t, "funnel", "--steps", "Product Viewed,Product Added,Order Completed", "--window", "24h")
	for _, want := range []string{"Product Viewed", "112", "79", "30", "largest drop-off"} {
		if !strings.Contains(table, want) {
			t.Errorf("funnel table lacks %q:\n%s", want, table)
		}
	}
}

// TestBadMessagesGoToTheDeadLetterTopic sends unusable events by every path into the pipeline:
// produced to Kafka (the consumer dead-letters them), in a batch to /v1/batch (listed in the 200
// answer) and alone to /v1/track (a 400); the collector dead-letters those of the tracking calls.
// Each is on the dead-letter topic with its reason, and counted once in
// waymark_dlq_messages_total by the path it took and its reason, the one metric the alert reads.
func TestBadMessagesGoToTheDeadLetterTopic(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	ctx := context.Background()
	good := `{"type":"track","event":"Product Viewed","userId":"u1","messageId":"%s","timestamp":"2026-01-01T10:00:00Z"}`
	tests := []struct {
		reason, value string
		http          bool // a tracking call can carry it: the others are not an event of a batch
		single        bool // /v1/track can carry it: it stamps the type track
	}{
		{reason: "invalid_json", value: `{"type":"track",`},
		{reason: "missing_identity", value: `{"type":"track","event":"Product Viewed","messageId":"%s"}`, http: true, single: true},
		{reason: "missing_event", value: `{"type":"track","userId":"u1","messageId":"%s"}`, http: true, single: true},
		{reason: "invalid_type", value: `{"type":"purchase","userId":"u1","messageId":"%s"}`, http: true},
		{reason: "invalid_timestamp", value: `{"type":"track","event":"X","userId":"u1","messageId":"%s","timestamp":"yesterday"}`, http: true, single: true},
		// half a surrogate pair, which would read as U+FFFD and merge with other ids
		{reason: "invalid_field", value: `{"type":"track","event":"X","userId":"sur\ud800","messageId":"%s"}`, http: true, single: true},
	}
	// want counts the dead letters sent, by "path reason".
	want := map[string]int{}
	msgs := []kafka.Message{{Key: []byte("u1"), Value: []byte(fmt.Sprintf(good, "m1"))}}
	var batch []string
	for i, tt := range tests {
		msgs = append(msgs, kafka.Message{Key: []byte("u1"), Value: []byte(strings.Replace(tt.value, "%s", fmt.Sprint("k", i), 1))})
		want["consumer "+tt.reason]++
		if tt.http {
			batch = append(batch, fmt.Sprintf(tt.value, fmt.Sprint("b", i)))
			want["collector "+tt.reason]++
		}
		if tt.single {
			if status, answer := s.track(t, "/v1/track", fmt.Sprintf(tt.value, fmt.Sprint("s", i))); status != 400 || !strings.Contains(answer, tt.reason) {
				t.Errorf("POST /v1/track %s: %d %s, want 400 %s", tt.reason, status, answer, tt.reason)
			}
			want["collector "+tt.reason]++
		}
	}
	msgs = append(msgs, kafka.Message{Key: []byte("u1"), Value: []byte(fmt.Sprintf(good, "m4"))})
	batch = append(batch, fmt.Sprintf(good, "m5"))
	if status, answer := s.track(t, "/v1/batch", `{"batch":[`+strings.Join(batch, ",")+`]}`); status != 200 || strings.Count(answer, `"reason"`) != len(batch)-1 {
		t.Errorf("POST /v1/batch: %d %s, want 200 with %d rejected", status, answer, len(batch)-1)
	}
	w := &kafka.Writer{Transport: ingesttest.Transport(t), Addr: kafka.TCP(s.broker), Topic: "waymark.events", RequiredAcks: kafka.RequireAll}
	defer w.Close()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := ingest.WaitCaughtUp(wctx, []string{s.broker}, "waymark", "waymark.events"); err != nil {
		t.Fatal(err)
	}

	// The good events around the bad ones are stored.
	if f := s.funnel(t, "Product Viewed", "1h"); f.Steps[0].Customers != 1 {
		t.Errorf("customers with Product Viewed = %d, want 1", f.Steps[0].Customers)
	}
	// Every bad one is on the dead-letter topic with its reason: the consumer's name the topic
	// they were read from, the collector's the source it stamps.
	rctx, rcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer rcancel()
	dead, err := ingesttest.ReadTopic(rctx, s.broker, "waymark.dlq")
	if err != nil {
		t.Fatalf("read dead letters: %v", err)
	}
	got := map[string]int{}
	for _, m := range dead {
		headers := map[string]string{}
		for _, h := range m.Headers {
			headers[h.Key] = string(h.Value)
		}
		path := "consumer"
		if headers[ingest.HeaderDLQTopic] == "" {
			path = "collector"
		}
		got[path+" "+headers[ingest.HeaderDLQReason]]++
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("dead letters by path and reason %v, want %v", got, want)
	}
	// And each counted once, by path and reason, in the one dead-letter metric.
	metrics := scrape(t, s.http)
	counted := map[string]int{}
	for _, line := range strings.Split(metrics, "\n") {
		var path, reason string
		var n float64
		if _, err := fmt.Sscanf(strings.NewReplacer(`"`, " ", ",", " ", "}", " ").Replace(line), "waymark_dlq_messages_total{path= %s reason= %s %g", &path, &reason, &n); err == nil {
			counted[path+" "+reason] = int(n)
		}
	}
	if fmt.Sprint(counted) != fmt.Sprint(want) {
		t.Errorf("waymark_dlq_messages_total by path and reason %v, want %v", counted, want)
	}
}

// readDLQ reads the whole dead-letter topic and returns value by reason header.
func readDLQ(ctx context.Context, broker string) (map[string]string, error) {
	out := map[string]string{}
	msgs, err := ingesttest.ReadTopic(ctx, broker, "waymark.dlq")
	for _, m := range msgs {
		for _, h := range m.Headers {
			if h.Key == "waymark-dlq-reason" {
				out[string(h.Value)] = string(m.Value)
			}
		}
	}
	return out, err
}

// stop sends serve SIGTERM and waits until it has exited, cleanly.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := s.waitExit(t); err != nil {
		t.Fatalf("serve exited with %v after SIGTERM", err)
	}
}

// waitLogged waits until serve's log holds each text. Serve writes a line before it answers what
// follows, but the test reads the log as os/exec copies it from a pipe, so on a busy machine the
// copy may come after the answer (a CI run beside two busy loops read a start-up warning too
// soon, 2026-12-07). Once serve has exited (waitExit, stop) its whole log is read.
func (s *server) waitLogged(t *testing.T, texts ...string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("serve to log %q", texts), func() bool {
		log := s.log.String()
		for _, text := range texts {
			if !strings.Contains(log, text) {
				return false
			}
		}
		return true
	})
}

// waitExit waits until serve, sent SIGTERM, has exited, and returns how it exited.
func (s *server) waitExit(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.exited:
		s.exited <- err // for the cleanup
		return err
	case <-time.After(2 * time.Minute): // a hang guard: it must stop, however slowly
		t.Fatal("serve did not stop within 2 minutes of SIGTERM")
		return nil
	}
}

func TestServeStopsCleanlyOnSIGTERM(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	s.replayTaobao(t)
	s.stop(t)
	if !strings.Contains(s.log.String(), "consumer flushed") && !strings.Contains(s.log.String(), "stopped") {
		t.Errorf("no shutdown log lines:\n%s", s.log)
	}
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	return b.String()
}

// liveEvents counts the distinct events stored.
func liveEvents(t testing.TB, database string) uint64 {
	t.Helper()
	return queryCount(t, `SELECT uniqExact(source, message_id) FROM `+database+`.events`)
}

// liveSessions counts the sessions whose latest version is not deleted.
func liveSessions(t *testing.T, database string) int {
	t.Helper()
	return int(queryCount(t, `SELECT count() FROM (SELECT session_id, argMax(deleted, version) AS d FROM `+database+`.sessions GROUP BY session_id) WHERE d = 0`))
}

func queryCount(t testing.TB, q string) uint64 {
	t.Helper()
	return queryCountOn(t, chServer.Addr, q)
}

func queryCountOn(t testing.TB, addr, q string) uint64 {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n uint64
	if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// track posts body to a tracking endpoint of s (/v1/track, /v1/batch…) with the tests' write key
// and returns the status and the answer.
func (s *server) track(t *testing.T, path, body string) (int, string) {
	t.Helper()
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("test-key:"))
	status, _, answer := s.post(t, path, map[string]string{"Authorization": auth}, []byte(body))
	return status, answer
}

// httpGet gets url with the read key, as every client of the query API must send it (the other
// endpoints ignore it).
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	status, _, body := httpGetHeader(t, url)
	return status, body
}

// httpGetHeader is httpGet that also returns the answer's header fields.
func httpGetHeader(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testReadKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, resp.Body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b.String()
}

func compactJSON(t *testing.T, s string) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(s)); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	return buf.String()
}

// liveEventsOn counts the distinct events stored on a given ClickHouse server.
func liveEventsOn(t testing.TB, addr, database string) uint64 {
	t.Helper()
	return queryCountOn(t, addr, `SELECT uniqExact(source, message_id) FROM `+database+`.events`)
}

// startOwnClickHouse starts a ClickHouse server for one test (one it may stop and restart).
func startOwnClickHouse(t *testing.T) *storetest.Server {
	t.Helper()
	ch, err := storetest.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("clickhouse log:\n%s", ch.LogTail(80))
		}
		ch.Stop()
	})
	return ch
}

// metricValue returns the value of an unlabelled metric in a /metrics scrape.
func metricValue(t *testing.T, metrics, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// lockedBuffer collects a process's output; tests may read it while the process writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDrainDelayFailsReadinessBeforeTheListenerCloses: with --drain-delay, SIGTERM turns /readyz
// to 503 and new tracking calls to 503 while the listener stays open (health and queries still
// answer), so a load balancer polling /readyz stops sending before connections are refused; a
// second SIGTERM ends the wait.
func TestDrainDelayFailsReadinessBeforeTheListenerCloses(t *testing.T) {
	t.Parallel()
	s := startServe(t, "--drain-delay", "10m") // longer than any test: the second signal ends it
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "/readyz to answer 503 after SIGTERM", func() bool {
		status, _ := httpGet(t, "http://"+s.http+"/readyz")
		return status == http.StatusServiceUnavailable
	})
	if code, body := s.track(t, "/v1/track", `{"userId":"u","event":"V"}`); code != http.StatusServiceUnavailable {
		t.Errorf("a tracking call while draining: %d %s, want 503", code, body)
	}
	if status, body := httpGet(t, "http://"+s.http+"/healthz"); status != http.StatusOK {
		t.Errorf("/healthz while draining: %d %s, want 200", status, body)
	}
	if status, body := httpGet(t, "http://"+s.http+"/api/v1/sessions"); status != http.StatusOK {
		t.Errorf("a query while draining: %d %s, want 200", status, body)
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.exited:
		s.exited <- err // for the cleanup
	case <-time.After(2 * time.Minute): // a hang guard
		t.Fatal("serve did not stop on a second SIGTERM during its drain delay")
	}
}

// TestUnknownPathsAnswerJSON: a path nothing serves answers 404 in JSON naming it, as the API's
// errors do, not net/http's text/plain "404 page not found" (tester 15's F14); so do the paths an
// http.ServeMux would redirect with an HTML body (doubled slashes, dot segments, a subtree's name
// without its slash: tester 19's T7), which no redirect-following is needed to see.
func TestUnknownPathsAnswerJSON(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tt := range []struct{ method, path string }{{"GET", "/nothing"}, {"POST", "/v2/track"}, {"GET", "/api"}, {"DELETE", "/healthz/x"},
		{"GET", "/api/v1//funnel?steps=V"}, {"GET", "/api/v1/./sessions"}, {"GET", "/api/v1"}, {"GET", "//metrics"}, {"GET", "/healthz/../metrics"}} {
		req, _ := http.NewRequest(tt.method, "http://"+s.http+tt.path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Error string }
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != "application/json" || err != nil || !strings.Contains(body.Error, req.URL.Path) {
			t.Errorf("%s %s: %d %s %q (%v), want 404 in JSON naming the path", tt.method, tt.path, resp.StatusCode, resp.Header.Get("Content-Type"), body.Error, err)
		}
	}
	if status, _ := httpGet(t, "http://"+s.http+"/"); status != http.StatusOK {
		t.Errorf("GET /: %d, want the page", status)
	}
}
