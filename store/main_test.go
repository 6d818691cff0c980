package store_test

import (
	"os"
	"testing"

	"github.com/waymark-dev/waymark/store"
	"github.com/waymark-dev/waymark/store/storetest"
)

var server *storetest.Server

func TestMain(m *testing.M) { os.Exit(storetest.RunTests(m, &server)) }

// openStore opens a migrated store on a database of its own.
func openStore(t testing.TB) *store.Store {
	t.Helper()
	return openStoreWith(t, nil)
}

// openStoreWith is openStore with configuration changes.
func openStoreWith(t testing.TB, configure func(*store.Config)) *store.Store {
	t.Helper()
	return server.OpenStore(t, configure)
}
