package store_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/store"
)

// TestMigrateConcurrently runs Migrate from several stores at once on a fresh database, as
// `serve --roles ingest` and `serve --roles query` started together do, for a few databases. Every
// Migrate must succeed, and each database must end with the columns of a database migrated once
// and every version recorded (duplicates allowed: two processes may both record one).
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	const rounds, migrators = 5, 8
	conn := rawConn(t)
	freshDB := testDatabase(t)
	openStoreWith(t, func(c *store.Config) { c.Database = freshDB })
	want := columns(t, conn, freshDB)
	for range rounds {
		db := testDatabase(t)
		stores := make([]*store.Store, migrators)
		for i := range stores {
			stores[i] = openRaw(t, db)
		}
		errs := make([]error, migrators)
		var wg sync.WaitGroup
		for i, s := range stores {
			wg.Go(func() { errs[i] = s.Migrate(context.Background()) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("%s: Migrate %d of %d at once: %v", db, i+1, migrators, err)
			}
		}
		checkMigrated(t, db, want)
	}
}

// TestMigrateResumes starts from a version 4 database on which a process applied later
// migrations' statements without recording all of them (it died in between), or recorded none,
// then migrates. The
// database must end as a fresh one, unless a column exists with another type than the migration's:
// then Migrate fails, naming it.
func TestMigrateResumes(t *testing.T) {
	t.Parallel()
	conn := rawConn(t)
	freshDB := testDatabase(t)
	openStoreWith(t, func(c *store.Config) { c.Database = freshDB })
	want := columns(t, conn, freshDB)
	tests := []struct {
		name     string
		applied  []string // statements run by hand on the version 4 database; DB is its name
		recorded []uint32 // versions recorded after version 4
		wantErr  string   // empty: Migrate succeeds; else a part of its error
	}{
		{
			name:    "version 5 applied, not recorded",
			applied: []string{"ALTER TABLE DB.events ADD COLUMN person_id String DEFAULT customer_key"},
		},
		{
			name: "versions 5 and 6 applied, 5 recorded",
			applied: []string{
				"ALTER TABLE DB.events ADD COLUMN person_id String DEFAULT customer_key",
				"ALTER TABLE DB.sessions ADD COLUMN person_id String DEFAULT customer_key",
			},
			recorded: []uint32{5},
		},
		{
			name: "versions 5 to 8 applied, none recorded",
			applied: []string{
				"ALTER TABLE DB.events ADD COLUMN person_id String DEFAULT customer_key",
				"ALTER TABLE DB.sessions ADD COLUMN person_id String DEFAULT customer_key",
				"CREATE TABLE DB.device_sign_ins (device String, from_ms Array(UInt64), users Array(String), version UInt64) ENGINE = ReplacingMergeTree(version) PARTITION BY tuple() ORDER BY device",
				"ALTER TABLE DB.events ADD COLUMN seq UInt64",
			},
		},
		{
			name:    "person_id of another type",
			applied: []string{"ALTER TABLE DB.events ADD COLUMN person_id UInt64"},
			wantErr: "column person_id of type UInt64, not String",
		},
		// A database at no recorded version whose tables are there (a process of an older build
		// created them and died before its first record, or creates them beside this one): the
		// latest tables cannot be created in one step over them, and the migrations add the rest.
		{
			name:    "tables of version 4, no version recorded",
			applied: []string{"DROP TABLE DB.schema_migrations"},
		},
		{
			name:    "no version recorded, person_id of another type",
			applied: []string{"DROP TABLE DB.schema_migrations", "ALTER TABLE DB.events ADD COLUMN person_id UInt64"},
			wantErr: "column person_id of type UInt64, not String",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := testDatabase(t)
			createV4(t, conn, db)
			for _, stmt := range tt.applied {
				exec(t, conn, strings.ReplaceAll(stmt, "DB.", "`"+db+"`."))
			}
			for _, v := range tt.recorded {
				insert(t, conn, db+".schema_migrations", "version, applied_at", []any{v, time.Now().UTC()})
			}
			err := openRaw(t, db).Migrate(context.Background())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Migrate = %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Migrate: %v", err)
			}
			checkMigrated(t, db, want)
		})
	}
}

// openRaw opens a store on database db without migrating it.
func openRaw(t testing.TB, db string) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), store.Config{Addr: server.Addr, Database: db}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// checkMigrated checks that database db has the columns want (those of a database migrated
// once) and every version from 1 to SchemaVersion recorded, at least once each.
func checkMigrated(t testing.TB, db string, want []string) {
	t.Helper()
	conn := rawConn(t)
	if got := columns(t, conn, db); !slices.Equal(got, want) {
		t.Errorf("%s: columns differ from a database migrated once:\ngot  %q\nwant %q", db, got, want)
	}
	if got := slices.Compact(versions(t, conn, db)); !slices.Equal(got, wantVersions()) {
		t.Errorf("%s: distinct recorded versions = %v, want %v", db, got, wantVersions())
	}
}
