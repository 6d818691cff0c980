// Package sessionize turns a customer's touchpoints into sessions and journey stages.
//
// A journey Map (YAML) lists the stages of a journey in order, each with rules that match events.
// The Sessionizer cuts each customer's events into sessions on event time, so the same events give
// the same sessions in any arrival order; a Runner puts it between the Kafka consumer and the store.
package sessionize
