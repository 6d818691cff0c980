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

// testDatabase returns the name of a database of t's own on server, dropped when t ends.
func testDatabase(t testing.TB) string {
	t.Helper()
	db := storetest.Database()
	server.DropWhenDone(t, db)
	return db
}
