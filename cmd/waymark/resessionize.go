package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"time"

	"github.com/waymark-dev/waymark/sessionize"
)

func runResessionize(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	fs := newFlagSet("resessionize", "resessionize [--from T] [--to T] [--session-gap 30m] [--session-max 24h] [--journey-map FILE]")
	cf := addStoreFlags(fs)
	rng := addRangeFlags(fs, "customers with events")
	mapPath := fs.String("journey-map", "", "journey map YAML file; empty: the built-in shop map")
	var cfg sessionize.Config
	addSessionFlags(fs, &cfg)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkSessionizerFlags(fs, &cfg); err != nil {
		return err
	}
	f, t, err := rng.parse()
	if err != nil {
		return err
	}
	st, jm, err := openWithMap(ctx, fs, cf, *mapPath, log)
	if err != nil {
		return err
	}
	defer st.Close()
	keys, err := st.CustomersWithEvents(ctx, f, t)
	if err != nil {
		return err
	}
	// The persons come from the stored identity links, as a restarted serve's do (see
	// sessionize.Sessionizer.RestoreLinks): one graph for every chunk, so a person whose customers
	// fall in several chunks is one person, named as serve names it. Each chunk's persons are
	// written too, every id of them: an override a consumer wrote knowing only some of its
	// person's links (another partition's, see sessionize.Runner) is written again as the links
	// name the person.
	links, err := st.IdentityLinks(ctx)
	if err != nil {
		return err
	}
	core, err := sessionize.New(cfg, jm)
	if err != nil {
		return err
	}
	core.RestoreLinks(links)
	// As a restarted serve does (sessionize.Runner): a device an alias named before any of its
	// events was seen names its key once they are stored.
	if ids := core.AliasedNonDevices(); len(ids) > 0 {
		_, seen, err := st.DeviceLinks(ctx, ids, math.MaxUint64)
		if err != nil {
			return err
		}
		core.SeenAsDevices(seen)
	}
	var changed, deleted int
	const chunk = 1000
	for start := 0; start < len(keys); start += chunk {
		// Holding one chunk of customers at a time keeps memory bounded; each customer is
		// recomputed from all of its stored events and diffed against its stored sessions.
		core.ForgetCustomers()
		// With them the users whose aliases from a device's id among them are sign-ins on it.
		part := core.RestoreKeys(keys[start:min(start+chunk, len(keys))])
		events, sessions, err := st.History(ctx, part)
		if err != nil {
			return err
		}
		core.RestoreHistory(part, events, sessions)
		out, _ := core.Push(time.Now(), nil)
		for _, s := range out.Sessions {
			if s.Deleted {
				deleted++
			} else {
				changed++
			}
		}
		persons := core.PersonsOf(part)
		// And the sign-ins of the chunk's shared devices, whole (tester 42's F6: consumers that
		// each read one user's server alias from a device's id left its sign-ins without the
		// other's).
		signIns := core.SignInsOf(part)
		if err := st.Write(ctx, sessionize.Batch{Sessions: out.Sessions, Persons: persons, SignIns: signIns, Version: out.Version}); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "resessionized %d customers with events in range: %d sessions written (new or changed), %d deleted (gap %s, max %s, map %s)\n",
		len(keys), changed, deleted, cfg.Gap, cfg.MaxDuration, jm.Version)
	// A running serve keeps its open visits in memory, cut by its own gap, and writes them back
	// at their next event over what was rewritten here (tester 30's F4).
	fmt.Fprintf(stdout, "a running serve (ingest role) does not see this: restart each one now with --session-gap %s --session-max %s and the same journey map, or its open visits are written back cut by its own\n",
		cfg.Gap, cfg.MaxDuration)
	return nil
}
