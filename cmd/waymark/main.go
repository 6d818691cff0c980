// Command waymark turns a shop's clickstream into customer journeys: it consumes Segment-format
// events from Kafka, sessionizes them, stores them in ClickHouse and answers funnel questions.
//
// Subcommands: serve, replay, funnel, dropoff, paths, next, retention, stages, sessions,
// resessionize, migrate, journey-map, healthcheck, version, bench, udf-funnel. Run `waymark <command> -h` for flags;
// every flag can also be set by an environment variable WAYMARK_<FLAG>.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/waymark-dev/waymark/store"
)

// usageHead and usageTail are the usage's lines before and after the journey queries, which
// usage lists from the store's registry (journeyCommands).
const (
	usageHead = `Usage: waymark <command> [flags]

Commands:
  serve        consume events from Kafka, sessionize them and store them in ClickHouse
  replay       send a dataset (taobao, rees46, otto, segment) to Kafka as Segment track calls
`
	usageTail = `  resessionize recompute stored sessions for a time range (e.g. after changing --session-gap)
  migrate      create or upgrade the ClickHouse schema
  journey-map  check a journey map file, or show the effective one
  healthcheck  exit 0 when a running Waymark is ready (for container healthchecks)
  version      print Waymark's version: module version, commit and build time
  bench        run the whole pipeline on loopback against a raw kcat | clickhouse-client baseline;
               bench ingest: import a generated month of a large shop (persons, evictions, memory)
  udf-funnel   serve ClickHouse's waymark_funnel executable UDF on stdin/stdout (docs/udf.md)

Run 'waymark <command> -h' for the flags of a command.
`
)

// usage is the command's help: every command, the journey queries among them.
func usage() string {
	var b strings.Builder
	b.WriteString(usageHead)
	for _, c := range journeyCommands() {
		fmt.Fprintf(&b, "  %-12s %s\n", c.name, c.summary)
	}
	b.WriteString(usageTail)
	return b.String()
}

func main() {
	var ex exiter
	ctx := stopOnSignals(&ex, stopGrace(os.Args[1:]))
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, os.Args[1:], os.Stdout, log); err != nil {
		if ctx.Err() != nil {
			ex.exit(1, fmt.Sprintf("waymark: stopped (%v): %v", context.Cause(ctx), err))
		}
		ex.exit(1, "waymark: "+err.Error())
	}
}

// exiter ends the process once, with one last line on stderr, whichever of main and a signal's
// handling gets there first. A command may leave a note for an exit at once on a second signal
// (setNote), saying what it had done: replay's events sent (tester 55's F3).
type exiter struct {
	mu   sync.Mutex
	note atomic.Pointer[func() string]
}

// setNote has note's text (a sentence, read when the exit comes) follow the line of an exit at
// once on a second signal.
func (e *exiter) setNote(note func() string) { e.note.Store(&note) }

// exiterKey is the context key of the process's exiter (exiterOf).
type exiterKey struct{}

// exiterOf is the exiter stopOnSignals put in ctx, or nil.
func exiterOf(ctx context.Context) *exiter {
	ex, _ := ctx.Value(exiterKey{}).(*exiter)
	return ex
}

// exit prints msg (a line, when not empty) to stderr and exits with code; it never returns, and
// a second caller waits for the first's exit.
func (e *exiter) exit(code int, msg string) {
	e.mu.Lock() // never unlocked: the process ends
	if msg != "" {
		fmt.Fprintln(os.Stderr, msg)
	}
	os.Exit(code)
}

// stopGrace is how long a command (args, as given) may take to stop once a first SIGINT or
// SIGTERM came: 0, no limit, for the commands that shut down in order (serve drains and stores
// what it acknowledged; replay, resessionize, migrate and bench finish or undo a step), a second
// signal ending them at once; queryGrace for the others, which have nothing to finish. A query
// stops at once, but a command blocked writing its answer to a pipe nobody reads (`waymark
// dropoff --csv | slow-consumer`) heard the first signal only when the pipe took its output
// (tester 28's F3).
func stopGrace(args []string) time.Duration {
	if len(args) > 0 {
		switch args[0] {
		case "serve", "replay", "resessionize", "migrate", "bench":
			return 0
		}
	}
	return queryGrace
}

// queryGrace is stopGrace for the commands that have nothing to finish.
const queryGrace = 2 * time.Second

// stopOnSignals returns a context cancelled by the first SIGINT or SIGTERM, its cause naming
// the signal: serve shuts down in order, a query stops at once. When the command has not ended
// grace after it (0: no limit), the process ends, status 1, with "waymark: stopped (…)". A second
// signal ends the process at once, whatever it is waiting for, with the status a shell gives a
// process its signal killed (128 + the signal's number), after a line on stderr (and the
// command's note, exiter.setNote). The context holds ex (exiterOf).
//
// The second signal is caught rather than left to its default action: a shell starts a
// background command with SIGINT ignored, and a Go program that stops catching a signal it
// inherited ignored goes back to ignoring it (tester 27's F3: a second SIGINT did nothing).
func stopOnSignals(ex *exiter, grace time.Duration) context.Context {
	ctx, cancel := context.WithCancelCause(context.Background())
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		sig := <-signals
		cause := fmt.Errorf("%v signal received", sig)
		cancel(cause)
		if grace > 0 {
			time.AfterFunc(grace, func() { ex.exit(1, fmt.Sprintf("waymark: stopped (%v)", cause)) })
		}
		sig = <-signals
		msg := fmt.Sprintf("waymark: stopped at once (%v signal received again)", sig)
		if note := ex.note.Load(); note != nil {
			msg += ": " + (*note)()
		}
		ex.exit(128+int(sig.(syscall.Signal)), msg)
	}()
	return context.WithValue(ctx, exiterKey{}, ex)
}

// run runs the command args name. Help asked for (-h, --help, `help COMMAND`) is printed to
// stdout and is no error. Before a command runs, each WAYMARK_ variable no command reads is
// warned about (warnStrayVariables).
func run(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	if len(args) > 0 && args[0] != "help" && args[0] != "udf-funnel" && !slices.ContainsFunc(args, isHelpFlag) {
		warnStrayVariables(ctx, os.Environ(), log)
	}
	err := dispatch(ctx, args, stdout, log)
	var help *helpRequest
	if errors.As(err, &help) {
		_, err = io.WriteString(stdout, help.text)
	}
	return err
}

// dispatch runs a subcommand.
func dispatch(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage())
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, log)
	case "replay":
		return runReplay(ctx, rest, stdout)
	case "resessionize":
		return runResessionize(ctx, rest, stdout, log)
	case "migrate":
		return runMigrate(ctx, rest, stdout, log)
	case "journey-map":
		return runJourneyMap(rest, stdout)
	case "healthcheck":
		return runHealthcheck(ctx, rest)
	case "bench":
		return runBench(ctx, rest, stdout, log)
	case "version", "--version":
		return runVersion(rest, stdout)
	case "udf-funnel": // run by ClickHouse as the waymark_funnel function (docs/udf.md)
		return runUDFFunnel(rest, stdout)
	case "help":
		if len(rest) == 0 {
			return &helpRequest{text: usage()}
		}
		// `waymark help funnel` is `waymark funnel -h`, `help bench ingest` `bench ingest -h`.
		return dispatch(ctx, append(rest[:len(rest):len(rest)], "-h"), stdout, log)
	}
	if isHelpFlag(cmd) {
		return &helpRequest{text: usage()}
	}
	if q, ok := commandFor(cmd); ok { // a journey query of the store's registry
		return runQuery(ctx, q, rest, stdout, log)
	}
	fmt.Fprint(os.Stderr, usage())
	return fmt.Errorf("unknown command %q", cmd)
}

// runUDFFunnel serves ClickHouse's waymark_funnel executable UDF on stdin and stdout.
func runUDFFunnel(args []string, stdout io.Writer) error {
	fs := newFlagSet("udf-funnel", "udf-funnel\n\n"+
		"Serves ClickHouse's waymark_funnel executable UDF: ClickHouse runs it and speaks to it on standard\n"+
		"input and output (docs/udf.md). It takes no flags or arguments.")
	if err := parseFlags(fs, args); err != nil {
		var help *helpRequest
		if errors.As(err, &help) {
			return err
		}
		return errors.New("udf-funnel takes no arguments: ClickHouse runs it and speaks to it on stdin and stdout (docs/udf.md)")
	}
	// A soft limit: the collector works harder rather than let one process of the pool grow to
	// twice what it holds.
	debug.SetMemoryLimit(512 << 20)
	return store.ServeFunnelUDF(os.Stdin, stdout)
}

// linkedCommit is the commit a build without VCS information names at link time:
// -ldflags "-X main.linkedCommit=SHA". The container image's build has no .git, so
// deploy/Dockerfile passes its build argument WAYMARK_COMMIT ("unknown" when not given). The
// commit Go records from a git checkout (vcs.revision) comes first.
var linkedCommit string

// runVersion prints one line: "waymark <module version> <commit>[+modified] <commit time> <Go
// version>", read from the build information Go writes into the binary (debug.ReadBuildInfo),
// the commit else from linkedCommit; a part the build did not record (a go build outside a git
// checkout has no commit) is left out.
func runVersion(args []string, stdout io.Writer) error {
	fs := newFlagSet("version", "version")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	_, err := fmt.Fprintln(stdout, versionLine())
	return err
}

// versionLine is runVersion's line.
func versionLine() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "waymark (no build information)"
	}
	parts := []string{"waymark", info.Main.Version}
	var revision, modified, at string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "+modified"
			}
		case "vcs.time":
			at = s.Value
		}
	}
	if revision == "" {
		revision = linkedCommit
	}
	if revision != "" {
		parts = append(parts, revision+modified)
	}
	if at != "" {
		parts = append(parts, at)
	}
	return strings.Join(append(parts, info.GoVersion), " ")
}
