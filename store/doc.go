// Package store keeps Waymark's events and sessions in ClickHouse and answers journey questions
// from them.
//
// The same SQL runs on ClickHouse 18.16 (CI) and current releases (production): see the
// compatibility floor in docs/operations.md. Events are stored as they came, with the source
// (path) each copy came by, one row per (source, messageId) after merges; every query counts
// distinct messageIds, whatever their source, so a replayed or redelivered message never changes
// an answer.
//
// The journey queries are typed methods (Store.Funnel with a FunnelQuery, …) returning typed
// answers; parameter errors are *ParamError values naming the parameter. One schema per query
// (QueryParams) gives the text parameters Store.Query reads, the CLI's flags and the page's
// defaults. Nothing here serves HTTP: store/queryapi serves the queries under /api/v1/.
package store
