package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
	"github.com/waymark-dev/waymark/store"
)

func runResessionize(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	fs := newFlagSet("resessionize", "resessionize [--from T] [--to T] [--session-gap 30m] [--session-max 24h] [--journey-map FILE]")
	cf := addClickHouseFlags(fs)
	from := fs.String("from", "", "recompute the sessions of customers with events at or after this time (RFC 3339 or YYYY-MM-DD); empty: all time")
	to := fs.String("to", "", "… and before this time; empty: all time")
	mapPath := fs.String("journey-map", "", "journey map YAML file; empty: the built-in shop map")
	var cfg sessionize.Config
	fs.DurationVar(&cfg.Gap, "session-gap", 30*time.Minute, "inactivity that ends a session")
	fs.DurationVar(&cfg.MaxDuration, "session-max", 24*time.Hour, "longest session; longer runs are cut")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	f, err := store.ParseTime(*from)
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	t, err := store.ParseTime(*to)
	if err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	jm, err := sessionize.LoadMap(*mapPath)
	if err != nil {
		return fmt.Errorf("--journey-map: %w", err)
	}
	st, err := store.Open(ctx, cf.cfg, log, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	keys, err := st.CustomersWithEvents(ctx, f, t)
	if err != nil {
		return err
	}
	var changed, deleted int
	const chunk = 1000
	for start := 0; start < len(keys); start += chunk {
		// A fresh sessionizer per chunk keeps memory bounded; each customer is recomputed from
		// all of its stored events and diffed against its stored sessions.
		core, err := sessionize.New(cfg, jm)
		if err != nil {
			return err
		}
		part := keys[start:min(start+chunk, len(keys))]
		events, sessions, err := st.History(ctx, part)
		if err != nil {
			return err
		}
		byKey, sessByKey := map[string][]ingest.Event{}, map[string][]sessionize.Session{}
		for i := range events {
			byKey[events[i].CustomerKey()] = append(byKey[events[i].CustomerKey()], events[i])
		}
		for _, s := range sessions {
			sessByKey[s.CustomerKey] = append(sessByKey[s.CustomerKey], s)
		}
		for _, k := range part {
			core.Restore(k, byKey[k], sessByKey[k])
		}
		out, _ := core.Push(time.Now(), nil)
		for _, s := range out.Sessions {
			if s.Deleted {
				deleted++
			} else {
				changed++
			}
		}
		if err := st.Write(ctx, sessionize.Batch{Sessions: out.Sessions, Version: out.Version}); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "resessionized %d customers with events in range: %d sessions written (new or changed), %d deleted (gap %s, max %s, map %s)\n",
		len(keys), changed, deleted, cfg.Gap, cfg.MaxDuration, jm.Version)
	return nil
}
