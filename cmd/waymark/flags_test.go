package main

import (
	"context"
	"errors"
	"flag"
	"io"
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
		err := checkSessionizerFlags(&c)
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

// commandHelp runs `waymark ARGS -h` in this process and returns the help it prints.
func commandHelp(t *testing.T, args ...string) string {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stderr := os.Stderr
	os.Stderr = f // the flag sets print their help there
	err = run(context.Background(), append(args, "-h"), io.Discard, slog.New(slog.DiscardHandler))
	os.Stderr = stderr
	help, rerr := os.ReadFile(f.Name())
	if rerr != nil {
		t.Fatal(rerr)
	}
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("waymark %s -h: %v, want the help\n%s", strings.Join(args, " "), err, help)
	}
	return string(help)
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
