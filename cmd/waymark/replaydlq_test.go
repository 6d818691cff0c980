package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/ingest/ingesttest"
)

// replayTo runs `waymark replay --format segment` of lines against the dev broker b, to the
// topics named after name, and returns its exit code, output, and what it produced to each topic.
func replayTo(t *testing.T, b *ingest.DevBroker, name string, lines ...string) (code int, stdout, stderr string, events, dead []kafka.Message) {
	t.Helper()
	file := filepath.Join(t.TempDir(), name+".jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	topic, dlq := "ev."+name, "dlq."+name
	code, stdout, stderr = replayBinary(t, b.Addr(), "--format", "segment", "--file", file, "--topic", topic, "--dlq-topic", dlq)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard
	defer cancel()
	read := func(topic string) []kafka.Message {
		msgs, err := ingesttest.ReadTopic(ctx, b.Addr(), topic)
		if err != nil && !strings.Contains(err.Error(), "Unknown Topic") {
			t.Fatalf("read %s: %v", topic, err)
		}
		return msgs
	}
	return code, stdout, stderr, read(topic), read(dlq)
}

// replayBinary runs `waymark replay args…` against the dev broker at broker and returns its exit
// code and output; a replay that could not be run fails t.
func replayBinary(t *testing.T, broker string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return replayBinaryReading(t, broker, nil, args...)
}

// replayBinaryReading is replayBinary with stdin as the replay's standard input (for --file -).
func replayBinaryReading(t *testing.T, broker string, stdin []byte, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"replay"}, args...)...)
	cmd.Env = append(os.Environ(), "WAYMARK_DEV_BROKER_ADDR="+broker)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	out, err := cmd.Output()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), string(out), errBuf.String()
}

// TestReplayDeadLettersWhatItSkips (tester 45's F4): nothing is lost. `waymark replay` straight
// to Kafka writes each line, or event of a batch line, that it skips to --dlq-topic, as the
// consumer and the collector write theirs: what was skipped as the value, replay's source header,
// the reason code and the error naming the line. It printed `skipped line 3: invalid_timestamp`
// and exited 0, and the DLQ topic stayed empty.
func TestReplayDeadLettersWhatItSkips(t *testing.T) {
	b := devBroker(t, 3)
	good := func(id string) string {
		return `{"type":"track","userId":"dl","event":"Product Viewed","messageId":"` + id + `","timestamp":"2024-07-08T10:00:00Z"}`
	}
	msTime := `{"type":"track","userId":"dl","event":"Product Viewed","messageId":"dl-ms","timestamp":1720432800000}`
	noEvent := `{"type":"track","userId":"dl","messageId":"dl-noevent","timestamp":"2024-07-08T10:00:00Z"}`
	batch := `{"batch":[` + good("dl-b0") + `,{"type":"track","userId":"dl","event":"E","messageId":"dl-b1","timestamp":"yesterday"},` + good("dl-b2") + `]}`
	code, stdout, stderr, events, dead := replayTo(t, b, "mixed", good("dl-1"), msTime, noEvent, batch, good("dl-5"), "not json")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"read 6 lines (8 events), sent 4 events, skipped 4 events",
		"skipped line 2: invalid_timestamp", "skipped line 3: missing_event", "skipped line 4 batch[1]: invalid_timestamp", "skipped line 6: invalid_json",
		"dead-lettered the 4 skipped events to dlq.mixed"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if len(events) != 4 {
		t.Errorf("produced %d events, want 4", len(events))
	}
	want := []struct{ value, reason, err string }{
		{msTime, ingest.ReasonInvalidTimestamp, "line 2: invalid_timestamp (field timestamp)"},
		{noEvent, ingest.ReasonMissingEvent, "line 3: missing_event"},
		{`"messageId":"dl-b1"`, ingest.ReasonInvalidTimestamp, "line 4 batch[1]: invalid_timestamp (field timestamp)"},
		{"not json", ingest.ReasonInvalidJSON, "line 6: invalid_json"},
	}
	if len(dead) != len(want) {
		t.Fatalf("%d dead letters, want %d: %v", len(dead), len(want), dead)
	}
	header := func(m kafka.Message, key string) string {
		for _, h := range m.Headers {
			if h.Key == key {
				return string(h.Value)
			}
		}
		return ""
	}
	found := 0
	for _, w := range want {
		for _, m := range dead {
			if !strings.HasPrefix(header(m, ingest.HeaderDLQError), w.err) {
				continue
			}
			found++
			if !strings.Contains(string(m.Value), w.value) || header(m, ingest.HeaderDLQReason) != w.reason || header(m, ingest.HeaderSource) != "replay-segment" {
				t.Errorf("dead letter of %s: value %s, reason %q, source %q; want %s, %s, replay-segment",
					w.err, m.Value, header(m, ingest.HeaderDLQReason), header(m, ingest.HeaderSource), w.value, w.reason)
			}
		}
	}
	if found != len(want) {
		for _, m := range dead {
			t.Logf("dead letter: %s %q", m.Value, header(m, ingest.HeaderDLQError))
		}
		t.Errorf("found %d of the %d dead letters", found, len(want))
	}

	// A line too large for a Kafka message (1 MB by default) is dead-lettered by its first
	// 512 KiB, and the replay goes on.
	big := `{"type":"track","userId":"dl","event":"E","messageId":"dl-big","timestamp":"2024-07-08T10:00:00Z","properties":{"blob":"` + strings.Repeat("x", 1500<<10) + `"}}`
	code, stdout, stderr, events, dead = replayTo(t, b, "big", good("dl-big-1"), big, good("dl-big-3"))
	if code != 0 || len(events) != 2 || len(dead) != 1 {
		t.Fatalf("exit %d, %d events, %d dead letters; want 0, 2, 1\nstdout:\n%s\nstderr:\n%s", code, len(events), len(dead), stdout, stderr)
	}
	if m := dead[0]; len(m.Value) != 512<<10 || !strings.HasPrefix(big, string(m.Value)) || header(m, ingest.HeaderDLQReason) != ingest.ReasonTooLarge ||
		!strings.Contains(header(m, ingest.HeaderDLQError), "line 2: too_large") || !strings.Contains(header(m, ingest.HeaderDLQError), "holds its first 524288 of") {
		t.Errorf("dead letter of a 1.5 MB line: %d bytes, reason %q, error %q", len(m.Value), header(m, ingest.HeaderDLQReason), header(m, ingest.HeaderDLQError))
	}
}

// TestReplaySummaryCountsEvents (tester 45's F2 and F3): the summary counts events throughout,
// naming the line they came from once ("read 6, sent 6, skipped 1 lines … skipped line 1:
// batch[3]: …" for one line of 7 events); and a file most of whose lines are Segment messages
// refused for their content is refused as holding invalid events, each listed with its
// reason, not as "not segment" on --format.
func TestReplaySummaryCountsEvents(t *testing.T) {
	b := devBroker(t, 3)
	event := func(id, ts string) string {
		return `{"type":"track","userId":"sc","event":"E","messageId":"` + id + `","timestamp":` + ts + `}`
	}
	var members []string
	for i := range 7 {
		ts := `"2024-07-08T10:00:00Z"`
		if i == 3 {
			ts = "1720432800000"
		}
		members = append(members, event("sc-"+string(rune('a'+i)), ts))
	}
	code, stdout, stderr, events, dead := replayTo(t, b, "batch7", `{"batch":[`+strings.Join(members, ",")+`]}`)
	for _, want := range []string{"read 1 line (7 events), sent 6 events, skipped 1 event", "skipped line 1 batch[3]: invalid_timestamp"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("exit %d, want 0 and %q\nstdout:\n%s\nstderr:\n%s", code, want, stdout, stderr)
		}
	}
	if len(events) != 6 || len(dead) != 1 {
		t.Errorf("produced %d events and %d dead letters, want 6 and 1", len(events), len(dead))
	}

	code, stdout, stderr, events, dead = replayTo(t, b, "invalid",
		event("iv-1", "1720432800000"), event("iv-2", `"2024-07-08T10:00:00Z"`), `{"type":"track","userId":"sc","messageId":"iv-3"}`)
	for _, want := range []string{"--file: ", "holds mostly invalid events: 2 of 3 lines are segment messages Waymark refuses for their content (first: line 1: invalid_timestamp", "nothing was sent, so nothing was dead-lettered either"} {
		if code == 0 || !strings.Contains(stderr, want) {
			t.Errorf("exit %d, want non-zero and %q\nstdout:\n%s\nstderr:\n%s", code, want, stdout, stderr)
		}
	}
	for _, want := range []string{"skipped line 1: invalid_timestamp", "skipped line 3: missing_event"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stderr, "--format") || strings.Contains(stderr, "is not segment") {
		t.Errorf("invalid Segment messages blamed on --format:\n%s", stderr)
	}
	if len(events) != 0 || len(dead) != 0 {
		t.Errorf("a refused file produced %d events and %d dead letters, want none", len(events), len(dead))
	}

	// A file of one refused line is said to be one (tester 48's F5: "1 of 1 lines are segment
	// messages …; each is listed above").
	code, stdout, stderr, _, _ = replayTo(t, b, "invalid1", `{"type":"track","userId":"sc","messageId":"iv-4"}`)
	for _, want := range []string{"holds invalid events: its only line is a segment message Waymark refuses for its content (line 1: missing_event",
		"; it is listed above with its reason; nothing was sent"} {
		if code == 0 || !strings.Contains(stderr, want) {
			t.Errorf("exit %d, want non-zero and %q\nstdout:\n%s\nstderr:\n%s", code, want, stdout, stderr)
		}
	}
}

// TestSentBeforeRefusalSaysWhatWasDeadLettered (tester 48's F8): replay dead-letters a chunk's
// skipped lines when it sends the chunk, after judging the file, so a file refused part way has
// its skipped lines since the last chunk sent in no topic. The error said so only when nothing
// was sent; "100000 events of its other lines were sent before that" left a user to look for
// 120000 skipped lines in the dead-letter topic.
func TestSentBeforeRefusalSaysWhatWasDeadLettered(t *testing.T) {
	for _, tt := range []struct {
		name                        string
		sent, skipped, deadLettered int
		want                        string
	}{
		{"nothing sent", 0, 3, 0, "; nothing was sent, so nothing was dead-lettered either"},
		{"sent, none dead-lettered", 100000, 120000, 0, "; 100000 events of its other lines were sent before that, but none of its skipped lines was dead-lettered"},
		{"one sent, none dead-lettered", 1, 2, 0, "; 1 event of its other lines was sent before that, but none of its skipped lines was dead-lettered"},
		{"sent, some dead-lettered", 20000, 30005, 5, "; 20000 events of its other lines were sent before that; of its 30005 skipped events only the first 5 were dead-lettered, the other 30000 not"},
		{"sent, all dead-lettered", 20000, 5, 5, "; 20000 events of its other lines were sent before that"},
		{"nothing sent, all dead-lettered", 0, 2, 2, "; nothing was sent"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sum := ingest.ReplaySummary{Sent: tt.sent, Skipped: make([]ingest.Skip, tt.skipped), DeadLettered: tt.deadLettered}
			if got := sentBeforeRefusal(sum); got != tt.want {
				t.Errorf("sentBeforeRefusal() = %q, want %q", got, tt.want)
			}
		})
	}
}

// devBroker starts the dev broker on a free loopback port with the events and dead-letter topics
// of partitions partitions each, closed when t ends.
func devBroker(t *testing.T, partitions int) *ingest.DevBroker {
	t.Helper()
	b, err := ingest.StartDevBroker("127.0.0.1:0", partitions, "waymark.events", "waymark.dlq")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}
