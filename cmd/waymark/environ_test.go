package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestStrayVariables: a WAYMARK_ variable that backs no flag of any command is reported, with
// the flag variable it most likely meant; every command's flags, Waymark's own other variables
// and Kubernetes' service links are not.
func TestStrayVariables(t *testing.T) {
	for _, tt := range []struct {
		env   string
		stray bool
		meant string
	}{
		{"WAYMARK_CLICKHOUSE_ADR=127.0.0.1:9000", true, "WAYMARK_CLICKHOUSE_ADDR"},
		{"WAYMARK_KAFKA_BROKER=k:9092", true, "WAYMARK_KAFKA_BROKERS"},
		{"WAYMARK_WINDOWS=24h", true, "WAYMARK_WINDOW"},
		{"WAYMARK_SOMETHING_ELSE=1", true, ""},
		{"WAYMARK_clickhouse_addr=127.0.0.1:9000", true, "WAYMARK_CLICKHOUSE_ADDR"},
		{"WAYMARK_CLICKHOUSE_PORT=19801", true, ""}, // a port meant for a flag, not a service link (tester 44's F5)
		{"WAYMARK_HTTP_PORT=8080", true, ""},
		{"WAYMARK_CLICKHOUSE_ADDR=127.0.0.1:9000", false, ""}, // serve's and the queries'
		{"WAYMARK_KAFKA_BROKERS=k:9092", false, ""},
		{"WAYMARK_WINDOW=24h", false, ""},  // a journey query's
		{"WAYMARK_EVENTS=1000", false, ""}, // bench's
		{"WAYMARK_PERSONS=10", false, ""},  // bench ingest's
		{"WAYMARK_JOURNEY_MAP=m.yaml", false, ""},
		{"WAYMARK_TEST_CLICKHOUSE=chdb", false, ""},
		{"WAYMARK_BENCH_CLICKHOUSE=127.0.0.1:1", false, ""},
		{"WAYMARK_LOCAL_HTTP_PORT=8080", false, ""},
		{"WAYMARK_COMMIT=abc", false, ""},
		{"WAYMARK_SERVICE_HOST=10.0.0.1", false, ""},
		{"WAYMARK_SERVICE_PORT=8080", false, ""},
		{"WAYMARK_SERVICE_PORT_HTTP=8080", false, ""},
		{"WAYMARK_PORT=tcp://10.0.0.1:8080", false, ""},
		{"WAYMARK_CLICKHOUSE_PORT=tcp://10.0.0.2:9000", false, ""}, // a service waymark-clickhouse
		{"WAYMARK_PORT_8080_TCP=tcp://10.0.0.1:8080", false, ""},
		{"WAYMARK_PORT_8080_TCP_ADDR=10.0.0.1", false, ""},
		{"WAYMARK_CLICKHOUSE_PORT_9000_TCP_PORT=9000", false, ""}, // a service waymark-clickhouse
		{"PATH=/usr/bin", false, ""},
	} {
		got := strayVariables(context.Background(), []string{tt.env})
		name, _, _ := strings.Cut(tt.env, "=")
		switch {
		case !tt.stray && len(got) > 0:
			t.Errorf("%s: reported as %+v, want no report", tt.env, got)
		case tt.stray && (len(got) != 1 || got[0].name != name || got[0].meant != tt.meant):
			t.Errorf("%s: reported as %+v, want %s meaning %q", tt.env, got, name, tt.meant)
		}
	}
}

// TestFlagCommandsCoverTheUsage: every command of the usage is in flagCommands or a journey
// query, and each of flagCommands answers -h with its flags' variables, so flagVariables knows
// every flag: a command added without it would have its variables warned about.
func TestFlagCommandsCoverTheUsage(t *testing.T) {
	firsts := map[string]bool{}
	for _, line := range flagCommands() {
		firsts[line[0]] = true
		err := dispatch(context.Background(), append(slices.Clip(line), "-h"), &bytes.Buffer{}, slog.New(slog.DiscardHandler))
		if help := (*helpRequest)(nil); !errors.As(err, &help) {
			t.Errorf("waymark %s -h: %v, want its help", strings.Join(line, " "), err)
		}
	}
	for _, c := range journeyCommands() {
		firsts[c.name] = true
	}
	_, commands, _ := strings.Cut(usage(), "Commands:\n")
	n := 0
	for line := range strings.Lines(commands) {
		if !strings.HasPrefix(line, "  ") || strings.HasPrefix(line, "   ") {
			continue // not a command's line
		}
		n++
		if name := strings.Fields(line)[0]; !firsts[name] {
			t.Errorf("the usage's command %s is neither in flagCommands nor a journey query", name)
		}
	}
	if n < 15 {
		t.Errorf("read %d commands from the usage", n)
	}
	vars := flagVariables(context.Background())
	for _, want := range []string{"WAYMARK_KAFKA_BROKERS", "WAYMARK_STEPS", "WAYMARK_PERSONS", "WAYMARK_SESSION_GAP"} {
		if !slices.Contains(vars, want) {
			t.Errorf("flagVariables has no %s: %v", want, vars)
		}
	}
}

// TestAMisspeltVariableIsWarnedAbout runs a command with a misspelt variable set: it runs, and
// the log names the variable and the flag's.
func TestAMisspeltVariableIsWarnedAbout(t *testing.T) {
	t.Setenv("WAYMARK_CLICKHOUSE_ADR", "127.0.0.1:1")
	var logged, out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &out, slog.New(slog.NewTextHandler(&logged, nil))); err != nil {
		t.Fatalf("waymark version: %v", err)
	}
	if !strings.Contains(logged.String(), "variable=WAYMARK_CLICKHOUSE_ADR did_you_mean=WAYMARK_CLICKHOUSE_ADDR") {
		t.Errorf("log %q names neither the variable nor the flag's", logged.String())
	}
	logged.Reset()
	if err := run(context.Background(), []string{"version", "-h"}, &out, slog.New(slog.NewTextHandler(&logged, nil))); err != nil {
		t.Fatalf("waymark version -h: %v", err)
	}
	if logged.Len() > 0 {
		t.Errorf("help logged %q, want nothing", logged.String())
	}
}

// TestDocumentedVariablesAreRead: every WAYMARK_ variable the README, docs/, docker-compose.yml
// and deploy/ name is a flag's or Waymark's own, so none of them is warned about, and none names
// a flag that no longer exists.
func TestDocumentedVariablesAreRead(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, pattern := range []string{"../../deploy/*", "../../deploy/*/*"} {
		more, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, more...)
	}
	files = append(files, "../../README.md", "../../docker-compose.yml")
	// A name followed by _* is a family (WAYMARK_TEST_*), not a variable.
	name := regexp.MustCompile(`WAYMARK_[A-Z0-9_]*[A-Z0-9](_\*)?`)
	examples := []string{"WAYMARK_CLICKHOUSE_ADR", "WAYMARK_CLICKHOUSE_PORT"} // docs/configuration.md's of the warning
	n := 0
	for _, f := range files {
		if st, err := os.Stat(f); err != nil || st.IsDir() {
			continue
		}
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range slices.Compact(name.FindAllString(string(text), -1)) {
			n++
			if strings.HasSuffix(v, "_*") || slices.Contains(examples, v) {
				continue
			}
			if got := strayVariables(context.Background(), []string{v + "=x"}); len(got) > 0 {
				t.Errorf("%s names %s, which no command reads", f, v)
			}
		}
	}
	if n < 20 {
		t.Errorf("found %d variables in %d files", n, len(files))
	}
}
