package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/store"
	"github.com/waymark-dev/waymark/store/storetest"
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
	tests := []struct {
		args []string
		want string // "" for success, else the flag the error starts with
	}{
		{nil, ""},
		{[]string{"--max-customers", "1000", "--session-gap", "1h", "--session-max", "1h"}, ""},
		{[]string{"--max-customers", "-1"}, "--max-customers"},
		{[]string{"--max-customers", "0"}, "--max-customers"},
		{[]string{"--session-gap", "0"}, "--session-gap"},
		{[]string{"--session-max", "1m"}, "--session-max"},
		{[]string{"--session-gap", "25h"}, "--session-max"},
		{[]string{"--allowed-lateness", "-1h"}, "--allowed-lateness"},
		{[]string{"--allowed-lateness", "0"}, "--allowed-lateness"},
		{[]string{"--default-currency", "eur"}, ""},
		{[]string{"--default-currency", "none"}, ""},
		{[]string{"--default-currency", "US$"}, "--default-currency"},
		{[]string{"--default-currency", ""}, "--default-currency"},
	}
	for _, tt := range tests {
		fs := newFlagSet("serve", "serve")
		c := addSessionizerFlags(fs)
		err := parseFlags(fs, tt.args)
		if err == nil {
			err = checkSessionizerFlags(fs, c)
		}
		if err == nil {
			if err := c.Validate(); err != nil { // the sessionizer takes what the flags give it
				t.Errorf("%q: the sessionizer refuses the flags' config: %v", tt.args, err)
			}
		}
		if (err == nil) != (tt.want == "") || err != nil && !strings.HasPrefix(err.Error(), tt.want+":") {
			t.Errorf("%q: %v, want %q", tt.args, err, tt.want)
		}
	}
}

// TestStoreFlagsOnlyWhereTheyApply: each part of the store's configuration is in the help of the
// commands it changes and of no other, with help text that fits the command.
// --funnel-matching: the commands that answer journey queries (serve, bench, bench ingest and
// every query, the sessions summary too since it matches in the UDF); migrate and resessionize
// run none. --query-timeout and --query-max-memory: the commands that answer
// journey queries; migrate and resessionize offered them. --clickhouse-cluster: the commands that
// create the schema; the query commands offered it, with help about migrate. The query commands'
// --query-timeout said "over it the API answers 503".
func TestStoreFlagsOnlyWhereTheyApply(t *testing.T) {
	const (
		matching = "--funnel-matching "
		timeout  = "--query-timeout "
		memory   = "--query-max-memory "
		cluster  = "--clickhouse-cluster "
	)
	tests := []struct {
		args []string
		want []string // of the flags above
	}{
		{[]string{"serve"}, []string{matching, timeout, memory, cluster}},
		{[]string{"bench"}, []string{matching, timeout, memory, cluster}},
		{[]string{"bench", "ingest"}, []string{matching, timeout, memory, cluster}},
		{[]string{"bench", "broker"}, nil},
		{[]string{"migrate"}, []string{cluster}},
		{[]string{"resessionize"}, nil},
		{[]string{"replay"}, nil},
		{[]string{"healthcheck"}, nil},
		{[]string{"journey-map", "show"}, nil},
	}
	for _, name := range store.QueryNames() {
		want := []string{timeout, memory, matching}
		tests = append(tests, struct {
			args []string
			want []string
		}{[]string{name}, want})
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			help := commandHelp(t, tt.args...)
			for _, flag := range []string{matching, timeout, memory, cluster} {
				if got, want := strings.Contains(help, "\n  "+flag), slices.Contains(tt.want, flag); got != want {
					t.Errorf("waymark %s -h lists %s: %v, want %v", strings.Join(tt.args, " "), flag, got, want)
				}
			}
			if _, isQuery := commandFor(tt.args[0]); isQuery && (strings.Contains(help, "API answers") || strings.Contains(help, "migrate")) {
				t.Errorf("waymark %s -h speaks of the API or migrate:\n%s", tt.args[0], help)
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

// TestReadmeListsEveryCommand: the README's list of commands has every command of the usage; it
// left out bench and udf-funnel.
func TestReadmeListsEveryCommand(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, commands, _ := strings.Cut(usage(), "Commands:\n")
	n := 0
	for line := range strings.Lines(commands) {
		if !strings.HasPrefix(line, "  ") || strings.HasPrefix(line, "   ") {
			continue // not a command's line (a continuation, the last words)
		}
		name := strings.Fields(line)[0]
		n++
		if !strings.Contains(string(readme), "\nwaymark "+name+" ") {
			t.Errorf("the README's list of commands has no %s", name)
		}
	}
	if n < 15 {
		t.Errorf("read %d commands from the usage:\n%s", n, usage())
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
// flag, from the command line and from the environment alike. So is a memory limit below 1 MiB,
// in which no query runs (--query-max-memory 1 was reported as "memory 0 MiB"), and passes of
// fewer than 10,000 events (0 is the default's).
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
		{[]string{"--query-max-memory", "1"}, "", "--query-max-memory: invalid value \"1\": want a whole number, at least 1048576", 0},
		{[]string{"--query-max-memory", "1048575"}, "", "--query-max-memory", 0},
		{[]string{"--query-pass-events", "0"}, "", "", time.Minute},
		{[]string{"--query-pass-events", "10000"}, "", "", time.Minute},
		{[]string{"--query-pass-events", "9999"}, "", "--query-pass-events: invalid value \"9999\": want 0 or at least 10000", 0},
		{[]string{"--query-pass-events", "-1"}, "", "-query-pass-events", 0},
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
		addQueryLimitFlags(fs, cf, "")
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
		collapse string // the value the query takes; "" when the flags are refused
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
			case f.params["collapse"].String() != tt.collapse || *f.asJSON != tt.json:
				t.Errorf("collapse=%q json=%v, want %q %v", f.params["collapse"].String(), *f.asJSON, tt.collapse, tt.json)
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

// TestQueryParametersAreGivenOnce: a query's parameter given twice on the command line is refused,
// naming the flag, as the API refuses it given twice in the URL: the CLI kept the last, and
// `funnel --steps "Product Viewed" --steps "Order Completed"` printed a one-step funnel of Order
// Completed (tester 23's F6). Other flags keep their last value, as in every getopt program.
func TestQueryParametersAreGivenOnce(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want string // the error; "" when the query takes the flags
	}{
		{[]string{"funnel", "--steps", "Product Viewed", "--steps", "Order Completed"}, nil, "--steps: given 2 times; give it once"},
		{[]string{"funnel", "--steps", "A,B", "--window", "1h", "--window", "2h", "--window=3h"}, nil, "--window: given 3 times; give it once"},
		{[]string{"funnel", "--steps", "A,B", "--count-by", "sessions", "--count-by", "sessions"}, nil, "--count-by: given 2 times; give it once"},
		{[]string{"dropoff", "--steps", "A,B", "--step", "1", "--step", "2"}, nil, "--step: given 2 times; give it once"},
		{[]string{"next", "--anchor", "A", "--anchor", "B"}, nil, "--anchor: given 2 times; give it once"},
		{[]string{"paths", "--anchor", "A", "--collapse", "--collapse=false"}, nil, "--collapse: given 2 times; give it once"},
		{[]string{"sessions", "--from", "2024-05-01", "--from", "2024-05-02"}, nil, "--from: given 2 times; give it once"},
		// Named so, not as a --to not after the last --from.
		{[]string{"stages", "--from", "2024-05-01", "--from", "2024-05-09", "--to", "2024-05-05"}, nil, "--from: given 2 times; give it once"},
		{[]string{"retention", "--to", "2024-05-01", "--to", "2024-05-02"}, nil, "--to: given 2 times; give it once"},
		// Once on the command line and once in the environment is once: the command line wins.
		{[]string{"funnel", "--steps", "A,B"}, map[string]string{"WAYMARK_STEPS": "C"}, ""},
		{[]string{"funnel", "--steps", "A,B", "--window", "1h"}, nil, ""},
		// Flags that are no parameter of the query keep their last value.
		{[]string{"funnel", "--steps", "A,B", "--json", "--json=false", "--query-timeout", "5s", "--query-timeout", "10s"}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " ")+fmt.Sprint(tt.env), func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cmd, _ := commandFor(tt.args[0])
			f := newQueryFlags(cmd)
			err := parseFlags(f.fs, tt.args[1:])
			if err == nil && tt.want == "" {
				if err := store.CheckParams(cmd.name, f.values()); err != nil {
					t.Errorf("the query refuses the flags' parameters: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags: %v", err)
			}
			err, stdout, stderr := runCapturing(t, tt.args...)
			if err == nil || err.Error() != tt.want {
				t.Errorf("error %v, want %q", err, tt.want)
			}
			if stdout != "" || stderr != "" {
				t.Errorf("printed %q and %q besides the error", stdout, stderr)
			}
		})
	}
}

// TestBreakdownLimitFlagNeedsABreakdown: --breakdown-limit without --breakdown is refused naming
// the flag, as the API refuses breakdown_limit (tester 50's F9); the flags pass the query only
// what was given, so the default limit is not read as given.
func TestBreakdownLimitFlagNeedsABreakdown(t *testing.T) {
	const needs = "needs a breakdown: it caps the values a breakdown lists, and none was given"
	tests := []struct {
		args []string
		env  map[string]string
		want string // the error; "" when the query takes the flags
	}{
		{[]string{"funnel", "--steps", "A,B", "--breakdown-limit", "5"}, nil, "--breakdown-limit: " + needs},
		{[]string{"funnel", "--steps", "A,B", "--breakdown-limit=20"}, nil, "--breakdown-limit: " + needs},
		{[]string{"funnel", "--steps", "A,B"}, map[string]string{"WAYMARK_BREAKDOWN_LIMIT": "5"}, "WAYMARK_BREAKDOWN_LIMIT (--breakdown-limit): " + needs},
		{[]string{"funnel", "--steps", "A,B", "--breakdown", "channel", "--breakdown-limit", "5"}, nil, ""},
		{[]string{"funnel", "--steps", "A,B"}, map[string]string{"WAYMARK_BREAKDOWN": "device", "WAYMARK_BREAKDOWN_LIMIT": "5"}, ""},
		{[]string{"funnel", "--steps", "A,B"}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " ")+fmt.Sprint(tt.env), func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			if tt.want == "" {
				cmd, _ := commandFor(tt.args[0])
				f := newQueryFlags(cmd)
				if err := parseFlags(f.fs, tt.args[1:]); err != nil {
					t.Fatalf("parseFlags: %v", err)
				}
				if err := store.CheckParams(cmd.name, f.values()); err != nil {
					t.Errorf("the query refuses the flags' parameters: %v", err)
				}
				return
			}
			err, stdout, stderr := runCapturing(t, tt.args...)
			if err == nil || err.Error() != tt.want {
				t.Errorf("error %v, want %q", err, tt.want)
			}
			if stdout != "" || stderr != "" {
				t.Errorf("printed %q and %q besides the error", stdout, stderr)
			}
		})
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
		// A boolean flag's value follows "="; `--collapse true` worked when --collapse was a text flag.
		{[]string{"next", "--anchor", "A", "--collapse", "true"}, nil, "--collapse is a true/false flag: write --collapse or --collapse=false, not --collapse true"},
		{[]string{"funnel", "--steps", "A", "-json", "false", "--window", "1h"}, nil, "--json is a true/false flag: write --json or --json=false, not --json false"},
		{[]string{"funnel", "--steps", "A", "--json", "x"}, nil, `unexpected argument "x"`},
		// The flag package said a bare "parse error" for every boolean flag but --collapse.
		{[]string{"funnel", "--steps", "A", "--json=maybe"}, nil, `--json: invalid value "maybe": not true or false`},
		{[]string{"serve", "--insecure-open-query-api=2"}, nil, `--insecure-open-query-api: invalid value "2": not true or false`},
		{[]string{"serve"}, map[string]string{"WAYMARK_INSECURE_OPEN_QUERY_API": "yes"}, `WAYMARK_INSECURE_OPEN_QUERY_API (--insecure-open-query-api): invalid value "yes": not true or false`},
		{[]string{"funnel", "--steps", "A", "--query-timeout", "-5s"}, nil, `--query-timeout: invalid value "-5s": must be positive`},
		{[]string{"funnel", "--steps", "A"}, map[string]string{"WAYMARK_QUERY_TIMEOUT": "-5s"}, `WAYMARK_QUERY_TIMEOUT (--query-timeout): invalid value "-5s": must be positive`},
		{[]string{"paths", "--anchor", "A"}, map[string]string{"WAYMARK_DIRECTION": "previous"}, `WAYMARK_DIRECTION (--direction): "previous" is not one of start, end`},
		{[]string{"paths", "--anchor", "A", "--direction", "previous"}, nil, `--direction: "previous" is not one of start, end`},
		{[]string{"resessionize"}, map[string]string{"WAYMARK_FROM": "yesterday"}, "WAYMARK_FROM (--from): "},
		{[]string{"serve"}, map[string]string{"WAYMARK_ROLES": "query,bogus"}, `WAYMARK_ROLES (--roles): invalid value "query,bogus": unknown role "bogus"`},
		{[]string{"serve", "--write-keys-inline", "k"}, nil, `--write-keys-inline: want KEY=SOURCE or KEY SOURCE, got "k"`},
		{[]string{"serve"}, map[string]string{"WAYMARK_WRITE_KEYS_INLINE": "k"}, `WAYMARK_WRITE_KEYS_INLINE (--write-keys-inline): want KEY=SOURCE or KEY SOURCE, got "k"`},
		{[]string{"serve", "--read-keys-inline", "k"}, nil, `--read-keys-inline: want KEY=NAME or KEY NAME, got "k"`},
		{[]string{"serve", "--write-keys-inline", "k=a", "--read-keys-inline", "k=b"}, nil, `--read-keys-inline: the key of "b" is also a write key`},
		// These failed later without the flag's name ("kafka brokers: at least one is required",
		// "unsupported protocol scheme"), or named --from for a --to before it.
		{[]string{"serve", "--kafka-brokers", ",,,"}, nil, `--kafka-brokers: invalid value ",,,": an empty entry`},
		// A directory was dialled for and summarized before it failed, without the flag (tester 43's F3).
		{[]string{"replay", "--format", "segment", "--file", os.TempDir()}, nil, "--file: " + os.TempDir() + " is a directory"},
		{[]string{"serve", "--kafka-brokers", " "}, nil, `--kafka-brokers: invalid value " ": an empty entry`},
		{[]string{"replay", "--format", "taobao", "--file", "x"}, map[string]string{"WAYMARK_KAFKA_BROKERS": "a:9092,,b:9092"}, `WAYMARK_KAFKA_BROKERS (--kafka-brokers): invalid value "a:9092,,b:9092": an empty entry`},
		{[]string{"bench", "ingest", "--kafka-brokers", "a:9092,"}, nil, `--kafka-brokers: invalid value "a:9092,": an empty entry`},
		{[]string{"serve", "--kafka-brokers", "kafka1"}, nil, `--kafka-brokers: invalid value "kafka1": "kafka1" is not HOST:PORT`},
		{[]string{"serve", "--kafka-brokers", "a:9092,b:90x2"}, nil, `--kafka-brokers: invalid value "a:9092,b:90x2": port "90x2" of "b:90x2" is not a number from 1 to 65535`},
		{[]string{"funnel", "--steps", "A", "--clickhouse-addr", "nohost"}, nil, `--clickhouse-addr: invalid value "nohost": "nohost" is not HOST:PORT`},
		{[]string{"sessions", "--clickhouse-addr", "ch:70000"}, nil, `--clickhouse-addr: invalid value "ch:70000": port "70000" of "ch:70000" is not a number from 1 to 65535`},
		{[]string{"sessions", "--clickhouse-addr", "ch:+9000"}, nil, `--clickhouse-addr: invalid value "ch:+9000": port "+9000" of "ch:+9000" is not a number from 1 to 65535`},
		{[]string{"migrate", "--clickhouse-addr", " 127.0.0.1:9000"}, nil, `--clickhouse-addr: invalid value " 127.0.0.1:9000": " 127.0.0.1:9000" has spaces around it`},
		{[]string{"migrate", "--clickhouse-addr", "ch"}, nil, `--clickhouse-addr: invalid value "ch": "ch" is not HOST:PORT`},
		// Listen addresses: a port out of range was refused by net.Listen only after serve had
		// migrated ClickHouse, and healthcheck asked it.
		{[]string{"serve", "--http-addr", "127.0.0.1:99999"}, nil, `--http-addr: invalid value "127.0.0.1:99999": port "99999" of "127.0.0.1:99999" is not a number from 0 to 65535`},
		{[]string{"serve", "--metrics-addr", "127.0.0.1:99999"}, nil, `--metrics-addr: invalid value "127.0.0.1:99999": port "99999" of "127.0.0.1:99999" is not a number from 0 to 65535`},
		{[]string{"serve", "--http-addr", "127.0.0.1:18999", "--metrics-addr", "127.0.0.1:18999"}, nil, `--metrics-addr: 127.0.0.1:18999 is --http-addr's address too`},
		{[]string{"healthcheck", "--http-addr", ":99999"}, nil, `--http-addr: invalid value ":99999": port "99999" of ":99999" is not a number from 0 to 65535`},
		{[]string{"healthcheck", "--http-addr", "0.0.0.0"}, nil, `--http-addr: invalid value "0.0.0.0": "0.0.0.0" is not HOST:PORT`},
		{[]string{"healthcheck", "--http-addr", "127.0.0.1:0"}, nil, `--http-addr: port 0 is any free port to serve, not one to ask`},
		{[]string{"serve", "--dev-broker-addr", "localhost:-1"}, nil, `--dev-broker-addr: invalid value "localhost:-1": port "-1" of "localhost:-1" is not a number from 0 to 65535`},
		{[]string{"replay", "--format", "taobao", "--file", "x", "--collector", "notaurl"}, nil, `--collector: invalid value "notaurl": want http:// or https:// and the host the collector is reached at`},
		// replay adds /v1/batch to --collector's path: a URL it cannot add it to was mangled
		// (http://h:8080?x=1/v1/batch) or posted to …/v1/v1/batch (tester 26 F5).
		{[]string{"replay", "--format", "taobao", "--file", "x", "--collector", "http://127.0.0.1:8080/v1/"}, nil, `--collector: invalid value "http://127.0.0.1:8080/v1/": ends in the tracking API's path (/v1…), which is added to the base URL: want http://127.0.0.1:8080`},
		{[]string{"replay", "--format", "taobao", "--file", "x", "--collector", "http://127.0.0.1:8080/shop/v1/batch"}, nil, `--collector: invalid value "http://127.0.0.1:8080/shop/v1/batch": ends in the tracking API's path (/v1…), which is added to the base URL: want http://127.0.0.1:8080/shop`},
		{[]string{"replay", "--format", "taobao", "--file", "x", "--collector", "http://127.0.0.1:8080?x=1"}, nil, `--collector: invalid value "http://127.0.0.1:8080?x=1": want scheme://host[:port][/path], with no user, query or fragment`},
		{[]string{"replay", "--format", "taobao", "--file", "x", "--collector", "http://127.0.0.1:8080/#top"}, nil, `--collector: invalid value "http://127.0.0.1:8080/#top": want scheme://host[:port][/path], with no user, query or fragment`},
		{[]string{"replay", "--format", "taobao", "--file", "x", "--collector", "http://key:@127.0.0.1:8080"}, nil, `--collector: invalid value "http://key:@127.0.0.1:8080": want scheme://host[:port][/path], with no user, query or fragment`},
		{[]string{"replay", "--format", "taobao", "--file", "x", "--write-key", "k"}, map[string]string{"WAYMARK_COLLECTOR": "127.0.0.1:8080"}, `WAYMARK_COLLECTOR (--collector): invalid value "127.0.0.1:8080": want http:// or https:// and the host the collector is reached at`},
		{[]string{"healthcheck", "--url", "not a url"}, nil, `--url: invalid value "not a url": not an http:// or https:// URL with a host`},
		{[]string{"healthcheck", "--url", "ftp://127.0.0.1/readyz"}, nil, `--url: invalid value "ftp://127.0.0.1/readyz": not an http`},
		{[]string{"funnel", "--steps", "A", "--from", "2017-12-01", "--to", "2017-11-01"}, nil, "--to: 2017-11-01T00:00:00Z is not after --from 2017-12-01T00:00:00Z"},
		{[]string{"sessions", "--from", "2017-12-01"}, map[string]string{"WAYMARK_TO": "2017-12-01"}, "WAYMARK_TO (--to): 2017-12-01T00:00:00Z is not after --from 2017-12-01T00:00:00Z"},
		// A value with a newline is shown escaped, on one line, where this code or another
		// package's error repeats it.
		{[]string{"serve", "--roles", "query\nx"}, nil, `--roles: invalid value "query\nx": unknown role "query\nx"`},
		{[]string{"serve", "--http-addr", "a\nb"}, nil, `--http-addr: invalid value "a\nb": "a\nb" is not HOST:PORT`},
		{[]string{"replay", "--format", "taobao", "--file", "a\nb"}, nil, `--file: stat a\nb: `},
		{[]string{"serve", "--write-keys", "a\nb"}, nil, `--write-keys: open a\nb: `},
		{[]string{"funnel", "--steps", "A", "--json", "a\nb"}, nil, `unexpected argument "a\nb"`},
		{[]string{"serve", "--write-keys-inline", "k=a"}, map[string]string{"WAYMARK_READ_KEYS_INLINE": "k=b"}, `WAYMARK_READ_KEYS_INLINE (--read-keys-inline): the key of "b" is also a write key`},
		{[]string{"serve", "--session-max", "1m"}, nil, "--session-max: must be at least --session-gap 30m0s, got 1m0s"},
		{[]string{"dropoff", "--steps", "A,B", "--csv", "--json"}, nil, "--csv and --json: give one of them"},
		{[]string{"dropoff", "--steps", "A,B", "--csv", "--ids-limit", "3"}, nil, "--csv and --ids-limit: give one of them"},
		{[]string{"dropoff", "--steps", "A,B", "--csv"}, map[string]string{"WAYMARK_IDS_LIMIT": "3"}, "--csv and WAYMARK_IDS_LIMIT (--ids-limit): give one of them"},
		{[]string{"dropoff", "--steps", "A,B", "--csv"}, map[string]string{"WAYMARK_JSON": "true"}, "--csv and WAYMARK_JSON (--json): give one of them"},
		{[]string{"serve"}, map[string]string{"WAYMARK_SESSION_GAP": "48h"}, "--session-max: must be at least WAYMARK_SESSION_GAP (--session-gap) 48h0m0s, got 24h0m0s"},
		// resessionize printed "gap 0s" and sessionized with the default 30m, and reported a
		// negative gap or a max below the gap without the flag; it accepted --to before --from.
		{[]string{"resessionize", "--session-gap", "0"}, nil, `--session-gap: invalid value "0": must be positive`},
		{[]string{"resessionize", "--session-gap", "-1m"}, nil, `--session-gap: invalid value "-1m": must be positive`},
		{[]string{"resessionize", "--session-max", "0"}, nil, `--session-max: invalid value "0": must be positive`},
		{[]string{"resessionize", "--session-max", "1m"}, nil, "--session-max: must be at least --session-gap 30m0s, got 1m0s"},
		{[]string{"resessionize", "--from", "2017-12-01", "--to", "2017-11-01"}, nil, "--to: 2017-11-01T00:00:00Z is not after --from 2017-12-01T00:00:00Z"},
		{[]string{"resessionize", "--to", "2017-12-01"}, map[string]string{"WAYMARK_FROM": "2017-12-01"}, "--to: 2017-12-01T00:00:00Z is not after WAYMARK_FROM (--from) 2017-12-01T00:00:00Z"},
		{[]string{"resessionize"}, map[string]string{"WAYMARK_SESSION_GAP": "0"}, `WAYMARK_SESSION_GAP (--session-gap): invalid value "0": must be positive`},
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

// TestServeRefusesATakenPortFirst: serve binds --http-addr before it starts the dev broker and
// migrates ClickHouse, so a port in use is reported at once, naming the flag; it was reported only
// after the migration (here, ClickHouse's connection error came first and the port went unnamed).
func TestServeRefusesATakenPortFirst(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	err, stdout, _ := runCapturing(t, "serve", "--http-addr", held.Addr().String())
	want := "--http-addr: listen tcp " + held.Addr().String() + ": bind: address already in use"
	if err == nil || err.Error() != want || stdout != "" {
		t.Errorf("error %v, want %q", err, want)
	}
}

// TestFlagErrorsShowValuesShort: a long value is shown once, cut after 64 characters: a 100 KB
// --batch-size was echoed in full twice (in the setter's words and strconv's).
func TestFlagErrorsShowValuesShort(t *testing.T) {
	long := strings.Repeat("9", 100_000) + "x"
	for _, args := range [][]string{
		{"serve", "--batch-size", long},
		{"serve", "--session-gap", long},
		{"serve", "--roles", long},
		{"replay", "--file", "x", "--format", long},
		{"serve", "--write-keys-inline", long},
		{"funnel", "--steps", "A", "--json", long},
	} {
		err, _, _ := runCapturing(t, args...)
		want := `"` + long[:64] + `"…`
		if err == nil || len(err.Error()) > 300 || !strings.Contains(err.Error(), want) {
			t.Errorf("%s %s: error %.400q, want one under 300 bytes showing %s", args[0], args[len(args)-2], err, want)
		}
	}
}

// TestFlagValuesAreCheckedWhenParsed: a value that cannot work is refused when the flags are
// parsed, naming the flag (or its variable), before the command starts anything: --funnel-matching
// bogus was refused only by store.Open, without the flag's name, after bench ingest had generated
// and sent the whole shop and serve had started its dev broker; --batch-size -1, --flush-interval,
// --rate-limit and --clickhouse-database failed in their package's Validate without the flag's
// name; healthcheck --timeout -1s failed with "context deadline exceeded"; and the zeros a Config
// reads as its default (--batch-size 0, --clickhouse-dial-timeout 0) were silently taken for it.
// A blank value given for a flag whose default is not blank silently meant the default: it is
// refused too; where the default is blank, a blank value is that default.
func TestFlagValuesAreCheckedWhenParsed(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want string // the error's start; "" when the flags are accepted
	}{
		{[]string{"bench", "ingest", "--funnel-matching", "bogus"}, nil, `--funnel-matching: invalid value "bogus": not one of auto, engine, process`},
		{[]string{"serve", "--funnel-matching", "bogus"}, nil, `--funnel-matching: invalid value "bogus": not one of auto, engine, process`},
		{[]string{"funnel", "--steps", "A"}, map[string]string{"WAYMARK_FUNNEL_MATCHING": "bogus"}, `WAYMARK_FUNNEL_MATCHING (--funnel-matching): invalid value "bogus": not one of`},
		{[]string{"serve", "--batch-size", "-1"}, nil, `--batch-size: invalid value "-1": want a whole number, at least 1`},
		{[]string{"serve", "--batch-size", "0"}, nil, `--batch-size: invalid value "0": want a whole number, at least 1`},
		{[]string{"bench", "--batch-size", "0"}, nil, `--batch-size: invalid value "0": want a whole number, at least 1`},
		{[]string{"serve", "--flush-interval", "0"}, nil, `--flush-interval: invalid value "0": must be at least 1ms`},
		{[]string{"bench", "ingest", "--flush-interval", "500us"}, nil, `--flush-interval: invalid value "500us": must be at least 1ms`},
		{[]string{"serve", "--rate-limit", "-1"}, nil, `--rate-limit: invalid value "-1": want a number, at least 0`},
		{[]string{"serve", "--rate-limit", "NaN"}, nil, `--rate-limit: invalid value "NaN": want a number, at least 0`},
		{[]string{"serve", "--dlq-timeout", "0"}, nil, `--dlq-timeout: invalid value "0": must be positive`},
		{[]string{"serve", "--stall-after", "0s"}, nil, `--stall-after: invalid value "0s": must be positive`},
		{[]string{"serve", "--drain-delay", "-1s"}, nil, `--drain-delay: invalid value "-1s": must be at least 0s`},
		{[]string{"serve", "--public-url", "collect.shop.example"}, nil, `--public-url: invalid value "collect.shop.example": want http:// or https://`},
		{[]string{"serve"}, map[string]string{"WAYMARK_PUBLIC_URL": "https://evil<x>/"}, `WAYMARK_PUBLIC_URL (--public-url): invalid value "https://evil<x>/": want a host name`},
		{[]string{"serve", "--public-url", "https://c.example/?a=1"}, nil, `--public-url: invalid value "https://c.example/?a=1": want scheme://host[:port][/path]`},
		{[]string{"serve", "--dev-broker-partitions", "0"}, nil, `--dev-broker-partitions: invalid value "0": want a whole number from 1 to 1024`},
		// Text that is no number said strconv's "invalid syntax" or the flag package's "parse
		// error", and what the flag takes only when the number was out of range: every number
		// flag says what it takes either way (wholeNumber, number).
		{[]string{"serve", "--dev-broker-partitions", "x"}, nil, `--dev-broker-partitions: invalid value "x": want a whole number from 1 to 1024`},
		// A + sign is refused blaming the sign, in the query parameters' words (store.PlusSignError):
		// "+5" is at least 1, and "want a whole number, at least 1" contradicted itself; the rate
		// takes plain decimals, not strconv's 1_000, hex floats or exponents (tester 53's F7).
		{[]string{"serve", "--dev-broker-partitions", "+4"}, nil, `--dev-broker-partitions: invalid value "+4": "+4" has a + sign, which a whole number is written without: give one from 1 to 1024`}, // tester 49's F6
		{[]string{"serve", "--batch-size", "+5"}, nil, `--batch-size: invalid value "+5": "+5" has a + sign, which a whole number is written without: give one, at least 1`},
		{[]string{"replay", "--format", "taobao", "--file", "x", "--repeat", "+2"}, nil, `--repeat: invalid value "+2": "+2" has a + sign, which a whole number is written without: give one, at least 1`},
		{[]string{"funnel", "--steps", "A", "--query-max-memory", "+1048576"}, nil, `--query-max-memory: invalid value "+1048576": "+1048576" has a + sign, which a whole number is written without: give one, at least 1048576`},
		{[]string{"serve", "--batch-size", "++5"}, nil, `--batch-size: invalid value "++5": want a whole number, at least 1`},
		{[]string{"serve", "--rate-limit", "+5"}, nil, `--rate-limit: invalid value "+5": "+5" has a + sign, which a number is written without: give one, at least 0`},
		{[]string{"serve", "--rate-limit", "+2.5"}, nil, `--rate-limit: invalid value "+2.5": "+2.5" has a + sign, which a number is written without: give one, at least 0`},
		{[]string{"serve", "--rate-limit", "1_000"}, nil, `--rate-limit: invalid value "1_000": want a number, at least 0, in decimal digits (1000, 2.5)`},
		{[]string{"serve", "--rate-limit", "0x1p4"}, nil, `--rate-limit: invalid value "0x1p4": want a number, at least 0, in decimal digits (1000, 2.5)`},
		{[]string{"serve", "--rate-limit", "1e3"}, nil, `--rate-limit: invalid value "1e3": want a number, at least 0, in decimal digits (1000, 2.5)`},
		{[]string{"serve", "--rate-limit", "."}, nil, `--rate-limit: invalid value ".": want a number, at least 0, in decimal digits (1000, 2.5)`},
		{[]string{"bench", "ingest", "--restart-share", "+0.5"}, nil, `--restart-share: invalid value "+0.5": "+0.5" has a + sign, which a number is written without: give one from 0 to below 1`},
		{[]string{"serve", "--dev-broker-partitions", "1025"}, nil, `--dev-broker-partitions: invalid value "1025": want a whole number from 1 to 1024`},
		{[]string{"serve", "--batch-size", "1.5"}, nil, `--batch-size: invalid value "1.5": want a whole number, at least 1`},
		{[]string{"serve", "--max-customers", "99999999999999999999"}, nil, `--max-customers: invalid value "99999999999999999999": want a whole number, at least 1`},
		{[]string{"serve", "--query-concurrency", "four"}, nil, `--query-concurrency: invalid value "four": want a whole number, at least 1`},
		{[]string{"serve", "--rate-limit", "x"}, nil, `--rate-limit: invalid value "x": want a number, at least 0`},
		{[]string{"serve", "--rate-limit", "Inf"}, nil, `--rate-limit: invalid value "Inf": want a number, at least 0`},
		{[]string{"funnel", "--steps", "A", "--query-max-memory", "4GiB"}, nil, `--query-max-memory: invalid value "4GiB": want a whole number, at least 1048576`},
		{[]string{"funnel", "--steps", "A", "--query-pass-events", "x"}, nil, `--query-pass-events: invalid value "x": want a whole number, at least 0`},
		{[]string{"replay", "--format", "taobao", "--file", "x", "--repeat", "x"}, nil, `--repeat: invalid value "x": want a whole number, at least 1`},
		{[]string{"bench", "--events", "999"}, nil, `--events: invalid value "999": want a whole number, at least 1000`},
		{[]string{"bench", "--clients", "x"}, nil, `--clients: invalid value "x": want a whole number, at least 1`},
		{[]string{"bench", "ingest", "--persons", "x"}, nil, `--persons: invalid value "x": want a whole number, at least 1`},
		{[]string{"bench", "ingest", "--persons", "0"}, nil, `--persons: invalid value "0": want a whole number, at least 1`},
		{[]string{"bench", "ingest", "--events", "x"}, nil, `--events: invalid value "x": want a whole number, at least 1`},
		{[]string{"bench", "ingest", "--seed", "-1"}, nil, `--seed: invalid value "-1": want a whole number, at least 0`},
		{[]string{"bench", "ingest", "--partitions", "x"}, nil, `--partitions: invalid value "x": want a whole number from 1 to 1024`},
		{[]string{"bench", "ingest", "--restart-share", "1"}, nil, `--restart-share: invalid value "1": want a number from 0 to below 1`},
		{[]string{"bench", "ingest", "--restart-share", "x"}, nil, `--restart-share: invalid value "x": want a number from 0 to below 1`},
		{[]string{"bench", "ingest", "--restart-rate", "x"}, nil, `--restart-rate: invalid value "x": want a whole number, at least 1`},
		{[]string{"bench", "broker", "--partitions", "x"}, nil, `--partitions: invalid value "x": want a whole number from 1 to 1024`},
		{[]string{"bench", "ingest", "--persons", "5", "--events", "4"}, nil, `--events: must be at least --persons (5), got 4`},
		{[]string{"serve", "--query-concurrency", "0"}, nil, `--query-concurrency: invalid value "0": want a whole number, at least 1`},
		{[]string{"funnel", "--steps", "A", "--clickhouse-database", "a`b"}, nil, "--clickhouse-database: invalid value \"a`b\": not a plain identifier"},
		{[]string{"migrate", "--clickhouse-cluster", "a-b"}, nil, `--clickhouse-cluster: invalid value "a-b": not a plain identifier`},
		{[]string{"funnel", "--steps", "A", "--clickhouse-dial-timeout", "0"}, nil, `--clickhouse-dial-timeout: invalid value "0": must be positive`},
		{[]string{"healthcheck", "--timeout", "-1s"}, nil, `--timeout: invalid value "-1s": must be positive`},
		{[]string{"healthcheck", "--timeout", "0"}, nil, `--timeout: invalid value "0": must be positive`},
		// 0 turned net/http's read timeouts off; replay --wait -1s was taken for 0; empty or
		// repeated roles were dropped from the list.
		{[]string{"serve", "--http-read-timeout", "0"}, nil, `--http-read-timeout: invalid value "0": must be positive`},
		{[]string{"serve", "--http-read-header-timeout", "-5s"}, nil, `--http-read-header-timeout: invalid value "-5s": must be positive`},
		{[]string{"serve", "--http-read-timeout", "x"}, nil, `--http-read-timeout: invalid value "x": not a duration`},
		{[]string{"replay", "--format", "taobao", "--file", "x", "--wait", "-1s"}, nil, `--wait: invalid value "-1s": must be at least 0s`},
		{[]string{"replay", "--format", "taobao", "--file", "x", "--repeat", "0"}, nil, `--repeat: invalid value "0": want a whole number, at least 1`},
		{[]string{"serve", "--roles", "collector,,query"}, nil, `--roles: invalid value "collector,,query": an empty entry`},
		{[]string{"serve", "--roles", "query,query"}, nil, `--roles: invalid value "query,query": query given twice`},
		{[]string{"serve", "--roles", "query,"}, nil, `--roles: invalid value "query,": an empty entry`},
		{[]string{"serve", "--roles", "query, bogus"}, nil, `--roles: invalid value "query, bogus": unknown role "bogus"`},
		// Kafka's topic names (1-249 of a-z A-Z 0-9 . _ -, not . or ..): a broker refused the
		// others only once serve had started, and replay's only once the file was read.
		{[]string{"serve"}, map[string]string{"WAYMARK_TOPIC": "bad topic!"}, `WAYMARK_TOPIC (--topic): invalid value "bad topic!": ' ' is not allowed in a Kafka topic name`},
		{[]string{"serve", "--topic", "events/2024"}, nil, `--topic: invalid value "events/2024": '/' is not allowed in a Kafka topic name`},
		{[]string{"serve", "--topic", "événements"}, nil, `--topic: invalid value "événements": 'é' is not allowed in a Kafka topic name`},
		{[]string{"serve", "--dlq-topic", "."}, nil, `--dlq-topic: invalid value ".": "." is not a Kafka topic name`},
		{[]string{"serve"}, map[string]string{"WAYMARK_DLQ_TOPIC": ".."}, `WAYMARK_DLQ_TOPIC (--dlq-topic): invalid value "..": ".." is not a Kafka topic name`},
		{[]string{"serve", "--dlq-topic", "dlq#1"}, nil, `--dlq-topic: invalid value "dlq#1": '#' is not allowed in a Kafka topic name`},
		{[]string{"serve", "--topic", strings.Repeat("t", 250)}, nil, `--topic: invalid value "` + strings.Repeat("t", 64) + `"…: 250 characters; a Kafka topic name has at most 249`},
		{[]string{"serve", "--topic", ""}, nil, "--topic: empty value; leave it out for the default waymark.events"},
		{[]string{"replay", "--format", "taobao", "--file", "x", "--topic", "a:b"}, nil, `--topic: invalid value "a:b": ':' is not allowed in a Kafka topic name`},
		{[]string{"serve", "--dlq-topic", "waymark.events"}, nil, `--dlq-topic: must differ from --topic "waymark.events"`},
		{[]string{"serve", "--topic", "shop.events"}, map[string]string{"WAYMARK_DLQ_TOPIC": "shop.events"}, `WAYMARK_DLQ_TOPIC (--dlq-topic): must differ from --topic "shop.events"`},
		// Kafka's Topic.hasCollision: '.' and '_' are one in topic names.
		{[]string{"serve"}, map[string]string{"WAYMARK_DLQ_TOPIC": "waymark_events"}, `WAYMARK_DLQ_TOPIC (--dlq-topic): "waymark_events" collides with --topic "waymark.events": Kafka reads '.' and '_' in topic names as one`},
		{[]string{"serve", "--topic", "shop_events.v1", "--dlq-topic", "shop.events_v1"}, nil, `--dlq-topic: "shop.events_v1" collides with --topic "shop_events.v1"`},
		{[]string{"serve", "--topic", "a.b", "--dlq-topic", "a-b"}, nil, ""}, // '-' is not '.'
		{[]string{"serve", "--topic", "Shop_events-v2.1", "--dlq-topic", strings.Repeat("d", 249)}, nil, ""},
		{[]string{"funnel", "--steps", "A", "--window", ""}, nil, "--window: empty value; leave it out for the default 24h"},
		{[]string{"funnel", "--steps", "A", "--window", " "}, nil, "--window: empty value; leave it out for the default 24h"},
		{[]string{"funnel", "--steps", "A", "--mode", " "}, nil, "--mode: empty value; leave it out for the default ordered"},
		{[]string{"next", "--anchor", "A", "--limit", " "}, nil, "--limit: empty value; leave it out for the default 10"},
		{[]string{"funnel", "--steps", "A", "--funnel-matching", ""}, nil, "--funnel-matching: empty value; leave it out for the default auto"},
		{[]string{"funnel", "--steps", "A", "--clickhouse-addr", ""}, nil, "--clickhouse-addr: empty value; leave it out for the default 127.0.0.1:9000"},
		{[]string{"funnel", "--steps", "A", "--json="}, nil, "--json: empty value; leave it out for the default false"},
		{[]string{"funnel", "--steps", "A"}, map[string]string{"WAYMARK_WINDOW": " "}, "WAYMARK_WINDOW (--window): empty value; leave it out for the default 24h"},
		// Accepted: a blank value where the default is blank, 0 where it means something.
		{[]string{"funnel", "--steps", "A", "--from", "", "--breakdown", " "}, nil, ""},
		{[]string{"serve", "--rate-limit", "0", "--kafka-brokers", ""}, nil, ""},
		{[]string{"serve", "--rate-limit", "2.5", "--kafka-brokers", ""}, nil, ""},
		{[]string{"serve", "--rate-limit", "1000.", "--kafka-brokers", ""}, nil, ""},
		{[]string{"bench", "ingest", "--restart-share", ".05", "--persons", "x"}, nil, `--persons: invalid value "x"`}, // past --restart-share
		{[]string{"serve", "--roles", " query , ingest", "--http-read-timeout", "1s"}, nil, ""},
		{[]string{"replay", "--format", "taobao", "--file", "x", "--wait", "0"}, nil, `--file: stat x`}, // past --wait
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " ")+fmt.Sprint(tt.env), func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			err, stdout, _ := runCapturing(t, tt.args...)
			switch {
			case tt.want == "" && err != nil && strings.HasPrefix(err.Error(), "--"):
				t.Errorf("refused: %v", err) // past the flags, nothing answers on the defaults runCapturing sets
			case tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want)):
				t.Errorf("error %v, want one starting %q", err, tt.want)
			case tt.want != "" && stdout != "":
				t.Errorf("printed %q", stdout)
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
		// A subcommand's help: these said "help takes one command".
		{[]string{"help", "bench", "ingest"}, "Usage: waymark bench ingest "},
		{[]string{"help", "journey-map", "show"}, "Usage: waymark journey-map show "},
		{[]string{"help", "journey-map", "check"}, "Usage: waymark journey-map check FILE\n"},
		{[]string{"help", "dropoff"}, "Usage: waymark dropoff "},
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
			// A boolean flag is off unless given: its help said (default "false").
			if strings.Contains(stdout, `(default "false")`) {
				t.Errorf("the help shows a false boolean default:\n%s", stdout)
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

// TestUnansweredAddressesNameTheFlag: a Kafka broker, dev broker, collector or server that does
// not answer is an error naming the flag holding its address, as TestClickHouseConnectionErrorsNameTheFlag's
// ClickHouse is (replay said "produce to waymark.events: dial tcp …", and with --collector blamed
// the dev broker; healthcheck named no flag).
func TestUnansweredAddressesNameTheFlag(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	closed := freeAddr(t) // nothing listens there
	file := filepath.Join(t.TempDir(), "one.jsonl")
	if err := os.WriteFile(file, []byte(`{"type":"track","userId":"u","event":"E","timestamp":"2026-01-01T00:00:00Z"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	replay := []string{"replay", "--format", "segment", "--file", file}
	tests := []struct {
		name string
		args []string
		want string // the error's start
	}{
		{"replay to brokers", slices.Concat(replay, []string{"--kafka-brokers", closed}), "--kafka-brokers: no Kafka broker answers at " + closed + ": "},
		{"replay to the dev broker", slices.Concat(replay, []string{"--dev-broker-addr", closed}), "--dev-broker-addr: no dev broker of a running `waymark serve` (--kafka-brokers is empty) answers at " + closed + ": "},
		{"replay to a collector", slices.Concat(replay, []string{"--collector", "http://" + closed, "--write-key", "k"}), "--collector: no collector answers at http://" + closed + ": "},
		{"bench ingest to brokers", []string{"bench", "ingest", "--persons", "2", "--events", "4", "--kafka-brokers", closed}, "--kafka-brokers: no Kafka broker answers at " + closed + ": "},
		{"healthcheck of --http-addr", []string{"healthcheck", "--http-addr", closed}, "--http-addr: no Waymark answers at " + closed + ": "},
		{"healthcheck of --url", []string{"healthcheck", "--url", "http://" + closed + "/readyz"}, "--url: no server answers at http://" + closed + "/readyz: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a hang guard
			defer cancel()
			err := run(ctx, tt.args, io.Discard, slog.New(slog.DiscardHandler))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("%v: error %v, want it to start %q", tt.args, err, tt.want)
			}
		})
	}
}

// TestClickHouseConnectionErrorsNameTheFlag: a ClickHouse that does not answer, or refuses the
// user, at startup is an error naming the flag to change (or its variable), as a bad value is,
// in every command that connects (tester 24: "ping clickhouse 127.0.0.1:1: dial tcp …" named
// none).
func TestClickHouseConnectionErrorsNameTheFlag(t *testing.T) {
	closed := freeAddr(t) // nothing listens there
	hanging := storetest.StartProxy(t, chServer.Addr)
	hanging.Stall() // takes connections, answers nothing
	tests := []struct {
		args []string
		env  map[string]string
		want string // the error's start
	}{
		{[]string{"funnel", "--steps", "A", "--clickhouse-addr", closed}, nil, "--clickhouse-addr: no ClickHouse answers at " + closed + ": "},
		{[]string{"stages"}, map[string]string{"WAYMARK_CLICKHOUSE_ADDR": closed}, "WAYMARK_CLICKHOUSE_ADDR (--clickhouse-addr): no ClickHouse answers at " + closed + ": "},
		{[]string{"migrate", "--clickhouse-addr", closed}, nil, "--clickhouse-addr: no ClickHouse answers at " + closed + ": "},
		{[]string{"serve", "--roles", "query", "--http-addr", "127.0.0.1:0", "--read-keys-inline", "k=shop", "--clickhouse-addr", closed}, nil, "--clickhouse-addr: no ClickHouse answers at " + closed + ": "},
		{[]string{"funnel", "--steps", "A", "--clickhouse-addr", hanging.Addr, "--clickhouse-dial-timeout", "1s"}, nil, "--clickhouse-addr: no ClickHouse answers at " + hanging.Addr + " within --clickhouse-dial-timeout (1s): "},
		{[]string{"funnel", "--steps", "A", "--clickhouse-addr", chServer.Addr, "--clickhouse-user", "nobody"}, nil, `--clickhouse-user: ClickHouse at ` + chServer.Addr + ` refused user "nobody" with the password given (--clickhouse-password): `},
		{[]string{"migrate", "--clickhouse-addr", chServer.Addr}, map[string]string{"WAYMARK_CLICKHOUSE_PASSWORD": "wrong"}, `--clickhouse-user: ClickHouse at ` + chServer.Addr + ` refused user "default" with the password given (WAYMARK_CLICKHOUSE_PASSWORD (--clickhouse-password)): `},
	}
	for _, tt := range tests {
		for k, v := range tt.env {
			t.Setenv(k, v)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)                  // a hang guard
		args := append([]string{tt.args[0], "--clickhouse-dial-timeout", "10s"}, tt.args[1:]...) // tt.args may set another
		err := run(ctx, args, io.Discard, slog.New(slog.DiscardHandler))
		cancel()
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%v %v: error %v, want it to start %q", tt.args, tt.env, err, tt.want)
		}
		for k := range tt.env {
			t.Setenv(k, "")
		}
	}
}

// TestTimeFlagsNameWhatTheAPINames: a bad --from or --to names the flag of the parameter the API
// names for the same values (flagName of the store's ParamError), in every command with a range:
// from = to named from in the API and --to in the CLI (a tester's finding). A time whose + was
// read as a space is given back with its + on the command line, where the API's hint to write
// %2B would be wrong (a + there is taken as it is).
func TestTimeFlagsNameWhatTheAPINames(t *testing.T) {
	const spaced, plus = "2017-11-25T12:00:00 02:00", `"2017-11-25T12:00:00+02:00"`
	tests := []struct {
		from, to string
		param    string // what the API names
		say      string // what the CLI's error says besides
	}{
		{"2017-11-25", "2017-11-25", "to", "is not after --from 2017-11-25T00:00:00Z"},
		{"2017-11-25T00:00:00.0000001Z", "2017-11-25", "to", "is not after --from 2017-11-25T00:00:00Z"},
		{"2017-11-26", "2017-11-25", "to", "is not after --from 2017-11-26T00:00:00Z"},
		{"yesterday", "2017-11-25", "from", "is neither an ISO 8601 date-time (YYYY-MM-DDThh:mm:ss with an optional fraction and zone) nor a date (YYYY-MM-DD)"},
		{"2017-02-30", "2017-11-25", "from", "nor a date (YYYY-MM-DD): day out of range"}, // tester 33's F5
		{"2017-11-25", "2217-11-25", "to", "is outside 1970-01-01"},
		{spaced, "", "from", "was the space a + ? Give it with its +, which the command line takes as it is: " + plus},
		{"", spaced, "to", plus},
	}
	required := url.Values{"steps": {"A,B"}, "anchor": {"A"}}
	for _, name := range store.QueryNames() {
		v := url.Values{}
		for _, p := range store.QueryParams(name) {
			if r, ok := required[p.Name]; ok {
				v[p.Name] = r
			}
		}
		if !slices.ContainsFunc(store.QueryParams(name), func(p store.Param) bool { return p.Name == "from" }) {
			continue
		}
		for _, tt := range tests {
			q := maps.Clone(v)
			args := []string{name}
			for k, vs := range q {
				args = append(args, "--"+flagName(k), vs[0])
			}
			for k, val := range map[string]string{"from": tt.from, "to": tt.to} {
				if val != "" {
					q.Set(k, val)
					args = append(args, "--"+k, val)
				}
			}
			var pe *store.ParamError
			if err := store.CheckParams(name, q); !errors.As(err, &pe) || pe.Param != tt.param {
				t.Errorf("API %s?%s: %v, want an error naming %s", name, q.Encode(), err, tt.param)
				continue
			}
			err, _, _ := runCapturing(t, args...)
			if err == nil || !strings.HasPrefix(err.Error(), "--"+tt.param+": ") || !strings.Contains(err.Error(), tt.say) || strings.Contains(err.Error(), "%2B") {
				t.Errorf("waymark %q: %v, want an error naming --%s saying %q, with no %%2B", args, err, tt.param, tt.say)
			}
		}
	}
	// resessionize reads its range as the queries do.
	err, _, _ := runCapturing(t, "resessionize", "--from", "2017-11-25", "--to", "2017-11-25")
	if err == nil || !strings.HasPrefix(err.Error(), "--to: 2017-11-25T00:00:00Z is not after --from") {
		t.Errorf("resessionize, from = to: %v, want it to name --to", err)
	}
}
