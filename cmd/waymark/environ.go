package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strings"

	"github.com/agnivade/levenshtein"
)

// flagCommands returns the command lines whose flags are a flagSet, the journey queries aside
// (journeyCommands): flagVariables asks each for its help to learn every flag's variable.
// TestFlagCommandsCoverTheUsage keeps it in step with the usage.
func flagCommands() [][]string {
	return [][]string{
		{"serve"}, {"replay"}, {"resessionize"}, {"migrate"}, {"journey-map", "show"}, {"healthcheck"},
		{"bench"}, {"bench", "ingest"}, {"bench", "broker"}, {"version"}, {"udf-funnel"},
	}
}

// ownVariables are the WAYMARK_ variables that back no flag and are Waymark's all the same: the
// test suite's (docs/testing.md), deploy/run-local.sh's and the container builds' commit.
var ownVariables = regexp.MustCompile(`^WAYMARK_(TEST|BENCH|FUZZ|LOCAL)_|^WAYMARK_COMMIT$`)

// serviceLinks matches the variables Kubernetes gives every container for each service of its
// namespace (a service waymark, or waymark-anything, gives WAYMARK_SERVICE_HOST,
// WAYMARK_PORT_8080_TCP_ADDR and so on: https://kubernetes.io/docs/concepts/services-networking/service/#environment-variables).
// They are no one's misspelt flag. The bare X_PORT of a service holds its address as a URL
// (tcp://10.0.0.1:9000), which serviceLinkPort tells from a port a user meant for a flag
// (WAYMARK_CLICKHOUSE_PORT=19801: tester 44's F5).
var (
	serviceLinks    = regexp.MustCompile(`^WAYMARK(_[A-Z0-9_]+)?_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT_[0-9]+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)$`)
	serviceLinkPort = regexp.MustCompile(`^WAYMARK(_[A-Z0-9_]+)?_PORT=(tcp|udp|sctp)://`)
)

// strayVariable is a WAYMARK_ environment variable no command reads, and the flag variable
// nearest to it, if one is near enough to be what was meant ("" otherwise).
type strayVariable struct {
	name, meant string
}

// strayVariables returns the WAYMARK_ variables of environ (os.Environ's form, NAME=value) that
// back no flag of any command, and are neither Waymark's own others (ownVariables) nor
// Kubernetes' service links: a misspelt one (WAYMARK_CLICKHOUSE_ADR) would otherwise leave its
// flag at the default without a word (tester 42's F4). They are warned about, not refused: a
// variable meant for another command, or another version of Waymark, is no error. Each names
// the flag variable within two edits of it in upper case, if any (the closest; the first in name
// order of equals).
func strayVariables(ctx context.Context, environ []string) []strayVariable {
	var names []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "WAYMARK_") && !ownVariables.MatchString(name) && !serviceLinks.MatchString(name) && !serviceLinkPort.MatchString(kv) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	known := flagVariables(ctx)
	var out []strayVariable
	for _, name := range names {
		if slices.Contains(known, name) {
			continue
		}
		s, best := strayVariable{name: name}, 3
		for _, k := range known {
			if d := levenshtein.ComputeDistance(strings.ToUpper(name), k); d < best { // WAYMARK_clickhouse_addr meant WAYMARK_CLICKHOUSE_ADDR
				s.meant, best = k, d
			}
		}
		out = append(out, s)
	}
	return out
}

// flagVariables returns the environment variables of every command's flags, sorted, each once:
// each command's help (a *helpRequest) lists its own.
func flagVariables(ctx context.Context) []string {
	lines := flagCommands()
	for _, c := range journeyCommands() {
		lines = append(lines, []string{c.name})
	}
	var vars []string
	quiet := slog.New(slog.DiscardHandler)
	for _, line := range lines {
		err := dispatch(ctx, append(slices.Clip(line), "-h"), io.Discard, quiet)
		if help := (*helpRequest)(nil); errors.As(err, &help) {
			vars = append(vars, help.vars...)
		}
	}
	slices.Sort(vars)
	return slices.Compact(vars)
}

// warnStrayVariables logs a warning for each of strayVariables.
func warnStrayVariables(ctx context.Context, environ []string, log *slog.Logger) {
	for _, s := range strayVariables(ctx, environ) {
		if s.meant != "" {
			log.Warn("environment variable set but read by no command: misspelt?", "variable", s.name, "did_you_mean", s.meant)
			continue
		}
		log.Warn("environment variable set but read by no command: misspelt? ('waymark COMMAND -h' lists each flag's)", "variable", s.name)
	}
}
