package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReplayFileStartingWithABOM: a tester's Windows export. A JSONL file starting with a UTF-8
// byte order mark (PowerShell's Out-File writes one) lost its first event as invalid_json; the
// mark is dropped, and every event of the file is stored. The same file replayed in a format it
// is not (every line skipped) exits non-zero naming the count; a file some of whose lines are
// sent exits 0 and prints the skipped count.
func TestReplayFileStartingWithABOM(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	dir := t.TempDir()
	lines := []string{
		`{"type":"track","userId":"bom1","event":"BOM First","messageId":"bom-1","timestamp":"2025-05-01T10:00:00Z"}`,
		`{"type":"track","userId":"bom1","event":"BOM Second","messageId":"bom-2","timestamp":"2025-05-01T10:01:00Z"}`,
	}
	bom := filepath.Join(dir, "bom.jsonl")
	if err := os.WriteFile(bom, []byte("\ufeff"+strings.Join(lines, "\r\n")+"\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := s.waymark(t, "replay", "--format", "segment", "--file", bom, "--wait", "2m")
	if !strings.Contains(out, "sent 2, skipped 0 lines") {
		t.Errorf("replay of a file starting with a BOM:\n%s", out)
	}
	if n := liveEvents(t, s.database); n != uint64(len(lines)) {
		t.Errorf("stored %d events, want %d", n, len(lines))
	}

	// A byte order mark is dropped at the start of the file only: one starting a later line is
	// that line's text, no JSON.
	partial := filepath.Join(dir, "partial.jsonl")
	if err := os.WriteFile(partial, []byte(lines[0]+"\n\ufeff"+lines[1]+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out = s.waymark(t, "replay", "--format", "segment", "--file", partial)
	if !strings.Contains(out, "sent 1, skipped 1 lines") || !strings.Contains(out, "skipped line 2: invalid_json") {
		t.Errorf("replay of a file with a BOM on line 2 (exit 0, one line sent):\n%s", out)
	}

	garbage := filepath.Join(dir, "garbage.jsonl")
	if err := os.WriteFile(garbage, []byte("not json\n{\"type\":\"track\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ format, file string }{{"taobao", bom}, {"segment", garbage}} {
		format := tt.format
		cmd := exec.Command(binary, "replay", "--format", format, "--file", tt.file)
		cmd.Env = append(os.Environ(), "WAYMARK_DEV_BROKER_ADDR="+s.broker)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.Output()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || !strings.Contains(stderr.String(), "all 2 lines were skipped") || !strings.Contains(string(stdout), "sent 0, skipped 2 lines") {
			t.Errorf("replay --format %s of a Segment file: %v\nstdout:\n%s\nstderr:\n%s", format, err, stdout, stderr.String())
		}
	}
}
