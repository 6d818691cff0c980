package store_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"

	"github.com/waymark-dev/waymark/store"
	"github.com/waymark-dev/waymark/store/storetest"
)

var (
	server *storetest.Server
	dbSeq  atomic.Int64
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "waymark-clickhouse-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	server, err = storetest.Start(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start clickhouse:", err)
		os.Exit(1)
	}
	code := m.Run()
	if died, why := server.Exited(); died { // the engine died under the tests: say so, with its log
		fmt.Fprintln(os.Stderr, why)
		code = 1
	}
	server.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// openStore opens a migrated store on a database of its own.
func openStore(t testing.TB) *store.Store {
	t.Helper()
	return openStoreWith(t, func(*store.Config) {})
}

// openStoreWith is openStore with configuration changes.
func openStoreWith(t testing.TB, configure func(*store.Config)) *store.Store {
	t.Helper()
	return openStoreOn(t, server, configure)
}

// openStoreOn is openStoreWith on a given server.
func openStoreOn(t testing.TB, srv *storetest.Server, configure func(*store.Config)) *store.Store {
	t.Helper()
	ctx := context.Background()
	cfg := store.Config{Addr: srv.Addr, Database: fmt.Sprintf("test_%d", dbSeq.Add(1))}
	configure(&cfg)
	s, err := store.Open(ctx, cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}
