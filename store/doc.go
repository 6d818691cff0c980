// Package store keeps Waymark's events and sessions in ClickHouse and answers journey questions
// from them.
//
// The same SQL runs on ClickHouse 18.16 (CI) and current releases (production): see the
// compatibility floor in the README. Events are stored as they came, one row per (source,
// messageId) after merges; every query counts distinct events, so a replayed batch never changes
// an answer.
package store
