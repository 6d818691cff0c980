package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/waymark-dev/waymark/sessionize"
	"github.com/waymark-dev/waymark/store"
)

func runMigrate(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	fs := newFlagSet("migrate", "migrate [flags]")
	cf := addStoreFlags(fs)
	addClusterFlag(fs, cf)
	printOnly := fs.Bool("print", false, "print the DDL for an empty database (with --clickhouse-cluster: the cluster DDL) instead of running it")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *printOnly {
		fmt.Fprintln(stdout, strings.Join(store.SchemaDDL(cf.cfg.Database, cf.cfg.Cluster), ";\n\n")+";")
		return nil
	}
	st, err := openStore(ctx, fs, cf.cfg, log, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	log.Info("schema up to date", "version", store.SchemaVersion(), "database", cf.cfg.Database)
	return nil
}

func runJourneyMap(args []string, stdout io.Writer) error {
	const synopsis = "journey-map check FILE | journey-map show [--journey-map FILE]"
	if len(args) == 0 {
		return fmt.Errorf("usage: waymark %s", synopsis)
	}
	if args[0] == "help" || isHelpFlag(args[0]) {
		return &helpRequest{text: "Usage: waymark " + synopsis + "\n\n" +
			"  check FILE  check a journey map file and print how many stages it has\n" +
			"  show        print the journey map in effect: --journey-map's, or the built-in shop map\n\n" +
			"Run 'waymark journey-map show -h' for its flags.\n"}
	}
	switch args[0] {
	case "check":
		if slices.ContainsFunc(args[1:], isHelpFlag) {
			return &helpRequest{text: "Usage: waymark journey-map check FILE\n\nChecks the journey map in FILE and prints how many stages it has.\n"}
		}
		if len(args) != 2 {
			return fmt.Errorf("usage: waymark %s", synopsis)
		}
		jm, err := sessionize.LoadMap(args[1])
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: journey map %s is valid: %d stages\n", args[1], jm.Version, len(jm.Stages))
		return nil
	case "show":
		fs := newFlagSet("journey-map show", "journey-map show [--journey-map FILE]")
		mapPath := fs.String("journey-map", "", "journey map YAML file; empty: the built-in shop map")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		jm, err := sessionize.LoadMap(*mapPath)
		if err != nil {
			return fs.errorf("journey-map", "%w", err)
		}
		out, err := jm.YAML()
		if err != nil {
			return err
		}
		_, err = stdout.Write(out)
		return err
	}
	return fmt.Errorf("unknown journey-map command %q; usage: waymark %s", args[0], synopsis)
}
