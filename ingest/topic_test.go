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

// TestTopicsCollide: Kafka's Topic.hasCollision, '.' and '_' read as one; the configs refuse an
// events topic and a dead-letter topic that collide, as the flags do.
func TestTopicsCollide(t *testing.T) {
	tests := []struct {
		a, b    string
		collide bool
	}{
		{"waymark.events", "waymark.events", true},
		{"waymark.events", "waymark_events", true},
		{"a_b.c", "a.b_c", true},
		{"a..b", "a__b", true},
		{"waymark.events", "waymark.dlq", false},
		{"a.b", "a-b", false},
		{"a.b", "A.b", false}, // Kafka's names are case-sensitive
		{"a.b", "a.b.", false},
	}
	for _, tt := range tests {
		if got := TopicsCollide(tt.a, tt.b); got != tt.collide {
			t.Errorf("TopicsCollide(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.collide)
		}
		if got := TopicsCollide(tt.b, tt.a); got != tt.collide {
			t.Errorf("TopicsCollide(%q, %q) = %v, want %v", tt.b, tt.a, got, tt.collide)
		}
		col := CollectorConfig{Brokers: []string{"127.0.0.1:1"}, Topic: tt.a, DLQTopic: tt.b}
		col.setDefaults()
		con := ConsumerConfig{Brokers: []string{"127.0.0.1:1"}, Topic: tt.a, DLQTopic: tt.b}
		con.setDefaults()
		for name, err := range map[string]error{"CollectorConfig": col.Validate(), "ConsumerConfig": con.Validate()} {
			if (err != nil) != tt.collide || err != nil && !strings.Contains(err.Error(), "dlq topic") {
				t.Errorf("%s{Topic: %q, DLQTopic: %q}.Validate() = %v, want an error naming the dlq topic: %v", name, tt.a, tt.b, err, tt.collide)
			}
		}
	}
}
