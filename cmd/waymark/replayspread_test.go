package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/waymark-dev/waymark/ingest"
)

// TestReplayOfAPrettyPrintedBodySaysOneValuePerLine: a /v1/batch body written over several lines
// (as the field cases' batch.json) is JSON, just not one value per line: replay says so and
// suggests `jq -c`, rather than that the file "is not segment" (tester14 F7). The same body on
// one line replays.
func TestReplayOfAPrettyPrintedBodySaysOneValuePerLine(t *testing.T) {
	b, err := ingest.StartDevBroker("127.0.0.1:0", 3, "waymark.events", "waymark.dlq")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	body := []byte(`{"batch":[{"type":"track","userId":"sp1","event":"E","messageId":"sp-1","timestamp":"2025-05-01T10:00:00Z"},{"type":"track","userId":"sp2","event":"E","messageId":"sp-2","timestamp":"2025-05-01T10:00:00Z"}]}`)
	var pretty, compact bytes.Buffer
	if err := json.Indent(&pretty, body, "", "  "); err != nil {
		t.Fatal(err)
	}
	if err := json.Compact(&compact, body); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	replay := func(content []byte) (code int, stdout, stderr, file string) {
		file = filepath.Join(dir, "batch.json")
		if err := os.WriteFile(file, append(content, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr = replayBinary(t, b.Addr(), "--format", "segment", "--file", file)
		return code, stdout, stderr, file
	}
	code, stdout, stderr, file := replay(pretty.Bytes())
	for _, want := range []string{"--format: " + file + " is not one JSON value per line", "first skipped: line 1: invalid_json", "jq -c", "nothing was sent, so nothing was dead-lettered either"} {
		if code == 0 || !strings.Contains(stderr, want) {
			t.Errorf("replay of a pretty-printed batch body: exit %d, want non-zero and %q\nstdout:\n%s\nstderr:\n%s", code, want, stdout, stderr)
		}
	}
	if strings.Contains(stderr, "is not segment") {
		t.Errorf("replay of a pretty-printed batch body says the file is not segment:\n%s", stderr)
	}
	if code, stdout, stderr, _ := replay(compact.Bytes()); code != 0 || !strings.Contains(stdout, "sent 2 events,") {
		t.Errorf("replay of the body on one line: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

// TestCompactedNameIsNeverTheFile: replay's suggestion for a pretty-printed file, `jq -c . FILE >
// NAME`, named r2.jsonl for r2.jsonl, and the shell empties the file before jq reads it.
func TestCompactedNameIsNeverTheFile(t *testing.T) {
	for _, tt := range []struct{ file, want string }{
		{"r2.jsonl", "r2.compact.jsonl"},
		{"batch.json", "batch.compact.jsonl"},
		{"export", "export.compact.jsonl"},
		{"dir.v2/export", "dir.v2/export.compact.jsonl"},
		{"r2.compact.jsonl", "r2.compact.compact.jsonl"},
		{"/tmp/x/export.ndjson", "/tmp/x/export.compact.jsonl"},
		{".jsonl", ".compact.jsonl"},
		{"r2.jsonl.gz", "r2.jsonl.compact.jsonl"},
	} {
		t.Run(tt.file, func(t *testing.T) {
			got := compactedName(tt.file)
			if got != tt.want || got == tt.file {
				t.Errorf("compactedName(%q) = %q, want %q (never the file itself)", tt.file, got, tt.want)
			}
		})
	}
}
