package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// migrations are applied in order, once each; their index+1 is the schema version. Never edit
// one that has shipped: append a new one. Statements must run on ClickHouse 18.16 and current
// releases (no ADD COLUMN IF NOT EXISTS on 18.16, hence the version table). {db} is replaced by
// the database name.
var migrations = []string{
	`CREATE TABLE IF NOT EXISTS {db}.events (
		source String,
		message_id String,
		type String,
		event String,
		user_id String,
		anonymous_id String,
		customer_key String,
		ts_ms UInt64,
		date Date,
		original_ts_ms UInt64,
		sent_at_ms UInt64,
		received_at_ms UInt64,
		stored_at DateTime,
		prop_keys Array(String),
		prop_values Array(String),
		page_path String,
		referrer String,
		campaign_source String,
		campaign_medium String,
		campaign_name String,
		raw String
	) ENGINE = ReplacingMergeTree()
	PARTITION BY toYYYYMM(date)
	ORDER BY (customer_key, source, message_id)`,

	`CREATE TABLE IF NOT EXISTS {db}.sessions (
		session_id String,
		customer_key String,
		start_ms UInt64,
		end_ms UInt64,
		date Date,
		events UInt32,
		entry_event String,
		exit_event String,
		stages Array(String),
		end_reason String,
		map_version String,
		version UInt64,
		deleted UInt8
	) ENGINE = ReplacingMergeTree(version)
	PARTITION BY toYYYYMM(date)
	ORDER BY (customer_key, session_id)`,
}

// SchemaVersion is the schema version this build migrates to.
func SchemaVersion() int { return len(migrations) }

// Migrate creates the database and tables, or upgrades them, idempotently: it applies the
// migrations newer than the recorded schema version and records each.
func (s *Store) Migrate(ctx context.Context) error {
	db := "`" + s.cfg.Database + "`"
	if err := s.conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+db); err != nil {
		return fmt.Errorf("create database %s: %w", s.cfg.Database, err)
	}
	if err := s.conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.table("schema_migrations")+
		` (version UInt32, applied_at DateTime) ENGINE = MergeTree() ORDER BY version`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var current uint32
	if err := s.conn.QueryRow(ctx, "SELECT max(version) FROM "+s.table("schema_migrations")).Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	for i := int(current); i < len(migrations); i++ {
		stmt := strings.ReplaceAll(migrations[i], "{db}", db)
		if err := s.conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("apply migration %d: %w", i+1, err)
		}
		record := []column{{"version", []uint32{uint32(i + 1)}}, {"applied_at", []time.Time{time.Now().UTC()}}}
		if err := s.insertColumns(ctx, "schema_migrations", record); err != nil {
			return fmt.Errorf("record migration %d: %w", i+1, err)
		}
		s.log.Info("schema migrated", "version", i+1)
	}
	return nil
}
