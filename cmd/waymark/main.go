// Command waymark turns a shop's clickstream into customer journeys: it consumes Segment-format
// events from Kafka, sessionizes them, stores them in ClickHouse and answers funnel questions.
//
// Subcommands: serve, replay, funnel, dropoff, paths, next, retention, stages, sessions,
// resessionize, migrate, journey-map, healthcheck, bench, udf-funnel. Run `waymark <command> -h` for flags;
// every flag can also be set by an environment variable WAYMARK_<FLAG>.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/waymark-dev/waymark/store"
)

const usage = `Usage: waymark <command> [flags]

Commands:
  serve        consume events from Kafka, sessionize them and store them in ClickHouse
  replay       send a dataset (taobao, rees46, otto, segment) to Kafka as Segment track calls
  funnel       count customers through a sequence of steps (modes, exclusions, breakdowns)
  dropoff      where the customers who did not reach the next step left from, and what they did instead
  paths        the top touchpoint sequences starting or ending at an event or stage
  next         where customers go right after (or came from right before) an event or stage
  retention    cohorts by first order: who comes back, time to second order, repeat rate by channel
  stages       per journey stage: people entering, dwell time, exit rate, touchpoints, survey scores
  sessions     summarize sessions: counts, persons, durations, end reasons, entry channels
  resessionize recompute stored sessions for a time range (e.g. after changing --session-gap)
  migrate      create or upgrade the ClickHouse schema
  journey-map  check a journey map file, or show the effective one
  healthcheck  exit 0 when a running Waymark is ready (for container healthchecks)
  bench        run the whole pipeline on loopback against a raw kcat | clickhouse-client baseline;
               bench ingest: import a generated month of a large shop (persons, evictions, memory)
  udf-funnel   serve ClickHouse's waymark_funnel executable UDF on stdin/stdout (docs/udf.md)

Run 'waymark <command> -h' for the flags of a command.
`

func main() {
	// SIGINT or SIGTERM cancels ctx: serve shuts down in order, a query stops at once. A second
	// signal kills the process the default way.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop)
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, os.Args[1:], os.Stdout, log); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		if ctx.Err() != nil {
			fmt.Fprintf(os.Stderr, "waymark: stopped (%v): %v\n", context.Cause(ctx), err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "waymark:", err)
		os.Exit(1)
	}
}

// run dispatches to a subcommand.
func run(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, log)
	case "replay":
		return runReplay(ctx, rest, stdout)
	case "funnel", "dropoff", "paths", "next", "retention", "stages", "sessions":
		return runQuery(ctx, cmd, rest, stdout, log)
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
	case "udf-funnel": // run by ClickHouse as the waymark_funnel function (docs/udf.md)
		if len(rest) > 0 {
			return errors.New("udf-funnel takes no arguments: ClickHouse runs it and speaks to it on stdin and stdout (docs/udf.md)")
		}
		// A soft limit: the collector works harder rather than let one process of the pool grow to
		// twice what it holds.
		debug.SetMemoryLimit(512 << 20)
		return store.ServeFunnelUDF(os.Stdin, stdout)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}
