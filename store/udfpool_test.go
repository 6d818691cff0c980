package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/waymark-dev/waymark/store"
	"github.com/waymark-dev/waymark/store/storetest"
)

// TestFunnelUDFPoolOutlivesQueriesOverTheirMemory: once queries that failed over their memory
// limit have cost waymark_funnel's pool every process (store/udfpool.go: each failed as
// ClickHouse allocated the pipes' buffers for the process it took from the pool, which loses
// the pool that process for good), a funnel matching in ClickHouse fails over its limit, as no
// process comes, and the next one answers as in Waymark: the store reloaded the function after
// the failure. Before, every query calling the function waited for a process until the pool's
// wait ran out, until ClickHouse restarted (tester 56's F2). The queries that empty the pool are
// the smallest that call the function, with a limit of 1 MB: a Waymark query whose limit is
// reached there empties it the same way, but where its limit is reached depends on its data.
// The server is the test's own, its pool's wait a tenth of the shipped one's: the other tests'
// pool stays whole.
func TestFunnelUDFPoolOutlivesQueriesOverTheirMemory(t *testing.T) {
	t.Parallel()
	if !server.FunnelUDF {
		t.Skipf("the %s engine has no executable UDFs", server.Engine)
	}
	own, err := storetest.StartEngine(server.Engine, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(own.Stop)
	fnFile := filepath.Join(own.Dir, "waymark_funnel_function.xml")
	fn, err := os.ReadFile(fnFile)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`<pool_size>(\d+)</pool_size>`).FindSubmatch(fn)
	if m == nil {
		t.Fatalf("%s has no pool_size", fnFile)
	}
	poolSize, _ := strconv.Atoi(string(m[1]))
	wait := regexp.MustCompile(`<max_command_execution_time>\d+</max_command_execution_time>`)
	if !wait.Match(fn) {
		t.Fatalf("%s has no max_command_execution_time", fnFile)
	}
	// 10 s of waiting for a process of the pool.
	fn = wait.ReplaceAll(fn, []byte("<max_command_execution_time>1</max_command_execution_time>"))
	if err := os.WriteFile(fnFile, fn, 0o644); err != nil {
		t.Fatal(err)
	}
	engineSQL(t, own, "SYSTEM RELOAD FUNCTION "+store.FunnelUDFName)

	var db string
	process := own.OpenStore(t, func(c *store.Config) { db, c.FunnelMatching = c.Database, store.MatchProcess })
	generateRefData(7, 40).write(t, process)
	reg := prometheus.NewRegistry()
	engine, err := store.Open(context.Background(), store.Config{Addr: own.Addr, Database: db, FunnelMatching: store.MatchEngine,
		QueryTimeout: storetest.QueryHangGuard}, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Close() })
	jm := defaultMap(t)
	q := store.FunnelQuery{Steps: []string{"Product Viewed", "Order Completed"}, Window: 30 * 24 * time.Hour}
	ctx := context.Background()
	want, err := process.Funnel(ctx, jm, q)
	if err != nil {
		t.Fatal(err)
	}

	// Empty the pool: each query takes a process and fails over its limit before it hands it
	// back.
	empty := "SELECT length(" + store.FunnelUDFName + "('', [1], [1], [1], [1], [], [], [], [], [], [], [], [], [])) SETTINGS max_memory_usage = 1000000"
	for range poolSize {
		if got := engineSQLError(t, own, empty); !strings.Contains(got, "MEMORY_LIMIT_EXCEEDED") {
			t.Fatalf("%s: %s, want it over its memory limit", empty, got)
		}
	}
	if _, err := engine.Funnel(ctx, jm, q); !errors.Is(err, store.ErrQueryLimit) {
		t.Fatalf("a funnel on an empty pool: %v, want it over its limit (no process came)", err)
	}
	got, err := engine.Funnel(ctx, jm, q)
	if err != nil {
		t.Fatalf("the next funnel: %v", err)
	}
	wantJSON, _ := json.Marshal(want)
	gotJSON, _ := json.Marshal(got)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("the next funnel, in ClickHouse:\n%s\nin Waymark:\n%s", gotJSON, wantJSON)
	}
	if got := gatherCounters(t, reg)[`waymark_store_funnel_udf_reloads_total{result="reloaded"}`]; got != 1 {
		t.Errorf("%v reloads of the function, want 1", got)
	}
}

// engineSQLError runs sql on s over HTTP, which must fail, and returns ClickHouse's error.
func engineSQLError(t *testing.T, s *storetest.Server, sql string) string {
	t.Helper()
	resp, err := http.Post("http://"+s.HTTPAddr+"/", "text/plain", strings.NewReader(sql))
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode == http.StatusOK {
		t.Fatalf("%s: %d %s %v, want it to fail", sql, resp.StatusCode, body, err)
	}
	return string(body)
}
