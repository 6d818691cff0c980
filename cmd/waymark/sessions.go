package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"text/tabwriter"

	"github.com/waymark-dev/waymark/store"
)

func runSessions(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	fs := newFlagSet("sessions", "sessions [--from T] [--to T] [--json]")
	cf := addClickHouseFlags(fs)
	rng := addRangeFlags(fs, "sessions starting")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	f, t, err := rng.parse()
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, cf.cfg, log, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	sum, err := st.Sessions(ctx, f, t)
	if err != nil {
		return fmt.Errorf("--%w", err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "sessions\t%d\npersons\t%d\nevents\t%d\nmedian duration\t%.0fs\np90 duration\t%.0fs\nevents per session\t%.1f\n",
		sum.Sessions, sum.Persons, sum.Events, sum.MedianDurationSeconds, sum.P90DurationSeconds, sum.MeanEventsPerSession)
	for _, by := range []struct {
		title string
		m     map[string]uint64
	}{{"end reason", sum.ByEndReason}, {"entry channel", sum.ByEntryChannel}} {
		keys := make([]string, 0, len(by.m))
		for k := range by.m {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			return by.m[keys[i]] > by.m[keys[j]] || by.m[keys[i]] == by.m[keys[j]] && keys[i] < keys[j]
		})
		for _, k := range keys {
			fmt.Fprintf(tw, "by %s: %s\t%d\n", by.title, k, by.m[k])
		}
	}
	return tw.Flush()
}
