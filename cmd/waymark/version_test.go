package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/waymark-dev/waymark/store/storetest"
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

// TestDockerImageReportsItsCommit builds Waymark with the go build command of deploy/Dockerfile's
// build stage, as the image is built: with its build argument WAYMARK_COMMIT, and without the
// repository's .git (the stage copies the sources alone, so Go records no VCS information:
// -buildvcs=false here). `waymark version` names the commit given, and "unknown" when the build
// gave none. (No Docker engine runs here; the shell runs the stage's command line.) Its two
// builds (minutes on a cold cache: the stage's flags build every package again) ask nothing of
// ClickHouse, so one pass of a run builds them.
func TestDockerImageReportsItsCommit(t *testing.T) {
	t.Parallel()
	storetest.FirstPassOnly(t)
	b, err := os.ReadFile("../../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var build string
	for line := range strings.Lines(string(b)) {
		if cmd, ok := strings.CutPrefix(strings.TrimSpace(line), "RUN "); ok && strings.Contains(cmd, "go build") {
			build = cmd
		}
	}
	if !strings.Contains(build, "-o /out/waymark ") {
		t.Fatalf("deploy/Dockerfile builds no /out/waymark: %q", build)
	}
	if !strings.Contains(string(b), "\nARG WAYMARK_COMMIT") {
		t.Fatal("deploy/Dockerfile declares no build argument WAYMARK_COMMIT")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "waymark")
	for _, tt := range []struct{ commit, want string }{{"0123abcd", "0123abcd"}, {"", "unknown"}} {
		cmd := exec.Command("sh", "-c", strings.Replace(build, "-o /out/waymark ", "-o "+bin+" ", 1))
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
		if tt.commit != "" {
			cmd.Env = append(cmd.Env, "WAYMARK_COMMIT="+tt.commit)
		} else {
			cmd.Env = append(cmd.Env, "WAYMARK_COMMIT=") // as an ARG not given: empty
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", build, err, out)
		}
		out, err := exec.Command(bin, "version").Output()
		if err != nil {
			t.Fatal(err)
		}
		if f := strings.Fields(string(out)); len(f) != 4 || f[2] != tt.want {
			t.Errorf("WAYMARK_COMMIT=%q: waymark version printed %q, want waymark <version> %s <Go release>", tt.commit, out, tt.want)
		}
	}
}
