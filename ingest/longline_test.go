package ingest

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// TestReplaySkipsALineOverItsLimit: a line longer than MaxLineBytes (a 5 MB property, at the end
// of the file without a newline too) is skipped with its reason, and the lines around it are
// read (tester14 F6: before, `bufio.Scanner: token too long` ended the replay, and nothing was
// sent).
func TestReplaySkipsALineOverItsLimit(t *testing.T) {
	good := func(id string) string {
		return `{"type":"track","userId":"u1","event":"E","messageId":"` + id + `","timestamp":"2026-01-01T00:00:00Z"}`
	}
	huge := `{"type":"track","userId":"u1","event":"E","properties":{"x":"` + strings.Repeat("a", 5_000_000) + `"}}`
	file := strings.Join([]string{good("m1"), huge, good("m3"), huge}, "\n")
	var sent []string
	var skips []Skip
	err := ReadDataset(bytes.NewReader([]byte(file)), "segment",
		func(m Message) error { sent = append(sent, fmt.Sprint(m.Line)); return nil },
		func(s Skip) { skips = append(skips, s) })
	if err != nil {
		t.Fatalf("ReadDataset: %v", err)
	}
	if fmt.Sprint(sent) != "[1 3]" {
		t.Errorf("lines sent %v, want [1 3]", sent)
	}
	if len(skips) != 2 || skips[0].Line != 2 || skips[1].Line != 4 {
		t.Fatalf("skips %v, want lines 2 and 4", skips)
	}
	want := fmt.Sprintf("too_large: line of %d bytes is longer than replay reads (%d)", len(huge), MaxLineBytes)
	for _, s := range skips {
		if s.Reason != want {
			t.Errorf("line %d skipped as %q, want %q", s.Line, s.Reason, want)
		}
	}
}
