package ingest

import (
	"strings"
	"testing"
)

func TestCheckTopic(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"waymark.events", true},
		{"Shop_events-v2.1", true},
		{"a", true},
		{"...", true}, // only "." and ".." are Kafka's own names for directories
		{strings.Repeat("x", 249), true},
		{"", false},
		{".", false},
		{"..", false},
		{strings.Repeat("x", 250), false},
		{"bad topic!", false},
		{"events/2024", false},
		{"a:b", false},
		{"événements", false},
		{"tab\there", false},
		{"events\n", false},
	}
	for _, tt := range tests {
		if err := CheckTopic(tt.name); (err == nil) != tt.ok {
			t.Errorf("CheckTopic(%q) = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
	// The configs hold it too: a topic a flag did not check is refused before anything starts.
	for _, cfg := range []CollectorConfig{{Topic: "bad topic!"}, {DLQTopic: ".."}} {
		cfg.Brokers = []string{"127.0.0.1:1"}
		cfg.setDefaults()
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "topic") {
			t.Errorf("CollectorConfig%+v.Validate() = %v, want an error naming the topic", cfg, err)
		}
	}
	for _, cfg := range []ConsumerConfig{{Topic: strings.Repeat("x", 250)}, {DLQTopic: "dlq#1"}} {
		cfg.Brokers = []string{"127.0.0.1:1"}
		cfg.setDefaults()
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "topic") {
			t.Errorf("ConsumerConfig{Topic: %q, DLQTopic: %q}.Validate() = %v, want an error naming the topic", cfg.Topic, cfg.DLQTopic, err)
		}
	}
}
