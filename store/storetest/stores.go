package storetest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

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

// QueryHangGuard is the query timeout of the tests' stores (OpenStore's unless configure sets
// another): it only guards against a hang, since a query's time is no test's subject. The default
// minute is a speed limit: on a machine at load 45 long funnels of the limits and batch tests
// overran it.
const QueryHangGuard = 30 * time.Minute

// OpenStore opens a migrated store on a database of its own on s, with QueryHangGuard as its
// query timeout, its configuration changed by configure (nil: none), logging nowhere; it is
// closed when the test ends.
func (s *Server) OpenStore(tb testing.TB, configure func(*store.Config)) *store.Store {
	tb.Helper()
	ctx := context.Background()
	cfg := store.Config{Addr: s.Addr, Database: Database(), QueryTimeout: QueryHangGuard}
	if configure != nil {
		configure(&cfg)
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
