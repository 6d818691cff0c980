package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/sessionize"
	"github.com/waymark-dev/waymark/store"
)

// TestFlagsAreReadWhole: a word that is no flag (an unquoted value with a space, a stray argument)
// is an error naming it: the flag package would stop at the word and ignore every flag after it.
// A flag given twice keeps its last value, as in every getopt program.
func TestFlagsAreReadWhole(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want string // "" for success, else a part of the error
	}{
		{[]string{"--from", "2024-05-01", "--json"}, nil, ""},
		{[]string{"--from", "2024-05-02", "--from", "2024-05-01"}, nil, ""},
		{[]string{"--json", "x", "--from", "2024-05-31"}, nil, `unexpected argument "x"`},
		{[]string{"--from", "2024-05-01", "2024-05-02"}, nil, `unexpected argument "2024-05-02"`},
		// The environment fills a flag not given; one given wins over it.
		{nil, map[string]string{"WAYMARK_FROM": "2024-05-03"}, ""},
		{[]string{"--from", "2024-05-01"}, map[string]string{"WAYMARK_FROM": "2024-05-03"}, ""},
	}
	for _, tt := range tests {
		for k, v := range tt.env {
			t.Setenv(k, v)
		}
		fs := newFlagSet("sessions", "sessions")
		from := fs.String("from", "", "")
		fs.Bool("json", false, "")
		err := parseFlags(fs, tt.args)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%q: %v", tt.args, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%q: error %v, want one saying %q", tt.args, err, tt.want)
		case tt.want == "" && len(tt.args) > 0 && *from != "2024-05-01":
			t.Errorf("%q: --from %q, want 2024-05-01", tt.args, *from)
		case tt.want == "" && len(tt.args) == 0 && *from != tt.env["WAYMARK_FROM"]:
			t.Errorf("environment %v: --from %q", tt.env, *from)
		}
		for k := range tt.env {
			t.Setenv(k, "")
		}
	}
}

// TestSessionizerFlagsAreChecked: values the sessionizer would read as its default (0) or that
// break it (a negative cap evicted more customers than it held, and every event then panicked
// into the dead-letter topic) are refused before serve starts, naming the flag.
func TestSessionizerFlagsAreChecked(t *testing.T) {
	ok := sessionize.Config{Gap: 30 * time.Minute, MaxDuration: 24 * time.Hour, AllowedLateness: 72 * time.Hour, MaxCustomers: 1000}
	tests := []struct {
		change func(*sessionize.Config)
		want   string
	}{
		{func(*sessionize.Config) {}, ""},
		{func(c *sessionize.Config) { c.MaxCustomers = -1 }, "--max-customers"},
		{func(c *sessionize.Config) { c.MaxCustomers = 0 }, "--max-customers"},
		{func(c *sessionize.Config) { c.Gap = 0 }, "--session-gap"},
		{func(c *sessionize.Config) { c.MaxDuration = time.Minute }, "--session-max"},
		{func(c *sessionize.Config) { c.AllowedLateness = -time.Hour }, "--allowed-lateness"},
		{func(c *sessionize.Config) { c.AllowedLateness = 0 }, "--allowed-lateness"},
	}
	for i, tt := range tests {
		c := ok
		tt.change(&c)
		err := checkSessionizerFlags(newFlagSet("serve", "serve"), &c)
		if (err == nil) != (tt.want == "") || err != nil && !strings.HasPrefix(err.Error(), tt.want+":") {
			t.Errorf("case %d: %v, want %q", i, err, tt.want)
		}
	}
}

// TestFunnelMatchingOnlyWhereItCounts: --funnel-matching is in the help of the commands that
// answer funnels (serve, bench, bench ingest and the funnel query) and of no other: migrate,
// resessionize and the other queries run no funnel (dropoff and the rest match in Waymark
// whatever it says), and listing it in their help misled.
func TestFunnelMatchingOnlyWhereItCounts(t *testing.T) {
	tests := []struct {
		args []string
		want bool
	}{
		{[]string{"serve"}, true},
		{[]string{"bench"}, true},
		{[]string{"bench", "ingest"}, true},
		{[]string{"bench", "broker"}, false},
		{[]string{"migrate"}, false},
		{[]string{"resessionize"}, false},
		{[]string{"replay"}, false},
		{[]string{"healthcheck"}, false},
		{[]string{"journey-map", "show"}, false},
	}
	for _, name := range store.QueryNames() {
		tests = append(tests, struct {
			args []string
			want bool
		}{[]string{name}, name == "funnel"})
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			if got := strings.Contains(commandHelp(t, tt.args...), "--funnel-matching "); got != tt.want {
				t.Errorf("waymark %s -h lists --funnel-matching: %v, want %v", strings.Join(tt.args, " "), got, tt.want)
			}
		})
	}
}

// TestEveryQueryIsACommand: each query of the store's registry is a command listed in the usage,
// whose help offers the query's parameters as flags and the store's flags.
func TestEveryQueryIsACommand(t *testing.T) {
	var usageText strings.Builder
	if err := run(context.Background(), []string{"help"}, &usageText, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	for _, name := range store.QueryNames() {
		t.Run(name, func(t *testing.T) {
			if !strings.Contains(usageText.String(), "\n  "+name+" ") {
				t.Errorf("the usage lists no command %s:\n%s", name, usageText.String())
			}
			help := commandHelp(t, name)
			if !strings.HasPrefix(help, "Usage: waymark "+name) {
				t.Errorf("waymark %s -h:\n%s\nwant its own usage", name, help)
			}
			for _, p := range append(store.QueryParams(name), store.Param{Name: "clickhouse-addr"}, store.Param{Name: "query-timeout"}, store.Param{Name: "json"}) {
				if !strings.Contains(help, "--"+flagName(p.Name)+" ") {
					t.Errorf("waymark %s -h lists no flag --%s", name, flagName(p.Name))
				}
			}
		})
	}
	// How the CLI shows a query names one of the registry: a query renamed or removed there
	// leaves nothing behind here.
	for _, c := range queryCommands {
		if !slices.Contains(store.QueryNames(), c.name) {
			t.Errorf("queryCommands shows %q, which is no query of the store's registry", c.name)
		}
	}
}

// commandHelp runs `waymark ARGS -h` in this process and returns the help it prints, which is
// on standard output with no error.
func commandHelp(t *testing.T, args ...string) string {
	t.Helper()
	var help strings.Builder
	if err := run(context.Background(), append(args, "-h"), &help, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("waymark %s -h: %v, want the help", strings.Join(args, " "), err)
	}
	return help.String()
}

// TestQueryLimitFlagsArePositive: a zero or negative --query-timeout or --query-max-memory was
// taken for the default (store.Config reads zero as "the default"); it is refused, naming the
// flag, from the command line and from the environment alike.
func TestQueryLimitFlagsArePositive(t *testing.T) {
	tests := []struct {
		args    []string
		env     string // WAYMARK_QUERY_TIMEOUT
		want    string // "" for success, else a part of the error
		timeout time.Duration
	}{
		{nil, "", "", time.Minute},
		{[]string{"--query-timeout", "90s", "--query-max-memory", "1048576"}, "", "", 90 * time.Second},
		{[]string{"--query-timeout", "-5s"}, "", "-query-timeout", 0},
		{[]string{"--query-timeout", "0"}, "", "-query-timeout", 0},
		{[]string{"--query-timeout", "-1ns"}, "", "-query-timeout", 0},
		{[]string{"--query-max-memory", "0"}, "", "-query-max-memory", 0},
		{[]string{"--query-max-memory", "-1"}, "", "-query-max-memory", 0},
		{nil, "-5s", "-query-timeout", 0},
		{nil, "2m", "", 2 * time.Minute},
	}
	for _, tt := range tests {
		t.Setenv("WAYMARK_QUERY_TIMEOUT", tt.env) // restored after the test
		if tt.env == "" {
			os.Unsetenv("WAYMARK_QUERY_TIMEOUT")
		}
		fs := newFlagSet("funnel", "funnel")
		cf := addStoreFlags(fs)
		err := parseFlags(fs, tt.args)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%q %q: %v", tt.args, tt.env, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%q %q: error %v, want one naming %s", tt.args, tt.env, err, tt.want)
		case tt.want == "" && cf.cfg.QueryTimeout != tt.timeout:
			t.Errorf("%q %q: timeout %s, want %s", tt.args, tt.env, cf.cfg.QueryTimeout, tt.timeout)
		}
	}
}

// TestBooleanParametersAreBooleanFlags: a true-or-false query parameter (--collapse) is a boolean
// flag, as --json is: the README's `next --anchor … --collapse` failed with "flag needs an
// argument", and `--collapse --json` took "--json" for collapse's value.
func TestBooleanParametersAreBooleanFlags(t *testing.T) {
	tests := []struct {
		cmd      string
		args     []string
		env      string // WAYMARK_COLLAPSE, "" for none
		collapse string // the parameter the query is given; "" when the flags are refused
		json     bool
	}{
		{"next", []string{"--anchor", "Checkout Started", "--direction", "next", "--collapse"}, "", "true", false},
		{"next", []string{"--anchor", "A", "--collapse", "--json"}, "", "true", true},
		{"paths", []string{"--anchor", "A", "--collapse=true"}, "", "true", false},
		{"paths", []string{"--anchor", "A", "--collapse=false", "--json"}, "", "false", true},
		{"next", []string{"--anchor", "A"}, "", "false", false},
		{"next", []string{"--anchor", "A"}, "true", "true", false},
		{"next", []string{"--anchor", "A", "--collapse=false"}, "true", "false", false},
		{"next", []string{"--anchor", "A", "--collapse=maybe"}, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.cmd+" "+strings.Join(tt.args, " ")+" "+tt.env, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("WAYMARK_COLLAPSE", tt.env)
			}
			cmd, _ := commandFor(tt.cmd)
			f := newQueryFlags(cmd)
			err := parseFlags(f.fs, tt.args)
			switch {
			case tt.collapse == "":
				if err == nil || !strings.Contains(err.Error(), "-collapse") {
					t.Errorf("error %v, want one naming --collapse", err)
				}
			case err != nil:
				t.Errorf("%v", err)
			case f.values().Get("collapse") != tt.collapse || *f.asJSON != tt.json:
				t.Errorf("collapse=%q json=%v, want %q %v", f.values().Get("collapse"), *f.asJSON, tt.collapse, tt.json)
			case store.CheckParams(tt.cmd, f.values()) != nil:
				t.Errorf("the query refuses the flags' parameters: %v", store.CheckParams(tt.cmd, f.values()))
			}
		})
	}
	// Every true-or-false parameter of every query is a boolean flag.
	for _, name := range store.QueryNames() {
		cmd, _ := commandFor(name)
		f := newQueryFlags(cmd)
		for _, p := range store.QueryParams(name) {
			b, ok := f.fs.Lookup(flagName(p.Name)).Value.(interface{ IsBoolFlag() bool })
			if isBool := ok && b.IsBoolFlag(); isBool != p.Bool {
				t.Errorf("%s --%s: a boolean flag %v, want %v", name, flagName(p.Name), isBool, p.Bool)
			}
		}
	}
}

// runCapturing runs `waymark ARGS` in this process, with nothing reachable behind the flags'
// defaults (ClickHouse on a port nothing listens on, the dev broker and HTTP on any free port, ctx cancelled), and
// returns its error, standard output and standard error.
func runCapturing(t *testing.T, args ...string) (err error, stdout, stderr string) {
	t.Helper()
	t.Setenv("WAYMARK_CLICKHOUSE_ADDR", "127.0.0.1:1")
	t.Setenv("WAYMARK_DEV_BROKER_ADDR", "127.0.0.1:0")
	t.Setenv("WAYMARK_HTTP_ADDR", "127.0.0.1:0")
	f, ferr := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if ferr != nil {
		t.Fatal(ferr)
	}
	defer f.Close()
	saved := os.Stderr
	os.Stderr = f
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out strings.Builder
	err = run(ctx, args, &out, slog.New(slog.DiscardHandler))
	os.Stderr = saved
	errText, ferr := os.ReadFile(f.Name())
	if ferr != nil {
		t.Fatal(ferr)
	}
	return err, out.String(), string(errText)
}

// TestFlagErrorsNameTheFlag: a problem with a flag is one line naming it with two dashes, or its
// environment variable when the value came from there, with nothing else printed: the flag
// package's own report said -Steps, printed the message twice and the whole help after it, and a
// value from WAYMARK_DIRECTION was reported as --direction's.
func TestFlagErrorsNameTheFlag(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"funnel", "--Steps", "A,B"}, nil, "unknown flag --Steps; 'waymark funnel -h' lists the flags"},
		{[]string{"funnel", "-steps=A", "-Window", "1h"}, nil, "unknown flag --Window; 'waymark funnel -h' lists the flags"},
		{[]string{"bench", "ingest", "--nope"}, nil, "unknown flag --nope; 'waymark bench ingest -h' lists the flags"},
		{[]string{"funnel", "--json", "--steps"}, nil, "--steps needs a value; 'waymark funnel -h' lists the flags"},
		{[]string{"funnel", "---steps", "A"}, nil, `"---steps" is not a flag (--name, --name=value); 'waymark funnel -h' lists the flags`},
		{[]string{"next", "--anchor", "A", "--collapse=maybe"}, nil, `--collapse: invalid value "maybe": not true or false`},
		{[]string{"funnel", "--steps", "A", "--query-timeout", "-5s"}, nil, `--query-timeout: invalid value "-5s": must be positive`},
		{[]string{"funnel", "--steps", "A"}, map[string]string{"WAYMARK_QUERY_TIMEOUT": "-5s"}, `WAYMARK_QUERY_TIMEOUT (--query-timeout): invalid value "-5s": must be positive`},
		{[]string{"paths", "--anchor", "A"}, map[string]string{"WAYMARK_DIRECTION": "previous"}, `WAYMARK_DIRECTION (--direction): "previous" is not one of start, end`},
		{[]string{"paths", "--anchor", "A", "--direction", "previous"}, nil, `--direction: "previous" is not one of start, end`},
		{[]string{"resessionize"}, map[string]string{"WAYMARK_FROM": "yesterday"}, "WAYMARK_FROM (--from): "},
		{[]string{"serve"}, map[string]string{"WAYMARK_ROLES": "query,bogus"}, `WAYMARK_ROLES (--roles): unknown role "bogus"`},
		{[]string{"serve", "--write-keys-inline", "k"}, nil, "--write-keys-inline: want KEY=NAME or KEY NAME"},
		{[]string{"serve"}, map[string]string{"WAYMARK_WRITE_KEYS_INLINE": "k"}, "WAYMARK_WRITE_KEYS_INLINE (--write-keys-inline): want KEY=NAME or KEY NAME"},
		{[]string{"serve", "--session-max", "1m"}, nil, "--session-max: must be at least --session-gap 30m0s, got 1m0s"},
		{[]string{"serve"}, map[string]string{"WAYMARK_SESSION_GAP": "48h"}, "--session-max: must be at least WAYMARK_SESSION_GAP (--session-gap) 48h0m0s, got 24h0m0s"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " ")+fmt.Sprint(tt.env), func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			err, stdout, stderr := runCapturing(t, tt.args...)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %v, want one line starting %q", err, tt.want)
			}
			if stdout != "" || stderr != "" {
				t.Errorf("printed %q and %q besides the error", stdout, stderr)
			}
		})
	}
}

// TestHelpIsPrintedToStdout: help asked for (-h, --help, `waymark help COMMAND`) is the command's
// own help on standard output, with no error (status 0); `help funnel` printed the general help,
// `help bogus` nothing with status 0, and journey-map, its check and udf-funnel took -h for an
// argument.
func TestHelpIsPrintedToStdout(t *testing.T) {
	tests := []struct {
		args []string
		want string // the help's start; "" when the answer is an error naming the command
	}{
		{[]string{"help"}, "Usage: waymark <command>"},
		{[]string{"-h"}, "Usage: waymark <command>"},
		{[]string{"--help"}, "Usage: waymark <command>"},
		{[]string{"funnel", "-h"}, "Usage: waymark funnel "},
		{[]string{"funnel", "--steps", "A", "--help"}, "Usage: waymark funnel "},
		{[]string{"help", "funnel"}, "Usage: waymark funnel "},
		{[]string{"help", "serve"}, "Usage: waymark serve "},
		{[]string{"serve", "-h"}, "Usage: waymark serve "},
		{[]string{"bench", "ingest", "-h"}, "Usage: waymark bench ingest "},
		{[]string{"help", "bench"}, "Usage: waymark bench "},
		{[]string{"journey-map", "-h"}, "Usage: waymark journey-map check FILE | journey-map show"},
		{[]string{"journey-map", "help"}, "Usage: waymark journey-map check FILE | journey-map show"},
		{[]string{"help", "journey-map"}, "Usage: waymark journey-map check FILE | journey-map show"},
		{[]string{"journey-map", "check", "-h"}, "Usage: waymark journey-map check FILE\n"},
		{[]string{"journey-map", "show", "--help"}, "Usage: waymark journey-map show "},
		{[]string{"udf-funnel", "-h"}, "Usage: waymark udf-funnel\n"},
		{[]string{"help", "udf-funnel"}, "Usage: waymark udf-funnel\n"},
		{[]string{"healthcheck", "-h"}, "Usage: waymark healthcheck "},
		{[]string{"help", "bogus"}, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			err, stdout, stderr := runCapturing(t, tt.args...)
			if tt.want == "" {
				if err == nil || !strings.Contains(err.Error(), `unknown command "bogus"`) {
					t.Errorf("error %v, want one naming the unknown command", err)
				}
				return
			}
			if err != nil || !strings.HasPrefix(stdout, tt.want) || stderr != "" {
				t.Errorf("error %v, stdout %.80q, stderr %.80q; want the help starting %q on stdout alone", err, stdout, stderr, tt.want)
			}
		})
	}
}

// TestDocumentedCommandLinesParse: every waymark command line in the README's and docs' shell
// examples (and the README's inline ones) parses: run with -h after its flags, it prints its
// command's help, which it reaches only when every flag before it was read. The README's `next
// … --collapse` failed so.
func TestDocumentedCommandLinesParse(t *testing.T) {
	docs, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string // each a command line, from "waymark"
	for _, path := range append([]string{"../../README.md"}, docs...) {
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		inShell := false
		for line := range strings.Lines(string(text)) {
			if fence, ok := strings.CutPrefix(strings.TrimSpace(line), "```"); ok {
				inShell = !inShell && (fence == "sh" || fence == "bash" || fence == "shell")
				continue
			}
			if inShell {
				line = strings.Replace(line, "go run ./cmd/waymark ", "waymark ", 1)
				if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "waymark "); ok {
					lines = append(lines, "waymark "+rest)
				}
			} else if path == "../../README.md" {
				parts := strings.Split(line, "`")
				for i := 1; i+1 < len(parts); i += 2 { // the spans closed on the line
					if span := parts[i]; strings.HasPrefix(span, "waymark ") && strings.Contains(span, " --") && !strings.ContainsAny(span, "<…") {
						lines = append(lines, span)
					}
				}
			}
		}
	}
	if len(lines) < 15 {
		t.Fatalf("found %d command lines in the docs: %q", len(lines), lines)
	}
	for _, line := range lines {
		t.Run(line, func(t *testing.T) {
			args := shellWords(t, line)[1:]
			cmd := args[0]
			if len(args) > 1 && (cmd == "bench" || cmd == "journey-map") && !strings.HasPrefix(args[1], "-") {
				cmd += " " + args[1]
			}
			err, stdout, stderr := runCapturing(t, append(args, "-h")...)
			if err != nil || !strings.HasPrefix(stdout, "Usage: waymark "+cmd) {
				t.Errorf("%s -h: %v\nstdout %.100q\nstderr %.300q\nwant its help", line, err, stdout, stderr)
			}
		})
	}
}

// shellWords splits a shell command line into words as sh would, for the simple lines of the
// docs: quotes group, and an unquoted #, >, | or & ends the command.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var word strings.Builder
	inWord := false
	var quote rune
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			word.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case strings.ContainsRune("#>|&", r):
			quote = -1 // the end of the command
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteRune(r)
			inWord = true
		}
		if quote == -1 {
			break
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	if quote > 0 {
		t.Fatalf("%s: unbalanced quotes", line)
	}
	return words
}
