package storetest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/waymark-dev/waymark/store"
)

// RunTests is a test binary's TestMain for tests on ClickHouse: it starts a server of the engine
// WAYMARK_TEST_CLICKHOUSE picks in a temporary folder, sets *srv to it, runs the tests and stops
// the server. It returns the exit code for os.Exit: 1 as well when the engine died under the
// tests, whose log it then prints.
func RunTests(m *testing.M, srv **Server) int {
	dir, err := os.MkdirTemp("", "waymark-clickhouse-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *srv, err = Start(dir); err != nil {
		fmt.Fprintln(os.Stderr, "start clickhouse:", err)
		return 1
	}
	defer (*srv).Stop()
	code := m.Run()
	if died, why := (*srv).Exited(); died { // the engine died under the tests: say so, with its log
		fmt.Fprintln(os.Stderr, why)
		code = 1
	}
	return code
}

var dbSeq atomic.Int64

// Database returns the name of a database no other caller in this process gets: test_1, test_2, …
func Database() string { return fmt.Sprintf("test_%d", dbSeq.Add(1)) }

// DropWhenDone drops database (if it exists) from s when tb's test and its subtests end, after
// the cleanups registered later (a store or a serve process on it closes first). Each table of a
// test's databases would otherwise keep the engine's background tasks busy for the rest of the
// package's tests: on the chdb engine 100 migrated databases cost about 15% of a core while idle.
// A drop that fails is logged, not failed: the server may be stopped or gone by then.
func (s *Server) DropWhenDone(tb testing.TB, database string) {
	tb.Helper()
	tb.Cleanup(func() {
		if s.proc == nil { // stopped (or never started): its databases go with its folder
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard
		defer cancel()
		conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{s.Addr}})
		if err == nil {
			err = conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+database+"`")
			conn.Close()
		}
		if err != nil {
			tb.Logf("drop database %s: %v", database, err)
		}
	})
}

// QueryHangGuard is the query timeout of the tests' stores (OpenStore's unless configure sets
// another): it only guards against a hang, since a query's time is no test's subject. The default
// minute is a speed limit: on a machine at load 45 long funnels of the limits and batch tests
// overran it.
const QueryHangGuard = 30 * time.Minute

// OpenStore opens a migrated store on a database of its own on s, with QueryHangGuard as its
// query timeout, its configuration changed by configure (nil: none), logging nowhere; it is
// closed when the test ends, and its database dropped then (DropWhenDone) unless configure named
// another test's.
func (s *Server) OpenStore(tb testing.TB, configure func(*store.Config)) *store.Store {
	tb.Helper()
	ctx := context.Background()
	own := Database()
	cfg := store.Config{Addr: s.Addr, Database: own, QueryTimeout: QueryHangGuard}
	if configure != nil {
		configure(&cfg)
	}
	if cfg.Database == own && cfg.Addr == s.Addr {
		s.DropWhenDone(tb, own)
	}
	st, err := store.Open(ctx, cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	return st
}
