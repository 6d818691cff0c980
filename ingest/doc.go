// Package ingest gets shop events into Waymark: it decodes and validates Segment-format messages,
// consumes them from Kafka in a consumer group, sends the ones it cannot use to a dead-letter topic
// with the reason, and replays public clickstream datasets as Segment messages.
//
// The consumer hands decoded events to a Sink and commits Kafka offsets only after the sink has
// returned, so what is committed is always durable downstream.
package ingest
