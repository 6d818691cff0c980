//go:build unix

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/ingest"
)

// TestReplayRefusingANamedPipeEnds: a named pipe given to --file is read once; when replay
// refused what it held, it opened the pipe again to see what it was (look), which waits for a
// writer, and replay hung there for good.
func TestReplayRefusingANamedPipeEnds(t *testing.T) {
	b, err := ingest.StartDevBroker("127.0.0.1:0", 3, "waymark.events", "waymark.dlq")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	fifo := filepath.Join(t.TempDir(), "export.jsonl")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	go func() { // the writer, as `cat export.jsonl > fifo` is
		if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			f.WriteString(`[{"type":"track","userId":"np","event":"E","timestamp":"2025-05-01T10:00:00Z"}]` + "\n")
			f.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "replay", "--format", "segment", "--file", fifo)
	cmd.Env = append(os.Environ(), "WAYMARK_DEV_BROKER_ADDR="+b.Addr())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ctx.Err() != nil || err == nil || !strings.Contains(stderr.String(), "--format: "+fifo+" is not segment") {
		t.Errorf("replay of a named pipe holding no Segment message: %v (context: %v), want it to end refusing it\nstdout:\n%s\nstderr:\n%s", err, ctx.Err(), out, stderr.String())
	}
}
