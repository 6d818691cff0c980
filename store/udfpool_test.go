package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
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
// the failure. So does the next after a funnel given up while it waited. Before, every query
// calling the function waited for a process until the pool's wait ran out, until ClickHouse
// restarted (tester 56's F2). The queries that empty the pool are the smallest that call the
// function (emptyFunnelPool): a Waymark query whose limit is reached there empties it the same
// way, but where its limit is reached depends on its data. The server is the test's own, its
// pool's wait a tenth of the shipped one's: the other tests' pool stays whole.
func TestFunnelUDFPoolOutlivesQueriesOverTheirMemory(t *testing.T) {
	t.Parallel()
	own, fnFile, fn := ownFunnelUDFServer(t)
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

	emptyFunnelPool(t, own, poolSize)
	if _, err := engine.Funnel(ctx, jm, q); !errors.Is(err, store.ErrQueryLimit) {
		t.Fatalf("a funnel on an empty pool: %v, want it over its limit (no process came)", err)
	}
	answersAsInWaymark := func(after string, reloads float64) {
		t.Helper()
		got, err := engine.Funnel(ctx, jm, q)
		if err != nil {
			t.Fatalf("the funnel after %s: %v", after, err)
		}
		wantJSON, _ := json.Marshal(want)
		gotJSON, _ := json.Marshal(got)
		if string(gotJSON) != string(wantJSON) {
			t.Errorf("the funnel after %s, in ClickHouse:\n%s\nin Waymark:\n%s", after, gotJSON, wantJSON)
		}
		if got := gatherCounters(t, reg)[`waymark_store_funnel_udf_reloads_total{result="reloaded"}`]; got != reloads {
			t.Errorf("after %s: %v reloads of the function, want %v", after, got, reloads)
		}
	}
	answersAsInWaymark("one over its limit", 1)

	// A funnel given up by its caller while it waits for a process (a client gone, a CLI's
	// Ctrl-C: what people do to a query that hangs) reloads the function too.
	emptyFunnelPool(t, own, poolSize)
	waiting, giveUp := context.WithCancel(ctx)
	defer giveUp()
	errc := make(chan error, 1)
	go func() {
		_, err := engine.Funnel(waiting, jm, q)
		errc <- err
	}()
	for deadline := time.Now().Add(storetest.QueryHangGuard); ; {
		n := engineSQL(t, own, "SELECT count() FROM system.processes WHERE query LIKE '%SELECT person, "+store.FunnelUDFName+"(%' AND query NOT LIKE '%system.processes%'")
		if n != "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the funnel given up never called the function")
		}
		time.Sleep(50 * time.Millisecond)
	}
	giveUp()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("a funnel given up: %v, want it stopped", err)
	}
	answersAsInWaymark("one given up", 2)
}

// TestClosingEndsAReloadOfTheFunnelPool: a store closes at once while its reload of
// waymark_funnel, begun after a funnel was given up, waits on a ClickHouse that stopped
// answering: a CLI stopped by Ctrl-C must not wait for it (tester 27's F3 was a CLI that stayed
// up after SIGINT, waiting on a stopped server). The reload, and the dial of a connection for it,
// are allowed far longer than the test waits.
func TestClosingEndsAReloadOfTheFunnelPool(t *testing.T) {
	t.Parallel()
	if !server.FunnelUDF {
		t.Skipf("the %s engine has no executable UDFs", server.Engine)
	}
	db := testDatabase(t)
	generateRefData(9, 10).write(t, openStoreWith(t, func(c *store.Config) { c.Database = db }))
	proxy := storetest.StartProxy(t, server.Addr)
	st, err := store.Open(context.Background(), store.Config{Addr: proxy.Addr, Database: db, FunnelMatching: store.MatchEngine,
		QueryTimeout: storetest.QueryHangGuard, DialTimeout: storetest.QueryHangGuard}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	st.SetReloadTimeout(storetest.QueryHangGuard)
	proxy.StallOn(store.FunnelUDFName + "(") // the pass's query: ClickHouse hangs from then on

	jm := defaultMap(t)
	ctx, giveUp := context.WithCancel(context.Background())
	defer giveUp()
	errc := make(chan error, 1)
	go func() {
		_, err := st.Funnel(ctx, jm, store.FunnelQuery{Steps: []string{"Product Viewed", "Order Completed"}, Window: time.Hour})
		errc <- err
	}()
	select {
	case <-proxy.Asked():
	case <-time.After(hangGuard):
		t.Fatal("the funnel never called the function")
	}
	giveUp()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("a funnel given up: %v, want it stopped", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- st.Close() }()
	select {
	case <-closed:
	case <-time.After(hangGuard):
		t.Fatal("the store did not close while its reload of the function waited on a ClickHouse that hangs")
	}
}

// emptyFunnelPool has s's waymark_funnel pool (of poolSize processes) lose every process: each of
// the smallest queries that call the function, with a limit of 1 MB, takes a process and fails
// over its limit before it hands it back. A query that takes a process that had exited (which
// ClickHouse reports as CHILD_WAS_NOT_EXITED_NORMALLY) hands it back and loses none.
func emptyFunnelPool(t *testing.T, s *storetest.Server, poolSize int) {
	t.Helper()
	empty := "SELECT length(" + store.FunnelUDFName + "('', [1], [1], [1], [1], [], [], [], [], [], [], [], [], [])) SETTINGS max_memory_usage = 1000000"
	for calls, lost := 0, 0; lost < poolSize; calls++ {
		if calls == 4*poolSize {
			t.Fatalf("%d calls of %s lost the pool %d processes, want %d", calls, empty, lost, poolSize)
		}
		switch got := engineSQLError(t, s, empty); {
		case strings.Contains(got, "MEMORY_LIMIT_EXCEEDED"):
			lost++
		case !strings.Contains(got, "CHILD_WAS_NOT_EXITED_NORMALLY"):
			t.Fatalf("%s: %s, want it over its memory limit", empty, got)
		}
	}
}
