package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"

	"github.com/waymark-dev/waymark/store"
)

func runFunnel(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	fs := newFlagSet("funnel", `funnel --steps "Product Viewed,Product Added,Order Completed" [--window 24h] [--from T] [--to T] [--json]`)
	cf := addClickHouseFlags(fs)
	steps := fs.String("steps", "", "comma-separated steps: event names or stage names of the journey map")
	window := fs.String("window", "24h", "longest time from a customer's first step to their last (30m, 24h, 7d)")
	rng := addRangeFlags(fs, "first step")
	mapPath := fs.String("journey-map", "", "journey map YAML file; empty: the built-in shop map")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if strings.TrimSpace(*steps) == "" {
		return fmt.Errorf("--steps is required, e.g. --steps \"Product Viewed,Order Completed\"")
	}
	q, err := store.ParseFunnelQuery(*steps, *window, *rng.from, *rng.to)
	if err != nil {
		return fmt.Errorf("--%w", err)
	}
	st, jm, err := openWithMap(ctx, cf, *mapPath, log)
	if err != nil {
		return err
	}
	defer st.Close()
	res, err := st.Funnel(ctx, jm, q)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	printFunnel(stdout, res)
	return nil
}

func printFunnel(w io.Writer, res *store.FunnelResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "#\tSTEP\tCUSTOMERS\tFROM FIRST\tFROM PREVIOUS\tDROP-OFF\t")
	for i, s := range res.Steps {
		mark := ""
		if s.LargestDropOff {
			mark = "  ← largest drop-off"
		}
		dropOff := "-" // nothing comes after the last step
		if i+1 < len(res.Steps) {
			dropOff = fmt.Sprintf("%d (%.1f%%)", s.DropOff, 100*s.DropOffRate)
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%.1f%%\t%.1f%%\t%s\t%s\n", i+1, s.Name, s.Customers,
			100*s.ConversionFromFirst, 100*s.ConversionFromPrevious, dropOff, mark)
	}
	tw.Flush()
	fmt.Fprintf(w, "window %s", formatSeconds(res.WindowSeconds))
	if res.From != nil {
		fmt.Fprintf(w, ", from %s", res.From.Format("2006-01-02T15:04:05Z"))
	}
	if res.To != nil {
		fmt.Fprintf(w, ", to %s", res.To.Format("2006-01-02T15:04:05Z"))
	}
	fmt.Fprintln(w)
}

func formatSeconds(s int64) string {
	switch {
	case s%86400 == 0 && s >= 2*86400:
		return fmt.Sprintf("%dd", s/86400)
	case s%3600 == 0:
		return fmt.Sprintf("%dh", s/3600)
	}
	return fmt.Sprintf("%ds", s)
}
