// Package udfspike is a throwaway feasibility spike for issue 16: does the chdb test engine run
// executable UDFs, and what does passing per-person arrays through one cost? Not part of the
// build's behaviour; it runs only with WAYMARK_UDF_SPIKE=1.
//
//	WAYMARK_UDF_SPIKE=1 WAYMARK_TEST_CLICKHOUSE=chdb WAYMARK_TEST_LIBCHDB=$(deploy/install-chdb.sh) \
//	  WAYMARK_UDF_SPIKE_EVENTS=1000000 go test ./store/udfspike -run TestHold -v -timeout 60m
//
// TestHold starts a server with the functions below, fills database "spike", writes its HTTP
// address to $WAYMARK_UDF_SPIKE_DIR/addr and keeps it up until $WAYMARK_UDF_SPIKE_DIR/stop exists.
package udfspike

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/waymark-dev/waymark/store"
	"github.com/waymark-dev/waymark/store/storetest"
)

// udfConfig goes into config.d next to config.xml, which storetest writes from the template; the
// engine merges config.d/*.xml into it. The root must match the template's (<yandex>).
const udfConfig = `<?xml version="1.0"?>
<yandex>
    <user_defined_executable_functions_config>__DIR__/*_function.xml</user_defined_executable_functions_config>
    <user_scripts_path>__DIR__/user_scripts/</user_scripts_path>
</yandex>
`

// timeouts are raised from 10 s: a busy 2-core machine and big per-person arrays.
const timeouts = `<command_read_timeout>600000</command_read_timeout>
        <command_write_timeout>600000</command_write_timeout>
        <max_command_execution_time>600</max_command_execution_time>`

func fn(name, typ, format, command, extra string, args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "    <function>\n        <type>%s</type>\n        <name>%s</name>\n        <return_type>String</return_type>\n", typ, name)
	for i, a := range args {
		fmt.Fprintf(&b, "        <argument><type>%s</type><name>a%d</name></argument>\n", a, i)
	}
	fmt.Fprintf(&b, "        <format>%s</format>\n        <command>%s</command>\n        %s\n%s    </function>\n", format, command, timeouts, extra)
	return b.String()
}

func functionsXML() string {
	arr := []string{"Array(UInt64)", "Array(UInt64)"}
	return "<functions>\n" +
		fn("wm_echo", "executable", "TabSeparated", "echo.sh", "", "String") +
		fn("wm_tsv", "executable", "TabSeparated", "udfbin tsv", "", arr...) +
		fn("wm_tsv_pool", "executable_pool", "TabSeparated", "udfbin tsv", "        <pool_size>2</pool_size>\n", arr...) +
		fn("wm_rb", "executable", "RowBinary", "udfbin rowbinary", "", arr...) +
		fn("wm_rb_pool", "executable_pool", "RowBinary", "udfbin rowbinary-pool", "        <pool_size>2</pool_size>\n", arr...) +
		fn("wm_rb_chunk", "executable_pool", "RowBinary", "udfbin rowbinary-chunk", "        <pool_size>2</pool_size>\n        <send_chunk_header>1</send_chunk_header>\n", arr...) +
		"</functions>\n"
}

func TestHold(t *testing.T) {
	if os.Getenv("WAYMARK_UDF_SPIKE") == "" {
		t.Skip("spike: set WAYMARK_UDF_SPIKE=1")
	}
	ctlDir := os.Getenv("WAYMARK_UDF_SPIKE_DIR")
	if ctlDir == "" {
		ctlDir = "/tmp/udfspike"
	}
	if err := os.MkdirAll(ctlDir, 0o755); err != nil {
		t.Fatal(err)
	}
	events := 1_000_000
	if v := os.Getenv("WAYMARK_UDF_SPIKE_EVENTS"); v != "" {
		events, _ = strconv.Atoi(v)
	}
	dir, err := os.MkdirTemp("", "waymark-udfspike-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	// The function files and the UDF binary, before the server starts.
	scripts := filepath.Join(dir, "user_scripts")
	for _, d := range []string{filepath.Join(dir, "config.d"), scripts} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	must(t, os.WriteFile(filepath.Join(dir, "config.d", "udf.xml"), []byte(strings.ReplaceAll(udfConfig, "__DIR__", dir)), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "spike_function.xml"), []byte(functionsXML()), 0o644))
	must(t, os.WriteFile(filepath.Join(scripts, "echo.sh"), []byte("#!/bin/sh\nexec cat\n"), 0o755))
	_, file, _, _ := runtime.Caller(0)
	if out, err := exec.Command("go", "build", "-o", filepath.Join(scripts, "udfbin"), filepath.Join(filepath.Dir(file), "udfbin")).CombinedOutput(); err != nil {
		t.Fatalf("build udfbin: %v\n%s", err, out)
	}
	engine, err := storetest.Engine()
	must(t, err)
	srv, err := storetest.StartEngine(engine, dir)
	must(t, err)
	defer srv.Stop()
	ctx := context.Background()
	s, err := store.Open(ctx, store.Config{Addr: srv.Addr, Database: "spike", QueryTimeout: time.Hour}, slog.New(slog.DiscardHandler), nil)
	must(t, err)
	defer s.Close()
	must(t, s.Migrate(ctx))
	if events > 0 {
		start := time.Now()
		must(t, s.GenerateSynthetic(ctx, events, max(events/10, 1), store.SyntheticOptions{}))
		t.Logf("generated %d events in %s", events, time.Since(start))
	}
	must(t, os.WriteFile(filepath.Join(ctlDir, "addr"), []byte(srv.HTTPAddr+"\n"+dir+"\n"), 0o644))
	t.Logf("engine %s serving on http://%s (dir %s); touch %s/stop to end", engine, srv.HTTPAddr, dir, ctlDir)
	for {
		if _, err := os.Stat(filepath.Join(ctlDir, "stop")); err == nil {
			os.Remove(filepath.Join(ctlDir, "stop"))
			return
		}
		if died, why := srv.Exited(); died {
			t.Fatal(why)
		}
		time.Sleep(time.Second)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
