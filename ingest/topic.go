package ingest

import (
	"errors"
	"fmt"
	"strings"
)

// maxTopicLength is the longest topic name Kafka accepts.
const maxTopicLength = 249

// CheckTopic reports whether name can be a Kafka topic, by Kafka's own rule
// (org.apache.kafka.common.internals.Topic.validate): 1 to 249 of the characters a-z, A-Z, 0-9,
// '.', '_' and '-', and neither "." nor "..". A broker refuses any other name only once the
// first event is produced or a consumer joins, so the configs and the --topic and --dlq-topic
// flags check with it before anything starts.
func CheckTopic(name string) error {
	switch {
	case name == "":
		return errors.New("empty; a Kafka topic name has 1 to 249 characters")
	case name == "." || name == "..":
		return fmt.Errorf("%q is not a Kafka topic name", name)
	case len(name) > maxTopicLength:
		return fmt.Errorf("%d characters; a Kafka topic name has at most %d", len(name), maxTopicLength)
	}
	if i := strings.IndexFunc(name, func(r rune) bool { return !topicRune(r) }); i >= 0 {
		r := []rune(name[i:])[0]
		return fmt.Errorf("%q is not allowed in a Kafka topic name: only letters a-z and A-Z, digits, '.', '_' and '-'", r)
	}
	return nil
}

// topicRune reports whether r may be in a Kafka topic name.
func topicRune(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-'
}

// TopicsCollide reports whether Kafka takes the topic names a and b for one topic: they are equal,
// or differ only where one has '.' and the other '_'. That is Kafka's own rule
// (org.apache.kafka.common.internals.Topic.hasCollision): its metrics name a topic with '.'
// replaced by '_', so a broker refuses to create a topic that collides with an existing one, and
// the second topic would be missing only once the first event for it is produced.
func TopicsCollide(a, b string) bool {
	return strings.ReplaceAll(a, ".", "_") == strings.ReplaceAll(b, ".", "_")
}

// checkTopics reports an events topic or dead-letter topic that is not a Kafka topic name, or
// the two colliding (TopicsCollide): events dead-lettered onto the topic they came from would be
// read again, forever.
func checkTopics(topic, dlqTopic string) error {
	if err := CheckTopic(topic); err != nil {
		return fmt.Errorf("topic: %w", err)
	}
	if err := CheckTopic(dlqTopic); err != nil {
		return fmt.Errorf("dlq topic: %w", err)
	}
	switch {
	case topic == dlqTopic:
		return fmt.Errorf("dlq topic: must differ from the topic %q", topic)
	case TopicsCollide(topic, dlqTopic):
		return fmt.Errorf("dlq topic: %q collides with the topic %q: Kafka reads '.' and '_' in topic names as one", dlqTopic, topic)
	}
	return nil
}
