package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestConfigurationListsEveryFlag: docs/configuration.md, the full reference of the flags, names
// every flag of every command, as `--name` (tester 35's F8: serve's --dlq-timeout and replay's
// --file, --format, --wait and --repeat were in no table). The commands are the usage's, and the
// commands under them that a command's help names (bench ingest, journey-map show) or that run
// them (bench broker, which bench ingest starts); each one's flags are read from its help, which
// its flag set writes before anything starts.
func TestConfigurationListsEveryFlag(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	help := func(command string) string {
		t.Helper()
		var out bytes.Buffer
		if err := run(context.Background(), append(strings.Fields(command), "-h"), &out, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
			t.Fatalf("waymark %s -h: %v", command, err)
		}
		if !strings.HasPrefix(out.String(), "Usage: waymark ") {
			t.Fatalf("waymark %s -h printed no usage:\n%s", command, out.String())
		}
		return out.String()
	}
	var commands []string
	for _, m := range regexp.MustCompile(`(?m)^  ([a-z][a-z-]*) +\S`).FindAllStringSubmatch(usage(), -1) {
		commands = append(commands, m[1])
	}
	for _, want := range []string{"serve", "replay", "funnel", "sessions", "bench"} { // the pattern still reads the usage
		if !slices.Contains(commands, want) {
			t.Fatalf("commands %v from the usage: no %s", commands, want)
		}
	}
	nested := regexp.MustCompile(`waymark ([a-z-]+ [a-z]+) -h`)
	for i := 0; i < len(commands); i++ {
		for _, m := range nested.FindAllStringSubmatch(help(commands[i]), -1) {
			if !slices.Contains(commands, m[1]) {
				commands = append(commands, m[1])
			}
		}
	}
	commands = append(commands, "bench broker")
	flagLine := regexp.MustCompile(`(?m)^  (--[a-z0-9-]+)  \[WAYMARK_`)
	flags := 0
	for _, c := range commands {
		for _, m := range flagLine.FindAllStringSubmatch(help(c), -1) {
			flags++
			if !bytes.Contains(doc, []byte("`"+m[1]+"`")) {
				t.Errorf("waymark %s %s is not in docs/configuration.md (as `%s`)", c, m[1], m[1])
			}
		}
	}
	if flags < 50 {
		t.Errorf("%d flags read from the helps of %v: the help's format changed?", flags, commands)
	}
}
