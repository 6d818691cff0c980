package main

import (
	"bytes"
	"context"
	"log/slog"
	"runtime"
	"strings"
	"testing"
)

// TestVersionPrintsTheBuild: `waymark version` and `waymark --version` print one line naming
// Waymark and the Go release that built it (and the commit, when the build recorded one).
func TestVersionPrintsTheBuild(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, &out, slog.New(slog.DiscardHandler)); err != nil {
			t.Fatalf("waymark %s: %v", args[0], err)
		}
		line := out.String()
		if !strings.HasPrefix(line, "waymark ") || !strings.HasSuffix(line, " "+runtime.Version()+"\n") || strings.Count(line, "\n") != 1 {
			t.Errorf("waymark %s printed %q, want one line: waymark <version> … %s", args[0], line, runtime.Version())
		}
	}
	if err := run(context.Background(), []string{"version", "extra"}, &bytes.Buffer{}, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("waymark version extra: no error, want one naming the stray argument")
	}
}
