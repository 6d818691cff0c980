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
